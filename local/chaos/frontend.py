"""The simulated frontend; every response and frame is recorded (history.Recorder).

Over HTTP, like the Angular frontend, it takes a 5xx, 429, timeout or connection error as "maybe
accepted" and posts the same id and body again until a 202. It also ignores a fraction of the
202s (`lost_response_rate`), as after a timeout once the server had committed, so the retry of an
accepted task is exercised in every run. With authorizers every request about a task carries its
owner's token, and a share of the polls read a task with another user's, which must answer 404.

Over WebSocket, K clients keep every frame they receive. `stay` of them connect before the first
submission, to stay the whole run; the others churn: connect, read for a while, drop the TCP
connection without a close frame, reconnect. A client that reconnects resumes from the cursor of
the last frame it saw, as a browser does (README, "Resume after a reconnect"), unless the run is
the --no-resume mutant.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import aiohttp
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import WebSocketException

from local.chaos.history import (
    LOST_RESPONSE,
    ClientHistory,
    History,
    Recorder,
    Submission,
    Twin,
    observation_of,
)
from local.chaos.stack import ChaosStack

if TYPE_CHECKING:
    from local.chaos.runner import ChaosConfig

RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})
ACCEPTED = (200, 202)
LIST_PAGE_SIZE = 100
CROSS_READ_RATE = 0.1  # of the GET /tasks/{id} polls, read as another user (stages with authorizers)

# status (None: no answer), body, lower-cased headers, when the request started and ended
Response = tuple[int | None, Any, dict[str, str], float, float]


def next_link(header: str | None) -> str | None:
    """The target of a `Link: <...>; rel="next"` header."""
    for part in (header or "").split(","):
        if 'rel="next"' in part and "<" in part and ">" in part:
            return part[part.index("<") + 1 : part.index(">")]
    return None


@dataclass
class Frontend:
    config: ChaosConfig
    session: aiohttp.ClientSession
    stack: ChaosStack  # its process's http_url (the same after a restart)
    recorder: Recorder
    tokens: dict[str, str]  # user -> token (stages with authorizers)
    rng: random.Random
    echo: Callable[[str], None]
    stopping: asyncio.Event  # the end of the run: no more retries
    polling: bool = True  # the pollers run until it is cleared

    @property
    def history(self) -> History:
        return self.recorder.history

    def users(self) -> list[str | None]:
        """Who reads: each user on a stage with authorizers, else the one anonymous client."""
        return list(self.history.users) if self.history.auth else [None]

    async def request(
        self, method: str, path: str, body: Any = None, timeout: float = 15.0, user: str | None = None
    ) -> Response:
        token = self.tokens.get(user) if user is not None else None
        url = path if path.startswith("http") else self.stack.process.http_url + path
        started = time.time()
        try:
            async with self.session.request(
                method,
                url,
                json=body,
                headers={"Authorization": f"Bearer {token}"} if token else None,
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

    async def _post(
        self, body: dict[str, Any], user: str | None, outcomes: list[str], lose: bool
    ) -> tuple[int | None, Any, float, float]:
        """POST /tasks until a 202/200, a refusal (a 4xx other than 429) or the end of the run,
        backing off; each outcome noted. `lose`: ignore a fraction of the 202s."""
        delay = 0.1
        while True:
            status, answer, _, started, ended = await self.request(
                "POST", "/tasks", body, self.config.post_timeout, user
            )
            if lose and status in ACCEPTED and self.rng.random() < self.config.lost_response_rate:
                status = None  # the answer "never arrived": a timeout after the server committed
                outcomes.append(LOST_RESPONSE)
            else:
                outcomes.append("timeout" if status is None else str(status))
            refused = status is not None and status not in RETRYABLE_STATUSES
            if status in ACCEPTED or refused or self.stopping.is_set():
                return status, answer, started, ended
            await asyncio.sleep(delay + self.rng.random() * delay)
            delay = min(1.0, delay * 2)

    async def submit(self, submission: Submission) -> None:
        status, body, started, ended = await self._post(
            submission.body, submission.user, submission.outcomes, lose=True
        )
        if status in ACCEPTED:
            submission.accepted_at = ended
            self.recorder.accepted.append(submission.task_id)
            self.recorder.record(observation_of(body, "post", started, ended, submission.user))
        elif status is not None and status not in RETRYABLE_STATUSES:
            self.echo(f"POST /tasks {submission.task_id} refused: {status} {body}")

    async def submit_twin(self, twin: Twin) -> None:
        """POST the twin as its user: a 202 of their own task, whoever holds the id."""
        body = {"taskId": twin.task_id, "answer": twin.answer, "status": "pending", "retries": 0}
        status, answer, _, _ = await self._post(body, twin.user, twin.outcomes, lose=False)
        if status in ACCEPTED:
            twin.accepted = True
            shown = answer.get("answer") if isinstance(answer, dict) else None
            if shown != twin.answer:
                self.history.twin_leaks.append(f"POST of {twin.user}'s {twin.task_id} answered {shown!r}")

    async def get_task(
        self, task_id: str, attempts: int = 1, twin: Twin | None = None
    ) -> tuple[int | None, Any]:
        """GET /tasks/{id} as its owner (the twin's, given one) until a 200 or a 404, at most
        `attempts` times; a 200 of the run's task is recorded."""
        user = twin.user if twin else self.recorder.owner(task_id)
        status, body = None, None
        for _ in range(attempts):
            status, body, _, started, ended = await self.request("GET", f"/tasks/{task_id}", user=user)
            if status == 200 and twin is None:
                self.recorder.record(observation_of(body, "get", started, ended, user))
            if status in (200, 404):
                return status, body if status == 200 else None
            await asyncio.sleep(0.2)
        return status, body

    async def read_as_another_user(self, task_id: str) -> None:
        """GET a task with the token of a user who does not own it: it must be a 404. A 200 is
        recorded as that user's observation, which the checker reports as a foreign read."""
        owner = self.recorder.owner(task_id)
        reader = self.rng.choice([user for user in self.history.users if user != owner])
        status, body, _, started, ended = await self.request("GET", f"/tasks/{task_id}", user=reader)
        outcome = "timeout" if status is None else str(status)
        observation = observation_of(body, "get", started, ended, reader) if status == 200 else None
        if observation is not None and observation.answer in self.history.twins:
            outcome = "200 (the reader's own task under that id)"
        self.history.cross_reads[outcome] = self.history.cross_reads.get(outcome, 0) + 1
        self.recorder.record(observation)

    async def list_all(self) -> list[dict[str, Any]] | None:
        """Every task of every user (each listing with its user's token), following the Link
        header; None if a page kept failing."""
        tasks: list[dict[str, Any]] = []
        for user in self.users():
            listed = await self.list_tasks(user)
            if listed is None:
                return None
            tasks += listed
        return tasks

    async def list_tasks(self, user: str | None) -> list[dict[str, Any]] | None:
        """Every task `user` sees (the run's, twins left out), following the Link header; None if a
        page kept failing."""
        tasks: list[dict[str, Any]] = []
        target: str | None = f"/tasks?limit={LIST_PAGE_SIZE}"
        while target is not None:
            for _ in range(20):
                status, body, headers, started, ended = await self.request(
                    "GET", target, timeout=30, user=user
                )
                if status == 200 and isinstance(body, list):
                    break
                await asyncio.sleep(0.2)
            else:
                return None
            for item in body:
                observation = observation_of(item, "list", started, ended, user)
                self.recorder.record(observation)
                if observation is not None and observation.answer in self.history.twins:
                    continue  # a twin: its own user's, or a leak
                if isinstance(item, dict) and isinstance(item.get("taskId"), str):
                    self.history.listed.add(item["taskId"])
                    tasks.append(item)
            target = next_link(headers.get("link"))
        return tasks

    async def poll_tasks(self) -> None:
        accepted = self.recorder.accepted
        while self.polling:
            if not accepted:
                await asyncio.sleep(0.2)
                continue
            pending = [t for t in accepted if not self.recorder.is_terminal(t)]
            pool = pending if pending and self.rng.random() < 0.7 else accepted
            task_id = self.rng.choice(pool)
            if len(self.history.users) > 1 and self.rng.random() < CROSS_READ_RATE:
                await self.read_as_another_user(task_id)
            else:
                await self.get_task(task_id)
            await asyncio.sleep(self.config.poll_pause)

    async def poll_lists(self) -> None:
        while self.polling:
            await self.list_all()
            await asyncio.sleep(self.config.list_interval)


@dataclass
class WsClient:
    history: ClientHistory
    url: str  # with the user's ?token= on a stage with authorizers
    rng: random.Random
    recorder: Recorder
    stack: ChaosStack  # `killing`: a lost connection is the runner's kill, not a drop
    stopping: asyncio.Event  # the end of the run
    resume: bool  # False: the --no-resume mutant
    # GET /tasks, all pages, with a user's token (Frontend.list_tasks): what a client does on `resync`
    list_tasks: Callable[[str | None], Awaitable[list[dict[str, Any]] | None]]
    connected: asyncio.Event = field(default_factory=asyncio.Event)  # a churning client's: at once
    _side_work: set[asyncio.Future[None]] = field(default_factory=set)  # relistings, resumes sent again

    async def _connect(self, final: bool = False) -> ClientConnection | None:
        deadline = time.time() + 30
        while (final and time.time() < deadline) or (not final and not self.stopping.is_set()):
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
                resyncs, errors = self.history.resyncs, self.history.resume_errors
                self.recorder.on_message(self.history, message)
                if self.history.resyncs > resyncs:  # list again, whatever becomes of this connection
                    self._keep(self._list_again())
                elif self.history.resume_errors > errors and _asks_again(message):
                    self._keep(self._resume_again(connection))  # README: the same resume, a little later

    def _keep(self, work: Awaitable[None]) -> None:
        """Run `work` beside the reading, whatever becomes of this connection (side_work_done waits)."""
        future = asyncio.ensure_future(work)
        self._side_work.add(future)
        future.add_done_callback(self._side_work.discard)

    async def _resume_again(self, connection: ClientConnection) -> None:
        await asyncio.sleep(1.0 + self.rng.random())
        if not self.stopping.is_set():
            await self._resume(connection)

    async def _list_again(self) -> None:
        """After a `resync` (README): list every task of the client's user. The answer's cursor,
        already taken, is older than this listing, so the two cover the gap together."""
        for _ in range(5):
            tasks = await self.list_tasks(self.history.user)
            if tasks is not None:
                self.history.listed.update((t["taskId"], str(t.get("status"))) for t in tasks)
                return
            await asyncio.sleep(1.0)
        self.history.unlisted_resyncs += 1

    async def side_work_done(self) -> None:
        """Wait for the relistings and resumes sent again under way (the check reads what they saw)."""
        while self._side_work:
            await asyncio.gather(*self._side_work, return_exceptions=True)

    @staticmethod
    async def _close(connection: ClientConnection, reader: asyncio.Future[None]) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(connection.close(), 5)
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)

    async def stay(self) -> None:
        connection = await self._connect()
        self.connected.set()
        while connection is not None:
            reader = asyncio.ensure_future(self._read(connection))
            stopping = asyncio.ensure_future(self.stopping.wait())
            await asyncio.wait({reader, stopping}, return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
            if self.stopping.is_set():
                await self._close(connection, reader)
                return
            if self.stack.killing:
                self.history.killed += 1  # the runner killed the stack: expected, then reconnect
            else:
                self.history.dropped += 1  # the server ended it: this client no longer "stayed"
            connection = await self._connect()
            if connection is not None:
                await self._resume(connection)

    async def churn(self) -> None:
        self.connected.set()
        while not self.stopping.is_set():
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
                await asyncio.wait_for(self.stopping.wait(), self.rng.uniform(0.1, 1.5))
        await self._catch_up()

    async def _resume(self, connection: ClientConnection) -> None:
        """Ask for what this client missed while it was away (the protocol a reconnecting browser
        follows; README). Without a cursor yet there is nothing to resume from."""
        if self.resume and self.history.cursor is not None:
            self.history.resume_pending = True
            self.history.resume_sent_at = time.time()
            with contextlib.suppress(WebSocketException, OSError):
                await connection.send(json.dumps({"action": "resume", "since": self.history.cursor}))

    async def _answered(self, reader: asyncio.Future[None], timeout: float) -> None:
        """Wait until the pending resume is answered (or the connection ends, or `timeout`)."""
        deadline = time.time() + timeout
        while self.history.resume_pending and not reader.done() and time.time() < deadline:
            await asyncio.sleep(0.05)

    async def _catch_up(self) -> None:
        """At the end of the run: reconnect once more, resume, and wait for the answer, so that the
        last gap is covered like every other (the check needs a client that came back)."""
        if not self.resume or self.history.cursor is None:
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
        await self._close(connection, reader)


def _asks_again(message: str | bytes) -> bool:
    """An error answer whose `retry` says the same resume, sent again, may succeed."""
    with contextlib.suppress(ValueError):
        frame = json.loads(message)
        return isinstance(frame, dict) and frame.get("retry") is True
    return False
