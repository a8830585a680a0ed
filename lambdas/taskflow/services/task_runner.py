"""TaskRunner: one TaskQueue message -> at most one effective run of the processing step.

Per message (a receive of {"taskId", "run"}, one delivery: a random token of its own):
1. claim the task's lease for this delivery (conditional: pending, same run, lease free,
   expired, or ours while we back off); not claimable -> acknowledge with no effect (finished
   task, other run, or another message owning this run), except when another delivery of this
   very message holds a live lease (SQS delivered it twice, or our earlier invocation died
   moments ago): then the message is deferred until the lease ends, since acknowledging could
   delete the only copy;
2. run `process_task(task, attempt=receiveCount)`;
3. commit with a write conditional on this delivery still holding the lease:
   success -> status success, retries = receiveCount - 1;
   failure -> retries = receiveCount (receiveCount - 1 on the final receive), errorMessage,
              then ChangeMessageVisibility to the backoff (0 on the final receive so SQS
              dead-letters it promptly) and report only this message as failed.
Never sleeps: the backoff is the message's visibility timeout.
"""

from __future__ import annotations

import random
import secrets
from dataclasses import dataclass
from typing import Final

from taskflow.clients.queue_client import MessageQueue
from taskflow.domain import processing
from taskflow.domain.backoff import retry_delay_seconds
from taskflow.domain.errors import MalformedMessageError
from taskflow.domain.messages import TaskMessage
from taskflow.domain.task import truncate_error
from taskflow.observability import MetricName, count, logger
from taskflow.repositories.task_repository import ClaimOutcome, TaskRepository

# The lease outlives the invocation by this margin (clock skew, commit latency).
LEASE_MARGIN_SECONDS: Final = 5


class AttemptFailedError(Exception):
    """This message's attempt failed; it was scheduled for redelivery (or the DLQ)."""


class AttemptDeferredError(Exception):
    """Another delivery of this message is running the step; retry when its lease ends."""


@dataclass(frozen=True)
class ReceivedMessage:
    message_id: str
    receipt_handle: str
    body: str | None
    receive_count: int


@dataclass(frozen=True)
class BackoffPolicy:
    max_receive_count: int
    base_seconds: int
    cap_seconds: int

    def delay(self, receive_count: int, rng: random.Random) -> int:
        return retry_delay_seconds(
            receive_count,
            base_seconds=self.base_seconds,
            cap_seconds=self.cap_seconds,
            max_receive_count=self.max_receive_count,
            rng=rng,
        )


class TaskRunner:
    def __init__(
        self,
        tasks: TaskRepository,
        queue: MessageQueue,
        backoff: BackoffPolicy,
        jitter_rng: random.Random | None = None,
    ) -> None:
        self._tasks = tasks
        self._queue = queue
        self._backoff = backoff
        self._rng = jitter_rng or random.Random()

    def handle(self, message: ReceivedMessage, invocation_seconds: int) -> None:
        """Process one message. Returns to acknowledge it; raises to report it failed
        (its visibility has then been set for the retry)."""
        try:
            task_message = TaskMessage.parse(message.body)
        except MalformedMessageError as error:
            # Not retryable: make it visible again at once so it reaches the DLQ after
            # maxReceiveCount quick receives, without running anything.
            logger.error(
                "malformed task message", extra={"message_id": message.message_id, "reason": str(error)}
            )
            self._set_visibility(message, 0)
            raise

        with logger.append_context_keys(
            task_id=task_message.task_id,
            run=task_message.run,
            message_id=message.message_id,
            correlation_id=task_message.correlation_id,
        ):
            delivery = secrets.token_hex(8)
            try:
                self._run(task_message, message, delivery, invocation_seconds)
            except (AttemptFailedError, AttemptDeferredError):
                raise
            except Exception:
                # The table or the queue failed us: retry this message after the backoff. Our
                # claim may have been applied even if its call failed, so hand the lease back to
                # this message (backing off), or its redelivery would wait for the lease to end.
                # Only a lease this delivery claimed: another delivery running the step keeps its.
                logger.exception(
                    "attempt could not be completed", extra={"receive_count": message.receive_count}
                )
                delay = self._backoff.delay(message.receive_count, self._rng)
                self._release_quietly(
                    task_message, message, delivery, delay + invocation_seconds + LEASE_MARGIN_SECONDS
                )
                self._set_visibility(message, delay)
                raise

    def _run(
        self, task_message: TaskMessage, message: ReceivedMessage, delivery: str, invocation_seconds: int
    ) -> None:
        lease_seconds = invocation_seconds + LEASE_MARGIN_SECONDS
        claim = self._tasks.claim(
            task_message.task_id,
            task_message.run,
            message.message_id,
            lease_seconds,
            delivery=delivery,
            owner=task_message.owner,
        )
        if (
            claim.outcome is ClaimOutcome.LEASED
            and claim.task
            and claim.task.lease_owner == message.message_id
        ):
            self._defer(message, claim.task.lease_expires_at)
        if claim.outcome is not ClaimOutcome.CLAIMED or claim.task is None:
            logger.info(
                "message acknowledged without processing",
                extra={
                    "outcome": claim.outcome.value,
                    "status": claim.task.status.value if claim.task else None,
                },
            )
            return

        attempt = message.receive_count
        final = attempt >= self._backoff.max_receive_count
        try:
            processing.process_task(claim.task, attempt)
        except Exception as error:  # the step is user code; any failure is an attempt failure
            reason = truncate_error(str(error) or type(error).__name__)
        else:
            if self._tasks.record_success(
                task_message.task_id,
                task_message.run,
                message.message_id,
                retries=attempt - 1,
                delivery=delivery,
                owner=task_message.owner,
            ):
                count(MetricName.TASK_SUCCEEDED)
                logger.info("task succeeded", extra={"attempt": attempt})
            else:
                logger.warning("lease lost before commit; result discarded", extra={"attempt": attempt})
            return

        delay = self._backoff.delay(attempt, self._rng)
        committed = self._tasks.record_failure(
            task_message.task_id,
            task_message.run,
            message.message_id,
            retries=attempt - 1 if final else attempt,
            error_message=reason,
            hold_seconds=delay + lease_seconds,
            delivery=delivery,
            owner=task_message.owner,
        )
        if not committed:
            logger.warning("lease lost before commit; failure discarded", extra={"attempt": attempt})
            return
        count(MetricName.TASK_FAILED)
        logger.warning(
            "attempt failed",
            extra={"attempt": attempt, "final": final, "retry_in_seconds": delay, "reason": reason},
        )
        self._set_visibility(message, delay)
        raise AttemptFailedError(reason)

    def _release_quietly(
        self, task_message: TaskMessage, message: ReceivedMessage, delivery: str, hold_seconds: int
    ) -> None:
        try:
            self._tasks.release(
                task_message.task_id,
                task_message.run,
                message.message_id,
                hold_seconds,
                delivery=delivery,
                owner=task_message.owner,
            )
        except Exception as error:  # best effort: the lease still ends on its own
            logger.warning("could not release the lease", extra={"error": repr(error)})

    def _defer(self, message: ReceivedMessage, lease_expires_at: int | None) -> None:
        """Come back when the other delivery's lease ends: by then it has committed (this
        message is then acknowledged as stale) or died (this message takes the lease over)."""
        now = int(self._tasks.now().timestamp())
        seconds = max(1, (lease_expires_at or now) - now + 1)
        logger.info(
            "another delivery of this message holds the lease; deferred",
            extra={"retry_in_seconds": seconds, "receive_count": message.receive_count},
        )
        self._set_visibility(message, seconds)
        raise AttemptDeferredError(message.message_id)

    def _set_visibility(self, message: ReceivedMessage, seconds: int) -> None:
        try:
            self._queue.change_visibility(message.receipt_handle, seconds)
        except Exception as error:  # best effort: the queue's own timeout applies
            logger.warning(
                "could not change message visibility",
                extra={"message_id": message.message_id, "seconds": seconds, "error": repr(error)},
            )
