"""What a chaos run observed, as plain data (saved as history.json next to the report), and the
Recorder that puts every HTTP response and WebSocket frame into it, telling a reused id's twin
(Twin) apart by its answer.

Times are `time.time()` seconds. Every observation of a task over HTTP keeps the interval of
the request that made it (`started` .. `ended`), so the checker can order two observations
in real time only when one request finished before the other began.

On a stage with authorizers (`auth: jwt`) every submission, HTTP observation and WebSocket client
also names its user (the token's `sub`): the owner of a task is the user who submitted it, and
the checker holds every read and every frame to its user's own tasks. On `auth: none` stages the
user fields stay None and `History.auth` is False.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

TERMINAL = frozenset({"success", "error"})
LOST_RESPONSE = "response lost"  # a Submission outcome: a 202 the client ignored, as after a timeout
# History fields that from_json builds itself; every other one is read back as it was saved
_PARSED_FIELDS = frozenset(
    {"requested", "submissions", "observations", "twins", "clients", "listed", "outage"}
)


@dataclass(frozen=True)
class Observation:
    """A task as one HTTP response showed it."""

    task_id: str
    status: str
    version: int
    run: int
    retries: int
    source: str  # "get" (GET /tasks/{id}), "list" (a GET /tasks page), "post" (a POST /tasks answer)
    started: float
    ended: float
    user: str | None = None  # whose token made the request (stages with authorizers)
    answer: str | None = None  # the task's answer: tells a reused id's tasks apart (Twin)


@dataclass(frozen=True)
class Frame:
    """A task frame one WebSocket client received."""

    task_id: str
    status: str
    version: int
    retries: int
    received: float
    answer: str | None = None


@dataclass
class ClientHistory:
    name: str
    stays: bool  # meant to stay connected the whole run
    frames: list[Frame] = field(default_factory=list)
    other_frames: int = 0  # frames that are not task frames (pong, error frames)
    connected_at: float | None = None  # first successful connection
    connects: int = 0
    rejected_connects: int = 0  # handshakes refused or failed (then retried)
    aborts: int = 0  # abrupt disconnects (TCP dropped without a close frame)
    dropped: int = 0  # connections the server ended although the client did not
    killed: int = 0  # connections lost when the runner killed the whole stack (then reconnected)
    user: str | None = None  # whose token it connects with (stages with authorizers)
    # WebSocket resume (taskflow.services.resume): the last task frame's or `resumed` answer's cursor
    cursor: str | None = None
    first_cursor_at: float | None = None
    resumes: int = 0  # `resumed` answers
    resyncs: int = 0  # `resync` answers: the client lists its tasks again, and takes the answer's cursor
    listed: set[tuple[str, str]] = field(default_factory=set)  # (taskId, status) its relistings showed
    unlisted_resyncs: int = 0  # resyncs whose listing kept failing: the client is then not checked
    resume_errors: int = 0  # error answers to a resume (sent again on the next connection)
    # A resume was sent and not answered yet: until it is, live frames do not move the cursor (a
    # dropped replay is asked for again from the same cursor; README, "Resume after a reconnect").
    resume_pending: bool = False
    resume_sent_at: float | None = None
    resume_seconds: list[float] = field(default_factory=list)  # from the request to its answer
    twin_frames: int = 0  # frames of its own user's twins (Twin), kept out of `frames`

    @property
    def stayed(self) -> bool:
        """Connected before the first submission and never lost its connection."""
        return self.stays and self.dropped == 0 and self.killed == 0 and self.connected_at is not None


@dataclass
class Twin:
    """A task another user submitted under the same taskId as a run's task (stages with
    authorizers: ids are per owner). Its answer is unique and tells its frames and reads apart from
    those of the run's task; it is held to isolation only: its owner reads it back as their own,
    and nobody else ever sees it."""

    task_id: str
    user: str
    answer: str
    outcomes: list[str] = field(default_factory=list)  # one per POST
    accepted: bool = False
    final: dict[str, Any] | None = None  # its owner's GET at the end


@dataclass
class Submission:
    task_id: str
    body: dict[str, Any]
    outcomes: list[str] = field(default_factory=list)  # one per POST: "202", "503", "timeout", ...
    accepted_at: float | None = None  # the first 202/200
    user: str | None = None  # who submits it, hence its owner (stages with authorizers)

    @property
    def accepted(self) -> bool:
        return self.accepted_at is not None


@dataclass
class History:
    requested: int
    submissions: dict[str, Submission] = field(default_factory=dict)
    observations: list[Observation] = field(default_factory=list)
    clients: list[ClientHistory] = field(default_factory=list)
    final: dict[str, dict[str, Any] | None] = field(default_factory=dict)  # final GET (None: 404)
    final_list: list[str] = field(default_factory=list)  # task ids of the final complete listing
    listed: set[str] = field(default_factory=set)  # every task id any listing showed
    effects: list[dict[str, Any]] = field(default_factory=list)  # effects.log "effect" lines
    steps: list[dict[str, Any]] = field(default_factory=list)  # effects.log "step" lines
    dlq_consumed: list[dict[str, Any]] = field(default_factory=list)  # bodies the DLQ consumer consumed
    queue_depth: int | None = None  # visible + in flight at the end
    dlq_depth: int | None = None
    injected: dict[str, int] = field(default_factory=dict)  # fault -> how often it fired
    started: float = 0.0  # first submission
    drained: float = 0.0  # everything terminal and the queues empty (or the deadline)
    drain_timed_out: bool = False
    outage: tuple[float, float] | None = None  # the SQS outage window
    created_during_outage: int = 0
    # kill -9 of the whole stack (then started again) or of its embedded AWS (restarted by the
    # stack): {"what": "stack"|"emulator", "killed": time, "back": time it served again}
    restarts: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    auth: bool = False  # the stack has authorizers: requests carry tokens, users see their own tasks
    users: list[str] = field(default_factory=list)  # the users' subjects (stages with authorizers)
    cross_reads: dict[str, int] = field(default_factory=dict)  # GET /tasks/{id} as a non-owner, by outcome
    twins: dict[str, Twin] = field(default_factory=dict)  # by answer: tasks under another user's taskId
    twin_reads: int = 0  # reads and listings of a twin by its own user
    twin_leaks: list[str] = field(default_factory=list)  # a twin shown to another user, or mixed up

    @property
    def accepted_ids(self) -> list[str]:
        return [task_id for task_id, s in self.submissions.items() if s.accepted]

    @property
    def final_status(self) -> dict[str, Any]:
        """accepted task id -> the status its final GET showed (None: 404)."""
        accepted = set(self.accepted_ids)
        return {
            task_id: (body or {}).get("status") for task_id, body in self.final.items() if task_id in accepted
        }

    @property
    def owners(self) -> dict[str, str | None]:
        """task id -> the user who submitted it (None on stages without authorizers)."""
        return {task_id: s.user for task_id, s in self.submissions.items()}

    def save(self, path: Path) -> None:
        document = asdict(self) | {"listed": sorted(self.listed)}
        for client in document["clients"]:
            client["listed"] = sorted(client["listed"])  # a set of (taskId, status) pairs
        path.write_text(json.dumps(document, separators=(",", ":")))

    @classmethod
    def from_json(cls, document: dict[str, Any]) -> History:
        history = cls(requested=int(document["requested"]))
        history.submissions = {
            task_id: Submission(**value) for task_id, value in document.get("submissions", {}).items()
        }
        history.observations = [Observation(**value) for value in document.get("observations", [])]
        history.twins = {answer: Twin(**value) for answer, value in document.get("twins", {}).items()}
        history.clients = [
            ClientHistory(
                **{
                    **value,
                    "frames": [Frame(**f) for f in value.get("frames", [])],
                    "listed": {(task_id, status) for task_id, status in value.get("listed", [])},
                }
            )
            for value in document.get("clients", [])
        ]
        for name in {item.name for item in fields(cls)} - _PARSED_FIELDS:
            if name in document:
                setattr(history, name, document[name])
        history.listed = set(document.get("listed", []))
        outage = document.get("outage")
        history.outage = (float(outage[0]), float(outage[1])) if outage else None
        return history


def observation_of(
    body: Any, source: str, started: float, ended: float, user: str | None = None
) -> Observation | None:
    """The task a response body shows (None: the body is not a task)."""
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


class Recorder:
    """Records what the run sees, and keeps the figures the runner steers by."""

    def __init__(self, history: History) -> None:
        self.history = history
        self.latest: dict[str, tuple[int, str]] = {}  # task -> (version, status), newest seen
        self.accepted: list[str] = []

    def owner(self, task_id: str) -> str | None:
        """The user who submits the task (None: unknown task, or no authorizers)."""
        submission = self.history.submissions.get(task_id)
        return submission.user if submission is not None else None

    def is_terminal(self, task_id: str) -> bool:
        return self.latest.get(task_id, (0, "pending"))[1] in TERMINAL

    def terminal_count(self) -> int:
        return sum(1 for task_id in self.accepted if self.is_terminal(task_id))

    def all_terminal(self) -> bool:
        return self.terminal_count() == len(self.accepted)

    def frames_complete(self) -> bool:
        """Every client that stayed has a frame of the newest status seen of each accepted task (of
        its own user's, with authorizers)."""
        for client in self.history.clients:
            if not client.stayed:
                continue
            received = {(frame.task_id, frame.status) for frame in client.frames}
            for task_id in self.accepted:
                if self.history.auth and self.owner(task_id) != client.user:
                    continue  # a client gets the frames of its own user's tasks only
                version_status = self.latest.get(task_id)
                if version_status is None or (task_id, version_status[1]) not in received:
                    return False
        return True

    def record(self, observation: Observation | None) -> None:
        if observation is None:
            return
        twin = self._twin_of(observation.answer, observation.user, observation.source)
        if twin is not None:
            self.history.twin_reads += observation.user == twin.user
            return
        self.history.observations.append(observation)
        self._note(observation.task_id, observation.version, observation.status)

    def on_message(self, client: ClientHistory, message: str | bytes) -> None:
        try:
            frame = json.loads(message)
        except ValueError:
            frame = None
        kind = frame.get("type") if isinstance(frame, dict) else None
        if client.resume_pending and kind in ("resumed", "resync", "error"):
            client.resumes += kind == "resumed"
            client.resyncs += kind == "resync"
            client.resume_errors += kind == "error"
            client.resume_pending = False
            if client.resume_sent_at is not None:
                client.resume_seconds.append(round(time.time() - client.resume_sent_at, 3))
            self._take_cursor(client, frame.get("cursor"))
        if kind != "task" or not isinstance(frame.get("taskId"), str):
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
        self._note(record.task_id, record.version, record.status)

    def _twin_of(self, answer: str | None, user: str | None, where: str) -> Twin | None:
        """The twin whose answer this is, kept apart from the run's task of the same id, or None;
        seen by anyone but its own user, it is a leak."""
        twin = self.history.twins.get(answer or "")
        if twin is not None and user != twin.user:
            leak = f"{where} with the token of {user} showed {twin.user}'s {twin.task_id}"
            self.history.twin_leaks.append(leak)
        return twin

    def _note(self, task_id: str, version: int, status: str) -> None:
        current = self.latest.get(task_id)
        if current is None or version >= current[0]:
            self.latest[task_id] = (version, status)

    @staticmethod
    def _take_cursor(client: ClientHistory, cursor: object) -> None:
        if isinstance(cursor, str) and cursor:
            client.cursor = cursor
            if client.first_cursor_at is None:
                client.first_cursor_at = time.time()
