"""TaskNotifier: TaskTable stream -> one WebSocket frame per visible task change, to the connections
allowed to see it.

Who gets a frame:

* `auth: none` (owner_scoped=False): every open connection. The connection list is read once per
  invocation (one paginated Scan of the ConnectionTable, key only) and reused for every record.
* `auth: jwt` (owner_scoped=True): the connections of the task's owner only (the `owner` of the
  task image). The batch's frames are grouped by owner, and each distinct owner's connections are
  read once per invocation (one paginated Query of the ByOwner index, keys only), so the cost of a
  change follows its owner's connections, not the whole table. A change without an owner is
  pushed to nobody (logged): nobody can be shown to be allowed to see it. A connection whose
  token has expired (the index holds each connection's `tokenExpiresAt`) gets no task frame: it
  gets one `{"type": "expired"}` frame, is closed (@connections DELETE) and its row deleted.

Each connection gets its frames (all of the batch's, or its owner's) in stream order from its own
worker thread, so one slow or broken connection never holds up the others. A 410 Gone deletes the
connection. Any other failure stops that connection's sequence (sending it later frames first
would reorder its view) and fails the record it was on; a connection list that cannot be read
fails the first record it was needed for. The partial batch response lists every framed record
from the lowest failed one on, across all deliveries: the stream redelivers from there (records
after it may reach some connections twice; frames are idempotent for the frontend, which merges
them by taskId).

Bounded by the invocation's time (`time_left`): no frame is posted once less than
POST_RESERVE_SECONDS are left. A connection cut short there fails the record it was on, like a
failed post, so the stream redelivers the rest instead of the function timing out and the whole
batch being sent again (a batch of 100 changes to thousands of connections can take longer than
the function's timeout).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import KW_ONLY, dataclass
from decimal import Decimal
from functools import partial
from typing import Any, Final

from taskflow import table_schema
from taskflow.clients.connections_client import ConnectionGoneError, FramePoster, close_with
from taskflow.domain.client_frames import expired
from taskflow.domain.notifications import encode_frame, is_visible_change, task_frame
from taskflow.domain.owners import owner_or_none
from taskflow.observability import MetricName, count, logger
from taskflow.repositories.connection_repository import ConnectionRepository, OwnedConnection
from taskflow.services.stream_changes import StreamChange

MAX_WORKERS: Final = 16
# No frame is posted once less than this is left of the invocation: time to delete the gone
# connections and answer the partial batch response.
POST_RESERVE_SECONDS: Final = 3.0

# A frame and its index in the batch's list of framed records (what a failure is reported against).
_IndexedFrame = tuple[int, bytes]


@dataclass(frozen=True)
class _Framed:
    sequence_number: str
    frame: bytes
    owner: str | None


@dataclass(frozen=True)
class _Target:
    connection_id: str
    frames: list[_IndexedFrame]  # in stream order


@dataclass(frozen=True)
class _Delivery:
    connection_id: str
    sent: int  # frames delivered
    gone: bool = False
    failed_at: int | None = None  # index (in the batch's framed records) of the first frame not delivered
    late: bool = False  # stopped for the invocation's time, not by a failed post


@dataclass
class TaskNotifier:
    connections: ConnectionRepository
    poster: FramePoster
    max_workers: int = MAX_WORKERS
    _: KW_ONLY
    owner_scoped: bool = False
    clock: Callable[[], float] = time.time

    def notify(
        self, changes: Sequence[StreamChange], time_left: Callable[[], float] | None = None
    ) -> list[str]:
        """Push the frames the changes call for. Returns the sequence numbers of the records
        that did not reach every live connection they were for. `time_left`: seconds left of the
        invocation (None: no limit)."""
        framed = self._framed(changes)
        if not framed:
            return []
        owners: int | None = None
        ended: list[OwnedConnection] = []
        if self.owner_scoped:
            targets, failures, owners, ended = self._targets_by_owner(framed)
        else:
            targets, failures = self._targets_for_everyone(framed)
        deliveries: list[_Delivery] = []
        if targets or ended:
            workers = max(1, min(self.max_workers, len(targets) + len(ended)))
            with ThreadPoolExecutor(max_workers=workers) as pool:
                closing = pool.map(self._end, ended)
                deliveries = list(pool.map(partial(self._deliver, time_left=time_left), targets))
                list(closing)

        gone = [d.connection_id for d in deliveries if d.gone]
        for connection_id in gone:
            try:
                self.connections.remove(connection_id)
            except Exception as error:  # the TTL removes it eventually
                logger.warning(
                    "could not delete gone connection",
                    extra={"connection_id": connection_id, "error": repr(error)},
                )
        count(MetricName.CONNECTIONS_GONE, len(gone))
        if ended:
            count(MetricName.CONNECTIONS_EXPIRED, len(ended))
        count(MetricName.NOTIFICATIONS_SENT, sum(d.sent for d in deliveries))

        failures += [d.failed_at for d in deliveries if d.failed_at is not None]
        summary: dict[str, Any] = {
            "frames": len(framed),
            "connections": len(targets),
            "gone": len(gone),
            "failed": len(failures),
        }
        late = sum(1 for d in deliveries if d.late)
        if late:
            summary["outOfTime"] = late  # connections left for the stream's redelivery
        if ended:
            summary["expired"] = len(ended)
        if owners is not None:
            summary["owners"] = owners
        logger.info("notifications sent", extra=summary)
        if not failures:
            return []
        return [change.sequence_number for change in framed[min(failures) :]]

    def _framed(self, changes: Sequence[StreamChange]) -> list[_Framed]:
        framed = []
        for change in changes:
            image = change.new_image
            if not image or not is_visible_change(change.old_image, image):
                continue
            # One line per task change, with the task's correlation id.
            logger.info(
                "task change to push",
                extra={
                    "task_id": image.get("taskId"),
                    "correlation_id": image.get("correlationId"),
                    "status": image.get("status"),
                    "version": _plain_int(image.get("version")),
                },
            )
            owner = _owner_of(image)
            frame = task_frame(image, table_schema.scope_of(owner))
            framed.append(_Framed(change.sequence_number, encode_frame(frame), owner))
        return framed

    def _targets_for_everyone(self, framed: list[_Framed]) -> tuple[list[_Target], list[int]]:
        """Every connection gets every frame; returns the targets and the failed record indexes
        (all of them from the first, if the connection list cannot be read)."""
        try:
            connection_ids = self.connections.list_ids()
        except Exception:
            logger.exception("could not list connections")
            return [], [0]
        frames = [(index, item.frame) for index, item in enumerate(framed)]
        return [_Target(connection_id, frames) for connection_id in connection_ids], []

    def _targets_by_owner(
        self, framed: list[_Framed]
    ) -> tuple[list[_Target], list[int], int, list[OwnedConnection]]:
        """Each owner's connections get that owner's frames; returns the targets, the indexes of
        the records whose owner's connections could not be listed, the number of owners, and the
        connections whose token has expired (they get no frame)."""
        by_owner: dict[str, list[_IndexedFrame]] = {}
        for index, item in enumerate(framed):
            if item.owner is None:
                logger.warning(
                    "task change without an owner pushed to nobody",
                    extra={"sequence_number": item.sequence_number},
                )
                continue
            by_owner.setdefault(item.owner, []).append((index, item.frame))
        targets: list[_Target] = []
        failures: list[int] = []
        ended: list[OwnedConnection] = []
        now = self.clock()
        for owner, frames in by_owner.items():
            try:
                connections = self.connections.of_owner(owner)
            except Exception:
                logger.exception("could not list an owner's connections", extra={"frames": len(frames)})
                failures.append(frames[0][0])
                continue
            for connection in connections:
                if connection.token_expires_at > now:
                    targets.append(_Target(connection.connection_id, frames))
                else:
                    ended.append(connection)
        return targets, failures, len(by_owner), ended

    def _end(self, connection: OwnedConnection) -> None:
        """A connection past its token's expiry: tell it why, close it, forget it. A failure is
        logged and left to the next change of its owner (or the row's TTL): the connection still
        gets no task frame."""
        connection_id = connection.connection_id
        try:
            close_with(self.poster, connection_id, encode_frame(expired(connection.token_expires_at)))
            self.connections.remove(connection_id)
        except Exception as error:
            logger.warning(
                "could not close a connection whose token expired",
                extra={"connection_id": connection_id, "error": repr(error)},
            )
            return
        logger.info("connection closed: its token expired", extra={"connection_id": connection_id})

    def _deliver(self, target: _Target, time_left: Callable[[], float] | None) -> _Delivery:
        for position, (index, frame) in enumerate(target.frames):
            if time_left is not None and time_left() < POST_RESERVE_SECONDS:
                return _Delivery(target.connection_id, sent=position, failed_at=index, late=True)
            try:
                self.poster.post(target.connection_id, frame)
            except ConnectionGoneError:
                return _Delivery(target.connection_id, sent=position, gone=True)
            except Exception as error:  # any other failure: retry via the stream
                logger.warning(
                    "frame not delivered", extra={"connection_id": target.connection_id, "error": repr(error)}
                )
                return _Delivery(target.connection_id, sent=position, failed_at=index)
        return _Delivery(target.connection_id, sent=len(target.frames))


def _owner_of(image: Mapping[str, Any]) -> str | None:
    return owner_or_none(image.get(table_schema.TASK_OWNER))


def _plain_int(value: object) -> int | None:
    return int(value) if isinstance(value, int | Decimal) else None
