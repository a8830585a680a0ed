"""The chaos run: its settings (ChaosConfig) and its phases (ChaosRun.run), from the stack's start
to the checked history in `<run dir>` (run_chaos). Users and clients on stages with authorizers:
docs/local-stack.md, "Fault injection and chaos runs".
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp

from local.auth.issuer import AuthError, load_issuer
from local.chaos.checker import check
from local.chaos.frontend import Frontend, WsClient
from local.chaos.history import ClientHistory, History, Recorder, Submission, Twin
from local.chaos.report import Report
from local.chaos.stack import ChaosStack, Echo
from local.launcher import REPO_ROOT
from local.state.running_stack import StateFileError, running_stack_state

DEFAULT_USERS = 4  # stages with authorizers
CLIENTS_PER_USER, STAY_PER_USER = 3, 2  # stages with authorizers
TOKEN_LIFETIME = 12 * 3600.0  # seconds: outlives any run


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
    twin_rate: float = 0.1  # authorizers: tasks with a twin, another user's under the same id (history.Twin)
    time_scale: float = 0.01
    drain_timeout: float = 600.0  # the dev run's replays keep the stack busy: 420 s was reached once
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

    def client_plan(self, users: list[str]) -> list[tuple[str, str | None, bool]]:
        """(name, user, stays) of each WebSocket client. Without users (no authorizers): 6 clients,
        3 of which stay; with users: 3 per user, 2 of which stay (each user's clients round-robin)."""
        clients, stay = (CLIENTS_PER_USER * len(users), STAY_PER_USER * len(users)) if users else (6, 3)
        clients = max(1, self.clients if self.clients is not None else clients)
        stay = max(0, min(self.stay if self.stay is not None else stay, clients))
        plan: list[tuple[str, str | None, bool]] = []
        for index in range(clients):
            stays = index < stay
            name = f"{'stay' if stays else 'churn'}-{index}"
            user = users[(index if stays else index - stay) % len(users)] if users else None
            plan.append((f"{name}:{user}" if user else name, user, stays))
        return plan


@dataclass
class ChaosResult:
    report: Report
    history: History
    run_dir: Path


class ChaosRun:
    def __init__(self, config: ChaosConfig, stack: ChaosStack, history: History, echo: Echo) -> None:
        self.config = config
        self.stack = stack
        self.history = history
        self.echo = echo
        self.rng = random.Random(config.seed)
        self.recorder = Recorder(history)
        self.stopping = asyncio.Event()
        self.tokens: dict[str, str] = {}  # user -> token (stages with authorizers)
        self.stack_exit: str | None = None  # why the run stopped early: the stack process exited

    async def run(self) -> None:
        config, history = self.config, self.history
        self.authenticate()
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64)) as session:
            await self.stack.find_queues(session)
            frontend = Frontend(
                config, session, self.stack, self.recorder, self.tokens, self.rng, self.echo, self.stopping
            )
            clients = self._clients(frontend)
            background = [asyncio.create_task(c.stay() if c.history.stays else c.churn()) for c in clients]
            await asyncio.wait_for(asyncio.gather(*(client.connected.wait() for client in clients)), 120)
            stay = sum(1 for client in history.clients if client.stays)
            of_users = f" of {len(history.users)} users" if history.auth else ""
            self.echo(f"{len(history.clients)} WebSocket clients{of_users} ({stay} stay connected)")

            ids = self._plan(config.tasks, frontend.users())
            main = asyncio.current_task()
            assert main is not None
            progress = asyncio.create_task(self._progress(main))
            pollers = [asyncio.create_task(frontend.poll_tasks()) for _ in range(config.get_pollers)]
            pollers.append(asyncio.create_task(frontend.poll_lists()))
            history.started = time.time()
            faults = [
                asyncio.create_task(fault(history.started))
                for fault in (self.stack.sqs_outage, self.stack.kill_stack, self.stack.kill_emulator)
            ]
            semaphore = asyncio.Semaphore(config.concurrency)
            twins = {twin.task_id: twin for twin in history.twins.values()}

            async def submit(task_id: str) -> None:
                async with semaphore:
                    await frontend.submit(history.submissions[task_id])
                    if task_id in twins:  # another user takes the same id: their own task
                        await frontend.submit_twin(twins[task_id])

            await asyncio.gather(*(submit(task_id) for task_id in ids))
            accepted = len(self.recorder.accepted)
            self.echo(f"submitted: {accepted} accepted in {time.time() - history.started:.1f} s")
            await asyncio.gather(*faults)
            await self._drain(frontend)
            frontend.polling = False
            await asyncio.gather(*pollers, return_exceptions=True)
            await self._final_reads(frontend)
            progress.cancel()
            self.stopping.set()
            await asyncio.gather(progress, *background, return_exceptions=True)
            await asyncio.gather(*(client.side_work_done() for client in clients))
        if history.outage:
            history.created_during_outage = len(created_during(history, *history.outage))

    def authenticate(self) -> None:
        """On a stack with authorizers (its state file has an `auth` block), mint a token for each
        user from the stack's local issuer; on one without, leave everything as it was."""
        try:
            state = running_stack_state(self.stack.state_dir)
        except StateFileError as error:
            raise RuntimeError(f"cannot read the local stack's state file: {error}") from None
        if not isinstance(state.get("auth"), dict):
            if self.config.users is not None:
                self.history.notes.append(
                    f"--users {self.config.users} ignored: {state.get('stack')} has no authorizers"
                )
            return
        try:
            issuer = load_issuer(self.stack.state_dir)
        except AuthError as error:
            raise RuntimeError(f"cannot mint tokens for the chaos users: {error}") from None
        count = max(1, self.config.users if self.config.users is not None else DEFAULT_USERS)
        users = [f"chaos-user-{index}" for index in range(count)]
        self.tokens.update({user: issuer.mint(user, expires_in=TOKEN_LIFETIME) for user in users})
        self.history.auth = True
        self.history.users = users
        self.echo(f"authorizers: {count} users with tokens from the local issuer {issuer.url}")

    def _clients(self, frontend: Frontend) -> list[WsClient]:
        clients = []
        for name, user, stays in self.config.client_plan(self.history.users):
            history = ClientHistory(name=name, stays=stays, user=user)
            self.history.clients.append(history)
            token = self.tokens.get(user) if user is not None else None
            url = self.stack.process.ws_url + (f"?{urlencode({'token': token})}" if token else "")
            rng = random.Random(self.rng.random())
            clients.append(
                WsClient(
                    history,
                    url,
                    rng,
                    self.recorder,
                    self.stack,
                    self.stopping,
                    self.config.resume,
                    frontend.list_tasks,
                )
            )
        return clients

    def _plan(self, count: int, users: list[str | None]) -> list[str]:
        """The run's submissions (round-robin over the users), and their twins; returns the ids."""
        ids = [str(uuid.uuid4()) for _ in range(count)]
        for index, task_id in enumerate(ids):
            body = {"taskId": task_id, "answer": f"chaos answer {index}", "status": "pending", "retries": 0}
            user = users[index % len(users)]  # round-robin: each user submits every n-th task
            self.history.submissions[task_id] = Submission(task_id, body, user=user)
            others = [u for u in users if u is not None and u != user]  # none without authorizers
            if others and self.rng.random() < self.config.twin_rate:
                other = self.rng.choice(others)
                twin = Twin(task_id, other, f"twin answer {index} of {other}")
                self.history.twins[twin.answer] = twin
        return ids

    async def _progress(self, main: asyncio.Task[Any]) -> None:
        started = time.time()
        while True:
            await asyncio.sleep(self.config.progress_interval)
            self.stack_exit = self.stack.exited()
            if self.stack_exit:
                self.echo(self.stack_exit)
                main.cancel()  # nothing would ever answer again: stop now, not at the drain deadline
                return
            try:
                queue, dlq = await self.stack.depths()
            except Exception:
                queue, dlq = -1, -1
            faults = " ".join(f"{k}={v}" for k, v in sorted(self.stack.fault_counts().items()))
            clients, recorder = self.history.clients, self.recorder
            foreign = sum(recorder.owner(f.task_id) != c.user for c in clients for f in c.frames)
            self.echo(
                f"[{time.time() - started:6.1f} s] accepted {len(recorder.accepted)}/{self.config.tasks}"
                f"  terminal {recorder.terminal_count()}  queue {queue}  DLQ {dlq}"
                f"  frames {sum(len(c.frames) for c in clients)}"
                + (f"  foreign {foreign}" if self.history.auth else "")
                + f"  drops {sum(c.aborts for c in clients)}  {faults}"
            )

    async def _drain(self, frontend: Frontend) -> None:
        recorder = self.recorder
        deadline = time.time() + self.config.drain_timeout
        while not (
            recorder.all_terminal()
            and await self.stack.depths() == (0, 0)
            and await frontend.list_all() is not None
            and recorder.all_terminal()
        ):
            if time.time() > deadline:
                self.history.drain_timed_out = True
                self.echo("drain deadline reached")
                break
            await asyncio.sleep(1.0)
        frames_deadline = time.time() + self.config.frame_grace
        while not recorder.frames_complete() and time.time() < frames_deadline:
            await asyncio.sleep(0.5)
        self.history.drained = time.time()
        self.echo(f"drained after {self.history.drained - self.history.started:.1f} s")

    async def _final_reads(self, frontend: Frontend) -> None:
        listing = await frontend.list_all()
        if listing is None:
            self.history.notes.append("the final listing failed")
        else:
            self.history.final_list = [str(item["taskId"]) for item in listing]
        semaphore = asyncio.Semaphore(8)

        async def final(task_id: str, twin: Twin | None = None) -> None:
            async with semaphore:
                status, body = await frontend.get_task(task_id, attempts=30, twin=twin)
            if twin is None:
                self.history.final[task_id] = body if status == 200 else None
            else:
                twin.final = body if status == 200 and isinstance(body, dict) else None

        await asyncio.gather(*(final(task_id) for task_id in self.recorder.accepted))
        await asyncio.gather(*(final(t.task_id, t) for t in self.history.twins.values() if t.accepted))
        self.history.queue_depth, self.history.dlq_depth = await self.stack.depths()


def created_during(history: History, start: float, until: float) -> list[str]:
    """The accepted tasks the server created (createdAt) between `start` and `until`, epoch seconds."""
    during = []
    for task_id in history.accepted_ids:
        created = (history.final.get(task_id) or {}).get("createdAt")
        with contextlib.suppress(ValueError):
            if isinstance(created, str) and start <= datetime.fromisoformat(created).timestamp() <= until:
                during.append(task_id)
    return during


def run_chaos(config: ChaosConfig, echo: Echo = print) -> ChaosResult:
    """Start the stack, run, stop it, check. Blocking."""
    run_dir = (
        config.run_dir or REPO_ROOT / ".local-state" / "chaos" / time.strftime("%Y%m%d-%H%M%S")
    ).resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    history = History(requested=config.tasks)
    stack = ChaosStack(config, run_dir, history, echo)
    stack.start()
    run = ChaosRun(config, stack, history, echo)
    try:
        asyncio.run(run.run())
    except asyncio.CancelledError:
        raise SystemExit(
            f"chaos: {run.stack_exit or 'cancelled'}; its output: {run_dir / 'stack.log'}"
        ) from None
    finally:
        stack.process.stop()
        (run_dir / "stack.log").write_text(stack.output())
    stack.collect()
    report = check(history)
    history.save(run_dir / "history.json")
    (run_dir / "report.json").write_text(json.dumps(report.to_json(), indent=1))
    return ChaosResult(report, history, run_dir)
