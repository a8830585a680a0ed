"""What a chaos run sees, as it sees it: every HTTP response and every WebSocket frame goes into
the history (history.py), with a reused id's twin (history.Twin) told apart by its answer; and
the running figures the runner steers by: the newest status seen of each task, and the accepted
tasks."""

from __future__ import annotations

import json
import time
from typing import Any

from local.chaos.history import TERMINAL, ClientHistory, Frame, History, Observation, Twin


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
