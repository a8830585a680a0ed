"""ResumeService: a reconnecting WebSocket client catches up on the task changes it missed.

The client sends `{"action": "resume", "since": <the last frame's cursor>}` on its new connection.
The connection row exists before this runs (its $connect stored it), so every change from now on
is pushed live by the notifier; the replay covers the gap before. It posts one task frame per task
of the connection's scope that was created or finished after the cursor, less an overlap, as the
task is now (posted in parallel, in no set order; each frame has its own cursor), then answers
`{"type": "resumed", "count": n, "cursor": ...}`. A change can arrive twice (replayed and live):
frames carry `version`, and a client keeps the highest. Not replayed: a failed attempt, or a retry,
of a task neither created nor finished in the gap (its next frame carries the state).

Bounded: a cursor older than the stage's window, or a gap with more changes than the stage's
limit, gets `{"type": "resync", "reason": ..., "cursor": ...}`: list again with GET /tasks, and
resume from that cursor next time (it is the moment of the answer, before the client's listing,
so a later gap is covered by the listing and the resume together). A replay that could not
all be posted within the function's time limit (`time_left`) stops before the timeout and gets an
`error` frame, like a replay cut short by a failed post: send the same resume again (a slow moment
passes; the README's client does on its next connection). A malformed cursor,
another caller's, or one from the future gets `{"type": "error", ...}`. The connection stays open.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Final

from taskflow import table_schema
from taskflow.clients.connections_client import ConnectionGoneError, FramePoster
from taskflow.domain.client_frames import error
from taskflow.domain.clock import Clock, utc_now, utc_timestamp
from taskflow.domain.notifications import encode_frame, task_frame
from taskflow.domain.resume import InvalidResumeCursorError, ResumeCursor
from taskflow.observability import logger
from taskflow.repositories.task_repository import TaskRepository

# A change stamped up to this long before the cursor is replayed too: writers' clocks differ a
# little, and a push can reach clients after a later change's (a notifier batch retried after a
# failed push). A duplicate at worst, never a gap, as long as no push lags a later one by more.
REPLAY_OVERLAP: Final = timedelta(seconds=30)


POST_WORKERS: Final = 16  # frames posted at once (the clients' pool allows 32 connections)
POST_TRIES: Final = 3
# No frame is posted once less than this is left of the invocation: time for the answer, and
# more than the deadline reserve (taskflow.deadline) that interrupts a read that hangs.
POST_RESERVE_SECONDS: Final = 2.0
_GONE: Final = "gone"
_LATE: Final = "late"


@dataclass(frozen=True)
class ResumeLimits:
    max_changes: int  # more changed tasks than this: resync
    window_seconds: int  # a cursor older than this: resync


class ResumeService:
    def __init__(
        self, tasks: TaskRepository, frames: FramePoster, limits: ResumeLimits, clock: Clock = utc_now
    ) -> None:
        self._tasks = tasks
        self._frames = frames
        self._limits = limits
        self._clock = clock

    def resume(
        self,
        connection_id: str,
        since: object,
        *,
        owner: str | None,
        time_left: Callable[[], float] | None = None,
    ) -> dict[str, Any] | None:
        """Post the missed frames to the connection; the answer frame (None: the connection went).
        `time_left`: seconds left of the invocation (None: no limit)."""
        scope = table_schema.scope_of(owner)
        cursor = self._checked(since, scope)
        if not isinstance(cursor, ResumeCursor):
            return cursor  # the error or resync frame
        after = utc_timestamp(cursor.when - REPLAY_OVERLAP)
        tasks = self._tasks.changes_since(after, owner=owner, limit=self._limits.max_changes)
        if tasks is None:
            return self._resync(f"more than {self._limits.max_changes} tasks changed since the cursor", scope)
        frames = [encode_frame(task_frame(t.to_item(), scope)) for t in tasks]
        outcome = self._post_all(connection_id, frames, time_left)
        if outcome == _GONE:
            logger.info("connection gone during a resume", extra={"connection_id": connection_id})
            return None
        if outcome == _LATE:
            logger.warning("resume out of time", extra={"connection_id": connection_id, "replay": len(tasks)})
            return error(
                f"the replay of {len(tasks)} tasks could not all be sent in time; send the same resume again",
                retry=True,
            )
        if outcome:
            return error(f"the replay stopped ({outcome}); send the same resume again", retry=True)
        logger.info("connection resumed", extra={"connection_id": connection_id, "replayed": len(tasks)})
        # Where to resume next time if no live frame comes first: the newest of what it has seen.
        latest = max([cursor.at, *(task.updated_at for task in tasks)])
        return {"type": "resumed", "count": len(tasks), "cursor": ResumeCursor(latest, scope).encode()}

    def _checked(self, since: object, scope: str) -> ResumeCursor | dict[str, Any]:
        """The cursor to resume from, or the frame that refuses it."""
        try:
            cursor = ResumeCursor.decode(since)
        except InvalidResumeCursorError as invalid:
            return error(f"{invalid}; send the `cursor` of the last task frame you received")
        if cursor.scope != scope:
            return error("the cursor belongs to another caller")
        now = self._clock()
        if cursor.when > now + REPLAY_OVERLAP:
            return error("the cursor is in the future")
        if cursor.when < now - timedelta(seconds=self._limits.window_seconds):
            return self._resync(f"the cursor is older than {self._limits.window_seconds} s", scope)
        return cursor

    def _resync(self, reason: str, scope: str) -> dict[str, Any]:
        """List again; then resume from now (the listing, made after this answer, covers before)."""
        return {
            "type": "resync",
            "reason": f"{reason}: list your tasks again (GET /tasks)",
            "cursor": ResumeCursor(utc_timestamp(self._clock()), scope).encode(),
        }

    def _post_all(
        self, connection_id: str, frames: list[bytes], time_left: Callable[[], float] | None
    ) -> str:
        """Post the frames, POST_WORKERS at a time, each tried POST_TRIES times (their order does not
        matter: a client keeps the highest version), none once less than POST_RESERVE_SECONDS are
        left. "" when all arrived, else _GONE, _LATE or what failed (in that order)."""
        if not frames:
            return ""

        def post(frame: bytes) -> str:
            for attempt in range(POST_TRIES):
                if time_left is not None and time_left() < POST_RESERVE_SECONDS:
                    return _LATE
                try:
                    self._frames.post(connection_id, frame)
                    return ""
                except ConnectionGoneError:
                    return _GONE
                except Exception as failed:  # the endpoint failed us: try again, then give up
                    if attempt == POST_TRIES - 1:
                        logger.warning("replay frame not posted", extra={"error": repr(failed)})
                        return f"a frame could not be posted: {type(failed).__name__}"
            return ""  # pragma: no cover - the loop returns

        from concurrent.futures import ThreadPoolExecutor  # noqa: PLC0415 - only a replay needs threads

        with ThreadPoolExecutor(max_workers=min(POST_WORKERS, len(frames))) as pool:
            outcomes = list(pool.map(post, frames))
        for verdict in (_GONE, _LATE):
            if verdict in outcomes:
                return verdict
        return next((o for o in outcomes if o), "")
