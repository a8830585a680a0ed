"""QueueClient: the processor's and the enqueuer's view of the TaskQueue (SQS)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final, Protocol

from taskflow.clients import aws
from taskflow.observability import logger

SEND_BATCH_LIMIT: Final = 10  # SendMessageBatch takes at most 10 entries


class MessageQueue(Protocol):
    """What the enqueuer and the processor need from a queue; tests pass in-memory fakes."""

    def send_messages(self, bodies: Sequence[str]) -> list[int]: ...

    def change_visibility(self, receipt_handle: str, timeout_seconds: int) -> None: ...


class QueueClient(aws.ClientUser):
    service_name = "sqs"

    def __init__(self, queue_url: str, client: Any | None = None) -> None:
        super().__init__(client)
        self.queue_url = queue_url

    def send_messages(self, bodies: Sequence[str]) -> list[int]:
        """Send `bodies` with SendMessageBatch (chunks of 10). Returns the indexes (into `bodies`)
        of the messages that were NOT sent; a chunk whose call failed counts whole."""
        failed: list[int] = []
        for start in range(0, len(bodies), SEND_BATCH_LIMIT):
            chunk = bodies[start : start + SEND_BATCH_LIMIT]
            entries = [{"Id": str(start + offset), "MessageBody": body} for offset, body in enumerate(chunk)]
            try:
                response = self.client.send_message_batch(QueueUrl=self.queue_url, Entries=entries)
            except Exception as error:  # the whole chunk failed, whatever the cause
                logger.warning(
                    "SendMessageBatch failed",
                    extra={"error": repr(error), "entries": len(chunk), "queue_url": self.queue_url},
                )
                failed.extend(range(start, start + len(chunk)))
                continue
            for entry in response.get("Failed", []):
                logger.warning(
                    "SendMessageBatch entry failed",
                    extra={
                        "entry_id": entry.get("Id"),
                        "code": entry.get("Code"),
                        "reason": entry.get("Message"),
                    },
                )
                failed.append(int(entry["Id"]))
        return sorted(failed)

    def change_visibility(self, receipt_handle: str, timeout_seconds: int) -> None:
        """Make a received message visible again in `timeout_seconds` (the retry backoff)."""
        try:
            self.client.change_message_visibility(
                QueueUrl=self.queue_url, ReceiptHandle=receipt_handle, VisibilityTimeout=timeout_seconds
            )
        except Exception as error:
            dependency_error = aws.as_dependency_error(error, "SQS")
            if dependency_error is not None:
                raise dependency_error from error
            raise
