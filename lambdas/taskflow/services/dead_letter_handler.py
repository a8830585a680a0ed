"""DeadLetterHandler: a TaskDLQ message -> the task becomes `error` (once).

The write is conditional on status pending and the message's run, so a redelivered DLQ message,
or one for a task that since succeeded or was retried, changes nothing. A malformed message is
logged and acknowledged: nothing can fix it, and it must not loop.
"""

from __future__ import annotations

from taskflow.domain.errors import MalformedMessageError
from taskflow.domain.messages import TaskMessage
from taskflow.observability import MetricName, count, logger
from taskflow.repositories.task_repository import TaskRepository


class DeadLetterHandler:
    def __init__(self, tasks: TaskRepository, max_receive_count: int) -> None:
        self._tasks = tasks
        self._max_receive_count = max_receive_count

    def handle(self, message_id: str, body: str | None) -> None:
        try:
            message = TaskMessage.parse(body)
        except MalformedMessageError as error:
            logger.error(
                "malformed dead-lettered message acknowledged",
                extra={"message_id": message_id, "reason": str(error), "body": (body or "")[:256]},
            )
            return
        with logger.append_context_keys(
            task_id=message.task_id,
            run=message.run,
            message_id=message_id,
            correlation_id=message.correlation_id,
        ):
            dead_lettered = self._tasks.mark_dead_lettered(
                message.task_id,
                message.run,
                # Kept only if no attempt recorded an error: every delivery died before it
                # could (a crash or timeout mid-batch also costs the batch's unreached messages one).
                default_error=(
                    f"gave up after {self._max_receive_count} deliveries, none of which completed "
                    "an attempt (the processor crashed or timed out)"
                ),
                owner=message.owner,
            )
            if dead_lettered is None:
                logger.info("dead-lettered message for a finished, retried or absent task: no effect")
                return
            count(MetricName.TASK_DEAD_LETTERED)
            logger.warning(
                "task dead-lettered",
                extra={"retries": dead_lettered.retries, "error": dead_lettered.error_message},
            )
