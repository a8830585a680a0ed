"""Functions as warm worker processes: the local Lambda service.

Each function gets a pool of workers (local/runtime/bootstrap.py in the function's asset folder,
with its environment), each importing the handler once and serving one invocation at a time like
a Lambda execution environment; the pool grows on demand up to its concurrency limit.

The template's Timeout is enforced by killing the worker's process group; a fresh worker replaces
it, its cold start not counted against the next invocation's timeout (as Lambda's init is not).
After `switch_code` (local/runtime/code_reload.py) new workers start on the new code and idle old
ones retire; if the new code's first cold start fails, the pool goes back to the code it ran
before and says why (`notice`). `stats` counts invocations by outcome and the handler's
milliseconds as the worker measured them (what Lambda bills).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import json
import math
import os
import shutil
import signal
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from local.metering.meter import camel_json
from local.runtime.processes import kill_process_group

# Less free space than this where the workers write their logs: a worker that exits is most
# likely one that could not write its output, and the error says so.
LOW_LOG_SPACE_BYTES = 1024 * 1024

BOOTSTRAP = Path(__file__).with_name("bootstrap.py")
INIT_TIMEOUT_SECONDS = 60.0  # Lambda allows 10 s; a loaded 2-core laptop importing pydantic needs more
_MAX_LINE = 64 * 1024 * 1024


@dataclass(frozen=True)
class RuntimeFunction:
    """Everything needed to start a function's workers."""

    key: str  # logical id
    display_name: str
    name: str
    arn: str
    handler: str
    timeout_seconds: float
    memory_size: int
    code_dir: Path
    environment: dict[str, str]
    max_workers: int
    time_scale: float = 1.0
    faults: str = ""  # local/faults/injection.py: the worker's fault configuration (JSON), "" for none

    def with_code(self, code_dir: Path) -> RuntimeFunction:
        """The same function running the code in `code_dir` (environment values that named the
        old folder, such as PYTHONPATH and LAMBDA_TASK_ROOT, name the new one)."""
        old = str(self.code_dir)
        environment = {
            name: str(code_dir) if value == old else value for name, value in self.environment.items()
        }
        return dataclasses.replace(self, code_dir=code_dir, environment=environment)


@dataclass
class InvocationResult:
    outcome: str  # "ok" | "error" | "timeout"
    duration_ms: float
    request_id: str
    payload: Any = None
    error: dict[str, Any] | None = None
    cpu_ms: float = 0.0  # CPU time of the worker process during the invocation (0 if unknown)
    max_memory_mb: float = 0.0  # the worker's peak resident memory so far (0 if unknown)

    @property
    def ok(self) -> bool:
        return self.outcome == "ok"

    def outcome_text(self) -> str:
        """How the console shows the outcome: ok, timeout, or error <type: message>."""
        if self.ok or self.outcome == "timeout":
            return self.outcome
        return f"error {self.error_summary()}"

    def error_summary(self) -> str:
        if self.outcome == "timeout":
            return "timeout"
        if not self.error:
            return ""
        message = str(self.error.get("errorMessage", ""))
        if len(message) > 160:
            message = message[:157] + "..."
        return f"{self.error.get('errorType', 'Error')}: {message}"


Invoke = Callable[[Any], Awaitable[InvocationResult]]  # a function's pool.invoke
InvokeFunction = Callable[[str, Any], Awaitable[InvocationResult]]  # the stack's invoke(function id, event)


class WorkerDied(Exception):
    pass


@dataclass
class InvocationStats:
    """The invocations of one function: counts by outcome and handler time."""

    invocations: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    duration_ms: float = 0.0  # handler time as measured in the worker (round trip if unknown)
    billed_ms: int = 0  # each invocation rounded up to a whole millisecond, as Lambda bills
    init_ms: float = 0.0  # cold starts' init (the handler module's import), not per invocation
    init_cpu_ms: float = 0.0  # the same on CPU (the worker's start included)
    cpu_ms: float = 0.0  # CPU time of the invocations (bench memory models Lambda's CPU share)
    max_memory_mb: float = 0.0  # the highest peak resident memory of any worker (Max Memory Used)

    def add(self, result: InvocationResult) -> None:
        self.invocations += 1
        self.outcomes[result.outcome] = self.outcomes.get(result.outcome, 0) + 1
        self.duration_ms += result.duration_ms
        self.billed_ms += max(1, math.ceil(result.duration_ms))
        self.cpu_ms += result.cpu_ms
        self.max_memory_mb = max(self.max_memory_mb, result.max_memory_mb)

    def to_json(self) -> dict[str, Any]:
        # max_memory_mb has one decimal already (the worker rounds it): rounding it again keeps it
        return {key: round(v, 3) if isinstance(v, float) else v for key, v in camel_json(self).items()}


@dataclass(eq=False)
class _Worker:
    function: RuntimeFunction  # what it was started with
    process: asyncio.subprocess.Process
    responses: asyncio.StreamReader
    ready: asyncio.Future[dict[str, Any]]
    log: IO[bytes]
    ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    reader_task: asyncio.Task[None] | None = None
    pending: dict[int, asyncio.Future[dict[str, Any]]] = field(default_factory=dict)
    alive: bool = True
    init_counted: bool = False

    async def read_loop(self) -> None:
        try:
            while True:
                line = await self.responses.readline()
                if not line:
                    break
                message = json.loads(line)
                kind = message.get("type")
                if kind in ("ready", "init_error"):
                    if not self.ready.done():
                        self.ready.set_result(message)
                elif kind == "result":
                    future = self.pending.pop(int(message["id"]), None)
                    if future is not None and not future.done():
                        future.set_result(message)
        except (OSError, ValueError):
            pass
        finally:
            self.alive = False
            died = WorkerDied("it ended before answering (killed, or it crashed)")
            if not self.ready.done():
                self.ready.set_exception(died)
            for future in self.pending.values():
                if not future.done():
                    future.set_exception(died)
            self.pending.clear()

    async def call(self, request: dict[str, Any], timeout: float) -> dict[str, Any]:
        request_id = next(self.ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.pending[request_id] = future
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps({**request, "id": request_id}).encode() + b"\n")
        await self.process.stdin.drain()
        return await asyncio.wait_for(future, timeout)

    def kill(self) -> None:
        self.alive = False
        kill_process_group(self.process.pid, signal.SIGKILL)

    async def stop(self, grace: float = 2.0) -> None:
        if self.process.returncode is None:
            if self.process.stdin is not None:
                with contextlib.suppress(Exception):
                    self.process.stdin.close()
            try:
                await asyncio.wait_for(self.process.wait(), grace)
            except TimeoutError:
                self.kill()
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self.process.wait(), grace)
        if self.reader_task is not None:
            self.reader_task.cancel()
            await asyncio.gather(self.reader_task, return_exceptions=True)
        with contextlib.suppress(Exception):
            self.log.close()


class FunctionPool:
    """The warm workers of one function and its concurrency limit."""

    def __init__(
        self, function: RuntimeFunction, log_dir: Path, notice: Callable[[str], None] | None = None
    ) -> None:
        self.function = function
        self._fallback: RuntimeFunction | None = None  # the code before switch_code, until the new one starts
        self._notice = notice or (lambda _text: None)
        self._log_dir = log_dir
        self._slots = asyncio.Semaphore(max(1, function.max_workers))
        self._idle: list[_Worker] = []
        self._all: set[_Worker] = set()
        self._hangs_pending = 0
        self._stopping = False
        self._background: set[asyncio.Task[Any]] = set()
        self.cold_starts = 0
        self.worker_exits = 0  # workers that died during an invocation (crash, os._exit, kill)
        self.stats = InvocationStats()

    def switch_code(self, code_dir: Path) -> None:
        """Run the code in `code_dir` from now on: the next invocation starts a worker on it (not
        before: eight functions starting at once on two cores would slow the one being tried);
        idle workers on the old code retire now, busy ones after their invocation."""
        self._fallback = self.function
        self.function = self.function.with_code(code_dir)
        for old in self._idle:
            self._retire(old)
        self._idle = []

    def code_dirs(self) -> set[Path]:
        """The code this pool runs, and the code it would go back to."""
        return {self.function.code_dir, *([self._fallback.code_dir] if self._fallback else [])}

    def _started(self, worker: _Worker, init: dict[str, Any]) -> bool:
        """After a worker's cold start: False if it failed on code just switched to, in which case
        the pool is back on its previous code."""
        if init.get("type") != "init_error":
            if worker.function is self.function:
                self._fallback = None  # the new code starts: nothing to go back to
            return True
        if self._fallback is None or worker.function is not self.function:
            return True  # not a new code's first cold start: an ordinary init error
        error = init.get("error") or {}
        self.function, self._fallback = self._fallback, None
        self._notice(
            f"!!! {self.function.display_name}: the new code failed its cold start "
            f"({error.get('errorType')}: {error.get('errorMessage')}); back on the previous code"
        )
        return False

    def inject_hangs(self, count: int) -> None:
        """Local fault: the next `count` invocations hang until the timeout kills them."""
        self._hangs_pending += count

    def start_prewarm(self) -> None:
        """Start one worker in the background so the first invocation finds it warm."""
        task = asyncio.get_running_loop().create_task(self.prewarm())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def prewarm(self) -> None:
        if self._idle or self._stopping:
            return
        worker = await self._spawn()
        init = await self._cold_start(worker)
        if init.get("type") == "init_error":
            self._discard(worker)
            if not self._started(worker, init):
                self.start_prewarm()  # on the previous code
            return
        self._started(worker, init)
        if worker.alive and not self._stopping:
            self._idle.append(worker)

    async def _cold_start(self, worker: _Worker) -> dict[str, Any]:
        """The worker's ready (or init_error) message; a death or timeout as an init_error."""
        try:
            return await asyncio.wait_for(asyncio.shield(worker.ready), INIT_TIMEOUT_SECONDS)
        except (WorkerDied, TimeoutError) as error:
            message = str(error) or "init timed out"
            return {
                "type": "init_error",
                "error": {"errorType": "Runtime.InitError", "errorMessage": message},
            }

    async def invoke(self, event: Any) -> InvocationResult:
        result = await self._invoke(event)
        self.stats.add(result)
        return result

    async def _invoke(self, event: Any) -> InvocationResult:
        request_id = str(uuid.uuid4())
        async with self._slots:
            worker = self._take_idle() or await self._spawn()
            started = time.perf_counter()
            init = await self._cold_start(worker)
            if not self._started(worker, init):  # back on the previous code: start one of those
                self._discard(worker)
                worker = await self._spawn()
                init = await self._cold_start(worker)
            if init.get("type") == "init_error":
                self._discard(worker)
                return InvocationResult("error", _ms(started), request_id, error=init.get("error"))
            if not worker.init_counted:
                worker.init_counted = True
                self.stats.init_ms += float(init.get("initMs") or 0.0)
                self.stats.init_cpu_ms += float(init.get("initCpuMs") or 0.0)

            fault = None
            if self._hangs_pending > 0:
                self._hangs_pending -= 1
                fault = "hang"
            timeout = self.function.timeout_seconds
            started = time.perf_counter()
            request = {
                "requestId": request_id,
                "deadlineMs": time.time() * 1000 + timeout * 1000,
                "event": event,
                "fault": fault,
            }
            try:
                response = await worker.call(request, timeout)
            except TimeoutError:
                self._discard(worker)
                self._respawn_later()
                message = f"Task timed out after {timeout:.2f} seconds"
                error = {"errorType": "Sandbox.Timedout", "errorMessage": message}
                return InvocationResult("timeout", _ms(started), request_id, error=error)
            except (WorkerDied, ConnectionError, BrokenPipeError) as died:
                self.worker_exits += 1
                self._discard(worker)
                self._respawn_later()
                reason = f"worker exited: {died}{self._low_log_space()}"
                error = {"errorType": "Runtime.ExitError", "errorMessage": reason}
                return InvocationResult("error", _ms(started), request_id, error=error)
            duration = _ms(started)
            measured = response.get("durationMs")
            if isinstance(measured, int | float):
                duration = float(measured)  # the handler's own time, without the pipe round trip
            if worker.function is not self.function:
                self._retire(worker)  # the pool moved to other code meanwhile
            elif worker.alive and not self._stopping:
                self._idle.append(worker)
            result = InvocationResult(
                "ok" if response.get("ok") else "error",
                duration,
                request_id,
                cpu_ms=float(response.get("cpuMs") or 0.0),
                max_memory_mb=float(response.get("maxMemoryMb") or 0.0),
            )
            if result.ok:
                result.payload = response.get("payload")
            else:
                result.error = response.get("error")
            return result

    def _take_idle(self) -> _Worker | None:
        while self._idle:
            worker = self._idle.pop()
            if worker.alive and worker.function is self.function:
                return worker
            self._retire(worker)  # dead, or on code the pool has moved away from
        return None

    def _discard(self, worker: _Worker) -> None:
        """Kill a worker (timed out, died, or failed its init) and reap it in the background."""
        worker.kill()
        self._retire(worker)

    def _retire(self, worker: _Worker) -> None:
        """Stop a worker in the background (closing its stdin ends it once idle)."""
        self._all.discard(worker)
        task = asyncio.get_running_loop().create_task(worker.stop(grace=1.0))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _respawn_later(self) -> None:
        if not self._stopping and not self._idle:
            self.start_prewarm()

    def _low_log_space(self) -> str:
        """The likely cause of a worker's exit worth naming: no room left for its log."""
        try:
            free = shutil.disk_usage(self._log_dir).free
        except OSError:
            return ""
        if free >= LOW_LOG_SPACE_BYTES:
            return ""
        return f" (only {free} bytes free in the log folder {self._log_dir}: free space, or use --log-dir)"

    async def _spawn(self) -> _Worker:
        function = self.function
        self.cold_starts += 1
        self._log_dir.mkdir(parents=True, exist_ok=True)
        log = (self._log_dir / f"{function.display_name}.log").open("ab")
        read_fd, write_fd = os.pipe()
        try:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-P",
                str(BOOTSTRAP),
                "--response-fd",
                str(write_fd),
                "--handler",
                function.handler,
                "--function-arn",
                function.arn,
                "--time-scale",
                repr(function.time_scale),
                "--parent-pid",
                str(os.getpid()),
                *(["--faults", function.faults] if function.faults else []),
                stdin=asyncio.subprocess.PIPE,
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
                cwd=str(function.code_dir),
                env=function.environment,
                pass_fds=(write_fd,),
                start_new_session=True,
            )
        finally:
            os.close(write_fd)
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=_MAX_LINE)
        await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(read_fd, "rb", buffering=0)
        )
        ready: asyncio.Future[dict[str, Any]] = loop.create_future()
        ready.add_done_callback(_retrieve_exception)
        worker = _Worker(function=function, process=process, responses=reader, ready=ready, log=log)
        worker.reader_task = loop.create_task(worker.read_loop())
        self._all.add(worker)
        return worker

    async def stop(self) -> None:
        self._stopping = True
        if self._background:  # reaping killed workers takes a moment; a cold start may not finish
            await asyncio.wait(list(self._background), timeout=3)
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        workers = list(self._all)
        self._all.clear()
        self._idle.clear()
        await asyncio.gather(*(worker.stop() for worker in workers), return_exceptions=True)


def _retrieve_exception(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()  # a worker that dies before anyone waits is not an error to log


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000
