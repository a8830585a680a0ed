"""The report of a chaos run: the figures and the invariant violations the checker found
(checker.py), printed as the summary lines and saved as report.json."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any

from local.metering.meter import camel_json

_JSON_NAMES = {"stayedPerUser": "stayedClientsPerUser"}  # the one name that is not its camelCase


def _mark(count: int) -> str:
    return "ok" if count == 0 else "VIOLATED"


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
    resyncs: int = 0  # `resync` answers they got, each followed by a listing (README's client)
    unlisted_clients: int = 0  # told to list again and the listing kept failing: not held to the check
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
    # isolation (stages with authorizers): the fields after `auth`, report.json's "isolation"
    auth: bool = False
    users: int = 0
    tasks_per_user: dict[str, int] = field(default_factory=dict)  # accepted tasks of each user
    stayed_per_user: dict[str, int] = field(default_factory=dict)  # clients of each user that stayed
    foreign_frames: list[Violation] = field(default_factory=list)
    foreign_reads: list[Violation] = field(default_factory=list)
    frames_checked: int = 0  # frames held to their client's user
    clients_checked: int = 0
    reads_checked: int = 0  # HTTP observations held to their user
    cross_reads: dict[str, int] = field(default_factory=dict)  # reads as another user, by outcome
    twins: int = 0  # tasks another user submitted under a run task's id
    twins_accepted: int = 0
    twin_reads: int = 0  # reads, listings and frames of a twin by its own user
    twin_leaks: list[str] = field(default_factory=list)

    @property
    def regression_tasks(self) -> list[str]:
        return sorted({v.task_id for v in self.regressions})

    @property
    def violations(self) -> dict[str, int]:
        """Each invariant and how many times it was violated (all must be 0)."""
        counts = {
            "lost": len(self.lost),
            "duplicated effects": len(self.duplicated_effects),
            "regressions": len(self.regression_tasks),
            "unexpected": len(self.unexpected) + len(self.listed_twice),
            "DLQ consumed != error count": len(self.dlq_missing),
            "missed final frames": sum(len(ids) for ids in self.missed_final_frames.values()),
            "missed final frames (reconnecting clients)": sum(
                len(ids) for ids in self.missed_final_frames_reconnecting.values()
            ),
            "rejected submissions": len(self.rejected),
            "stayed clients dropped": len(self.dropped_clients),
            "queues not empty": int(bool(self.queue_depth)) + int(bool(self.dlq_depth)),
        }
        if self.auth:
            counts |= {
                "foreign frames": len(self.foreign_frames),
                "foreign reads": len(self.foreign_reads),
                "twin leaks": len(self.twin_leaks),
            }
        return counts

    @property
    def ok(self) -> bool:
        return not any(self.violations.values())

    def to_json(self) -> dict[str, Any]:
        """report.json: every figure under its camelCase name, in field order; those after `auth`
        under "isolation", on stages with authorizers only."""
        document: dict[str, Any] = {"ok": self.ok, "violations": self.violations}
        isolation: dict[str, Any] = {}
        section = document
        for name, value in camel_json(self).items():
            if name == "auth":
                section = isolation
            elif name == "wallSeconds":
                section["wallSeconds"] = round(value, 2)
                section["tasksPerSecond"] = round(self.tasks_per_second, 2)
            else:
                section[_JSON_NAMES.get(name, name)] = value
        if self.auth:
            document["isolation"] = isolation
        return document

    @property
    def tasks_per_second(self) -> float:
        return self.accepted / self.wall_seconds if self.wall_seconds > 0 else 0.0

    def lines(self, details: int = 5) -> list[str]:
        """The printed summary: figures, then the first `details` examples of each violation."""
        v = self.violations
        reconnecting = v["missed final frames (reconnecting clients)"]
        lines = [
            f"tasks            {self.accepted} accepted of {self.requested} "
            f"({self.success} success, {self.error} error)",
            f"lost             {len(self.lost):<8} {_mark(v['lost'])}",
            f"duplicated effects {len(self.duplicated_effects):<6} {_mark(v['duplicated effects'])}"
            f"   ({self.effects} effects, {len(self.successes_without_effect)} successes without one)",
            f"regressions      {len(self.regression_tasks):<8} {_mark(v['regressions'])}",
            f"unexpected       {len(self.unexpected):<8} {_mark(len(self.unexpected))}"
            f"   (listed twice: {len(self.listed_twice)})",
            f"DLQ consumed     {self.dlq_consumed_tasks} tasks ({self.dlq_consumed_messages} messages, "
            f"{len(self.dlq_stale)} stale for tasks that had succeeded)",
            f"error count      {self.error:<8} DLQ consumed = error count: "
            f"{'NO' if self.dlq_missing else 'yes'}",
            f"missed final frames {v['missed final frames']:<5} {_mark(v['missed final frames'])}"
            f"   ({self.stayed_clients} clients stayed connected"
            + (", each held to its own user's tasks" if self.auth else "")
            + (f", {len(self.dropped_clients)} DROPPED" if self.dropped_clients else "")
            + (f", {self.killed_clients} cut off by the stack kill" if self.killed_clients else "")
            + ")",
            f"missed final frames (reconnecting clients): {reconnecting}   {_mark(reconnecting)}"
            f"   ({self.reconnecting_clients} clients, {self.resumes} resumes"
            + (
                f" answered in {statistics.median(self.resume_seconds):.2f} s median, "
                f"{max(self.resume_seconds):.2f} s max"
                if self.resume_seconds
                else ""
            )
            + (f", {self.resyncs} resyncs listed again" if self.resyncs else "")
            + (
                f", {self.unlisted_clients} NOT CHECKED: their listing failed"
                if self.unlisted_clients
                else ""
            )
            + ")",
            *(self._isolation_lines() if self.auth else []),
            f"rejected         {len(self.rejected):<8} {_mark(len(self.rejected))}",
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
        effects = [f"{task_id} x{count}" for task_id, count in self.duplicated_effects.items()]
        missed = [(f"missed final frame: client {c}: ", ids) for c, ids in self.missed_final_frames.items()]
        examples = [
            ("lost: ", self.lost),
            ("duplicated effect: ", effects),
            ("regression: ", [f"{r.task_id}: {r.detail}" for r in self.regressions]),
            ("unexpected: ", self.unexpected),
            ("listed twice: ", self.listed_twice),
            ("DLQ message never consumed for error task ", self.dlq_missing),
            *missed,
            ("foreign frame: ", [f"{f.task_id}: {f.detail}" for f in self.foreign_frames]),
            ("foreign read: ", [f"{r.task_id}: {r.detail}" for r in self.foreign_reads]),
            ("twin leak: ", self.twin_leaks),
            ("rejected: ", self.rejected),
        ]
        lines += [f"  {prefix}{example}" for prefix, items in examples for example in items[:details]]
        lines.append("RESULT           " + ("PASS: every invariant holds" if self.ok else "FAIL"))
        return lines

    def _isolation_lines(self) -> list[str]:
        tasks = "/".join(str(count) for count in self.tasks_per_user.values())
        stayed = "/".join(str(self.stayed_per_user.get(user, 0)) for user in self.tasks_per_user)
        outcomes = sorted(self.cross_reads.items(), key=lambda item: item[0] != "404")
        cross = ", ".join(f"{count} {'refused (404)' if o == '404' else o}" for o, count in outcomes)
        return [
            f"users            {self.users:<8} tasks {tasks}, clients that stayed connected {stayed}",
            f"foreign frames   {len(self.foreign_frames):<8} {_mark(len(self.foreign_frames))}"
            f"   ({self.frames_checked} frames to {self.clients_checked} clients of their users)",
            f"foreign reads    {len(self.foreign_reads):<8} {_mark(len(self.foreign_reads))}"
            f"   ({self.reads_checked} HTTP reads; reads as another user: {cross or 'none'})",
            f"twin leaks       {len(self.twin_leaks):<8} {_mark(len(self.twin_leaks))}"
            f"   ({self.twins} ids reused by another user, {self.twins_accepted} accepted as that user's own,"
            f" {self.twin_reads} reads and frames of them by their owners)",
        ]
