"""TaskNotifier: TaskTable stream -> one WebSocket frame per visible task change, to every
open connection.

The connection list is read once per invocation (one paginated Scan of the ConnectionTable,
key only) and reused for every record of the batch. Each connection gets the batch's frames in
stream order from its own worker thread, so one slow or broken connection never holds up the
others. A 410 Gone deletes the connection. Any other failure stops that connection's sequence
(sending it later frames first would reorder its view) and fails the record it was on, plus the
later framed records it did not get: the stream redelivers from the lowest failed record.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal
from typing import Final

from taskflow.clients.connections_client import ConnectionGoneError, FramePoster
from taskflow.domain.notifications import encode_frame, is_visible_change, task_frame
from taskflow.observability import MetricName, count, logger
from taskflow.repositories.connection_repository import ConnectionRepository
from taskflow.services.stream_changes import StreamChange

MAX_WORKERS: Final = 16


@dataclass(frozen=True)
class _Delivery:
    connection_id: str
    sent: int  # frames delivered
    gone: bool = False
    failed_at: int | None = None  # index of the first frame not delivered


class TaskNotifier:
    def __init__(
        self, connections: ConnectionRepository, poster: FramePoster, max_workers: int = MAX_WORKERS
    ) -> None:
        self._connections = connections
        self._poster = poster
        self._max_workers = max_workers

    def notify(self, changes: Sequence[StreamChange]) -> list[str]:
        """Push the frames the changes call for. Returns the sequence numbers of the records
        that did not reach every live connection."""
        visible = [
            (change, change.new_image)
            for change in changes
            if change.new_image and is_visible_change(change.old_image, change.new_image)
        ]
        for _, image in visible:  # one line per task change, with the task's correlation id
            logger.info(
                "task change to push",
                extra={
                    "task_id": image.get("taskId"),
                    "correlation_id": image.get("correlationId"),
                    "status": image.get("status"),
                    "version": _plain_int(image.get("version")),
                },
            )
        framed = [(change.sequence_number, encode_frame(task_frame(image))) for change, image in visible]
        if not framed:
            return []
        try:
            connection_ids = self._connections.list_ids()
        except Exception:
            logger.exception("could not list connections")
            return [sequence_number for sequence_number, _ in framed]
        if not connection_ids:
            return []

        frames = [frame for _, frame in framed]
        workers = max(1, min(self._max_workers, len(connection_ids)))
        with ThreadPoolExecutor(max_workers=workers) as pool:
            deliveries = list(pool.map(lambda cid: self._deliver(cid, frames), connection_ids))

        gone = [d.connection_id for d in deliveries if d.gone]
        for connection_id in gone:
            try:
                self._connections.remove(connection_id)
            except Exception as error:  # the TTL removes it eventually
                logger.warning(
                    "could not delete gone connection",
                    extra={"connection_id": connection_id, "error": repr(error)},
                )
        count(MetricName.CONNECTIONS_GONE, len(gone))
        count(MetricName.NOTIFICATIONS_SENT, sum(d.sent for d in deliveries))

        failures = [d.failed_at for d in deliveries if d.failed_at is not None]
        logger.info(
            "notifications sent",
            extra={
                "frames": len(frames),
                "connections": len(connection_ids),
                "gone": len(gone),
                "failed": len(failures),
            },
        )
        if not failures:
            return []
        return [sequence_number for sequence_number, _ in framed[min(failures) :]]

    def _deliver(self, connection_id: str, frames: list[bytes]) -> _Delivery:
        for index, frame in enumerate(frames):
            try:
                self._poster.post(connection_id, frame)
            except ConnectionGoneError:
                return _Delivery(connection_id, sent=index, gone=True)
            except Exception as error:  # any other failure: retry via the stream
                logger.warning(
                    "frame not delivered", extra={"connection_id": connection_id, "error": repr(error)}
                )
                return _Delivery(connection_id, sent=index, failed_at=index)
        return _Delivery(connection_id, sent=len(frames))


def _plain_int(value: object) -> int | None:
    return int(value) if isinstance(value, int | Decimal) else None
