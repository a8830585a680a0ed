"""TaskTable stream records, as plain values (the enqueuer and the notifier read the same stream)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import (
    DynamoDBRecord,
    DynamoDBStreamEvent,
)

from taskflow.observability import logger


@dataclass(frozen=True)
class StreamChange:
    sequence_number: str  # the record's itemIdentifier in a partial batch response
    event_id: str
    event_name: str  # INSERT | MODIFY | REMOVE
    old_image: Mapping[str, Any] | None
    new_image: Mapping[str, Any] | None


# What the record wrappers raise for a record they cannot read (an unknown attribute type,
# a number that is not one, an unknown eventName).
_UNREADABLE = (TypeError, ValueError, KeyError, AttributeError, ArithmeticError)


def stream_changes(event: Mapping[str, Any]) -> list[StreamChange]:
    """Every readable record of a DynamoDB stream event, in stream order.

    An unreadable record is logged and left out: retrying it could never succeed, and on a
    mapping that retries until the record expires it would block its shard for 24 hours."""
    changes = []
    for record in DynamoDBStreamEvent(dict(event)).records:
        try:
            changes.append(_change(record))
        except _UNREADABLE as error:
            logger.error(
                "unreadable stream record skipped",
                extra={"event_id": record.get("eventID"), "reason": repr(error)},
            )
    return changes


def _change(record: DynamoDBRecord) -> StreamChange:
    stream_record = record.dynamodb
    return StreamChange(
        sequence_number=str(stream_record.sequence_number if stream_record else ""),
        event_id=str(record.event_id or ""),
        event_name=record.event_name.name if record.event_name else "",
        old_image=(stream_record.old_image or None) if stream_record else None,
        new_image=(stream_record.new_image or None) if stream_record else None,
    )


def batch_item_failures(sequence_numbers: list[str]) -> dict[str, Any]:
    """A partial batch response for a stream: Lambda resumes from the lowest sequence number
    listed, so every record from there on is delivered again."""
    return {"batchItemFailures": [{"itemIdentifier": number} for number in sequence_numbers]}
