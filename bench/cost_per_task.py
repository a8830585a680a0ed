"""Cost per task: what AWS would bill for one task, measured on the local stack, beside a model of
the original Node app.

Starts `python -m local` (the dev stage from cdk.out, `--time-scale 0.1`, `--stats-file`) once per
stage and failure rate (default 0 and the dev stage's 0.3), warms it up, then runs three phases, each
measured from a quiet stack to a quiet stack (every task's final frame on every client, then no
counter moving for 2.5 s):

* paced: `--paced-tasks` (40) at `--paced-rate` (2/s), 1 WebSocket client: batches hold ~1 record,
  the worst case for batching;
* burst: `--tasks` (300) at once, 1 client;
* burst: the same with `--clients` (10) clients connected.

What is counted (per task that succeeded: totals / successes; the cost of the tasks that ended in
`error` is carried by the others):

* AWS API requests, by caller, service and operation: the embedded AWS's request meter
  (`GET /_local/requests` on the moto port; local/metering/meter.py). Callers: the functions'
  boto3 calls (`function:<Name>`), Lambda's SQS pollers (`esm-sqs/<Name>`, billed on AWS) and
  stream pollers (`esm-stream/<Name>`: GetRecords, GetShardIterator, DescribeStream, free when
  Lambda reads the stream). The stack's TTL sweeper (TTL deletes are free on AWS), depth monitor
  and provisioning are left out. SQS requests are billed per 64 KB chunk.
* DynamoDB write and read request units, computed by the meter from the items before and after
  each write (table, plus each GSI the write touches: put, delete, or delete + put when an index
  key changes) and from the items each read returns (local/metering/capacity.py).
* Lambda invocations and handler milliseconds per function (the stack's stats file; billed per
  invocation rounded up to 1 ms, at the template's MemorySize), and API Gateway HTTP requests
  (= HttpApiFunction invocations: every POST /tasks reaches it).
* WebSocket messages: the @connections POSTs delivered (local/gateways/websocket_api.py).

The original app is a model, not a run (see ORIGINAL below): per task PutItem + SendMessage on
submit; one processor invocation per message (batch size 1: one ReceiveMessage amortised per
message, one DeleteMessage); up to 3 attempts inside that invocation with a billed 1 s then 2 s
sleep after a failure; one UpdateItem and one push per attempt, each push a full Scan of the
connections table plus one POST per connection. Its non-sleep handler time is taken equal to
ours (same work), so the compute difference is the sleep alone.

On a stage with `auth: jwt` (e.g. `--stage prod`; recognised by the $connect authorizer in its
template) the stack runs with its own --state-dir and the bench mints tokens from the stack's local
issuer (local.auth.issuer.load_issuer): each WebSocket client is another user (bench-user-01, -02, ...,
`?token=` on the WebSocket URL), the tasks of a phase are submitted by the connected users in turn
(`Authorization: Bearer`), so the notifier pushes each task's frames to its owner's connection
only, and each client waits for its own tasks. A frame a client gets for another user's task is
counted and reported (it must be 0). The original app has no auth: its model still pushes to every
connected client. `--stage dev prod` runs both stages (each with every failure rate) in one run and
prints them side by side.

Goal: our requests per task <= 1/3 of the original's, and zero billed sleep.

    python -m bench cost                                 # or: python -m bench.cost_per_task
    python -m bench cost --tasks 100 --paced-tasks 20    # smaller, faster (= --quick)
    python -m bench cost --failure-rates 0 --clients 1
    python -m bench cost --stage dev prod --clients 1 10 20   # broadcast vs per-owner frames (~6 min)
    python -m bench cost --stage dev prod --quick             # the same, smaller
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import tempfile
import time
import urllib.request
import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlencode

import aiohttp

from bench.local_throughput import websocket_frames
from local.chaos.history import TERMINAL
from local.launcher import LocalStackProcess
from local.metering.capacity import item_size, read_units_for, write_units_for
from local.metering.meter import METER_PATH
from local.template.cdk_out import find_stack
from local.template.intrinsics import PseudoParameters
from local.template.reader import build_stack_model

# --------------------------------------------------------------------------- prices

PRICES_RECORDED: Final = "2026-11-26"
# AWS public on-demand list prices, us-east-1, as recorded on PRICES_RECORDED: verify before relying.
PRICES: Final = {
    "lambda_request": 0.20 / 1e6,  # per invocation
    "lambda_gb_second": 0.0000133334,  # arm64, first pricing tier
    "sqs_request": 0.40 / 1e6,  # standard queue, per request (each 64 KB chunk)
    "dynamodb_write_unit": 0.625 / 1e6,  # on-demand write request unit (price since Nov 2024)
    "dynamodb_read_unit": 0.125 / 1e6,  # on-demand read request unit
    "http_api_request": 1.00 / 1e6,  # API Gateway HTTP API, first 300 M/month (512 KB increments)
    "websocket_message": 1.00 / 1e6,  # API Gateway WebSocket, first 1 B/month (32 KB increments)
    "websocket_connection_minute": 0.25 / 1e6,  # not per task: per connected client-minute
    "stream_read_by_lambda": 0.0,  # DynamoDB Streams GetRecords made by a Lambda trigger: free
}
PRICE_NOTES: Final = (
    f"AWS on-demand list prices, us-east-1, as recorded {PRICES_RECORDED} (verify before relying): "
    "Lambda arm64 $0.0000133334/GB-s + $0.20/1M requests; SQS standard $0.40/1M requests (64 KB chunks); "
    "DynamoDB on-demand $0.625/1M write units, $0.125/1M read units; API Gateway HTTP API $1.00/1M "
    "requests; WebSocket $1.00/1M messages (+ $0.25/1M connection minutes, not per task); DynamoDB "
    "Streams read by a Lambda trigger free. Free tiers ignored."
)

STAGE_DEFAULT_FAILURE_RATE: Final = 0.3  # cdk.json, stage dev (like the original app)
PRODUCT_CALLERS: Final = ("function:", "esm-sqs/", "esm-stream/")
GOAL_REQUEST_RATIO: Final = 1 / 3
QUIET_SECONDS: Final = 2.5
TOKEN_LIFETIME_SECONDS: Final = 6 * 3600  # the bench users' tokens outlive any run


# --------------------------------------------------------------------------- the original app (model)


@dataclass(frozen=True)
class OriginalModel:
    """The original Node app's per-task behaviour (its code, as described in docs/performance.md)."""

    attempts: int = 3  # inside one invocation
    sleeps_seconds: tuple[float, ...] = (1.0, 2.0)  # billed sleep after failed attempt 1, 2
    task_item_bytes: int = 300  # its task row (id, answer, status, retries, timestamps): < 1 KB
    connection_item_bytes: int = item_size(
        {
            "connectionId": {"S": "AbCdEfGhIjKlMn0="},
            "connectedAt": {"S": "2026-11-26T00:00:00.000000Z"},
            "expiresAt": {"N": "1795660000"},
        }
    )

    def expected_attempts(self, p: float) -> float:
        return sum(p**k for k in range(self.attempts))

    def expected_sleep(self, p: float) -> float:
        # the sleep after attempt k happens if attempts 1..k all failed
        return sum(p ** (k + 1) * s for k, s in enumerate(self.sleeps_seconds[: self.attempts - 1]))

    def success_probability(self, p: float) -> float:
        return 1 - p**self.attempts


ORIGINAL: Final = OriginalModel()


# --------------------------------------------------------------------------- figures


@dataclass
class Figures:
    """Per-task figures of one design, all already divided by the tasks that succeeded."""

    http_requests: float = 0.0
    invocations: dict[str, float] = field(default_factory=dict)
    gb_seconds: dict[str, float] = field(default_factory=dict)
    handler_ms: dict[str, float] = field(default_factory=dict)
    billed_sleep_seconds: float = 0.0
    sqs: dict[str, float] = field(default_factory=dict)  # operation -> billed requests
    dynamodb: dict[str, float] = field(default_factory=dict)  # operation -> requests
    write_units: float = 0.0
    index_write_units: float = 0.0
    read_units: float = 0.0
    websocket_messages: float = 0.0
    stream_reads: dict[str, float] = field(default_factory=dict)  # free, shown apart
    unsized_items: float = 0.0

    @property
    def lambda_invocations(self) -> float:
        return sum(self.invocations.values())

    @property
    def requests(self) -> float:
        """Billed requests: API Gateway + Lambda invocations + SQS + DynamoDB + WebSocket messages."""
        return (
            self.http_requests
            + self.lambda_invocations
            + sum(self.sqs.values())
            + sum(self.dynamodb.values())
            + self.websocket_messages
        )

    def cost(self) -> dict[str, float]:
        """USD per task, by line."""
        return {
            "API Gateway HTTP": self.http_requests * PRICES["http_api_request"],
            "Lambda requests": self.lambda_invocations * PRICES["lambda_request"],
            "Lambda GB-s": sum(self.gb_seconds.values()) * PRICES["lambda_gb_second"],
            "SQS": sum(self.sqs.values()) * PRICES["sqs_request"],
            "DynamoDB writes": self.write_units * PRICES["dynamodb_write_unit"],
            "DynamoDB reads": self.read_units * PRICES["dynamodb_read_unit"],
            "WebSocket messages": self.websocket_messages * PRICES["websocket_message"],
        }

    def total_cost(self) -> float:
        return sum(self.cost().values())


def original_figures(
    p: float, clients: int, compute_ms: float, memory_mb: int, model: OriginalModel = ORIGINAL
) -> Figures:
    """The original app's per-succeeded-task figures at failure rate `p` with `clients` connected."""
    attempts = model.expected_attempts(p)
    sleep = model.expected_sleep(p)
    per_success = 1 / model.success_probability(p)
    scan_units = read_units_for(clients * model.connection_item_bytes, consistent=False)
    pushes = attempts  # one status write and one push per attempt
    figures = Figures(
        http_requests=1 * per_success,
        invocations={"submit": per_success, "processor": per_success},
        billed_sleep_seconds=sleep * per_success,
        sqs={"SendMessage": per_success, "ReceiveMessage": per_success, "DeleteMessage": per_success},
        dynamodb={
            "PutItem": per_success,
            "UpdateItem": attempts * per_success,
            "Scan": pushes * per_success,
        },
        write_units=(write_units_for(model.task_item_bytes) * (1 + attempts)) * per_success,
        read_units=scan_units * pushes * per_success,
        websocket_messages=pushes * clients * per_success,
    )
    figures.handler_ms = {"same work as ours": compute_ms, "sleep": sleep * per_success * 1000}
    figures.gb_seconds = {name: ms / 1000 * memory_mb / 1024 for name, ms in figures.handler_ms.items()}
    return figures


# --------------------------------------------------------------------------- counters of the stack


def _is_product(caller: str) -> bool:
    return caller.startswith(PRODUCT_CALLERS)


def read_meter(moto_url: str, method: str = "GET") -> dict[str, Any]:
    """The request meter's counters (DELETE: and start counting from zero)."""
    request = urllib.request.Request(moto_url + METER_PATH, method=method)
    with urllib.request.urlopen(request, timeout=10) as response:  # local endpoint
        document: dict[str, Any] = json.load(response)
    return document


def read_stats(path: Path) -> dict[str, Any]:
    try:
        document: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return document


@dataclass
class Snapshot:
    meter: dict[tuple[str, str, str], dict[str, Any]]  # (caller, service, operation) -> counts
    invocations: dict[str, dict[str, Any]]
    posts: dict[str, Any]
    written_at: float = 0.0  # when the stack wrote the stats file read for this snapshot

    @classmethod
    def take(cls, moto_url: str, stats_file: Path) -> Snapshot:
        meter: dict[tuple[str, str, str], dict[str, Any]] = {}
        for row in read_meter(moto_url)["operations"]:
            key = (row["caller"], row["service"], row["operation"])
            into = meter.setdefault(key, defaultdict(float))
            for name in ("requests", "billedRequests", "writeUnits", "readUnits", "unsizedItems", "errors"):
                into[name] += float(row[name])
            into["indexWriteUnits"] += sum(float(v) for v in row["indexWriteUnits"].values())
        stats = read_stats(stats_file)
        return cls(
            meter,
            stats.get("invocations", {}),
            stats.get("webSocketPosts", {}),
            float(stats.get("writtenAt", 0)),
        )

    def signature(self) -> tuple[Any, ...]:
        """What must stop moving before a phase is over (idle long polls excluded)."""
        calls = sorted(
            (key, row["requests"])
            for key, row in self.meter.items()
            if _is_product(key[0]) and key[2] != "ReceiveMessage" and not key[0].startswith("esm-stream/")
        )
        invocations = sorted((name, row.get("invocations", 0)) for name, row in self.invocations.items())
        return (tuple(calls), tuple(invocations), self.posts.get("total", 0))


def _minus(after: Mapping[str, Any], before: Mapping[str, Any]) -> dict[str, float]:
    return {name: float(after.get(name, 0)) - float(before.get(name, 0)) for name in after}


@dataclass
class PhaseResult:
    name: str
    tasks: int
    clients: int
    succeeded: int
    errors: int
    seconds: float
    calls: dict[tuple[str, str, str], dict[str, float]]  # per phase totals
    invocations: dict[str, dict[str, float]]
    delivered_posts: float
    total_posts: float
    users: int = 0  # auth: jwt: the clients are this many users (0: no auth, every client sees every task)
    foreign_frames: int = 0  # auth: jwt: frames a client got for another user's task (must be 0)


def phase_delta(name: str, before: Snapshot, after: Snapshot, **fields: Any) -> PhaseResult:
    calls = {}
    for key, row in after.meter.items():
        delta = _minus(row, before.meter.get(key, {}))
        if delta.get("requests", 0) > 0:
            calls[key] = delta
    invocations = {}
    for function, row in after.invocations.items():
        previous = before.invocations.get(function, {})
        delta = {
            "invocations": float(row.get("invocations", 0)) - float(previous.get("invocations", 0)),
            "billedMs": float(row.get("billedMs", 0)) - float(previous.get("billedMs", 0)),
        }
        if delta["invocations"] > 0:
            invocations[function] = delta
    return PhaseResult(
        name=name,
        calls=calls,
        invocations=invocations,
        delivered_posts=float(after.posts.get("delivered", 0)) - float(before.posts.get("delivered", 0)),
        total_posts=float(after.posts.get("total", 0)) - float(before.posts.get("total", 0)),
        **fields,
    )


def our_figures(result: PhaseResult, memory_mb: Mapping[str, int], http_function: str) -> Figures:
    per = 1 / max(1, result.succeeded)
    figures = Figures()
    for function, row in result.invocations.items():
        figures.invocations[function] = row["invocations"] * per
        figures.handler_ms[function] = row["billedMs"] * per
        figures.gb_seconds[function] = row["billedMs"] / 1000 * memory_mb.get(function, 128) / 1024 * per
    figures.http_requests = figures.invocations.get(http_function, 0.0)
    for (caller, service, operation), row in result.calls.items():
        if not _is_product(caller):
            continue
        if service == "dynamodbstreams":
            figures.stream_reads[operation] = figures.stream_reads.get(operation, 0.0) + row["requests"] * per
        elif service == "sqs":
            figures.sqs[operation] = figures.sqs.get(operation, 0.0) + row["billedRequests"] * per
        elif service == "dynamodb":
            figures.dynamodb[operation] = figures.dynamodb.get(operation, 0.0) + row["requests"] * per
            figures.write_units += row["writeUnits"] * per
            figures.index_write_units += row["indexWriteUnits"] * per
            figures.read_units += row["readUnits"] * per
            figures.unsized_items += row["unsizedItems"] * per
    figures.websocket_messages = result.delivered_posts * per
    return figures


# --------------------------------------------------------------------------- driving the stack


@dataclass(frozen=True)
class StageAuth:
    """How the bench authenticates on a stage with `auth: jwt`: the running stack's local issuer
    (local/auth/issuer.py) mints one token per bench user."""

    issuer: Any  # local.auth.issuer.LocalIssuer (imported only for such stages: it loads PyJWT)
    token_parameter: str  # the WebSocket $connect authorizer's query parameter

    def token(self, user: str) -> str:
        return str(self.issuer.mint(user, expires_in=TOKEN_LIFETIME_SECONDS))


class Client:
    """One WebSocket client: records each task's final status. On a stage with `auth: jwt` the
    client is a user of its own (`user`, `token`) and `owned` holds the tasks that user submitted:
    a frame of any other task (`foreign_frames`) would be a leak between users."""

    def __init__(self, user: str | None = None, token: str | None = None) -> None:
        self.user = user
        self.token = token
        self.owned: set[str] = set()
        self.final: dict[str, str] = {}
        self.frames = 0
        self.foreign_frames = 0
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self, url: str) -> None:
        connected = asyncio.Event()
        self._task = asyncio.create_task(self._run(url, connected))
        waiter = asyncio.create_task(connected.wait())
        done, _ = await asyncio.wait([self._task, waiter], timeout=60, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        if self._task in done:  # the handshake was refused (e.g. a rejected token)
            self._task.result()
            raise RuntimeError("the WebSocket connection closed at once")
        if not connected.is_set():
            raise RuntimeError("the WebSocket handshake did not complete in 60 s")

    async def _run(self, url: str, connected: asyncio.Event) -> None:
        async for frame in websocket_frames(url, connected):
            self.frames += 1
            task_id = str(frame.get("taskId") or "")
            if self.user is not None and task_id and task_id not in self.owned:
                self.foreign_frames += 1
            if frame.get("status") in TERMINAL and task_id:
                self.final.setdefault(task_id, str(frame["status"]))
                self._changed.set()

    async def wait_for(self, task_ids: Iterable[str], deadline: float) -> bool:
        wanted = set(task_ids)
        while not wanted.issubset(self.final):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(remaining, 1.0))
        return True

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


class Driver:
    """Submits tasks and waits for their final frames. Without auth every client sees every task
    (the notifier broadcasts); with `auth` each client is another user (bench-user-01, -02, ...),
    the tasks of a phase are submitted by the connected users in turn, and each client waits for
    its own tasks only (the notifier pushes a task's frames to its owner's connections)."""

    def __init__(
        self, stack: LocalStackProcess, stats_file: Path, timeout: float, auth: StageAuth | None = None
    ) -> None:
        self.stack = stack
        self.stats_file = stats_file
        self.timeout = timeout
        self.auth = auth
        self.clients: list[Client] = []
        self.session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Driver:
        self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=32))
        return self

    async def __aexit__(self, *_: object) -> None:
        for client in self.clients:
            await client.stop()
        if self.session is not None:
            await self.session.close()

    async def connect(self, count: int) -> None:
        while len(self.clients) < count:
            if self.auth is None:
                client = Client()
                url = self.stack.ws_url
            else:
                user = f"bench-user-{len(self.clients) + 1:02d}"
                client = Client(user, self.auth.token(user))
                url = f"{self.stack.ws_url}?{urlencode({self.auth.token_parameter: client.token})}"
            await client.start(url)
            self.clients.append(client)

    async def submit(self, task_id: str, client: Client) -> None:
        assert self.session is not None
        body = {"taskId": task_id, "answer": "bench", "status": "pending", "retries": 0}
        headers = {"Authorization": f"Bearer {client.token}"} if client.token else {}
        async with self.session.post(f"{self.stack.http_url}/tasks", json=body, headers=headers) as response:
            await response.read()
            if response.status != 202:
                raise RuntimeError(f"POST /tasks answered {response.status}")

    async def run_tasks(self, count: int, rate: float | None) -> tuple[list[str], dict[str, Client]]:
        """Submit `count` tasks (all at once, or `rate` per second) and wait for every client
        to see the final frame of each task it may see. Returns the task ids and each one's
        owner (with auth: the client that submitted it; without: the first client)."""
        task_ids = [str(uuid.uuid4()) for _ in range(count)]
        owners = {
            task_id: self.clients[i % len(self.clients)] if self.auth else self.clients[0]
            for i, task_id in enumerate(task_ids)
        }
        for task_id, owner in owners.items():
            owner.owned.add(task_id)
        submissions = []
        for task_id in task_ids:
            submissions.append(asyncio.create_task(self.submit(task_id, owners[task_id])))
            if rate:
                await asyncio.sleep(1 / rate)
        await asyncio.gather(*submissions)
        deadline = time.monotonic() + self.timeout
        for client in self.clients:
            wanted = [t for t in task_ids if owners[t] is client] if self.auth else task_ids
            if not await client.wait_for(wanted, deadline):
                missing = sum(1 for t in wanted if t not in client.final)
                raise RuntimeError(
                    f"{missing} of {len(wanted)} tasks reached no final frame in {self.timeout:.0f} s"
                )
        return task_ids, owners

    async def quiet(self) -> Snapshot:
        """Wait until no product counter has moved for QUIET_SECONDS; the snapshot then."""
        loop = asyncio.get_running_loop()
        deadline = time.monotonic() + self.timeout
        last: tuple[Any, ...] | None = None
        changed_at, changed_wall = time.monotonic(), time.time()
        while True:
            await asyncio.sleep(0.5)
            snapshot = await loop.run_in_executor(None, Snapshot.take, self.stack.moto_url, self.stats_file)
            signature = snapshot.signature()
            written = snapshot.written_at
            now = time.monotonic()
            if signature != last:
                last, changed_at, changed_wall = signature, now, time.time()
            elif now - changed_at >= QUIET_SECONDS and written > changed_wall + 1:
                return snapshot
            if now > deadline:
                raise RuntimeError("the stack did not go quiet")

    async def phase(self, name: str, tasks: int, rate: float | None) -> PhaseResult:
        before = await self.quiet()
        foreign_before = sum(client.foreign_frames for client in self.clients)
        started = time.monotonic()
        task_ids, owners = await self.run_tasks(tasks, rate)
        seconds = time.monotonic() - started
        after = await self.quiet()
        outcomes = [owners[t].final[t] for t in task_ids]
        return phase_delta(
            name,
            before,
            after,
            tasks=tasks,
            clients=len(self.clients),
            succeeded=outcomes.count("success"),
            errors=outcomes.count("error"),
            seconds=seconds,
            users=len(self.clients) if self.auth else 0,
            foreign_frames=sum(client.foreign_frames for client in self.clients) - foreign_before,
        )


async def run_stack(
    stack: LocalStackProcess, stats_file: Path, args: argparse.Namespace, auth: StageAuth | None = None
) -> list[PhaseResult]:
    results = []
    async with Driver(stack, stats_file, args.timeout, auth) as driver:
        await driver.connect(1)
        await driver.run_tasks(10, None)  # warm-up: cold starts, connection pools
        if args.paced_tasks:
            print(f"  paced: {args.paced_tasks} tasks at {args.paced_rate:g}/s, 1 client ...", flush=True)
            results.append(await driver.phase("paced", args.paced_tasks, args.paced_rate))
        for clients in args.clients:
            await driver.connect(clients)
            who = f"{clients} user(s), one client each, tasks round-robin" if auth else f"{clients} client(s)"
            print(f"  burst: {args.tasks} tasks, {who} ...", flush=True)
            results.append(await driver.phase("burst", args.tasks, None))
    return results


# --------------------------------------------------------------------------- report


def _fmt(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


def _money(value: float) -> str:
    return f"${value * 1e6:,.2f}"


@dataclass(frozen=True)
class Comparison:
    failure_rate: float
    result: PhaseResult
    ours: Figures
    original: Figures
    stage: str = "dev"

    @property
    def fan_out(self) -> str:
        """How the notifier chose the frames' connections in this run."""
        return "per owner" if self.result.users else "broadcast"

    @property
    def ratio(self) -> float:
        return self.ours.requests / self.original.requests


def print_comparison(comparison: Comparison) -> None:
    result, ours, original = comparison.result, comparison.ours, comparison.original
    rate = "all at once" if result.name == "burst" else "paced"
    who = (
        f"{result.users} user(s) with one WebSocket client each, tasks round-robin (frames per owner)"
        if result.users
        else f"{result.clients} WebSocket client(s) (frames to every connection)"
    )
    print()
    print(
        f"== stage {comparison.stage}, failure rate {comparison.failure_rate:g}: {result.tasks} tasks "
        f"{rate}, {who}: {result.succeeded} success, {result.errors} error, {result.seconds:.1f} s =="
    )
    if result.users:
        print(
            f"   frames a client got for another user's task: {result.foreign_frames} (must be 0); the "
            f"original app (no auth) pushes every attempt to all {result.clients} connections"
        )
    print(f"   per task that succeeded ({result.succeeded}); $ per 1 million such tasks")
    print(f"   {'':<44}{'ours':>10}{'original':>10}{'ours $/1M':>12}{'orig $/1M':>12}")
    ours_cost, original_cost = ours.cost(), original.cost()

    def row(label: str, a: float, b: float, cost_key: str | None = None) -> None:
        money = ""
        if cost_key is not None:
            money = f"{_money(ours_cost[cost_key]):>12}{_money(original_cost[cost_key]):>12}"
        print(f"   {label:<44}{_fmt(a):>10}{_fmt(b):>10}{money}")

    row("API Gateway HTTP requests", ours.http_requests, original.http_requests, "API Gateway HTTP")
    row("Lambda invocations", ours.lambda_invocations, original.lambda_invocations, "Lambda requests")
    for function in sorted(ours.invocations):
        row(f"  {function}", ours.invocations[function], 0.0)
    for function in sorted(original.invocations):
        row(f"  original {function}", 0.0, original.invocations[function])
    row(
        "Lambda GB-s (billed ms x MemorySize)",
        sum(ours.gb_seconds.values()),
        sum(original.gb_seconds.values()),
        "Lambda GB-s",
    )
    row("  handler ms (billed)", sum(ours.handler_ms.values()), sum(original.handler_ms.values()))
    for function in sorted(ours.handler_ms):
        row(f"    {function}", ours.handler_ms[function], 0.0)
    for part in sorted(original.handler_ms):
        row(f"    original: {part}", 0.0, original.handler_ms[part])
    row("  of which billed sleep, s", ours.billed_sleep_seconds, original.billed_sleep_seconds)
    row("SQS requests (64 KB chunks)", sum(ours.sqs.values()), sum(original.sqs.values()), "SQS")
    for operation in sorted(set(ours.sqs) | set(original.sqs)):
        row(f"  {operation}", ours.sqs.get(operation, 0.0), original.sqs.get(operation, 0.0))
    row("DynamoDB requests", sum(ours.dynamodb.values()), sum(original.dynamodb.values()))
    for operation in sorted(set(ours.dynamodb) | set(original.dynamodb)):
        row(f"  {operation}", ours.dynamodb.get(operation, 0.0), original.dynamodb.get(operation, 0.0))
    row("  write request units", ours.write_units, original.write_units, "DynamoDB writes")
    row("    of which for the GSIs", ours.index_write_units, 0.0)
    row("  read request units", ours.read_units, original.read_units, "DynamoDB reads")
    row("WebSocket messages (@connections POSTs)", ours.websocket_messages, original.websocket_messages,
        "WebSocket messages")  # fmt: skip
    print(f"   {'-' * 88}")
    print(
        f"   {'billed requests per task':<44}{_fmt(ours.requests):>10}{_fmt(original.requests):>10}"
        f"{_money(ours.total_cost()):>12}{_money(original.total_cost()):>12}"
    )
    verdict = "met" if comparison.ratio <= GOAL_REQUEST_RATIO else "MISSED"
    sleep_verdict = "met" if ours.billed_sleep_seconds == 0 else "MISSED"
    print(
        f"   request ratio ours / original {comparison.ratio:.2f} (goal <= 0.33: {verdict}); "
        f"billed sleep {ours.billed_sleep_seconds:g} s (goal 0: {sleep_verdict})"
    )
    if ours.stream_reads:
        reads = ", ".join(f"{op} {_fmt(n)}" for op, n in sorted(ours.stream_reads.items()))
        print(f"   not billed: DynamoDB Streams reads by the Lambda triggers per task: {reads}")
    if ours.unsized_items:
        print(f"   note: {_fmt(ours.unsized_items)} items read per task could not be sized (RCUs low)")
    print("   our AWS API requests per task, by caller, service and operation (units per task):")
    per = 1 / max(1, result.succeeded)
    for (caller, service, operation), row_ in sorted(result.calls.items()):
        if not _is_product(caller):
            continue
        units = ""
        if row_["writeUnits"]:
            units += f"  {_fmt(row_['writeUnits'] * per)} WRU"
        if row_["readUnits"]:
            units += f"  {_fmt(row_['readUnits'] * per)} RRU"
        if row_["errors"]:
            units += f"  ({_fmt(row_['errors'] * per)} answered an error)"
        free = "  (free)" if service == "dynamodbstreams" else ""
        print(f"     {caller:<30}{service:<17}{operation:<22}{_fmt(row_['requests'] * per):>8}{units}{free}")
    excluded = sorted({caller for caller, _, _ in result.calls if not _is_product(caller)})
    if excluded:
        print(f"   left out (not product cost): {', '.join(excluded)}")


def print_summary(comparisons: list[Comparison]) -> None:
    print()
    print(f"Summary (per task that succeeded; $ per 1 million tasks; prices as recorded {PRICES_RECORDED})")
    header = (
        f"{'stage':<6} {'frames to':<10} {'failure rate':>12} {'phase':<7}{'clients':>8} {'ours req':>9} "
        f"{'orig req':>9} {'ratio':>6} {'ours $/1M':>10} {'orig $/1M':>10} "
        f"{'ours sleep':>10} {'orig sleep':>10}"
    )
    print(header)
    print("-" * len(header))
    for c in comparisons:
        print(
            f"{c.stage:<6} {c.fan_out:<10} {c.failure_rate:>12g} {c.result.name:<7}{c.result.clients:>8} "
            f"{_fmt(c.ours.requests):>9} {_fmt(c.original.requests):>9} {c.ratio:>6.2f} "
            f"{_money(c.ours.total_cost()):>10} {_money(c.original.total_cost()):>10} "
            f"{c.ours.billed_sleep_seconds:>9.2f}s {c.original.billed_sleep_seconds:>9.2f}s"
        )
    for stage in dict.fromkeys(c.stage for c in comparisons):
        of_stage = [c for c in comparisons if c.stage == stage]
        worst = max(of_stage, key=lambda c: c.ratio)
        best = min(of_stage, key=lambda c: c.ratio)
        met = [c for c in of_stage if c.ratio <= GOAL_REQUEST_RATIO]
        verdict = (
            "met" if len(met) == len(of_stage) else f"MISSED ({len(met)} of {len(of_stage)} phases met it)"
        )
        print(
            f"stage {stage} ({of_stage[0].fan_out}): goal (requests <= 1/3 of the original's) {verdict}; "
            f"ratios {best.ratio:.2f} .. {worst.ratio:.2f}. Billed sleep: ours "
            f"{max(c.ours.billed_sleep_seconds for c in of_stage):g} s at most."
        )
    leaks = sum(c.result.foreign_frames for c in comparisons)
    if any(c.result.users for c in comparisons):
        print(f"frames pushed to another user's connection, all per-owner phases: {leaks} (must be 0)")


def print_side_by_side(comparisons: list[Comparison]) -> None:
    """The stages of the run beside each other: requests per task and ratio to the original."""
    stages = list(dict.fromkeys(c.stage for c in comparisons))
    if len(stages) < 2:
        return
    fan_out = {c.stage: c.fan_out for c in comparisons}
    by_key: dict[tuple[float, str, int], dict[str, Comparison]] = {}
    for c in comparisons:
        by_key.setdefault((c.failure_rate, c.result.name, c.result.clients), {})[c.stage] = c
    print()
    print("Side by side: billed requests per task that succeeded, and the ratio ours / the original's model")
    labels = "".join(f" {f'{stage} ({fan_out[stage]})':>20}" for stage in stages)
    print(f"{'':>12} {'':<7}{'':>8} {'original':>9}{labels}")
    columns = "".join(f" {'req':>12} {'ratio':>7}" for _ in stages)
    header = f"{'failure rate':>12} {'phase':<7}{'clients':>8} {'req':>9}{columns}"
    print(header)
    print("-" * len(header))
    for (failure_rate, name, clients), row in by_key.items():
        original = next(iter(row.values())).original.requests
        cells = "".join(
            f" {_fmt(row[stage].ours.requests):>12} {row[stage].ratio:>7.2f}"
            if stage in row
            else f" {'-':>12} {'-':>7}"
            for stage in stages
        )
        print(f"{failure_rate:>12g} {name:<7}{clients:>8} {_fmt(original):>9}{cells}")


# --------------------------------------------------------------------------- main


@dataclass(frozen=True)
class StageInfo:
    """What the bench needs from a stage's synthesized template."""

    stack_name: str
    memory: dict[str, int]  # MemorySize per function display name
    http_function: str  # the HTTP API's function (its invocations are the API Gateway requests)
    token_parameter: str | None  # auth: jwt: the $connect authorizer's query parameter; None: no auth


def stage_info(cdk_out: Path, stage: str) -> StageInfo:
    synthesized = find_stack(cdk_out, stage)
    model = build_stack_model(
        synthesized.template, synthesized.stack_name, synthesized.cdk_out, PseudoParameters()
    )
    memory = {spec.display_name: spec.memory_size for spec in model.functions.values()}
    http_ids = {route.function_id for api in model.http_apis for route in api.routes if route.function_id}
    http_names = [model.functions[i].display_name for i in http_ids if i in model.functions]
    if len(http_names) != 1:
        raise RuntimeError(f"expected one HTTP API function, found {http_names}")
    token_parameter = None
    if model.jwt_authorizers or model.request_authorizers:
        connect = [api.routes["$connect"] for api in model.websocket_apis if "$connect" in api.routes]
        sources = [
            parameter
            for route in connect[:1]
            if route.authorizer is not None and (parameter := route.authorizer.query_parameter)
        ]
        if not sources:
            raise RuntimeError(
                f"stage {stage}: authorizers, but no $connect authorizer reading a query parameter"
            )
        token_parameter = sources[0]
    return StageInfo(synthesized.stack_name, memory, http_names[0], token_parameter)


def stage_auth(info: StageInfo, state_dir: Path) -> StageAuth | None:
    """The running stack's local token issuer, for a stage with authorizers."""
    if info.token_parameter is None:
        return None
    from local.auth.issuer import load_issuer  # noqa: PLC0415 - it loads PyJWT: only for stages with auth

    return StageAuth(load_issuer(state_dir, stack=info.stack_name), info.token_parameter)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench cost", description=__doc__.split("\n\n")[0])
    parser.add_argument("--cdk-out", type=Path, default=Path("cdk.out"))
    parser.add_argument(
        "--stage",
        "--stages",
        dest="stages",
        nargs="+",
        default=["dev"],
        help="stage(s) to run, each with every failure rate (default dev; e.g. --stage dev prod: "
        "broadcast and per-owner frames side by side)",
    )
    parser.add_argument("--tasks", type=int, help="tasks per burst (default 300; --quick 100)")
    parser.add_argument(
        "--paced-tasks", type=int, help="tasks of the paced phase (0: skip; default 40; --quick 20)"
    )
    parser.add_argument("--paced-rate", type=float, default=2.0, help="tasks per second in the paced phase")
    parser.add_argument("--quick", action="store_true", help="smaller sizes: --tasks 100 --paced-tasks 20")
    parser.add_argument(
        "--failure-rates",
        type=float,
        nargs="+",
        default=[0.0, STAGE_DEFAULT_FAILURE_RATE],
        help="one stack run per stage and rate (default: 0 and the dev stage's 0.3)",
    )
    parser.add_argument(
        "--clients",
        type=int,
        nargs="+",
        default=[1, 10],
        help="WebSocket clients of the bursts (default 1 10); on a stage with auth: jwt, as many users",
    )
    parser.add_argument("--time-scale", type=float, default=0.1, help="passed to the local stack")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for one phase")
    args = parser.parse_args(argv)
    if args.tasks is None:
        args.tasks = 100 if args.quick else 300
    if args.paced_tasks is None:
        args.paced_tasks = 20 if args.quick else 40
    if args.tasks < 1 or any(c < 1 for c in args.clients) or args.clients != sorted(args.clients):
        parser.error("--tasks must be positive and --clients positive and ascending")

    infos = {stage: stage_info(args.cdk_out, stage) for stage in args.stages}
    print(f"cost per task, {time.strftime('%Y-%m-%d %H:%M %Z')}: python -m bench cost "
          + " ".join(argv if argv is not None else sys.argv[1:]))  # fmt: skip
    print(PRICE_NOTES)
    print(
        f"original app: a model (bench/cost_per_task.py ORIGINAL): {ORIGINAL.attempts} attempts in one "
        f"invocation, billed sleeps {ORIGINAL.sleeps_seconds} s, one UpdateItem + one push (Scan + a POST "
        "per connection) per attempt, non-sleep handler time = ours, same MemorySize; it has no auth, "
        "so it pushes to every connection whatever our stage does"
    )
    comparisons = []
    for stage, info in infos.items():
        for failure_rate in args.failure_rates:
            with tempfile.TemporaryDirectory(prefix="bench-cost-") as folder:
                stats_file = Path(folder) / "stats.json"
                state_dir = Path(folder) / "state"
                stack_args = [
                    "--cdk-out", str(args.cdk_out), "--stage", stage,
                    "--failure-rate", repr(failure_rate), "--time-scale", repr(args.time_scale),
                    "--quiet", "--stats-file", str(stats_file),
                    "--state-dir", str(state_dir), "--log-dir", str(Path(folder) / "logs"),
                ]  # fmt: skip
                print(f"\nlocal stack: python -m local {' '.join(stack_args)}", flush=True)
                with LocalStackProcess(stack_args) as stack:
                    auth = stage_auth(info, state_dir)
                    if auth is not None:
                        print(
                            f"  auth: jwt; tokens from the stack's local issuer {auth.issuer.url}, WebSocket "
                            f"?{auth.token_parameter}=<token>",
                            flush=True,
                        )
                    results = asyncio.run(run_stack(stack, stats_file, args, auth))
            for result in results:
                ours = our_figures(result, info.memory, info.http_function)
                memory_mb = info.memory.get(info.http_function, 512)
                original = original_figures(
                    failure_rate, result.clients, sum(ours.handler_ms.values()), memory_mb
                )
                comparison = Comparison(failure_rate, result, ours, original, stage)
                print_comparison(comparison)
                comparisons.append(comparison)
    print_summary(comparisons)
    print_side_by_side(comparisons)
    return 0


if __name__ == "__main__":
    sys.exit(main())
