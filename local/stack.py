"""The local stack: moto, the functions, the event sources and the two APIs, started in order."""

from __future__ import annotations

import asyncio
import contextlib
import os
import platform
import socket
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import aiohttp
from aiohttp import web

from local.banner import package_version, print_banner
from local.console import Console
from local.emulator.aws_json import AwsJsonClient, EmulatorRestarting
from local.emulator.provision import setup_requests
from local.emulator.supervisor import Emulator, EmulatorConfig, EmulatorError
from local.faults.injection import (
    CONSUMED_LOG,
    STATS_FILE,
    Dice,
    FaultOptions,
    SqsMappingStats,
    StackFaultCounters,
    prepare_directory,
    stats_document,
    write_json_atomically,
    write_sqs_outage,
)
from local.gateways.http_api import HttpApiServer
from local.gateways.websocket_api import WebSocketApiServer
from local.runtime.code_reload import CodeWatcher
from local.runtime.pool import FunctionPool, InvocationResult, RuntimeFunction
from local.sources.sqs import DuplicateDeliveries, SqsPoller, SqsSource
from local.sources.streams import StreamPoller, StreamSource
from local.sources.ttl_sweeper import TtlSweeper, TtlTable
from local.state.running_stack import state_file_path
from local.state.stack_state import StackState
from local.state.store import StateLock, state_paths
from local.template.cdk_out import SynthesizedStack
from local.template.intrinsics import IntrinsicError, PseudoParameters
from local.template.model import ISSUERS_PATH, FunctionSpec, StackModel
from local.template.reader import build_stack_model, layer_packages, layer_summary
from local.template.report import FindingKind
from local.template.values import LocalValues, check_resolvable

if TYPE_CHECKING:  # local.stack_auth loads PyJWT and cryptography: imported only for stacks with auth
    from local.stack_auth import StackAuth

REPO_ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
DEPTH_INTERVAL_SECONDS = 5.0
DEPTH_HEARTBEAT_SECONDS = 60.0
STATS_INTERVAL_SECONDS = 1.0
DRAIN_SECONDS = 8.0  # at stop, for the batches being processed


@dataclass(frozen=True)
class Fault:
    function: str  # display name or logical id
    kind: str  # "hang-once"


DEV_TOKEN_LIFETIME_SECONDS: Final = 12 * 3600.0  # the dev token printed at start


@dataclass
class Options:
    http_port: int = 4000
    ws_port: int = 4001
    moto_port: int = 0
    failure_rate: float | None = None
    time_scale: float = 1.0
    quiet: bool = False
    max_concurrency: int = 4
    region: str = "us-east-1"
    log_dir: Path = field(default_factory=lambda: Path(".local-state/logs"))
    # <state_dir>/stacks/<stack>.json: the stack's resolved Outputs and endpoints while it runs,
    # for operator tools (`make redrive TARGET=local`); removed at stop.
    state_dir: Path = field(default_factory=lambda: Path(".local-state"))
    faults: list[Fault] = field(default_factory=list)
    chaos: FaultOptions = field(default_factory=FaultOptions)  # the --fault-* options
    moto_patches: bool = True  # False only to measure moto as shipped (bench/)
    # The stack's counters (local/faults/injection.py stats_document: invocations and handler ms per
    # function, @connections POSTs, SQS mappings), rewritten every second and at stop (bench/).
    stats_file: Path | None = None
    # Stacks with authorizers: lifetime of the dev token minted (and printed) at start.
    dev_token_lifetime: float = DEV_TOKEN_LIFETIME_SECONDS
    # <state_dir>/stacks/<stack>/state.sqlite keeps tables, queues, stream checkpoints and open
    # connections across restarts (local/state/store.py); False: in memory only, as on the old stack.
    durable: bool = True
    fresh: bool = False  # remove the stack's state first
    # Source folders whose edits reach the functions without a restart (local/runtime/code_reload.py).
    watch: list[Path] = field(default_factory=list)


def bind(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((HOST, port))
    except OSError as error:
        sock.close()
        raise OSError(f"cannot listen on {HOST}:{port}: {error.strerror}") from None
    sock.listen(1024)
    sock.setblocking(False)
    return sock


def rewrite_api_urls(value: str, replacements: dict[str, str]) -> str:
    for remote, local in replacements.items():
        value = value.replace(remote, local)
    return value


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
        self.http_url = ""
        self.ws_url = ""
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

    # --- start -----------------------------------------------------------------------------

    async def start(self) -> None:
        options = self.options
        model = self.model
        http_socket = bind(options.http_port) if model.http_apis else None
        ws_socket = bind(options.ws_port) if model.websocket_apis else None
        self._open_state()
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
            from local.stack_auth import build_stack_auth  # noqa: PLC0415 - only stacks with auth

            self.auth = build_stack_auth(model, values, options.state_dir, options.dev_token_lifetime)
        issuer_routes = self.auth.routes() if self.auth is not None else []

        self._build_pools(values, replacements)
        self._apply_faults()
        self._start_event_sources(aws, values)
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
        else:
            self._lock = StateLock(state_paths(options.state_dir, self.model.stack_name))
            self._lock.acquire()
        if options.chaos.directory is not None and (self.state is None or not self.state.restored):
            prepare_directory(options.chaos.directory)  # a restored stack continues its history

    async def _serve_apis(
        self,
        http_socket: socket.socket | None,
        ws_socket: socket.socket | None,
        issuer_routes: list[web.RouteDef],
    ) -> None:
        model, options = self.model, self.options
        if http_socket is not None:
            self.http_server = HttpApiServer(
                model.http_apis[0],
                self._names(),
                self.invoke,
                self.console,
                model.pseudo.account_id,
                validators=self.auth.validators if self.auth is not None else None,
            )
            await self._serve(self.http_server.application(issuer_routes), http_socket)
            for extra in model.http_apis[1:]:
                model.note(
                    FindingKind.UNSUPPORTED, f"HTTP API {extra.display_name}", "only one HTTP API is served"
                )
        if ws_socket is not None:
            self.ws_server = WebSocketApiServer(
                model.websocket_apis[0],
                self._names(),
                self.invoke,
                self.console,
                model.pseudo.account_id,
                push_failure_rate=options.chaos.push_failure_rate,
                dice=self._dice,
                counters=self.fault_counters,
                region=options.region,
                connection_log=self.state,
            )
            if self.state is not None:  # a stack that died owes its connections their $disconnect
                previous = self.state.connections_of_last_run()
                await self.ws_server.disconnect_previous(previous)
                self.closed_connections = len(previous)
            await self._serve(self.ws_server.application([] if http_socket else issuer_routes), ws_socket)
            for other in model.websocket_apis[1:]:
                model.note(
                    FindingKind.UNSUPPORTED, f"WebSocket API {other.display_name}", "only one is served"
                )

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

    def _names(self) -> dict[str, str]:
        return {lid: spec.display_name for lid, spec in self.model.functions.items()}

    def function_environment(
        self, spec: FunctionSpec, values: LocalValues, replacements: dict[str, str], code_dir: Path
    ) -> dict[str, str]:
        options = self.options
        resolver = self.model.resolver(values)
        environment = {
            "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
            "HOME": os.environ.get("HOME", tempfile.gettempdir()),
            "LANG": "C.UTF-8",
            "TZ": ":UTC",
            "PYTHONPATH": str(code_dir),
            "PYTHONDONTWRITEBYTECODE": "1",  # keep cdk.out's asset folders as synthesized
            "AWS_ENDPOINT_URL": self.moto_endpoint,
            "AWS_ACCESS_KEY_ID": "local",
            "AWS_SECRET_ACCESS_KEY": "local",
            "AWS_REGION": options.region,
            "AWS_DEFAULT_REGION": options.region,
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "AWS_LAMBDA_FUNCTION_NAME": spec.name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory_size),
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{spec.name}",
            "AWS_LAMBDA_LOG_STREAM_NAME": time.strftime("%Y/%m/%d") + "/[$LATEST]local",
            "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
            "AWS_EXECUTION_ENV": f"AWS_Lambda_{spec.runtime}",
            "LAMBDA_TASK_ROOT": str(code_dir),
            "_HANDLER": spec.handler,
            "POWERTOOLS_TRACE_DISABLED": "true",
            # boto3 puts `app/<name>` in its User-Agent: the request meter attributes calls by it
            "AWS_SDK_UA_APP_ID": spec.display_name[:50],
        }
        if spec.log_format:
            environment["AWS_LAMBDA_LOG_FORMAT"] = spec.log_format
        for key, raw in spec.environment.items():
            try:
                value = resolver.resolve(raw)
            except IntrinsicError:
                continue  # reported by check_resolvable
            text = str(value).lower() if isinstance(value, bool) else str(value)
            if self.auth is not None:
                text = self.auth.environment_value(text)  # an external JWT issuer -> the local one
            environment[key] = rewrite_api_urls(text, replacements)
        if options.failure_rate is not None and "FAILURE_RATE" in spec.environment:
            environment["FAILURE_RATE"] = repr(options.failure_rate)
        return environment

    def _code_dir(self, spec: FunctionSpec) -> Path | None:
        if spec.asset_dir is not None and spec.asset_dir.is_dir():
            watched = self.watcher.code_dir(spec.asset_dir) if self.watcher is not None else None
            return watched or spec.asset_dir
        if spec.inline_code is not None:
            folder = (
                REPO_ROOT / ".local-state" / "inline" / self.model.stack_name / spec.logical_id
            ).resolve()
            folder.mkdir(parents=True, exist_ok=True)
            module = spec.handler.rpartition(".")[0] or "index"
            (folder / f"{module}.py").write_text(spec.inline_code)
            return folder
        return None

    def _build_pools(self, values: LocalValues, replacements: dict[str, str]) -> None:
        options = self.options
        log_dir = options.log_dir / self.model.stack_name
        for logical_id, spec in self.model.functions.items():
            code_dir = self._code_dir(spec)
            if code_dir is None:
                continue
            max_workers = options.max_concurrency
            if spec.reserved_concurrency is not None:
                max_workers = max(1, min(max_workers, spec.reserved_concurrency))
            function = RuntimeFunction(
                key=logical_id,
                display_name=spec.display_name,
                name=spec.name,
                arn=str(values.get_att(logical_id, "Arn")),
                handler=spec.handler,
                timeout_seconds=float(spec.timeout),
                memory_size=spec.memory_size,
                code_dir=code_dir,
                environment=self.function_environment(spec, values, replacements, code_dir),
                max_workers=max_workers,
                time_scale=options.time_scale,
                faults=options.chaos.worker_config(spec.display_name) if options.chaos.active else "",
            )
            self.pools[logical_id] = pool = FunctionPool(function, log_dir, notice=self.console.event)
            if self.watcher is not None:
                self.watcher.bind(pool)
        summary = layer_summary(self.model)
        if summary:
            packages = [
                f"aws-lambda-powertools {package_version('aws-lambda-powertools')}",
                f"pydantic {package_version('pydantic')}",
            ]
            for layer in self.model.layers.values():
                packages.extend(self._layer_asset_packages(layer.display_name, layer_packages(layer)))
            self.model.note(
                FindingKind.SATISFIED, summary, f"provided by this venv's packages ({', '.join(packages)})"
            )
        runtimes = sorted({spec.runtime for spec in self.model.functions.values()})
        if runtimes:
            self.model.note(
                FindingKind.SATISFIED,
                f"runtime {', '.join(runtimes)}",
                f"handlers run on this venv's Python {platform.python_version()} ({platform.machine()}), "
                "in warm worker processes; timeouts enforced, memory size not",
            )

    def _layer_asset_packages(self, layer: str, packages: list[tuple[str, str]]) -> list[str]:
        """The venv's versions of a local layer's packages; a missing or different one is reported."""
        shown = []
        for name, version in packages:
            installed = package_version(name)
            shown.append(f"{name} {installed}")
            if installed == "not installed":
                self.model.note(
                    FindingKind.UNSUPPORTED,
                    f"layer {layer}",
                    f"{name} {version} is not installed in this venv: importing it fails locally",
                )
            elif installed != version:
                self.model.note(
                    FindingKind.APPROXIMATED,
                    f"layer {layer}",
                    f"{name} {version} runs as the venv's {installed}",
                )
        return shown

    def _apply_faults(self) -> None:
        for fault in self.options.faults:
            pools = [
                pool
                for lid, pool in self.pools.items()
                if fault.function in (lid, pool.function.display_name, pool.function.name)
                or pool.function.display_name.endswith(fault.function)
            ]
            if len(pools) > 1:
                raise ValueError(f"--fault: {fault.function!r} names {len(pools)} functions")
            if not pools:
                raise ValueError(f"--fault: no function named {fault.function!r}")
            for pool in pools:
                pool.inject_hangs(1)
            self.model.note(
                FindingKind.INFO,
                f"local fault {fault.function}",
                f"{fault.kind}: its next invocation hangs until the template timeout kills it",
            )

    def _start_event_sources(self, aws: AwsJsonClient, values: LocalValues) -> None:
        model = self.model
        options = self.options
        for spec in model.mappings:
            pool = self.pools.get(spec.function_id)
            if not spec.enabled or pool is None:
                continue
            function_name = pool.function.display_name

            async def invoke(event: Any, _pool: FunctionPool = pool) -> InvocationResult:
                return await _pool.invoke(event)

            if spec.source_kind == "sqs":
                queue = model.queues[spec.source_id]
                wanted = spec.maximum_concurrency or options.max_concurrency
                pollers = max(1, min(wanted, pool.function.max_workers))
                subject = f"{function_name} <- queue {queue.display_name}"
                if spec.maximum_concurrency is None:
                    model.note(
                        FindingKind.APPROXIMATED,
                        subject,
                        f"concurrency up to {pollers} batches at a time locally (--max-concurrency)",
                    )
                elif pollers < spec.maximum_concurrency:
                    model.note(
                        FindingKind.APPROXIMATED,
                        subject,
                        f"ScalingConfig.MaximumConcurrency {spec.maximum_concurrency} -> {pollers} "
                        "concurrent batches locally (--max-concurrency)",
                    )
                chaos = options.chaos
                sqs_poller = SqsPoller(
                    SqsSource(
                        spec=spec,
                        function_name=function_name,
                        queue_name=queue.display_name,
                        queue_url=values.queue_url(queue.logical_id),
                        queue_arn=values.queue_arn(queue.logical_id),
                        region=options.region,
                        pollers=pollers,
                    ),
                    aws.with_caller(f"esm-sqs/{function_name}"),
                    invoke,
                    self.console,
                    duplicates=(
                        DuplicateDeliveries(chaos.duplicate_rate, self._dice)
                        if chaos.duplicate_rate > 0
                        else None
                    ),
                    stats=SqsMappingStats(
                        function_name,
                        queue.display_name,
                        queue.is_dead_letter_queue,
                        consumed_log=(
                            chaos.directory / CONSUMED_LOG
                            if chaos.directory is not None and queue.is_dead_letter_queue
                            else None
                        ),
                    ),
                )
                sqs_poller.start()
                self._sqs_pollers.append(sqs_poller)
            else:
                table = model.tables[spec.source_id]
                stream_poller = StreamPoller(
                    StreamSource(
                        spec=spec,
                        function_name=function_name,
                        table_name=table.display_name,
                        stream_arn=str(values.get_att(table.logical_id, "StreamArn")),
                        region=options.region,
                        table=table.name,
                    ),
                    aws.with_caller(f"esm-stream/{function_name}"),
                    invoke,
                    self.console,
                    checkpoints=self.state,
                )
                stream_poller.start()
                self._stream_pollers.append(stream_poller)

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
            return InvocationResult(
                "error",
                0.0,
                "-",
                error={"errorType": "LocalStack", "errorMessage": "function cannot run locally"},
            )
        return await pool.invoke(event)

    # --- chaos (local/faults/injection.py) -------------------------------------------------------------

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
        document = stats_document(
            sqs=[poller.stats for poller in self._sqs_pollers],
            counters=self.fault_counters,
            worker_exits={pool.function.display_name: pool.worker_exits for pool in self.pools.values()},
            cold_starts={pool.function.display_name: pool.cold_starts for pool in self.pools.values()},
            skipped_stream_records={p.source.function_name: p.skipped_records for p in self._stream_pollers},
            final=final,
            invocations={pool.function.display_name: pool.stats.to_json() for pool in self.pools.values()},
            websocket_posts=self.ws_server.post_counts() if self.ws_server is not None else None,
        )
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
                    response = await aws.sqs(
                        "GetQueueAttributes",
                        {
                            "QueueUrl": values.queue_url(queue.logical_id),
                            "AttributeNames": [
                                "ApproximateNumberOfMessages",
                                "ApproximateNumberOfMessagesNotVisible",
                            ],
                        },
                    )
                    attributes = response.get("Attributes", {})
                    label = f"{queue.display_name}{' (DLQ)' if queue.is_dead_letter_queue else ''}"
                    parts.append(
                        f"{label} {attributes.get('ApproximateNumberOfMessages', '?')} visible"
                        f" + {attributes.get('ApproximateNumberOfMessagesNotVisible', '?')} in flight"
                    )
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
        # Batches in progress finish (and are deleted or checkpointed) rather than spend a receive;
        # not when the emulator is gone for good (nothing could finish).
        drain = DRAIN_SECONDS if self.failure is None else 0.0
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
