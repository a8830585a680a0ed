"""`python -m local`'s options: a bad value is one line naming the option, never a traceback."""

from __future__ import annotations

import socket

import pytest
from local_support import run_fixture_stack

from local.cli import build_parser


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (
            ["--http-port", "-1"],
            "argument --http-port: must be a port number from 0 (any free port) to 65535",
        ),
        (["--ws-port", "70000"], "argument --ws-port: must be a port number from 0 (any free port) to 65535"),
        (["--moto-port", "65536"], "argument --moto-port: must be a port number"),
        (["--region", ""], "argument --region: '' is not an AWS region name (e.g. us-east-1)"),
        (["--region", "us east 1"], "argument --region: 'us east 1' is not an AWS region name"),
        (["--max-concurrency", "0"], "argument --max-concurrency: must be at least 1"),
    ],
)
def test_a_bad_port_or_region_is_one_line_naming_the_option(arguments, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["--stage", "dev", *arguments])

    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_a_region_name_is_accepted_as_given():
    assert build_parser().parse_args(["--region", "eu-central-1"]).region == "eu-central-1"


def test_an_embedded_aws_port_in_use_says_so_not_that_moto_is_missing():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        started = run_fixture_stack("--in-memory", "--moto-port", str(port), timeout=90)

    assert started.returncode == 1
    assert f"error: cannot listen on 127.0.0.1:{port}: the port is in use" in started.stderr
    assert "is moto[server] installed" not in started.stderr
