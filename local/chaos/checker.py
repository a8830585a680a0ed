"""The chaos checker: a run's history in, the figures and the invariant violations out.

Definitions (every one is an invariant: a non-zero count fails the run):

* lost: an accepted task (a 202/200 was received for it) that did not end terminal: its final
  GET is 404 or `pending`, or it is `error` but no DLQ message of it was consumed.
* duplicated effects: a task whose processing step took effect more than once in a run, i.e.
  more than one execution of the step returned AND had its success commit (the next
  UpdateItem on the task, in the same worker thread) succeed (effects.log).
* regressions: an observed status sequence that goes backwards. Two orders are checked:
  - real time, over HTTP observations (GET /tasks/{id}, GET /tasks pages, POST answers): if a
    request began after another had finished, the later one may not show the task `pending`
    after a terminal status, nor the other terminal status, nor an earlier run; between
    strongly consistent reads (GET /tasks/{id}, POST answers) not a lower version either
    (listings read an index, which AWS updates eventually);
  - version order, over every observation and every frame of every client: one version has
    one status, and sorted by version the statuses never go from terminal back to `pending`
    nor from one terminal status to the other. Frames may arrive twice or out of order; only
    their versions matter. The final read must hold the highest version seen.
  The runner never retries a task (POST /retry), so a run other than 1 is a regression too.
* unexpected: a task that some GET /tasks listing showed but that no 202 accepted; and a task id
  listed more than once in the final complete listing (a retried POST created a second task).
* DLQ consumed vs error count: every `error` task must have had a DLQ message consumed (the
  consumer marks it error, then the poller deletes the message). Consumed DLQ messages of tasks
  that ended `success` are counted apart as stale (a worker died after committing the success
  on the final attempt, or a duplicate copy failed its final attempt while the other copy
  succeeded): the consumer acknowledges them without effect, as it must.
* missed final frames: for every client that stayed connected from before the first submission
  to the end, the accepted tasks for which it never received a frame with the final status. On
  a stage with authorizers, a client is held to the tasks of its own user only (the notifier
  pushes a task's frames to its owner's connections): every client of a user that stayed
  connected must get the final frame of every task of that user.
* missed final frames (reconnecting clients): for every client that drops and reconnects (and
  resumes from the cursor of the last frame it saw, `{"action": "resume"}`), the tasks accepted
  after its first cursor for which it never received a frame with the final status, live or
  replayed. This includes the clients meant to stay that the stack kill cut off: they came back
  and resumed too. A client told to `resync` (it would list again) is not held to it; they are
  counted.
* rejected: submissions that never got a 202 (a 4xx other than 429, or given up).

Isolation, on stages with authorizers (`History.auth`; each task is owned by the user who
submitted it):

* foreign frames: frames a WebSocket client received of a task its user does not own (another
  user's, or one nobody in the run submitted). Every frame of every client counts, whether it
  stayed connected or churned.
* foreign reads: HTTP observations (GET /tasks/{id}, GET /tasks pages, POST answers) made with
  one user's token that show a task that user does not own. The runner also reads tasks with
  another user's token now and then: those must be 404s (`History.cross_reads`); a 200 shows up
  here, as the reader's observation of a task it does not own.
* reused ids (twins): a share of the tasks gets a twin, another user's task submitted under the
  same taskId (`History.twins`; its answer tells it apart). Each must be a 202 of its own user's
  task, read back by that user with its own answer, and shown to nobody else (frame, listing, GET
  or POST answer): every such sight, or a twin read back as the other task, is a violation
  ("twin leaks"). The reads as another user of an id that user also holds must show their own
  task, never the other's.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from local.chaos.history import TERMINAL, History, Observation

_STRONG_SOURCES = frozenset({"get", "post"})


@dataclass(frozen=True)
class Violation:
    kind: str
    task_id: str
    detail: str


@dataclass
class Report:
    requested: int = 0
    accepted: int = 0
    success: int = 0
    error: int = 0
    lost: list[str] = field(default_factory=list)
    duplicated_effects: dict[str, int] = field(default_factory=dict)
    regressions: list[Violation] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    listed_twice: list[str] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    missed_final_frames: dict[str, list[str]] = field(default_factory=dict)
    missed_final_frames_reconnecting: dict[str, list[str]] = field(default_factory=dict)
    reconnecting_clients: int = 0  # clients held to the resume check
    resumes: int = 0  # `resumed` answers the reconnecting clients got
    resynced_clients: int = 0  # told to list again: not held to the check
    resume_seconds: list[float] = field(default_factory=list)  # each resume, request to answer
    stayed_clients: int = 0
    killed_clients: int = 0  # meant to stay, cut off when the runner killed the stack (not a violation)
    dropped_clients: list[str] = field(default_factory=list)
    dlq_consumed_tasks: int = 0  # distinct error tasks whose DLQ message was consumed
    dlq_consumed_messages: int = 0
    dlq_stale: list[str] = field(default_factory=list)  # consumed, but the task ended success
    dlq_missing: list[str] = field(default_factory=list)  # error tasks without a consumed DLQ message
    successes_without_effect: list[str] = field(default_factory=list)  # informational
    attempts: int = 0  # executions of the processing step
    failed_attempts: int = 0
    effects: int = 0
    post_attempts: int = 0
    post_retries: int = 0
    wall_seconds: float = 0.0
    drain_timed_out: bool = False
    queue_depth: int | None = None
    dlq_depth: int | None = None
    injected: dict[str, int] = field(default_factory=dict)
    created_during_outage: int = 0
    # isolation (stages with authorizers)
    auth: bool = False
    users: int = 0
    foreign_frames: list[Violation] = field(default_factory=list)
    foreign_reads: list[Violation] = field(default_factory=list)
    twins: int = 0  # tasks another user submitted under a run task's id
    twins_accepted: int = 0
    twin_reads: int = 0  # reads, listings and frames of a twin by its own user
    twin_leaks: list[str] = field(default_factory=list)
    frames_checked: int = 0  # frames held to their client's user
    clients_checked: int = 0
    reads_checked: int = 0  # HTTP observations held to their user
    cross_reads: dict[str, int] = field(default_factory=dict)  # reads as another user, by outcome
    tasks_per_user: dict[str, int] = field(default_factory=dict)  # accepted tasks of each user
    stayed_per_user: dict[str, int] = field(default_factory=dict)  # clients of each user that stayed

    @property
    def regression_tasks(self) -> list[str]:
        return sorted({v.task_id for v in self.regressions})

    @property
    def missed_final_frame_count(self) -> int:
        return sum(len(ids) for ids in self.missed_final_frames.values())

    @property
    def dlq_matches_errors(self) -> bool:
        return not self.dlq_missing

    @property
    def violations(self) -> dict[str, int]:
        """Each invariant and how many times it was violated (all must be 0)."""
        return {
            "lost": len(self.lost),
            "duplicated effects": len(self.duplicated_effects),
            "regressions": len(self.regression_tasks),
            "unexpected": len(self.unexpected) + len(self.listed_twice),
            "DLQ consumed != error count": len(self.dlq_missing),
            "missed final frames": self.missed_final_frame_count,
            "missed final frames (reconnecting clients)": sum(
                len(ids) for ids in self.missed_final_frames_reconnecting.values()
            ),
            "rejected submissions": len(self.rejected),
            "stayed clients dropped": len(self.dropped_clients),
            "queues not empty": int(bool(self.queue_depth)) + int(bool(self.dlq_depth)),
            **(
                {
                    "foreign frames": len(self.foreign_frames),
                    "foreign reads": len(self.foreign_reads),
                    "twin leaks": len(self.twin_leaks),
                }
                if self.auth
                else {}
            ),
        }

    @property
    def ok(self) -> bool:
        return not any(self.violations.values())

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "violations": self.violations,
            "requested": self.requested,
            "accepted": self.accepted,
            "success": self.success,
            "error": self.error,
            "lost": self.lost,
            "duplicatedEffects": self.duplicated_effects,
            "regressions": [v.__dict__ for v in self.regressions],
            "unexpected": self.unexpected,
            "listedTwice": self.listed_twice,
            "rejected": self.rejected,
            "missedFinalFrames": self.missed_final_frames,
            "missedFinalFramesReconnecting": self.missed_final_frames_reconnecting,
            "reconnectingClients": self.reconnecting_clients,
            "resumes": self.resumes,
            "resyncedClients": self.resynced_clients,
            "resumeSeconds": self.resume_seconds,
            "stayedClients": self.stayed_clients,
            "killedClients": self.killed_clients,
            "droppedClients": self.dropped_clients,
            "dlqConsumedTasks": self.dlq_consumed_tasks,
            "dlqConsumedMessages": self.dlq_consumed_messages,
            "dlqStale": self.dlq_stale,
            "dlqMissing": self.dlq_missing,
            "successesWithoutEffect": self.successes_without_effect,
            "attempts": self.attempts,
            "failedAttempts": self.failed_attempts,
            "effects": self.effects,
            "postAttempts": self.post_attempts,
            "postRetries": self.post_retries,
            "wallSeconds": round(self.wall_seconds, 2),
            "tasksPerSecond": round(self.tasks_per_second, 2),
            "drainTimedOut": self.drain_timed_out,
            "queueDepth": self.queue_depth,
            "dlqDepth": self.dlq_depth,
            "injected": self.injected,
            "createdDuringOutage": self.created_during_outage,
            **(
                {
                    "isolation": {
                        "users": self.users,
                        "tasksPerUser": self.tasks_per_user,
                        "stayedClientsPerUser": self.stayed_per_user,
                        "foreignFrames": [v.__dict__ for v in self.foreign_frames],
                        "foreignReads": [v.__dict__ for v in self.foreign_reads],
                        "framesChecked": self.frames_checked,
                        "clientsChecked": self.clients_checked,
                        "readsChecked": self.reads_checked,
                        "crossReads": self.cross_reads,
                        "twins": self.twins,
                        "twinsAccepted": self.twins_accepted,
                        "twinReads": self.twin_reads,
                        "twinLeaks": self.twin_leaks,
                    }
                }
                if self.auth
                else {}
            ),
        }

    @property
    def tasks_per_second(self) -> float:
        return self.accepted / self.wall_seconds if self.wall_seconds > 0 else 0.0

    def lines(self, details: int = 5) -> list[str]:
        """The printed summary: figures, then the first `details` examples of each violation."""

        def mark(count: int) -> str:
            return "ok" if count == 0 else "VIOLATED"

        v = self.violations
        dlq = (
            f"{self.dlq_consumed_tasks} tasks ({self.dlq_consumed_messages} messages, "
            f"{len(self.dlq_stale)} stale for tasks that had succeeded)"
        )
        reconnecting = v["missed final frames (reconnecting clients)"]
        lines = [
            f"tasks            {self.accepted} accepted of {self.requested} "
            f"({self.success} success, {self.error} error)",
            f"lost             {len(self.lost):<8} {mark(v['lost'])}",
            f"duplicated effects {len(self.duplicated_effects):<6} {mark(v['duplicated effects'])}"
            f"   ({self.effects} effects, {len(self.successes_without_effect)} successes without one)",
            f"regressions      {len(self.regression_tasks):<8} {mark(v['regressions'])}",
            f"unexpected       {len(self.unexpected):<8} {mark(len(self.unexpected))}"
            f"   (listed twice: {len(self.listed_twice)})",
            f"DLQ consumed     {dlq}",
            f"error count      {self.error:<8} DLQ consumed = error count: "
            f"{'yes' if self.dlq_matches_errors else 'NO'}",
            f"missed final frames {self.missed_final_frame_count:<5} {mark(v['missed final frames'])}"
            f"   ({self.stayed_clients} clients stayed connected"
            + (", each held to its own user's tasks" if self.auth else "")
            + (f", {len(self.dropped_clients)} DROPPED" if self.dropped_clients else "")
            + (f", {self.killed_clients} cut off by the stack kill" if self.killed_clients else "")
            + ")",
            f"missed final frames (reconnecting clients): {reconnecting}   {mark(reconnecting)}"
            f"   ({self.reconnecting_clients} clients, {self.resumes} resumes"
            + (
                f" answered in {statistics.median(self.resume_seconds):.2f} s median, "
                f"{max(self.resume_seconds):.2f} s max"
                if self.resume_seconds
                else ""
            )
            + (f", {self.resynced_clients} told to resync" if self.resynced_clients else "")
            + ")",
            *(self._isolation_lines(mark) if self.auth else []),
            f"rejected         {len(self.rejected):<8} {mark(len(self.rejected))}",
            f"queues at end    TaskQueue {self.queue_depth}, DLQ {self.dlq_depth}"
            + ("   (DRAIN DEADLINE REACHED)" if self.drain_timed_out else ""),
            f"attempts         {self.attempts} step executions ({self.failed_attempts} failed), "
            f"{self.post_attempts} POSTs ({self.post_retries} retried after 503/timeout)",
            f"wall time        {self.wall_seconds:.1f} s   {self.tasks_per_second:.1f} tasks/s",
            "faults fired     "
            + ", ".join(f"{name} {count}" for name, count in sorted(self.injected.items())),
        ]
        if self.created_during_outage:
            lines.append(f"SQS outage       {self.created_during_outage} tasks created while SQS was down")
        examples: list[str] = []
        examples += [f"  lost: {task_id}" for task_id in self.lost[:details]]
        examples += [
            f"  duplicated effect: {task_id} x{count}"
            for task_id, count in list(self.duplicated_effects.items())[:details]
        ]
        examples += [f"  regression: {r.task_id}: {r.detail}" for r in self.regressions[:details]]
        examples += [f"  unexpected: {task_id}" for task_id in self.unexpected[:details]]
        examples += [f"  listed twice: {task_id}" for task_id in self.listed_twice[:details]]
        examples += [f"  DLQ message never consumed for error task {t}" for t in self.dlq_missing[:details]]
        for client, ids in self.missed_final_frames.items():
            examples += [f"  missed final frame: client {client}: {task_id}" for task_id in ids[:details]]
        examples += [f"  foreign frame: {f.task_id}: {f.detail}" for f in self.foreign_frames[:details]]
        examples += [f"  foreign read: {r.task_id}: {r.detail}" for r in self.foreign_reads[:details]]
        examples += [f"  twin leak: {leak}" for leak in self.twin_leaks[:details]]
        examples += [f"  rejected: {task_id}" for task_id in self.rejected[:details]]
        lines += examples
        lines.append("RESULT           " + ("PASS: every invariant holds" if self.ok else "FAIL"))
        return lines

    def _isolation_lines(self, mark: Callable[[int], str]) -> list[str]:
        """The isolation figures (stages with authorizers)."""
        tasks = "/".join(str(count) for count in self.tasks_per_user.values())
        stayed = "/".join(str(self.stayed_per_user.get(user, 0)) for user in self.tasks_per_user)
        outcomes = sorted(self.cross_reads.items(), key=lambda item: item[0] != "404")
        cross = ", ".join(f"{count} {'refused (404)' if o == '404' else o}" for o, count in outcomes)
        return [
            f"users            {self.users:<8} tasks {tasks}, clients that stayed connected {stayed}",
            f"foreign frames   {len(self.foreign_frames):<8} {mark(len(self.foreign_frames))}"
            f"   ({self.frames_checked} frames to {self.clients_checked} clients of their users)",
            f"foreign reads    {len(self.foreign_reads):<8} {mark(len(self.foreign_reads))}"
            f"   ({self.reads_checked} HTTP reads; reads as another user: {cross or 'none'})",
            f"twin leaks       {len(self.twin_leaks):<8} {mark(len(self.twin_leaks))}"
            f"   ({self.twins} ids reused by another user, {self.twins_accepted} accepted as that user's own,"
            f" {self.twin_reads} reads and frames of them by their owners)",
        ]


# ------------------------------------------------------------------------------- the checks


def _rank(status: str) -> int:
    return 1 if status in TERMINAL else 0


def real_time_regressions(task_id: str, observations: list[Observation]) -> list[Violation]:
    """HTTP observations in real-time order (see the module docstring)."""
    found: list[Violation] = []
    ordered = sorted(observations, key=lambda o: o.started)
    by_end = sorted(observations, key=lambda o: o.ended)
    for later in ordered:
        for earlier in by_end:
            if earlier.ended >= later.started:
                break
            problem = _backwards(earlier, later)
            if problem:
                found.append(
                    Violation(
                        "regression",
                        task_id,
                        f"{problem}: {earlier.source} {earlier.status} v{earlier.version} (done at "
                        f"{earlier.ended:.3f}) then {later.source} {later.status} v{later.version} "
                        f"(asked at {later.started:.3f})",
                    )
                )
                return found  # one example per task is enough
    return found


def _backwards(earlier: Observation, later: Observation) -> str | None:
    if later.run < earlier.run:
        return "run went backwards"
    if later.run > earlier.run:
        return None
    if _rank(earlier.status) > _rank(later.status):
        return f"{earlier.status} then {later.status}"
    if earlier.status in TERMINAL and later.status in TERMINAL and earlier.status != later.status:
        return f"{earlier.status} then {later.status}"
    if (
        earlier.source in _STRONG_SOURCES
        and later.source in _STRONG_SOURCES
        and later.version < earlier.version
    ):
        return "stale read (version went backwards)"
    return None


def version_order_regressions(task_id: str, seen: list[tuple[int, str, str]]) -> list[Violation]:
    """(version, status, where) from every source; see the module docstring."""
    statuses: dict[int, set[str]] = defaultdict(set)
    where: dict[tuple[int, str], str] = {}
    for version, status, source in seen:
        statuses[version].add(status)
        where.setdefault((version, status), source)
    for version in sorted(statuses):
        if len(statuses[version]) > 1:
            shown = ", ".join(f"{s} ({where[(version, s)]})" for s in sorted(statuses[version]))
            return [Violation("regression", task_id, f"version {version} seen as {shown}")]
    terminal: tuple[int, str] | None = None
    for version in sorted(statuses):
        (status,) = statuses[version]
        if terminal is None:
            if status in TERMINAL:
                terminal = (version, status)
            continue
        if status != terminal[1]:
            return [
                Violation(
                    "regression",
                    task_id,
                    f"{terminal[1]} at version {terminal[0]} ({where[terminal]}) then {status} at version "
                    f"{version} ({where[(version, status)]})",
                )
            ]
    return []


def _owned_by(owner: str | None) -> str:
    return f"owned by {owner}" if owner else "nobody in the run submitted"


def check_reconnecting_clients(
    history: History, report: Report, accepted: Iterable[str], final_status: Mapping[str, str | None]
) -> None:
    """The clients that dropped and came back: every final frame of the tasks accepted after their
    first cursor, received live or replayed by a resume."""
    owners = history.owners
    for client in history.clients:
        if client.stayed or client.first_cursor_at is None:
            continue  # never away (held to the check above), or never had a cursor to resume from
        if client.resyncs:
            report.resynced_clients += 1
            continue
        report.reconnecting_clients += 1
        report.resumes += client.resumes
        report.resume_seconds.extend(client.resume_seconds)
        received = {(frame.task_id, frame.status) for frame in client.frames}
        missed = [
            task_id
            for task_id in accepted
            if (not history.auth or owners.get(task_id) == client.user)
            and (history.submissions[task_id].accepted_at or 0.0) > client.first_cursor_at
            and final_status.get(task_id) in TERMINAL
            and (task_id, final_status[task_id]) not in received
        ]
        if missed:
            report.missed_final_frames_reconnecting[client.name] = missed


def check_isolation(history: History, report: Report) -> None:
    """Foreign frames and foreign reads (see the module docstring); stages with authorizers."""
    owners = history.owners
    report.auth = True
    report.users = len(history.users)
    accepted = Counter(owners[task_id] for task_id in history.accepted_ids)
    report.tasks_per_user = {user: accepted.get(user, 0) for user in history.users}
    report.stayed_per_user = {
        user: sum(1 for c in history.clients if c.user == user and c.stayed) for user in history.users
    }
    for client in history.clients:
        report.clients_checked += 1
        who = client.name if client.user and client.user in client.name else f"{client.name} of {client.user}"
        for frame in client.frames:
            report.frames_checked += 1
            owner = owners.get(frame.task_id)
            if client.user is None or owner != client.user:
                report.foreign_frames.append(
                    Violation(
                        "foreign frame",
                        frame.task_id,
                        f"client {who} got {frame.status} v{frame.version} of a task {_owned_by(owner)}",
                    )
                )
    for observation in history.observations:
        report.reads_checked += 1
        owner = owners.get(observation.task_id)
        if observation.user is None or owner != observation.user:
            report.foreign_reads.append(
                Violation(
                    "foreign read",
                    observation.task_id,
                    f"{observation.source} with the token of {observation.user} showed {observation.status} "
                    f"v{observation.version} of a task {_owned_by(owner)}",
                )
            )
    report.cross_reads = dict(history.cross_reads)
    check_twins(history, report)


def check_twins(history: History, report: Report) -> None:
    """Tasks under a reused id (module docstring, "reused ids")."""
    report.twins = len(history.twins)
    report.twin_reads = history.twin_reads + sum(client.twin_frames for client in history.clients)
    report.twin_leaks = list(history.twin_leaks)
    for twin in history.twins.values():
        if not twin.accepted:
            report.twin_leaks.append(f"{twin.user}'s {twin.task_id} was not accepted: {twin.outcomes}")
            continue
        report.twins_accepted += 1
        shown = (twin.final or {}).get("answer")
        if shown != twin.answer:
            report.twin_leaks.append(f"{twin.user}'s {twin.task_id} read back as {shown!r}")


def check(history: History) -> Report:  # noqa: PLR0912, PLR0915 - one pass per figure, in order
    report = Report(requested=history.requested)
    accepted = history.accepted_ids
    accepted_set = set(accepted)
    report.accepted = len(accepted)
    report.post_attempts = sum(len(s.outcomes) for s in history.submissions.values())
    report.post_retries = sum(max(0, len(s.outcomes) - 1) for s in history.submissions.values())
    report.rejected = sorted(task_id for task_id, s in history.submissions.items() if not s.accepted)

    final_status = {
        task_id: (body or {}).get("status")
        for task_id, body in history.final.items()
        if task_id in accepted_set
    }
    report.success = sum(1 for status in final_status.values() if status == "success")
    report.error = sum(1 for status in final_status.values() if status == "error")

    # DLQ
    consumed = Counter(str(body.get("taskId")) for body in history.dlq_consumed)
    report.dlq_consumed_messages = sum(consumed.values())
    error_tasks = {t for t, s in final_status.items() if s == "error"}
    report.dlq_consumed_tasks = len(error_tasks & set(consumed))
    report.dlq_missing = sorted(error_tasks - set(consumed))
    report.dlq_stale = sorted(t for t in consumed if final_status.get(t) == "success")

    # lost
    report.lost = sorted(
        task_id
        for task_id in accepted
        if final_status.get(task_id) not in TERMINAL
        or (final_status.get(task_id) == "error" and task_id not in consumed)
    )

    # effects
    effects = Counter((str(e.get("taskId")), e.get("run")) for e in history.effects)
    report.effects = sum(effects.values())
    per_task: Counter[str] = Counter()
    for (task_id, _run), count in effects.items():
        per_task[task_id] = max(per_task[task_id], count)
    report.duplicated_effects = {task_id: count for task_id, count in sorted(per_task.items()) if count > 1}
    report.successes_without_effect = sorted(
        t for t, status in final_status.items() if status == "success" and per_task[t] == 0
    )
    report.attempts = len(history.steps)
    report.failed_attempts = sum(1 for step in history.steps if not step.get("ok"))

    # unexpected / listed twice
    listed = set(history.listed) | set(history.final_list)
    report.unexpected = sorted(listed - accepted_set)
    report.listed_twice = sorted(t for t, n in Counter(history.final_list).items() if n > 1)

    # regressions
    observations: dict[str, list[Observation]] = defaultdict(list)
    for observation in history.observations:
        observations[observation.task_id].append(observation)
    seen: dict[str, list[tuple[int, str, str]]] = defaultdict(list)
    for observation in history.observations:
        seen[observation.task_id].append((observation.version, observation.status, observation.source))
        if observation.run != 1:
            report.regressions.append(
                Violation("regression", observation.task_id, f"run {observation.run} but no retry was asked")
            )
    for client in history.clients:
        for frame in client.frames:
            seen[frame.task_id].append((frame.version, frame.status, f"frame to {client.name}"))
    for task_id, body in history.final.items():
        if body:
            seen[task_id].append((int(body.get("version", 0)), str(body.get("status")), "final GET"))
    for task_id in sorted(set(observations) | set(seen)):
        found = real_time_regressions(task_id, observations.get(task_id, []))
        found = found or version_order_regressions(task_id, seen.get(task_id, []))
        body = history.final.get(task_id)
        if not found and body and seen.get(task_id):
            highest = max(version for version, _, _ in seen[task_id])
            if int(body.get("version", 0)) < highest:
                found = [
                    Violation(
                        "regression",
                        task_id,
                        f"final read is version {body.get('version')} but version {highest} was seen",
                    )
                ]
        report.regressions.extend(found)

    # frames of the clients that stayed connected (on stages with authorizers: their user's tasks)
    owners = history.owners
    for client in history.clients:
        if client.stays and client.dropped:
            report.dropped_clients.append(client.name)
        report.killed_clients += int(client.stays and client.killed > 0)
        if not client.stayed:
            continue
        report.stayed_clients += 1
        received = {(frame.task_id, frame.status) for frame in client.frames}
        missed = [
            task_id
            for task_id in accepted
            if (not history.auth or owners.get(task_id) == client.user)
            and final_status.get(task_id) in TERMINAL
            and (task_id, final_status[task_id]) not in received
        ]
        if missed:
            report.missed_final_frames[client.name] = missed

    check_reconnecting_clients(history, report, accepted, final_status)
    if history.auth:
        check_isolation(history, report)

    report.wall_seconds = max(0.0, history.drained - history.started)
    report.drain_timed_out = history.drain_timed_out
    report.queue_depth = history.queue_depth
    report.dlq_depth = history.dlq_depth
    report.injected = dict(history.injected)
    report.created_during_outage = history.created_during_outage
    return report
