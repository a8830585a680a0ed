"""The chaos checker: a run's history in, the figures and the invariant violations out (report.py).

Every invariant (a non-zero count fails the run) is defined in docs/local-stack.md, "Fault
injection and chaos runs". check() takes them one family at a time: outcomes (lost, unexpected
and listed twice, DLQ consumed vs error count, rejected), effects (duplicated effects),
regressions (real-time order over the HTTP reads, version order over every read and frame, the
final read against the highest version seen), frames (missed final frames of the clients that
stayed and of those that came back) and, on stages with authorizers (`History.auth`; a task is
owned by the user who submitted it), isolation (foreign frames, foreign reads, twin leaks).
"""

from __future__ import annotations

from collections import Counter, defaultdict

from local.chaos.history import TERMINAL, ClientHistory, History, Observation
from local.chaos.report import Report, Violation

_STRONG_SOURCES = frozenset({"get", "post"})


def check(history: History) -> Report:
    """The figures and the violations of every invariant, one family at a time."""
    report = Report(requested=history.requested)
    report.post_attempts = sum(len(s.outcomes) for s in history.submissions.values())
    report.post_retries = sum(max(0, len(s.outcomes) - 1) for s in history.submissions.values())
    report.rejected = sorted(task_id for task_id, s in history.submissions.items() if not s.accepted)
    check_outcomes(history, report)
    check_effects(history, report)
    check_regressions(history, report)
    check_frames(history, report)
    if history.auth:
        check_isolation(history, report)
    report.wall_seconds = max(0.0, history.drained - history.started)
    report.drain_timed_out = history.drain_timed_out
    report.queue_depth = history.queue_depth
    report.dlq_depth = history.dlq_depth
    report.injected = dict(history.injected)
    report.created_during_outage = history.created_during_outage
    return report


def check_outcomes(history: History, report: Report) -> None:
    """Success and error, lost, the DLQ against the error count, unexpected and listed twice."""
    accepted, final_status = history.accepted_ids, history.final_status
    report.accepted = len(accepted)
    report.success = sum(1 for status in final_status.values() if status == "success")
    report.error = sum(1 for status in final_status.values() if status == "error")
    consumed = Counter(str(body.get("taskId")) for body in history.dlq_consumed)
    report.dlq_consumed_messages = sum(consumed.values())
    error_tasks = {t for t, s in final_status.items() if s == "error"}
    report.dlq_consumed_tasks = len(error_tasks & set(consumed))
    report.dlq_missing = sorted(error_tasks - set(consumed))
    report.dlq_stale = sorted(t for t in consumed if final_status.get(t) == "success")
    report.lost = sorted(
        task_id
        for task_id in accepted
        if final_status.get(task_id) not in TERMINAL
        or (final_status.get(task_id) == "error" and task_id not in consumed)
    )
    report.unexpected = sorted((set(history.listed) | set(history.final_list)) - set(accepted))
    report.listed_twice = sorted(t for t, n in Counter(history.final_list).items() if n > 1)


def check_effects(history: History, report: Report) -> None:
    """Duplicated effects: the most effects of one run of a task."""
    effects = Counter((str(e.get("taskId")), e.get("run")) for e in history.effects)
    report.effects = sum(effects.values())
    per_task: Counter[str] = Counter()
    for (task_id, _run), count in effects.items():
        per_task[task_id] = max(per_task[task_id], count)
    report.duplicated_effects = {task_id: count for task_id, count in sorted(per_task.items()) if count > 1}
    report.successes_without_effect = sorted(
        t for t, status in history.final_status.items() if status == "success" and per_task[t] == 0
    )
    report.attempts = len(history.steps)
    report.failed_attempts = sum(1 for step in history.steps if not step.get("ok"))


def check_regressions(history: History, report: Report) -> None:
    """Real-time order over the HTTP observations, then version order over everything seen, then
    the final read against the highest version seen: one example per task."""
    observations: dict[str, list[Observation]] = defaultdict(list)
    seen: dict[str, list[tuple[int, str, str]]] = defaultdict(list)
    for observation in history.observations:
        observations[observation.task_id].append(observation)
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
    for task_id in sorted(seen):
        found = real_time_regression(task_id, observations.get(task_id, []))
        found = found or version_order_regression(task_id, seen[task_id])
        body = history.final.get(task_id)
        highest = max(version for version, _, _ in seen[task_id])
        if not found and body and int(body.get("version", 0)) < highest:
            detail = f"final read is version {body.get('version')} but version {highest} was seen"
            found = Violation("regression", task_id, detail)
        if found:
            report.regressions.append(found)


def real_time_regression(task_id: str, observations: list[Observation]) -> Violation | None:
    """The first regression in real-time order of the HTTP observations: a request that began
    after another had finished may not show `pending` after a terminal status, the other terminal
    status or an earlier run; between strongly consistent reads (GET /tasks/{id}, POST answers) not
    a lower version either (listings read an index, which AWS updates eventually)."""
    by_end = sorted(observations, key=lambda o: o.ended)
    for later in sorted(observations, key=lambda o: o.started):
        for earlier in by_end:
            if earlier.ended >= later.started:
                break
            problem = _backwards(earlier, later)
            if problem:
                return Violation(
                    "regression",
                    task_id,
                    f"{problem}: {earlier.source} {earlier.status} v{earlier.version} (done at "
                    f"{earlier.ended:.3f}) then {later.source} {later.status} v{later.version} "
                    f"(asked at {later.started:.3f})",
                )
    return None


def _backwards(earlier: Observation, later: Observation) -> str | None:
    if later.run != earlier.run:
        return "run went backwards" if later.run < earlier.run else None
    if earlier.status in TERMINAL and later.status != earlier.status:
        return f"{earlier.status} then {later.status}"  # back to pending, or the other terminal status
    if (
        earlier.source in _STRONG_SOURCES
        and later.source in _STRONG_SOURCES
        and later.version < earlier.version
    ):
        return "stale read (version went backwards)"
    return None


def version_order_regression(task_id: str, seen: list[tuple[int, str, str]]) -> Violation | None:
    """The first regression in version order of (version, status, where) from every source."""
    statuses: dict[int, set[str]] = defaultdict(set)
    where: dict[tuple[int, str], str] = {}
    for version, status, source in seen:
        statuses[version].add(status)
        where.setdefault((version, status), source)
    for version in sorted(statuses):
        if len(statuses[version]) > 1:
            shown = ", ".join(f"{s} ({where[(version, s)]})" for s in sorted(statuses[version]))
            return Violation("regression", task_id, f"version {version} seen as {shown}")
    terminal: tuple[int, str] | None = None
    for version in sorted(statuses):
        (status,) = statuses[version]
        if terminal is None:
            terminal = (version, status) if status in TERMINAL else None
        elif status != terminal[1]:
            return Violation(
                "regression",
                task_id,
                f"{terminal[1]} at version {terminal[0]} ({where[terminal]}) then {status} at version "
                f"{version} ({where[(version, status)]})",
            )
    return None


def check_frames(history: History, report: Report) -> None:
    """The final frames of the clients that stayed connected, and of those that dropped and came
    back (received live or replayed by a resume, for the tasks accepted after their first cursor)."""
    for client in history.clients:
        if client.stays and client.dropped:
            report.dropped_clients.append(client.name)
        report.killed_clients += int(client.stays and client.killed > 0)
        if client.stayed:
            report.stayed_clients += 1
            missed = _missed_final_frames(history, client)
            if missed:
                report.missed_final_frames[client.name] = missed
        elif client.first_cursor_at is None:
            continue  # never had a cursor to resume from
        elif client.unlisted_resyncs:
            report.unlisted_clients += 1  # told to list again, and the listing kept failing
        else:
            report.reconnecting_clients += 1
            report.resumes += client.resumes
            report.resyncs += client.resyncs
            report.resume_seconds.extend(client.resume_seconds)
            missed = _missed_final_frames(history, client, after=client.first_cursor_at)
            if missed:
                report.missed_final_frames_reconnecting[client.name] = missed


def _missed_final_frames(history: History, client: ClientHistory, after: float | None = None) -> list[str]:
    """The accepted tasks (of the client's user, with authorizers; accepted after `after`, if given)
    whose final status the client never received a frame of, nor saw in a listing it made after a
    `resync`."""
    owners, final_status = history.owners, history.final_status
    received = {(frame.task_id, frame.status) for frame in client.frames} | client.listed
    return [
        task_id
        for task_id in history.accepted_ids
        if (not history.auth or owners.get(task_id) == client.user)
        and (after is None or (history.submissions[task_id].accepted_at or 0.0) > after)
        and final_status.get(task_id) in TERMINAL
        and (task_id, final_status[task_id]) not in received
    ]


def _foreign(kind: str, task_id: str, seen: str, owner: str | None) -> Violation:
    return Violation(
        kind, task_id, f"{seen} of a task {f'owned by {owner}' if owner else 'nobody in the run submitted'}"
    )


def check_isolation(history: History, report: Report) -> None:
    """Foreign frames and foreign reads; stages with authorizers."""
    owners = history.owners
    report.auth = True
    report.users = len(history.users)
    accepted = Counter(owners[task_id] for task_id in history.accepted_ids)
    report.tasks_per_user = {user: accepted.get(user, 0) for user in history.users}
    report.stayed_per_user = {
        user: sum(1 for c in history.clients if c.user == user and c.stayed) for user in history.users
    }
    report.clients_checked = len(history.clients)
    for client in history.clients:
        who = client.name if client.user and client.user in client.name else f"{client.name} of {client.user}"
        report.frames_checked += len(client.frames)
        report.foreign_frames += [
            _foreign(
                "foreign frame", f.task_id, f"client {who} got {f.status} v{f.version}", owners.get(f.task_id)
            )
            for f in client.frames
            if client.user is None or owners.get(f.task_id) != client.user
        ]
    report.reads_checked = len(history.observations)
    report.foreign_reads = [
        _foreign(
            "foreign read",
            o.task_id,
            f"{o.source} with the token of {o.user} showed {o.status} v{o.version}",
            owners.get(o.task_id),
        )
        for o in history.observations
        if o.user is None or owners.get(o.task_id) != o.user
    ]
    report.cross_reads = dict(history.cross_reads)
    check_twins(history, report)


def check_twins(history: History, report: Report) -> None:
    """Twin leaks: tasks another user submitted under a run task's id."""
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
