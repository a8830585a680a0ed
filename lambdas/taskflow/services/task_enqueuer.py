"""TaskEnqueuer: TaskTable stream -> TaskQueue messages {"taskId", "run", "owner"}.

A message is sent for a new task (INSERT) and for a retried one (MODIFY error -> pending, a
new run). The table write comes first and SQS follows from its stream, so a task accepted by
the API is never lost even if SQS is down at that moment: the stream record is retried.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from taskflow.clients.queue_client import MessageQueue
from taskflow.domain.errors import MalformedMessageError
from taskflow.domain.messages import TaskMessage
from taskflow.domain.status import RETRIED, TaskStatus
from taskflow.observability import logger
from taskflow.services.stream_changes import StreamChange


def message_for(change: StreamChange) -> TaskMessage | None:
    """The queue message a change calls for, or None (lease claims, attempts, finishes...)."""
    new, old = change.new_image or {}, change.old_image or {}
    starts_run = (change.event_name == "INSERT" and new.get("status") == TaskStatus.PENDING.value) or (
        change.event_name == "MODIFY"
        and old.get("status") == RETRIED.source.value
        and new.get("status") == RETRIED.target.value
    )
    if not starts_run:
        return None
    run = new.get("run")
    # Raises MalformedMessageError for a row that is not a task (no valid taskId or run).
    return TaskMessage.from_fields(
        {
            "taskId": new.get("taskId"),
            "run": int(run) if isinstance(run, Decimal | int) else run,
            # The creating request's id travels with the message (the stream event's id if absent).
            "correlationId": new.get("correlationId") or change.event_id or None,
            "owner": new.get("owner"),
        }
    )


class TaskEnqueuer:
    def __init__(self, queue: MessageQueue) -> None:
        self._queue = queue

    def enqueue(self, changes: Sequence[StreamChange]) -> list[str]:
        """Send the messages the changes call for (SendMessageBatch, 10 per call).
        Returns the sequence numbers of the changes whose message was not sent."""
        pending: list[tuple[StreamChange, TaskMessage]] = []
        for change in changes:
            try:
                message = message_for(change)
            except MalformedMessageError as error:
                # Not a task row we can act on; retrying the record cannot fix it.
                logger.error(
                    "stream record skipped", extra={"event_id": change.event_id, "reason": str(error)}
                )
                continue
            if message is not None:
                pending.append((change, message))
        if not pending:
            return []
        failed = self._queue.send_messages([message.to_body() for _, message in pending])
        for index in failed:
            logger.warning("task not enqueued", extra={"task_id": pending[index][1].task_id})
        logger.info("tasks enqueued", extra={"sent": len(pending) - len(failed), "failed": len(failed)})
        return [pending[index][0].sequence_number for index in failed]
