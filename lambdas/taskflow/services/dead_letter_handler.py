"""DeadLetterHandler: a TaskDLQ message -> the task becomes `error` (once).

The write is conditional on status pending and the message's run, so a redelivered DLQ message,
or one for a task that since succeeded or was retried, changes nothing. While another message of
the run holds a live lease (a duplicate was dead-lettered while the task's own message runs or
backs off), the message is reported failed and comes back after the queue's visibility timeout:
by then that delivery has succeeded, or failed for good and dead-lettered itself. Any other failure
(DynamoDB unavailable, a task item edited into something that is not a task) is logged with its
traceback and retried the same way. A malformed message is logged and acknowledged: nothing can fix
it, and it must not loop.
"""

from __future__ import annotations

from taskflow.domain.errors import MalformedMessageError, TaskLeasedError
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
            try:
                dead_lettered = self._tasks.mark_dead_lettered(
                    message.task_id,
                    message.run,
                    # Kept only if no attempt recorded an error: every delivery died before it could
                    # (a crash or timeout mid-batch also costs the batch's unreached messages one).
                    default_error=(
                        f"gave up after {self._max_receive_count} deliveries, none of which completed "
                        "an attempt (the processor crashed or timed out)"
                    ),
                    holder=message_id,
                    owner=message.owner,
                )
            except TaskLeasedError as leased:
                logger.info(
                    "another message of this run holds a live lease; dead-lettered message deferred",
                    extra={"lease_owner": leased.holder, "lease_expires_at": leased.until},
                )
                raise
            except Exception:
                # Reported failed, so the message comes back after the DLQ's visibility timeout; the
                # DeadLetterQueueNotDrained alarm's runbook starts from this line.
                logger.exception("could not mark the task failed; the dead-lettered message comes back later")
                raise
            if dead_lettered is None:
                logger.info("dead-lettered message for a finished, retried or absent task: no effect")
                return
            count(MetricName.TASK_DEAD_LETTERED)
            logger.warning(
                "task dead-lettered",
                extra={"retries": dead_lettered.retries, "error": dead_lettered.error_message},
            )
