"""`python -m local`'s options: a bad value is one line naming the option, never a traceback."""

from __future__ import annotations

import contextlib
import signal
import socket
from collections.abc import Iterator

import pytest
from local_support import FIXTURE_ASSEMBLY, run_fixture_stack, wait_for

from local.cli import build_parser
from local.launcher import LocalStackProcess


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (
            ["--http-port", "-1"],
            "argument --http-port: must be a port number from 0 (any free port) to 65535",
        ),
        (["--ws-port", "70000"], "argument --ws-port: must be a port number from 0 (any free port) to 65535"),
        (["--moto-port", "65536"], "argument --moto-port: must be a port number"),
        (["--ws-port", "abc"], "argument --ws-port: must be a port number from 0 (any free port) to 65535"),
        (["--region", ""], "argument --region: '' is not an AWS region name (e.g. us-east-1)"),
        (["--region", "us east 1"], "argument --region: 'us east 1' is not an AWS region name"),
        (["--max-concurrency", "0"], "argument --max-concurrency: must be at least 1"),
        (["--stats-file", "/"], "argument --stats-file: /: is a folder; give a file name in it"),
        (["--stats-file", "/nonexistent/stats.json"], "its folder /nonexistent does not exist"),
    ],
)
def test_a_bad_port_or_region_is_one_line_naming_the_option(arguments, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["--stage", "dev", *arguments])

    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_a_region_name_is_accepted_as_given():
    assert build_parser().parse_args(["--region", "eu-central-1"]).region == "eu-central-1"


@contextlib.contextmanager
def port_in_use() -> Iterator[int]:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        yield taken.getsockname()[1]


def test_an_embedded_aws_port_in_use_says_so_not_that_moto_is_missing():
    with port_in_use() as port:
        started = run_fixture_stack("--in-memory", "--moto-port", str(port), timeout=90)

    assert started.returncode == 1
    assert f"error: cannot listen on 127.0.0.1:{port}: the port is in use" in started.stderr
    assert "is moto[server] installed" not in started.stderr


def test_an_http_port_in_use_says_how_to_take_free_ports():
    with port_in_use() as port:
        started = run_fixture_stack("--in-memory", "--http-port", str(port), timeout=90)

    assert started.returncode != 0
    assert f"cannot listen on 127.0.0.1:{port}: Address already in use" in started.stderr
    assert "LOCAL_ARGS='--http-port 0 --ws-port 0'" in started.stderr


def test_a_second_ctrl_c_stops_at_once_and_says_what_that_means():
    with LocalStackProcess(["--cdk-out", str(FIXTURE_ASSEMBLY), "--stage", "dev", "--in-memory"]) as stack:
        assert stack.process is not None
        stack.process.send_signal(signal.SIGINT)
        wait_for(lambda: "stopping... (Ctrl-C again stops at once)" in stack.text())
        stack.process.send_signal(signal.SIGINT)

        assert stack.process.wait(20) == 130
        wait_for(lambda: "stopped at once" in stack.text())
        assert "nothing is lost" in stack.text()
