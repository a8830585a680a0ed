"""The HTTP side of the simulated frontend; every response is recorded (recorder.py). Like the
Angular frontend, it takes a 5xx, 429, timeout or connection error as "maybe accepted" and posts
the same id and body again until a 202. It also ignores a fraction of the 202s
(`lost_response_rate`), as after a timeout once the server had committed, so the retry of an
accepted task is exercised in every run. With authorizers every request about a task carries its
owner's token, and a share of the polls read a task with another user's, which must answer 404.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import aiohttp

from local.chaos.history import LOST_RESPONSE, History, Submission, Twin
from local.chaos.recorder import Recorder, observation_of
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
    stack: ChaosStack  # its http_url (the same after a restart)
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
        url = path if path.startswith("http") else self.stack.http_url + path
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
