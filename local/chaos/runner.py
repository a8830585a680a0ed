"""The chaos runner: start the local stack with faults, drive it like the frontend, record the
history, drain, and check it (local/chaos/checker.py).

1. `python -m local` starts (local/launcher.py) with the chosen --fault-* options; the fault
   directory is `<run dir>/faults`.
2. K WebSocket clients connect: `stay` of them before the first submission, to stay the whole
   run; the others churn: connect, read for a while, drop the TCP connection without a close
   frame, reconnect.
3. N tasks are submitted over HTTP at a bounded concurrency, with client-generated ids and the
   Angular frontend's body {taskId, answer, status: "pending", retries: 0}. A 5xx, 429, timeout
   or connection error means "maybe accepted": the same id and body are posted again until a
   202/200. The client also ignores a fraction of the 202s (`lost_response_rate`), as if its
   request had timed out after the server committed, so the retry of an accepted task is
   exercised in every run. While they are submitted, the runner takes SQS away from the
   functions for the outage window (it rewrites the fault directory's control.json).
4. Meanwhile GET /tasks/{id} polls and complete GET /tasks listings (paged through the Link
   header) record what the API shows, and every frame of every client is kept.
5. Twice during the burst the runner kills with SIGKILL: the whole stack (its process group:
   the stack, its embedded AWS and every function worker), which it then starts again on the
   same ports and state, and later the embedded AWS alone, which the stack restarts itself.
   Clients see connection errors and 503s meanwhile, and retry.
6. Drain: wait until every accepted task is terminal and the queue and the DLQ are empty (with
   a deadline), then a little for the last frames; read every task once more; stop the stack
   and read its files (effects.log, faults.log, consumed.log, stats.json).

Stages with authorizers (`auth: jwt`), told by the running stack's state file (its `auth`
block, written under the run's own `--state-dir`): the runner mints a token for each of
`users` users (default 4) from the stack's local issuer. Task i is submitted by user
i mod users, and every request about a task (POST, GET, listings) carries its owner's token;
each WebSocket client connects with one user's token (`?token=`), by default 2 staying and 1
churning client per user. Now and then a task is also read with another user's token, which
must answer 404. The checker then adds the isolation invariants (no foreign frames, no foreign
reads) and holds each client to its own user's final frames.

Results go to `<run dir>`: history.json, report.json, stack.log and the function logs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import shutil
import signal
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlparse

import aiohttp
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import WebSocketException

from local.auth import AuthError, load_issuer
from local.chaos.checker import Report, check
from local.chaos.history import TERMINAL, ClientHistory, Frame, History, Observation, Submission, Twin
from local.emulator.aws_json import AwsJsonClient
from local.faults.injection import (
    CONSUMED_LOG,
    EFFECTS_LOG,
    FAULTS_LOG,
    STATS_FILE,
    read_json_lines,
    write_sqs_outage,
)
from local.launcher import REPO_ROOT, LocalStackProcess
from local.state.running_stack import StateFileError, running_stack_state

Echo = Callable[[str], None]
RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})
DEPTH_ATTRIBUTES = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
LIST_PAGE_SIZE = 100
LOST_RESPONSE = "response lost"
DEFAULT_USERS = 4  # stages with authorizers
DEFAULT_CLIENTS, DEFAULT_STAY = 6, 3  # stages without authorizers
CLIENTS_PER_USER, STAY_PER_USER = 3, 2  # stages with authorizers
TOKEN_LIFETIME = 12 * 3600.0  # seconds: outlives any run
CROSS_READ_RATE = 0.1  # of the GET /tasks/{id} polls, read as another user (stages with authorizers)


@dataclass
class ChaosConfig:
    tasks: int = 1000
    concurrency: int = 16  # POSTs in flight
    clients: int | None = None  # WebSocket clients; None: 6, or 3 per user with authorizers
    stay: int | None = None  # of them, how many stay connected the whole run; None: 3, or 2 per user
    users: int | None = None  # stages with authorizers: users with a token each; None: 4
    failure_rate: float = 0.3
    kill_rate: float = 0.02
    duplicate_rate: float = 0.05
    aws_error_rate: float = 0.05
    push_failure_rate: float = 0.02
    sqs_outage: tuple[float, float] | None = (2.0, 10.0)  # (seconds after the first POST, duration)
    stack_kill_at: float | None = 5.0  # kill -9 of the whole stack (then restarted), s after the first POST
    emulator_kill_at: float | None = 12.0  # kill -9 of the embedded AWS (the stack restarts it)
    lost_response_rate: float = 0.05  # the client ignores this fraction of 202s, as after a timeout
    mutant: str | None = None
    resume: bool = True  # reconnecting clients resume from their last cursor (False: the mutant check)
    # Stages with authorizers: this fraction of the tasks gets a twin, another user's task under the
    # same taskId (ids are per owner), held to isolation (history.Twin)
    twin_rate: float = 0.1
    time_scale: float = 0.01
    drain_timeout: float = 420.0
    frame_grace: float = 30.0
    seed: int | None = None
    cdk_out: Path = REPO_ROOT / "cdk.out"
    stage: str = "dev"
    template: Path | None = None
    run_dir: Path | None = None
    max_concurrency: int = 4
    post_timeout: float = 15.0
    get_pollers: int = 2
    poll_pause: float = 0.05
    list_interval: float = 5.0
    progress_interval: float = 3.0
    stack_arguments: list[str] = field(default_factory=list)  # extra `python -m local` options

    def client_plan(self, users: list[str]) -> list[tuple[str, str | None, bool]]:
        """(name, user, stays) of each WebSocket client. Without users (no authorizers): 6 clients,
        3 of which stay; with users: 3 per user, 2 of which stay (each user's clients round-robin)."""
        if users:
            clients = self.clients if self.clients is not None else CLIENTS_PER_USER * len(users)
            stay = self.stay if self.stay is not None else STAY_PER_USER * len(users)
        else:
            clients = self.clients if self.clients is not None else DEFAULT_CLIENTS
            stay = self.stay if self.stay is not None else DEFAULT_STAY
        clients = max(1, clients)
        stay = max(0, min(stay, clients))
        plan: list[tuple[str, str | None, bool]] = []
        for index in range(clients):
            stays = index < stay
            name = f"{'stay' if stays else 'churn'}-{index}"
            user = users[(index if stays else index - stay) % len(users)] if users else None
            plan.append((f"{name}:{user}" if user else name, user, stays))
        return plan

    def local_arguments(self, fault_dir: Path, log_dir: Path, state_dir: Path | None = None) -> list[str]:
        source = ["--template", str(self.template)] if self.template else ["--cdk-out", str(self.cdk_out)]
        arguments = [
            *source,
            "--stage",
            self.stage,
            "--time-scale",
            repr(self.time_scale),
            "--failure-rate",
            repr(self.failure_rate),
            "--max-concurrency",
            str(self.max_concurrency),
            "--quiet",
            "--log-dir",
            str(log_dir),
            "--fault-dir",
            str(fault_dir),
            "--fault-kill-rate",
            repr(self.kill_rate),
            "--fault-duplicate-rate",
            repr(self.duplicate_rate),
            "--fault-aws-error-rate",
            repr(self.aws_error_rate),
            "--fault-push-failure-rate",
            repr(self.push_failure_rate),
        ]
        if state_dir is not None:  # the run's own: its state file tells whether the stack has authorizers
            arguments += ["--state-dir", str(state_dir)]
        if self.mutant:
            arguments += ["--fault-mutant", self.mutant]
        if self.seed is not None:
            arguments += ["--fault-seed", str(self.seed)]
        return arguments + list(self.stack_arguments)


@dataclass
class ChaosResult:
    report: Report
    history: History
    run_dir: Path
    stack_output: str


def _observation(
    body: Any, source: str, started: float, ended: float, user: str | None = None
) -> Observation | None:
    if not isinstance(body, dict) or not isinstance(body.get("taskId"), str):
        return None
    try:
        return Observation(
            task_id=body["taskId"],
            status=str(body.get("status")),
            version=int(body.get("version") or 0),
            run=int(body.get("run") or 1),
            retries=int(body.get("retries") or 0),
            source=source,
            started=started,
            ended=ended,
            user=user,
            answer=body.get("answer") if isinstance(body.get("answer"), str) else None,
        )
    except (TypeError, ValueError):
        return None


def _next_link(header: str | None) -> str | None:
    """The target of a `Link: <...>; rel="next"` header."""
    for part in (header or "").split(","):
        if 'rel="next"' in part and "<" in part and ">" in part:
            return part[part.index("<") + 1 : part.index(">")]
    return None


class WsClient:
    """One WebSocket client: keeps every frame; stays connected, or churns with abrupt drops."""

    def __init__(self, run: ChaosRun, history: ClientHistory, url: str, rng: random.Random) -> None:
        self.run = run
        self.history = history
        self.url = url
        self.rng = rng
        self.connection: ClientConnection | None = None

    async def _connect(self, final: bool = False) -> ClientConnection | None:
        deadline = time.time() + 30
        while (final and time.time() < deadline) or (not final and not self.run.stopping.is_set()):
            try:
                connection = await connect(
                    self.url,
                    open_timeout=15,
                    ping_interval=None,
                    close_timeout=2,
                    max_queue=None,
                    compression=None,
                    proxy=None,
                )
            except (OSError, TimeoutError, WebSocketException):
                self.history.rejected_connects += 1
                await asyncio.sleep(0.2 + self.rng.random() * 0.3)
                continue
            self.history.connects += 1
            if self.history.connected_at is None:
                self.history.connected_at = time.time()
            return connection
        return None

    async def _read(self, connection: ClientConnection) -> None:
        with contextlib.suppress(WebSocketException, OSError):
            async for message in connection:
                self.run.on_message(self.history, message)

    async def stay(self, connected: asyncio.Event) -> None:
        connection = await self._connect()
        connected.set()
        while connection is not None:
            self.connection = connection
            reader = asyncio.ensure_future(self._read(connection))
            stopping = asyncio.ensure_future(self.run.stopping.wait())
            await asyncio.wait({reader, stopping}, return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
            if self.run.stopping.is_set():
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(connection.close(), 5)
                reader.cancel()
                await asyncio.gather(reader, return_exceptions=True)
                return
            if self.run.killing:
                self.history.killed += 1  # the runner killed the stack: expected, then reconnect
            else:
                self.history.dropped += 1  # the server ended it: this client no longer "stayed"
            connection = await self._connect()
            if connection is not None:
                await self._resume(connection)

    async def _resume(self, connection: ClientConnection) -> None:
        """Ask for what this client missed while it was away (the protocol a reconnecting browser
        follows; README). Without a cursor yet there is nothing to resume from."""
        if self.run.config.resume and self.history.cursor is not None:
            self.history.resume_pending = True
            self.history.resume_sent_at = time.time()
            with contextlib.suppress(WebSocketException, OSError):
                await connection.send(json.dumps({"action": "resume", "since": self.history.cursor}))

    async def _answered(self, reader: asyncio.Future[None], timeout: float) -> bool:
        """Wait until the pending resume is answered (or the connection ends, or `timeout`)."""
        deadline = time.time() + timeout
        while self.history.resume_pending and not reader.done() and time.time() < deadline:
            await asyncio.sleep(0.05)
        return not self.history.resume_pending

    async def catch_up(self) -> None:
        """At the end of the run: reconnect once more, resume, and wait for the answer, so that the
        last gap is covered like every other (the check needs a client that came back)."""
        if not self.run.config.resume or self.history.cursor is None:
            return
        connection = await self._connect(final=True)
        if connection is None:
            return
        reader = asyncio.ensure_future(self._read(connection))
        for _ in range(3):  # an error answer (the store throttled, say) is asked again
            answers = self.history.resumes + self.history.resyncs
            await self._resume(connection)
            await self._answered(reader, timeout=30)
            if self.history.resumes + self.history.resyncs > answers:
                break
        with contextlib.suppress(Exception):
            await asyncio.wait_for(connection.close(), 5)
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)

    async def churn(self) -> None:
        while not self.run.stopping.is_set():
            connection = await self._connect()
            if connection is None:
                return
            reader = asyncio.ensure_future(self._read(connection))
            await self._resume(connection)
            # A browser that just came back stays for its replay; the drop comes later, at random.
            await self._answered(reader, timeout=30)
            await asyncio.wait({reader}, timeout=self.rng.uniform(2.0, 8.0))
            if not reader.done():
                connection.transport.abort()  # no close frame: an abrupt disconnect
                self.history.aborts += 1
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.run.stopping.wait(), self.rng.uniform(0.1, 1.5))
        await self.catch_up()


class ChaosRun:
    def __init__(
        self,
        config: ChaosConfig,
        stack: LocalStackProcess,
        fault_dir: Path,
        echo: Echo,
        *,
        state_dir: Path | None = None,
        arguments: list[str] | None = None,
    ) -> None:
        self.config = config
        self.stack = stack
        self.arguments = list(arguments or [])  # how the stack was started (for a restart)
        self.earlier_output: list[str] = []  # what stacks killed before this one printed
        self._restarting = asyncio.Lock()
        self.killing = False  # the whole stack is being killed and started again
        self.stack_exit: str | None = None  # why the run stopped early: the stack process exited
        self.fault_dir = fault_dir
        self.state_dir = state_dir
        self.echo = echo
        self.rng = random.Random(config.seed)
        self.history = History(requested=config.tasks)
        self.latest: dict[str, tuple[int, str]] = {}  # task -> (version, status), newest seen
        self.accepted: list[str] = []
        self.stopping = asyncio.Event()
        self.polling = True
        self.session: aiohttp.ClientSession | None = None
        self.aws: AwsJsonClient | None = None
        self.queue_url = ""
        self.dlq_url = ""
        self.received: list[set[tuple[str, str]]] = []
        self._faults_offset = 0
        self._fault_counts: dict[str, int] = {}
        self.tokens: dict[str, str] = {}  # user -> token (stages with authorizers)
        self.foreign_frames = 0  # frames of a task the client's user does not own (live count)

    # --- authentication ----------------------------------------------------------------------

    def authenticate(self) -> None:
        """On a stack with authorizers (its state file has an `auth` block), mint a token for each
        user from the stack's local issuer; on one without, leave everything as it was."""
        if self.state_dir is None:
            return
        try:
            state = running_stack_state(self.state_dir)
        except StateFileError as error:
            raise RuntimeError(f"cannot read the local stack's state file: {error}") from None
        if not isinstance(state.get("auth"), dict):
            if self.config.users is not None:
                self.history.notes.append(
                    f"--users {self.config.users} ignored: {state.get('stack')} has no authorizers"
                )
            return
        try:
            issuer = load_issuer(self.state_dir)
        except AuthError as error:
            raise RuntimeError(f"cannot mint tokens for the chaos users: {error}") from None
        count = max(1, self.config.users if self.config.users is not None else DEFAULT_USERS)
        users = [f"chaos-user-{index}" for index in range(count)]
        self.tokens = {user: issuer.mint(user, expires_in=TOKEN_LIFETIME) for user in users}
        self.history.auth = True
        self.history.users = users
        self.echo(f"authorizers: {count} users with tokens from the local issuer {issuer.url}")

    def _headers(self, user: str | None) -> dict[str, str] | None:
        token = self.tokens.get(user) if user is not None else None
        return {"Authorization": f"Bearer {token}"} if token else None

    def _users(self) -> list[str | None]:
        """Who reads: each user on a stage with authorizers, else the one anonymous client."""
        return list(self.history.users) if self.history.auth else [None]

    # --- recording ---------------------------------------------------------------------------

    def _note(self, task_id: str, version: int, status: str) -> None:
        current = self.latest.get(task_id)
        if current is None or version >= current[0]:
            self.latest[task_id] = (version, status)

    def record(self, observation: Observation | None) -> None:
        if observation is None:
            return
        twin = self._twin_of(observation.answer, observation.user, observation.source)
        if twin is not None:
            self.history.twin_reads += observation.user == twin.user
            return
        self.history.observations.append(observation)
        self._note(observation.task_id, observation.version, observation.status)

    def _twin_of(self, answer: str | None, user: str | None, where: str) -> Twin | None:
        """The twin (Twin) whose answer this is, kept apart from the run's task of the same id, or
        None; seen by anyone but its own user, it is a leak."""
        twin = self.history.twins.get(answer or "")
        if twin is not None and user != twin.user:
            leak = f"{where} with the token of {user} showed {twin.user}'s {twin.task_id}"
            self.history.twin_leaks.append(leak)
        return twin

    def on_message(self, client: ClientHistory, message: str | bytes) -> None:
        try:
            frame = json.loads(message)
        except ValueError:
            frame = None
        if (
            isinstance(frame, dict)
            and client.resume_pending
            and frame.get("type") in ("resumed", "resync", "error")
        ):
            client.resumes += frame["type"] == "resumed"
            client.resyncs += frame["type"] == "resync"
            client.resume_errors += frame["type"] == "error"
            client.resume_pending = False
            if client.resume_sent_at is not None:
                client.resume_seconds.append(round(time.time() - client.resume_sent_at, 3))
            self._take_cursor(client, frame.get("cursor"))
        if (
            not isinstance(frame, dict)
            or frame.get("type") != "task"
            or not isinstance(frame.get("taskId"), str)
        ):
            client.other_frames += 1  # pong, error frames, resume answers
            return
        if not client.resume_pending:
            self._take_cursor(client, frame.get("cursor"))
        answer = frame.get("answer") if isinstance(frame.get("answer"), str) else None
        twin = self._twin_of(answer, client.user, f"a frame to {client.name}")
        if twin is not None:
            client.twin_frames += client.user == twin.user
            return
        try:
            record = Frame(
                task_id=frame["taskId"],
                status=str(frame.get("status")),
                version=int(frame.get("version") or 0),
                retries=int(frame.get("retries") or 0),
                received=time.time(),
                answer=answer,
            )
        except (TypeError, ValueError):
            return
        client.frames.append(record)
        if self.history.auth and self._owner(record.task_id) != client.user:
            self.foreign_frames += 1
        index = self.history.clients.index(client)
        self.received[index].add((record.task_id, record.status))
        self._note(record.task_id, record.version, record.status)

    @staticmethod
    def _take_cursor(client: ClientHistory, cursor: object) -> None:
        if isinstance(cursor, str) and cursor:
            client.cursor = cursor
            if client.first_cursor_at is None:
                client.first_cursor_at = time.time()

    # --- HTTP --------------------------------------------------------------------------------

    async def _request(
        self, method: str, url: str, body: Any = None, timeout: float = 15.0, user: str | None = None
    ) -> tuple[int | None, Any, dict[str, str], float, float]:
        assert self.session is not None
        started = time.time()
        try:
            async with self.session.request(
                method,
                url,
                json=body,
                headers=self._headers(user),
                timeout=aiohttp.ClientTimeout(total=timeout),
            ) as response:
                text = await response.text()
                status: int | None = response.status
                headers = {k.lower(): v for k, v in response.headers.items()}
        except (TimeoutError, aiohttp.ClientError):
            return None, None, {}, started, time.time()
        try:
            parsed = json.loads(text) if text else None
        except ValueError:
            parsed = text
        return status, parsed, headers, started, time.time()

    async def _submit(self, submission: Submission) -> None:
        url = self.stack.http_url + "/tasks"
        delay = 0.1
        while True:
            status, body, _, started, ended = await self._request(
                "POST", url, submission.body, self.config.post_timeout, submission.user
            )
            if status in (200, 202) and self.rng.random() < self.config.lost_response_rate:
                status = None  # the answer "never arrived": a timeout after the server committed
                submission.outcomes.append(LOST_RESPONSE)
            else:
                submission.outcomes.append("timeout" if status is None else str(status))
            if status in (200, 202):
                submission.accepted_at = ended
                self.accepted.append(submission.task_id)
                self.record(_observation(body, "post", started, ended, submission.user))
                return
            if status is not None and status not in RETRYABLE_STATUSES:
                self.echo(f"POST /tasks {submission.task_id} refused: {status} {body}")
                return
            if self.stopping.is_set():
                return
            await asyncio.sleep(delay + self.rng.random() * delay)
            delay = min(1.0, delay * 2)

    async def _submit_twin(self, twin: Twin) -> None:
        """POST the twin as its user: a 202 of their own task, whoever holds the id."""
        body = {"taskId": twin.task_id, "answer": twin.answer, "status": "pending", "retries": 0}
        delay = 0.1
        while not self.stopping.is_set():
            status, answer, _, _, _ = await self._request(
                "POST", self.stack.http_url + "/tasks", body, self.config.post_timeout, twin.user
            )
            twin.outcomes.append("timeout" if status is None else str(status))
            if status in (200, 202):
                twin.accepted = True
                shown = answer.get("answer") if isinstance(answer, dict) else None
                if shown != twin.answer:
                    self.history.twin_leaks.append(f"POST of {twin.user}'s {twin.task_id} answered {shown!r}")
                return
            if status is not None and status not in RETRYABLE_STATUSES:
                return
            await asyncio.sleep(delay + self.rng.random() * delay)
            delay = min(1.0, delay * 2)

    async def _get_task(self, task_id: str, attempts: int = 1) -> tuple[int | None, Any]:
        """The task as its owner reads it."""
        user = self._owner(task_id)
        status, body = None, None
        for _ in range(attempts):
            status, body, _, started, ended = await self._request(
                "GET", f"{self.stack.http_url}/tasks/{task_id}", timeout=15, user=user
            )
            if status == 200:
                self.record(_observation(body, "get", started, ended, user))
                return status, body
            if status == 404:
                return status, None
            await asyncio.sleep(0.2)
        return status, body

    async def _read_as_another_user(self, task_id: str) -> None:
        """GET a task with the token of a user who does not own it: it must be a 404. A 200 is
        recorded as that user's observation, which the checker reports as a foreign read."""
        owner = self._owner(task_id)
        reader = self.rng.choice([user for user in self.history.users if user != owner])
        status, body, _, started, ended = await self._request(
            "GET", f"{self.stack.http_url}/tasks/{task_id}", timeout=15, user=reader
        )
        outcome = "timeout" if status is None else str(status)
        observation = _observation(body, "get", started, ended, reader) if status == 200 else None
        if observation is not None and observation.answer in self.history.twins:
            outcome = "200 (the reader's own task under that id)"
        self.history.cross_reads[outcome] = self.history.cross_reads.get(outcome, 0) + 1
        self.record(observation)

    async def list_all(self) -> list[dict[str, Any]] | None:
        """Every task of every user (each listing with its user's token), following the Link
        header; None if a page kept failing."""
        tasks: list[dict[str, Any]] = []
        for user in self._users():
            listing = await self._list(user)
            if listing is None:
                return None
            tasks += listing
        return tasks

    async def _list(self, user: str | None) -> list[dict[str, Any]] | None:
        """The tasks one user sees, following the Link header; None if a page kept failing."""
        tasks: list[dict[str, Any]] = []
        target: str | None = f"/tasks?limit={LIST_PAGE_SIZE}"
        while target is not None:
            url = target if target.startswith("http") else self.stack.http_url + target
            for _ in range(20):
                status, body, headers, started, ended = await self._request("GET", url, timeout=30, user=user)
                if status == 200 and isinstance(body, list):
                    break
                await asyncio.sleep(0.2)
            else:
                return None
            for item in body:
                observation = _observation(item, "list", started, ended, user)
                if observation is not None and observation.answer in self.history.twins:
                    self.record(observation)  # a twin: its own user's, or a leak
                    continue
                self.record(observation)
                if isinstance(item, dict) and isinstance(item.get("taskId"), str):
                    self.history.listed.add(item["taskId"])
                    tasks.append(item)
            target = _next_link(headers.get("link"))
        return tasks

    # --- AWS (the embedded moto) -------------------------------------------------------------

    async def _find_queues(self) -> None:
        assert self.aws is not None
        urls = (await self.aws.sqs("ListQueues", {})).get("QueueUrls", [])
        for url in urls:
            attributes = (
                await self.aws.sqs(
                    "GetQueueAttributes", {"QueueUrl": url, "AttributeNames": ["RedrivePolicy"]}
                )
            ).get("Attributes", {})
            policy = attributes.get("RedrivePolicy")
            if policy:
                self.queue_url = url
                target = str(json.loads(policy)["deadLetterTargetArn"]).rsplit(":", 1)[-1]
                self.dlq_url = next(u for u in urls if u.rsplit("/", 1)[-1] == target)
        if not self.queue_url:
            raise RuntimeError(f"no queue with a redrive policy among {urls}")

    async def depths(self) -> tuple[int, int]:
        assert self.aws is not None
        result = []
        for url in (self.queue_url, self.dlq_url):
            attributes = (
                await self.aws.sqs(
                    "GetQueueAttributes",
                    {
                        "QueueUrl": url,
                        "AttributeNames": [
                            "ApproximateNumberOfMessages",
                            "ApproximateNumberOfMessagesNotVisible",
                        ],
                    },
                )
            ).get("Attributes", {})
            result.append(
                int(attributes.get("ApproximateNumberOfMessages", 0))
                + int(attributes.get("ApproximateNumberOfMessagesNotVisible", 0))
            )
        return result[0], result[1]

    # --- background activities ---------------------------------------------------------------

    def _terminal_count(self) -> int:
        return sum(1 for t in self.accepted if self.latest.get(t, (0, "pending"))[1] in TERMINAL)

    async def _poll_tasks(self) -> None:
        while self.polling:
            if not self.accepted:
                await asyncio.sleep(0.2)
                continue
            pending = [t for t in self.accepted if self.latest.get(t, (0, "pending"))[1] not in TERMINAL]
            pool = pending if pending and self.rng.random() < 0.7 else self.accepted
            task_id = self.rng.choice(pool)
            if len(self.history.users) > 1 and self.rng.random() < CROSS_READ_RATE:
                await self._read_as_another_user(task_id)
            else:
                await self._get_task(task_id)
            await asyncio.sleep(self.config.poll_pause)

    async def _poll_lists(self) -> None:
        while self.polling:
            await self.list_all()
            await asyncio.sleep(self.config.list_interval)

    def _read_fault_counts(self) -> dict[str, int]:
        records, self._faults_offset = read_json_lines(self.fault_dir / FAULTS_LOG, self._faults_offset)
        for record in records:
            name = str(record.get("fault"))
            self._fault_counts[name] = self._fault_counts.get(name, 0) + 1
        return self._fault_counts

    async def _progress(self, main: asyncio.Task[Any]) -> None:
        started = time.time()
        while True:
            await asyncio.sleep(self.config.progress_interval)
            process = self.stack.process
            if process is not None and process.poll() is not None and not self.killing:
                # Nothing would ever answer again: stop now, not at the drain deadline.
                self.stack_exit = (
                    f"the local stack exited (status {process.returncode}) in the middle of the run"
                )
                self.echo(self.stack_exit)
                main.cancel()
                return
            try:
                queue, dlq = await self.depths()
            except Exception:
                queue, dlq = -1, -1
            counts = self._read_fault_counts()
            frames = sum(len(c.frames) for c in self.history.clients)
            aborts = sum(c.aborts for c in self.history.clients)
            faults = " ".join(f"{k}={v}" for k, v in sorted(counts.items()))
            foreign = f"  foreign {self.foreign_frames}" if self.history.auth else ""
            self.echo(
                f"[{time.time() - started:6.1f} s] accepted {len(self.accepted)}/{self.config.tasks}"
                f"  terminal {self._terminal_count()}  queue {queue}  DLQ {dlq}  frames {frames}{foreign}"
                f"  drops {aborts}  {faults}"
            )

    # --- the stack and its embedded AWS killed (local fault) ---------------------------------

    async def _kill_stack(self, first_post: float) -> None:
        """kill -9 of the stack's whole process group, then the same stack again (same ports,
        same state dir): what `make dev` after a crash does."""
        if self.config.stack_kill_at is None:
            return
        await asyncio.sleep(max(0.0, first_post + self.config.stack_kill_at - time.time()))
        async with self._restarting:
            old = self.stack
            assert old.process is not None
            loop = asyncio.get_running_loop()
            stats = self.fault_dir / STATS_FILE
            if stats.exists():  # its counters (the next stack counts from zero)
                shutil.copy(stats, self.fault_dir / f"stats.{len(self.history.restarts)}.json")
            killed = time.time()
            self.killing = True
            with contextlib.suppress(ProcessLookupError):
                os.killpg(old.process.pid, signal.SIGKILL)
            await loop.run_in_executor(None, old.stop)
            self.earlier_output.append(old.text() + "=== the whole stack killed (SIGKILL) ===\n")
            ports = [
                "--http-port",
                str(urlparse(old.http_url).port),
                "--ws-port",
                str(urlparse(old.ws_url).port),
            ]
            new = LocalStackProcess([*self.arguments, *ports], start_timeout=180)
            try:
                await loop.run_in_executor(None, new.start)
            finally:
                self.killing = False
            self.stack = new
            assert self.session is not None
            self.aws = AwsJsonClient(self.session, new.moto_url, "us-east-1")
            await self._find_queues()
            self.history.restarts.append({"what": "stack", "killed": killed, "back": time.time()})
            self.echo(
                f"the whole stack killed (SIGKILL) and started again: back after {time.time() - killed:.1f} s"
            )

    async def _kill_emulator(self, first_post: float) -> None:
        """kill -9 of the embedded AWS alone; the stack must restart it (its new pid shows that)."""
        if self.config.emulator_kill_at is None or self.state_dir is None:
            return
        await asyncio.sleep(max(0.0, first_post + self.config.emulator_kill_at - time.time()))
        async with self._restarting:
            pid = int(running_stack_state(self.state_dir)["motoPid"])
            killed = time.time()
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            while True:
                await asyncio.sleep(0.1)
                with contextlib.suppress(StateFileError, KeyError, ValueError):
                    if int(running_stack_state(self.state_dir)["motoPid"]) != pid:
                        break
                if time.time() - killed > 30:
                    self.history.notes.append("the embedded AWS was not restarted within 30 s")
                    return
            self.history.restarts.append({"what": "emulator", "killed": killed, "back": time.time()})
            self.echo(
                f"the embedded AWS killed (SIGKILL): the stack restarted it in {time.time() - killed:.1f} s"
            )

    def stack_output(self) -> str:
        return "".join([*self.earlier_output, self.stack.text()])

    async def _sqs_outage(self, first_post: float) -> None:
        if self.config.sqs_outage is None:
            return
        offset, duration = self.config.sqs_outage
        await asyncio.sleep(max(0.0, first_post + offset - time.time()))
        start = time.time()
        write_sqs_outage(self.fault_dir, start, start + duration)
        self.history.outage = (start, start + duration)
        self.echo(f"SQS outage: sends from functions fail for {duration:g} s")

    # --- the run -------------------------------------------------------------------------------

    def _plan(self, count: int) -> list[str]:
        """The run's submissions (round-robin over the users), and their twins; returns the ids."""
        ids = [str(uuid.uuid4()) for _ in range(count)]
        users = self._users()
        for index, task_id in enumerate(ids):
            body = {
                "taskId": task_id,
                "answer": f"chaos answer {index}",
                "status": "pending",
                "retries": 0,
            }
            user = users[index % len(users)]  # round-robin: each user submits every n-th task
            self.history.submissions[task_id] = Submission(task_id, body, user=user)
            others = [u for u in users if u is not None and u != user]  # none without authorizers
            if others and self.rng.random() < self.config.twin_rate:
                other = self.rng.choice(others)
                twin = Twin(task_id, other, f"twin answer {index} of {other}")
                self.history.twins[twin.answer] = twin
        return ids

    async def run(self) -> History:
        config = self.config
        self.authenticate()
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64)) as session:
            self.session = session
            self.aws = AwsJsonClient(session, self.stack.moto_url, "us-east-1")
            await self._find_queues()
            background: list[asyncio.Task[None]] = []
            clients = self._start_clients(background)
            await asyncio.wait_for(asyncio.gather(*(event.wait() for event in clients)), 120)
            stay = sum(1 for client in self.history.clients if client.stays)
            of_users = f" of {len(self.history.users)} users" if self.history.auth else ""
            self.echo(f"{len(self.history.clients)} WebSocket clients{of_users} ({stay} stay connected)")

            ids = self._plan(config.tasks)
            loop = asyncio.get_running_loop()
            main = asyncio.current_task()
            assert main is not None
            progress = loop.create_task(self._progress(main))
            pollers = [loop.create_task(self._poll_tasks()) for _ in range(config.get_pollers)]
            pollers.append(loop.create_task(self._poll_lists()))
            self.history.started = time.time()
            outage = loop.create_task(self._sqs_outage(self.history.started))
            kills = [
                loop.create_task(self._kill_stack(self.history.started)),
                loop.create_task(self._kill_emulator(self.history.started)),
            ]
            semaphore = asyncio.Semaphore(config.concurrency)

            twins = {twin.task_id: twin for twin in self.history.twins.values()}

            async def submit(task_id: str) -> None:
                async with semaphore:
                    await self._submit(self.history.submissions[task_id])
                    if task_id in twins:  # another user takes the same id: their own task
                        await self._submit_twin(twins[task_id])

            await asyncio.gather(*(submit(task_id) for task_id in ids))
            self.echo(
                f"submitted: {len(self.accepted)} accepted in {time.time() - self.history.started:.1f} s"
            )
            await outage
            await asyncio.gather(*kills)
            await self._drain()
            self.polling = False
            await asyncio.gather(*pollers, return_exceptions=True)
            await self._final_reads()
            progress.cancel()
            self.stopping.set()
            await asyncio.gather(progress, *background, return_exceptions=True)
        if self.history.outage:
            self.history.created_during_outage = len(created_during(self.history, *self.history.outage))
        return self.history

    def _owner(self, task_id: str) -> str | None:
        """The user who submits the task (None: unknown task, or no authorizers)."""
        submission = self.history.submissions.get(task_id)
        return submission.user if submission is not None else None

    def _start_clients(self, background: list[asyncio.Task[None]]) -> list[asyncio.Event]:
        loop = asyncio.get_running_loop()
        events = []
        for name, user, stays in self.config.client_plan(self.history.users):
            history = ClientHistory(name=name, stays=stays, user=user)
            self.history.clients.append(history)
            self.received.append(set())
            token = self.tokens.get(user) if user is not None else None
            url = f"{self.stack.ws_url}?{urlencode({'token': token})}" if token else self.stack.ws_url
            client = WsClient(self, history, url, random.Random(self.rng.random()))
            event = asyncio.Event()
            if stays:
                background.append(loop.create_task(client.stay(event)))
            else:
                event.set()
                background.append(loop.create_task(client.churn()))
            events.append(event)
        return events

    def _frames_complete(self) -> bool:
        for index, client in enumerate(self.history.clients):
            if not client.stayed:
                continue
            received = self.received[index]
            for task_id in self.accepted:
                if self.history.auth and self._owner(task_id) != client.user:
                    continue  # a client gets the frames of its own user's tasks only
                version_status = self.latest.get(task_id)
                if version_status is None or (task_id, version_status[1]) not in received:
                    return False
        return True

    async def _drain(self) -> None:
        deadline = time.time() + self.config.drain_timeout
        while True:
            if self._terminal_count() == len(self.accepted):
                queue, dlq = await self.depths()
                if queue == 0 and dlq == 0:
                    listing = await self.list_all()
                    if listing is not None and self._terminal_count() == len(self.accepted):
                        break
            if time.time() > deadline:
                self.history.drain_timed_out = True
                self.echo("drain deadline reached")
                break
            await asyncio.sleep(1.0)
        frames_deadline = time.time() + self.config.frame_grace
        while not self._frames_complete() and time.time() < frames_deadline:
            await asyncio.sleep(0.5)
        self.history.drained = time.time()
        self.echo(f"drained after {self.history.drained - self.history.started:.1f} s")

    async def _final_reads(self) -> None:
        listing = await self.list_all()
        if listing is None:
            self.history.notes.append("the final listing failed")
        else:
            self.history.final_list = [str(item["taskId"]) for item in listing]
        semaphore = asyncio.Semaphore(8)

        async def final(task_id: str) -> None:
            async with semaphore:
                status, body = await self._get_task(task_id, attempts=30)
                self.history.final[task_id] = body if status == 200 else None

        async def final_twin(twin: Twin) -> None:
            async with semaphore:
                for _ in range(30):
                    status, body, _, _, _ = await self._request(
                        "GET", f"{self.stack.http_url}/tasks/{twin.task_id}", timeout=15, user=twin.user
                    )
                    if status in (200, 404):
                        twin.final = body if status == 200 and isinstance(body, dict) else None
                        return
                    await asyncio.sleep(0.2)

        await asyncio.gather(*(final(task_id) for task_id in self.accepted))
        await asyncio.gather(*(final_twin(twin) for twin in self.history.twins.values() if twin.accepted))
        self.history.queue_depth, self.history.dlq_depth = await self.depths()


def created_at(task: dict[str, Any] | None) -> float | None:
    """The server's createdAt of a task body, in epoch seconds."""
    text = (task or {}).get("createdAt")
    if not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def created_during(history: History, start: float, until: float) -> list[str]:
    """The accepted tasks the server created between `start` and `until` (epoch seconds)."""
    return [
        task_id
        for task_id in history.accepted_ids
        if (moment := created_at(history.final.get(task_id))) is not None and start <= moment <= until
    ]


def collect_files(history: History, fault_dir: Path) -> None:
    """Add what the stack and its workers recorded in the fault directory."""
    # The twins' own processing (another user's task under a run task's id) is not the run's task's
    twins = {(twin.user, twin.task_id) for twin in history.twins.values()}

    def of_run(record: dict[str, Any]) -> bool:
        return (record.get("owner"), str(record.get("taskId"))) not in twins

    records, _ = read_json_lines(fault_dir / EFFECTS_LOG)
    history.steps = [r for r in records if r.get("event") == "step" and of_run(r)]
    history.effects = [r for r in records if r.get("event") == "effect" and of_run(r)]
    faults, _ = read_json_lines(fault_dir / FAULTS_LOG)
    for record in read_json_lines(fault_dir / CONSUMED_LOG)[0]:
        with contextlib.suppress(ValueError):
            body = json.loads(str(record.get("body")))
            body = body if isinstance(body, dict) else {"body": record.get("body")}
            if of_run(body):
                history.dlq_consumed.append(body)
    # the counters of each stack of the run (stats.<n>.json: one killed mid-run)
    every_stats = []
    for path in sorted(fault_dir.glob("stats*.json")):
        with contextlib.suppress(OSError, ValueError):
            every_stats.append(json.loads(path.read_text()))
    if not (fault_dir / STATS_FILE).exists():
        history.notes.append("no stats.json from the stack")
    mappings = [mapping for stats in every_stats for mapping in stats.get("sqsMappings", [])]
    stack_injected = [(k, v) for stats in every_stats for k, v in stats.get("injected", {}).items()]
    injected: dict[str, int] = {
        "processing failures": sum(1 for step in history.steps if not step.get("ok")),
        "worker kills": sum(1 for f in faults if f.get("fault") == "worker-kill"),
        "duplicate deliveries": sum(int(m.get("duplicateMessages", 0)) for m in mappings),
        "AWS errors": sum(1 for f in faults if f.get("fault") == "aws-error"),
        "SQS outage refusals": sum(1 for f in faults if f.get("fault") == "sqs-outage"),
        "push failures": sum(v for k, v in stack_injected if k.startswith("push-failure")),
        "stack kills (SIGKILL, then restarted)": sum(1 for r in history.restarts if r["what"] == "stack"),
        "emulator kills (SIGKILL)": sum(1 for r in history.restarts if r["what"] == "emulator"),
        "abrupt disconnects": sum(c.aborts for c in history.clients),
        "POST responses lost": sum(s.outcomes.count(LOST_RESPONSE) for s in history.submissions.values()),
        "POST 5xx": sum(
            1 for s in history.submissions.values() for outcome in s.outcomes if outcome.startswith("5")
        ),
    }
    after_write = sum(1 for f in faults if str(f.get("kind", "")).endswith("after-write"))
    if after_write:
        injected["AWS errors after a write"] = after_write
    mutant = sum(1 for f in faults if f.get("fault") == "mutant")
    if mutant:
        injected["MUTANT writes"] = mutant
    history.injected = injected
    exits = Counter[str]()
    for stats in every_stats:
        exits.update(stats.get("workerExits", {}))
    if +exits:
        history.notes.append(f"worker exits seen by the runtime: {dict(+exits)}")


def default_run_dir() -> Path:
    return REPO_ROOT / ".local-state" / "chaos" / time.strftime("%Y%m%d-%H%M%S")


def run_chaos(config: ChaosConfig, echo: Echo = print) -> ChaosResult:
    """Start the stack, run, stop it, check. Blocking."""
    run_dir = (config.run_dir or default_run_dir()).resolve()
    fault_dir = run_dir / "faults"
    state_dir = run_dir / "state"
    run_dir.mkdir(parents=True, exist_ok=True)
    arguments = config.local_arguments(fault_dir, run_dir / "logs", state_dir)
    stack = LocalStackProcess(arguments, start_timeout=180)
    echo(f"starting the local stack: python -m local {' '.join(arguments)}")
    stack.start()
    run = ChaosRun(config, stack, fault_dir, echo, state_dir=state_dir, arguments=arguments)
    try:
        echo(f"ready: {stack.http_url} {stack.ws_url}")
        history = asyncio.run(run.run())
    except asyncio.CancelledError:
        raise SystemExit(
            f"chaos: {run.stack_exit or 'cancelled'}; its output: {run_dir / 'stack.log'}"
        ) from None
    finally:
        run.stack.stop()
        (run_dir / "stack.log").write_text(run.stack_output())
    collect_files(history, fault_dir)
    skipped = [line for line in run.stack_output().splitlines() if "SKIPPED" in line]
    if skipped:
        history.notes.append(f"{len(skipped)} stream batches skipped: {skipped[:3]}")
    report = check(history)
    history.save(run_dir / "history.json")
    (run_dir / "report.json").write_text(json.dumps(report.to_json(), indent=1))
    return ChaosResult(report, history, run_dir, run.stack_output())
