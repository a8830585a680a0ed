"""Start `python -m local` as a child process and wait for it to be ready (for tests and bench/).

    with LocalStackProcess(["--cdk-out", "cdk.out", "--stage", "dev"]) as stack:
        stack.http_url, stack.ws_url, stack.moto_url

Ports default to 0 (free ports); the URLs come from the LOCAL_STACK_READY line. Without a
`--state-dir` the stack gets a temporary one of its own (removed at stop), so tests and
benchmarks never share state with each other or with `make dev`. Everything the stack prints is
kept in `stack.output`. Leaving the block sends SIGTERM, waits for a clean stop, and kills the
process group if it does not come.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
READY_PREFIX = "LOCAL_STACK_READY"


class LocalStackProcess:
    def __init__(self, arguments: Sequence[str], *, start_timeout: float = 120.0) -> None:
        self._temporary: Path | None = None
        if "--state-dir" in arguments:
            self.state_dir = Path(arguments[list(arguments).index("--state-dir") + 1])
        else:
            self.state_dir = self._temporary = Path(tempfile.mkdtemp(prefix="local-stack-"))
        ports = {"--http-port": "0", "--ws-port": "0", "--moto-port": "0"}
        defaults = {**ports, "--state-dir": str(self.state_dir)}
        extra = [item for key, value in defaults.items() if key not in arguments for item in (key, value)]
        self.arguments = [sys.executable, "-m", "local", *arguments, *extra, "--parent-pid", str(os.getpid())]
        self.start_timeout = start_timeout
        self.output: list[str] = []
        self.http_url = self.ws_url = self.moto_url = ""
        self.process: subprocess.Popen[str] | None = None
        self._ready = threading.Event()
        self._reader: threading.Thread | None = None

    def __enter__(self) -> LocalStackProcess:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> None:
        self.process = subprocess.Popen(  # noqa: S603 - our own CLI, arguments from the caller
            self.arguments,
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            start_new_session=True,  # --parent-pid: it dies with the test run / benchmark
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        deadline = time.monotonic() + self.start_timeout
        while not self._ready.wait(0.2):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the local stack did not start:\n" + "".join(self.output[-60:]))

    def _read(self) -> None:
        assert self.process is not None
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.output.append(line)
            if line.startswith(READY_PREFIX):
                fields = dict(part.split("=", 1) for part in line.split()[1:] if "=" in part)
                self.http_url, self.ws_url, self.moto_url = (
                    fields.get(key, "") for key in ("http", "ws", "moto")
                )
                self._ready.set()

    def text(self) -> str:
        return "".join(self.output)

    def stop(self) -> int | None:
        process = self.process
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(5)
        if self._reader is not None:
            self._reader.join(5)
        if self._temporary is not None:
            shutil.rmtree(self._temporary, ignore_errors=True)
        return process.returncode
