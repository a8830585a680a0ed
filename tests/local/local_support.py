"""Helpers of the local stack's own tests: a moto server process, the fixture assembly."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

FIXTURE_ASSEMBLY = Path(__file__).parent / "fixtures" / "assembly"
REPO_ROOT = Path(__file__).resolve().parents[2]


def run_fixture_stack(*arguments: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """`python -m local` on the fixture assembly's dev stage, free ports unless `arguments` name
    them, run to its exit (for starts that must fail: a stack that starts runs until `timeout`)."""
    ports = [item for name in ("--http-port", "--ws-port") if name not in arguments for item in (name, "0")]
    command = [sys.executable, "-m", "local", "--cdk-out", str(FIXTURE_ASSEMBLY), "--stage", "dev"]
    return subprocess.run(
        [*command, *arguments, *ports], capture_output=True, text=True, timeout=timeout, check=False
    )


def start_moto(patched: bool) -> tuple[subprocess.Popen[str], str]:
    """A moto server (with or without local/emulator/patches.py) on a free port."""
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "local.emulator.server",
            "--port",
            "0",
            "--parent-pid",
            str(os.getpid()),
            *([] if patched else ["--no-patches"]),
        ],
        cwd=REPO_ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    assert line.startswith("MOTO_READY"), line
    return process, f"http://127.0.0.1:{int(line.split()[1])}"


def stop_moto(process: subprocess.Popen[str]) -> None:
    assert process.stdin is not None
    process.stdin.close()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)


def wait_for(condition: Callable[[], Any], timeout: float = 20.0, interval: float = 0.05) -> Any:
    """Poll `condition` until it returns something truthy (returned), failing after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(interval)
