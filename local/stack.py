"""The local stack: moto, the functions, the event sources and the two APIs, started in order."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import socket
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web

from local.banner import print_banner
from local.console import Console, MalformedRequests
from local.emulator.aws_json import AwsJsonClient, EmulatorRestarting
from local.emulator.provision import setup_requests
from local.emulator.supervisor import Emulator, EmulatorConfig, EmulatorError
from local.faults.injection import (
    STATS_FILE,
    Dice,
    StackFaultCounters,
    prepare_directory,
    write_json_atomically,
    write_sqs_outage,
)
from local.gateways.http_api import HttpApiServer
from local.gateways.websocket_api import WebSocketApiServer
from local.options import Options
from local.runtime.code_reload import CodeWatcher
from local.runtime.functions import build_pools, rewrite_api_urls
from local.runtime.pool import FunctionPool, InvocationResult
from local.sources.mappings import start_pollers
from local.sources.sqs import SqsPoller
from local.sources.streams import StreamPoller
from local.sources.ttl_sweeper import TtlSweeper, TtlTable
from local.state.running_stack import state_file_path
from local.state.stack_state import StackState
from local.state.store import StateLock, state_paths
from local.template.cdk_out import SynthesizedStack
from local.template.intrinsics import IntrinsicError, PseudoParameters
from local.template.model import ISSUERS_PATH, StackModel
from local.template.reader import build_stack_model
from local.template.values import LocalValues, check_resolvable

if TYPE_CHECKING:  # local.auth.stack_auth loads PyJWT and cryptography: imported only for stacks with auth
    from local.auth.stack_auth import StackAuth

HOST = "127.0.0.1"
DEPTH_INTERVAL_SECONDS = 5.0
DEPTH_HEARTBEAT_SECONDS = 60.0
STATS_INTERVAL_SECONDS = 1.0
DRAIN_SECONDS = 8.0  # at stop, for the batches being processed
DEPTHS = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]  # visible, in flight


def bind(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((HOST, port))
    except OSError as error:
        sock.close()
        hint = (
            " (another process has it: `make dev LOCAL_ARGS='--http-port 0 --ws-port 0'` takes free ports)"
            if error.errno == errno.EADDRINUSE
            else ""
        )
        raise OSError(f"cannot listen on {HOST}:{port}: {error.strerror}{hint}") from None
    sock.listen(1024)
    sock.setblocking(False)
    return sock


class LocalStack:
    def __init__(self, stack: SynthesizedStack, options: Options, console: Console) -> None:
        self.options = options
        self.console = console
        self.stack = stack
        self.model: StackModel = build_stack_model(
            stack.template,
            stack.stack_name,
            stack.cdk_out,
            PseudoParameters(region=options.region, stack_name=stack.stack_name),
        )
        self.pools: dict[str, FunctionPool] = {}
        self.moto_endpoint = ""
        self.http_url = self.ws_url = ""
        self.state_folder = state_paths(options.state_dir, stack.stack_name).folder
        self.state: StackState | None = None
        self.restored: dict[str, Any] | None = None  # what the embedded AWS loaded from the state
        self.closed_connections = 0  # connections of the last run given their $disconnect
        self.emulator: Emulator | None = None
        self.watcher = (
            CodeWatcher(options.watch, self.state_folder / "code", console) if options.watch else None
        )
        self.failure: str | None = None  # why the stack must stop (a part died for good)
        self.failed = asyncio.Event()
        self._lock: StateLock | None = None
        self._session: aiohttp.ClientSession | None = None
        self._runners: list[web.AppRunner] = []
        self._sqs_pollers: list[SqsPoller] = []
        self._stream_pollers: list[StreamPoller] = []
        self._sweeper: TtlSweeper | None = None
        self._monitor: asyncio.Task[None] | None = None
        self._stats_writer: asyncio.Task[None] | None = None
        self._dice = Dice(options.chaos.seed)
        self.fault_counters = StackFaultCounters()
        self.http_server: HttpApiServer | None = None
        self.ws_server: WebSocketApiServer | None = None
        self.values: LocalValues | None = None
        self.auth: StackAuth | None = None
        self._malformed_requests = MalformedRequests(console)

    # --- start -----------------------------------------------------------------------------

    async def start(self) -> None:
        options = self.options
        model = self.model
        self._open_state()  # first: a second stack on this state is told so, not "port in use"
        self._check_log_folder()
        http_socket = bind(options.http_port) if model.http_apis else None
        ws_socket = bind(options.ws_port) if model.websocket_apis else None
        http_port = http_socket.getsockname()[1] if http_socket else 0
        ws_port = ws_socket.getsockname()[1] if ws_socket else 0
        self.http_url = f"http://{HOST}:{http_port}" if http_socket else ""
        ws_stage = model.websocket_apis[0].stage_name if model.websocket_apis else ""
        self.ws_url = f"ws://{HOST}:{ws_port}/{ws_stage}" if ws_socket else ""
        # The local issuers live on the HTTP API's port (else the WebSocket API's): a fixed port
        # keeps their URLs, hence the tokens' iss, the same from one run to the next.
        issuer_base = f"http://{HOST}:{http_port or ws_port or options.http_port}{ISSUERS_PATH}"
        ready = await self._start_emulator(LocalValues(model, "", issuer_base=issuer_base))
        self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64, force_close=False))
        assert self.emulator is not None
        aws = AwsJsonClient(
            self._session, self.moto_endpoint, options.region, caller="provision", available=self.emulator.up
        )
        by_name = {table.name: logical_id for logical_id, table in model.tables.items()}
        stream_arns = {
            by_name[name]: arn for name, arn in ready.get("streams", {}).items() if name in by_name
        }
        values = LocalValues(model, self.moto_endpoint, stream_arns, issuer_base=issuer_base)
        self.restored = ready.get("restored") if self.state is not None and self.state.restored else None
        self.values = values
        check_resolvable(model, values)
        replacements = self._api_url_replacements(http_port, ws_port)
        if model.has_auth:
            from local.auth.stack_auth import build_stack_auth  # noqa: PLC0415 - only stacks with auth

            self.auth = build_stack_auth(model, values, options.state_dir, options.dev_token_lifetime)
        issuer_routes = self.auth.routes() if self.auth is not None else []

        self.pools = build_pools(
            model,
            values,
            options,
            endpoint=self.moto_endpoint,
            replacements=replacements,
            watcher=self.watcher,
            issuer_value=self.auth.environment_value if self.auth is not None else None,
            notice=self.console.event,
        )
        self._sqs_pollers, self._stream_pollers = start_pollers(
            model,
            values,
            self.pools,
            aws,
            self.console,
            options=options,
            dice=self._dice,
            checkpoints=self.state,
        )
        self._sweeper = TtlSweeper(
            [
                TtlTable(t.name, tuple(k["AttributeName"] for k in t.key_schema), t.ttl_attribute)
                for t in model.tables.values()
                if t.ttl_attribute
            ],
            aws.with_caller("ttl-sweeper"),
            self.console,
        )
        self._sweeper.start()

        await self._serve_apis(http_socket, ws_socket, issuer_routes)
        self._monitor = asyncio.get_running_loop().create_task(
            self._monitor_queues(aws.with_caller("depth-monitor"), values)
        )
        self._start_chaos()
        self._replacements = replacements
        self._write_state_file()
        self.emulator.supervise(lambda _ready: self._write_state_file(), self._fail)
        if self.watcher is not None:
            self.watcher.start()
        print_banner(self)
        for pool in self.pools.values():
            pool.start_prewarm()

    def _open_state(self) -> None:
        """Lock the stack's state folder; with durable state, open (and check) the state too."""
        options = self.options
        if options.durable:
            self.state = StackState.open(options.state_dir, self.model, fresh=options.fresh)
            self.state.warn = self.console.warn
        else:
            lock = StateLock(state_paths(options.state_dir, self.model.stack_name))
            lock.acquire()  # refused: no lock held, so stop() leaves the running stack's run file alone
            self._lock = lock
        if options.chaos.directory is not None and (self.state is None or not self.state.restored):
            prepare_directory(options.chaos.directory)  # a restored stack continues its history

    def _check_log_folder(self) -> None:
        """Every worker writes its log there: a folder that cannot be written would leave a stack
        that says it is ready and answers every request 500."""
        folder = self.options.log_dir / self.model.stack_name
        try:
            folder.mkdir(parents=True, exist_ok=True)
            probe = folder / f".writable-{os.getpid()}"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as error:
            raise RuntimeError(
                f"the functions' log folder {folder} cannot be written ({error.strerror}): "
                "free it or start with --log-dir pointing elsewhere"
            ) from None

    async def _serve_apis(
        self,
        http_socket: socket.socket | None,
        ws_socket: socket.socket | None,
        issuer_routes: list[web.RouteDef],
    ) -> None:
        model, options = self.model, self.options
        logging.getLogger("aiohttp.server").addFilter(self._malformed_requests)
        names = {lid: spec.display_name for lid, spec in model.functions.items()}
        common = (names, self.invoke, self.console, model.pseudo.account_id)
        if http_socket is not None:
            validators = self.auth.validators if self.auth is not None else None
            self.http_server = HttpApiServer(model.http_apis[0], *common, validators=validators)
            await self._serve(self.http_server.application(issuer_routes), http_socket)
            for extra in model.http_apis[1:]:
                model.unsupported(f"HTTP API {extra.display_name}", "only one HTTP API is served")
        if ws_socket is not None:
            self.ws_server = WebSocketApiServer(
                model.websocket_apis[0],
                *common,
                push_failure_rate=options.chaos.push_failure_rate,
                dice=self._dice,
                counters=self.fault_counters,
                region=options.region,
                connection_log=self.state,
            )
            if self.state is not None:  # a stack that died owes its connections their $disconnect
                previous = self.state.store.connections()
                await self.ws_server.disconnect_previous(previous)
                self.closed_connections = len(previous)
            await self._serve(self.ws_server.application([] if http_socket else issuer_routes), ws_socket)
            for other in model.websocket_apis[1:]:
                model.unsupported(f"WebSocket API {other.display_name}", "only one is served")

    def _fail(self, reason: str) -> None:
        """A part the stack cannot run without is gone for good: stop, and say why."""
        self.console.event(f"!!! {reason}")
        self.failure = reason
        self.failed.set()

    @property
    def state_file(self) -> Path:
        return state_file_path(self.options.state_dir, self.model.stack_name)

    def _write_state_file(self) -> None:
        """The template's Outputs resolved to local values (API URLs rewritten to the local
        ports), with the embedded AWS endpoint: what a deployed stack's DescribeStacks gives."""
        assert self.values is not None
        assert self.emulator is not None
        resolver = self.model.resolver(self.values)
        outputs = {}
        for name, output in (self.stack.template.get("Outputs") or {}).items():
            try:
                value = resolver.resolve(output.get("Value"))
            except IntrinsicError:
                continue
            outputs[name] = rewrite_api_urls(str(value), self._replacements)
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomically(
            self.state_file,
            {
                "stack": self.model.stack_name,
                "pid": os.getpid(),
                "motoPid": self.emulator.pid,
                "endpoint": self.moto_endpoint,
                "region": self.options.region,
                "http": self.http_url,
                "ws": self.ws_url,
                "outputs": outputs,
                **({"auth": self.auth.state()} if self.auth is not None else {}),
            },
        )

    async def _start_emulator(self, values: LocalValues) -> dict[str, Any]:
        """The embedded AWS, provisioned from the template and restored from the state."""
        setup = self.state_folder / "setup.json"
        setup.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomically(setup, setup_requests(self.model, values, self.options.time_scale))
        config = EmulatorConfig(
            host=HOST,
            port=self.options.moto_port,
            region=self.options.region,
            setup_file=setup,
            state_file=self.state.paths.database if self.state is not None else None,
            stack_name=self.model.stack_name,
            patches=self.options.moto_patches,
        )
        self.emulator = Emulator(config, self.console)
        try:
            ready = await self.emulator.start()
        except EmulatorError as error:
            raise RuntimeError(str(error)) from None
        self.moto_endpoint = self.emulator.endpoint
        return ready

    def _api_url_replacements(self, http_port: int, ws_port: int) -> dict[str, str]:
        pseudo = self.model.pseudo
        replacements = {}
        for ws_api in self.model.websocket_apis[:1]:
            host = f"{ws_api.api_id}.execute-api.{pseudo.region}.{pseudo.url_suffix}"
            replacements[f"https://{host}"] = f"http://{HOST}:{ws_port}"
            replacements[f"wss://{host}"] = f"ws://{HOST}:{ws_port}"
        for api in self.model.http_apis[:1]:
            host = f"{api.api_id}.execute-api.{pseudo.region}.{pseudo.url_suffix}"
            replacements[f"https://{host}"] = f"http://{HOST}:{http_port}"
        return replacements

    async def _serve(self, app: web.Application, sock: socket.socket) -> None:
        # auto_decompress off: API Gateway passes a Content-Encoding body through untouched (aiohttp
        # would inflate it, or answer a text/plain 500 when it is not what the header says).
        runner = web.AppRunner(app, access_log=None, handle_signals=False, auto_decompress=False)
        await runner.setup()
        site = web.SockSite(runner, sock, shutdown_timeout=1.0)
        await site.start()
        self._runners.append(runner)

    async def invoke(self, function_id: str, event: Any) -> InvocationResult:
        pool = self.pools.get(function_id)
        if pool is None:
            error = {"errorType": "LocalStack", "errorMessage": "function cannot run locally"}
            return InvocationResult("error", 0.0, "-", error=error)
        return await pool.invoke(event)

    # --- chaos (local/faults/injection.py) -------------------------------------------------

    def _start_chaos(self) -> None:
        chaos = self.options.chaos
        if chaos.directory is not None and chaos.sqs_outage is not None:
            start = time.time() + chaos.sqs_outage.start
            write_sqs_outage(chaos.directory, start, start + chaos.sqs_outage.duration)
        if chaos.directory is not None or self.options.stats_file is not None:
            self._stats_writer = asyncio.get_running_loop().create_task(self._write_stats_forever())

    def write_stats(self, final: bool = False) -> None:
        directory = self.options.chaos.directory
        targets = [directory / STATS_FILE] if directory is not None else []
        if self.options.stats_file is not None:
            targets.append(self.options.stats_file)
        if not targets:
            return
        pools = {pool.function.display_name: pool for pool in self.pools.values()}
        document = {  # stats.json (local/faults/injection.py)
            "writtenAt": time.time(),
            "final": final,
            "sqsMappings": [poller.stats.to_json() for poller in self._sqs_pollers],
            "injected": dict(self.fault_counters.counts),
            "workerExits": {name: pool.worker_exits for name, pool in pools.items()},
            "coldStarts": {name: pool.cold_starts for name, pool in pools.items()},
            "skippedStreamRecords": {p.source.function_name: p.skipped_records for p in self._stream_pollers},
            "invocations": {name: pool.stats.to_json() for name, pool in pools.items()},
            "webSocketPosts": self.ws_server.post_counts() if self.ws_server is not None else {},
        }
        for target in targets:
            target.parent.mkdir(parents=True, exist_ok=True)
            write_json_atomically(target, document)

    async def _write_stats_forever(self) -> None:
        while True:
            await asyncio.sleep(STATS_INTERVAL_SECONDS)
            try:
                self.write_stats()
            except OSError as error:
                self.console.warn(f"stats file: {error}")

    # --- console ---------------------------------------------------------------------------

    async def _monitor_queues(self, aws: AwsJsonClient, values: LocalValues) -> None:
        last_line = ""
        last_print = 0.0
        queues = sorted(self.model.queues.values(), key=lambda q: q.is_dead_letter_queue)
        if not queues:
            return
        while True:
            await asyncio.sleep(DEPTH_INTERVAL_SECONDS)
            parts = []
            try:
                for queue in queues:
                    request = {"QueueUrl": values.queue_url(queue.logical_id), "AttributeNames": DEPTHS}
                    attributes = (await aws.sqs("GetQueueAttributes", request)).get("Attributes", {})
                    visible, in_flight = (attributes.get(name, "?") for name in DEPTHS)
                    label = f"{queue.display_name}{' (DLQ)' if queue.is_dead_letter_queue else ''}"
                    parts.append(f"{label} {visible} visible + {in_flight} in flight")
            except asyncio.CancelledError:
                raise
            except EmulatorRestarting:
                continue
            except Exception as error:
                self.console.warn(f"queue depth: {error!r}")
                continue
            line = "queues  " + "  |  ".join(parts)
            now = time.monotonic()
            if line != last_line or now - last_print >= DEPTH_HEARTBEAT_SECONDS:
                self.console.event(line)
                last_line, last_print = line, now

    # --- stop ------------------------------------------------------------------------------

    async def stop(self) -> None:
        if self.watcher is not None:
            await self.watcher.stop()
        if self.ws_server is not None:
            await self.ws_server.close_all()
        for runner in self._runners:
            with contextlib.suppress(Exception):
                await runner.cleanup()
        logging.getLogger("aiohttp.server").removeFilter(self._malformed_requests)
        # Batches in progress finish (and are deleted or checkpointed) rather than spend a receive;
        # not when the emulator is gone for good (nothing could finish).
        drain = DRAIN_SECONDS if self.failure is None else 0.0
        if self.emulator is not None:
            await self.emulator.close_receives()
        await asyncio.gather(
            *(poller.stop(drain) for poller in self._sqs_pollers),
            *(poller.stop(drain) for poller in self._stream_pollers),
        )
        if self._sweeper is not None:
            await self._sweeper.stop()
        for background in (self._monitor, self._stats_writer):
            if background is not None:
                background.cancel()
                await asyncio.gather(background, return_exceptions=True)
        # Only the stack that holds the state folder's lock owns the run file (stacks/<stack>.json)
        # and the stats file: a second stack refused the lock removed the running one's on its way out.
        if self.state is not None or self._lock is not None:
            with contextlib.suppress(OSError):
                self.write_stats(final=True)
            with contextlib.suppress(OSError):
                self.state_file.unlink()
        await asyncio.gather(*(pool.stop() for pool in self.pools.values()), return_exceptions=True)
        if self._session is not None:
            await self._session.close()
        if self.emulator is not None:
            await self.emulator.stop()
        if self.state is not None:
            self.state.close()
        if self._lock is not None:
            self._lock.release()
