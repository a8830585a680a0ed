"""The embedded AWS (local/emulator/server.py) as a supervised child of the local stack.

If the process dies, the supervisor starts it again on the same port from the state on disk: the
functions keep their AWS_ENDPOINT_URL and in-flight receipt handles stay valid. If it cannot
come back (or dies again and again, or the stack keeps no state), `on_failure` says why, and the
stack exits non-zero (docs/local-stack.md, "State, restarts and supervision").
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from local.console import Console
from local.emulator import CLOSE_RECEIVES
from local.runtime.processes import kill_process_group

REPO_ROOT = Path(__file__).resolve().parents[2]
START_SECONDS = 60.0  # the first start (imports on a loaded laptop)
# A restart: the emulator's imports and the restore, on a machine that may be busy with the stack's
# own workers (a chaos run's load on 2 cores took over 4 s). A crash loop or an in-memory stack
# still exits at once (MAX_RESTARTS, below); this only bounds one slow start.
RESTART_SECONDS = 20.0
MAX_RESTARTS, RESTART_WINDOW_SECONDS = 5, 60.0  # more crashes than this in the window: give up


class EmulatorError(Exception):
    """The embedded AWS did not start; the message says why."""


@dataclass(frozen=True)
class EmulatorConfig:
    host: str
    port: int  # 0: a free port on the first start (restarts keep the one it got)
    region: str
    setup_file: Path
    state_file: Path | None  # None: state in memory only, nothing to restart from
    stack_name: str
    patches: bool = True


def describe_exit(code: int | None) -> str:
    if code is None:
        return "still running"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


class Emulator:
    def __init__(self, config: EmulatorConfig, console: Console) -> None:
        self.config = config
        self._console = console
        self._process: asyncio.subprocess.Process | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._stopping = False
        self._crashes: list[float] = []
        self.port = config.port
        self.ready: dict[str, Any] = {}
        self.up = asyncio.Event()
        self.restarts = 0

    @property
    def endpoint(self) -> str:
        return f"http://{self.config.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    async def start(self) -> dict[str, Any]:
        """Start it; the MOTO_READY document (stream ARNs, what was restored)."""
        await self._launch(START_SECONDS)
        return self.ready

    def supervise(
        self, on_restart: Callable[[dict[str, Any]], None], on_failure: Callable[[str], None]
    ) -> None:
        self._watcher = asyncio.get_running_loop().create_task(self._watch(on_restart, on_failure))

    async def _launch(self, timeout: float) -> None:
        config = self.config
        environment = dict(os.environ)
        environment["PYTHONPATH"] = os.pathsep.join(
            filter(None, [str(REPO_ROOT), environment.get("PYTHONPATH")])
        )
        environment.pop("AWS_ENDPOINT_URL", None)
        arguments = ["--host", config.host, "--port", str(self.port), "--region", config.region]
        arguments += ["--setup", str(config.setup_file)]
        if config.state_file is not None:
            arguments += ["--state", str(config.state_file), "--stack", config.stack_name]
        if not config.patches:
            arguments.append("--no-patches")
        self._process = process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "local.emulator.server",
            *arguments,
            "--parent-pid",
            str(os.getpid()),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env=environment,
            start_new_session=True,
        )
        assert process.stdout is not None
        try:
            line = await asyncio.wait_for(process.stdout.readline(), timeout)
        except TimeoutError:
            kill_process_group(process.pid)
            raise EmulatorError(f"the embedded AWS (moto) did not start within {timeout:g} s") from None
        failed = re.match(rb"MOTO_FAILED (.*)", line)
        if failed:
            raise EmulatorError(json.loads(failed.group(1))["message"])
        match = re.match(rb"MOTO_READY (\d+) (.*)", line)
        if not match:
            code = await process.wait()
            raise EmulatorError(
                f"the embedded AWS (moto) did not start ({describe_exit(code)}; it said {line!r}): "
                f"is moto[server] installed in {sys.prefix}?"
            )
        self.port = int(match.group(1))
        self.ready = json.loads(match.group(2))
        self.up.set()

    async def _watch(
        self, on_restart: Callable[[dict[str, Any]], None], on_failure: Callable[[str], None]
    ) -> None:
        while True:
            assert self._process is not None
            code = await self._process.wait()
            if self._stopping:
                return
            self.up.clear()
            pid = self._process.pid
            died = f"the embedded AWS (moto, pid {pid}) died ({describe_exit(code)})"
            state = self.config.state_file
            if state is None:
                on_failure(
                    f"{died}; this stack keeps its state in memory (--in-memory), so it is gone: start again"
                )
                return
            now = time.monotonic()
            self._crashes = [t for t in self._crashes if now - t < RESTART_WINDOW_SECONDS] + [now]
            if len(self._crashes) > MAX_RESTARTS:
                on_failure(
                    f"{died} for the {len(self._crashes)}th time in {RESTART_WINDOW_SECONDS:g} s; giving up. "
                    f"Everything it acknowledged is in {state}: start the stack again"
                )
                return
            if not state.exists():
                on_failure(
                    f"{died}, and its state file {state} is gone (deleted while the stack ran?): "
                    "stopping rather than go on with an empty state. Start the stack again to begin empty"
                )
                return
            self._console.event(f"!!! {died}: restarting it from {state}")
            try:
                await self._launch(RESTART_SECONDS)
            except (EmulatorError, OSError) as error:
                on_failure(f"{died} and could not be restarted: {error}. {restart_advice(str(error), state)}")
                return
            self.restarts += 1
            self._console.event(
                f"the embedded AWS is back on port {self.port} after {time.monotonic() - now:.1f} s"
            )
            on_restart(self.ready)

    async def close_receives(self) -> None:
        """Before the pollers stop: SQS hands out no more messages, and long polls return empty
        (a message received for a poller that has gone would come back only after its visibility
        timeout, a receive of its retry budget spent)."""
        process = self._process
        if process is None or process.returncode is not None or process.stdin is None:
            return
        with contextlib.suppress(Exception):  # gone meanwhile: its receives ended with it
            process.stdin.write(f"{CLOSE_RECEIVES}\n".encode())
            await process.stdin.drain()

    async def stop(self) -> None:
        self._stopping = True
        if self._watcher is not None:
            self._watcher.cancel()
            await asyncio.gather(self._watcher, return_exceptions=True)
        process = self._process
        if process is None or process.returncode is not None:
            return
        if process.stdin is not None:
            with contextlib.suppress(Exception):
                process.stdin.close()
        try:
            await asyncio.wait_for(process.wait(), 3)
        except TimeoutError:
            kill_process_group(process.pid)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(process.wait(), 3)


def restart_advice(error: str, state: Path) -> str:
    """What to do after a restart failed with `error`: nothing is claimed about the state file
    that the next start's own checks (local.state.store) would contradict."""
    if "disk is full" in error or "No space left" in error:
        return (
            f"Free some disk space where {state.parent} is, then start the stack again: what the "
            "embedded AWS acknowledged was committed before the disk filled"
        )
    return f"Start the stack again: it checks {state} first, and says what to do if it cannot use it"
