"""The requests that create the template's tables and queues in moto (local/emulator/server.py
applies them before it listens, on every start and restart)."""

from __future__ import annotations

import json
import math
from typing import Any

from local.template.model import QueueSpec, StackModel, TableSpec
from local.template.values import LocalValues


def scale_seconds(value: str | int, time_scale: float) -> str:
    """A queue time scaled by --time-scale: whole seconds, at least 1 unless it was 0."""
    seconds = int(value)
    if seconds <= 0 or time_scale == 1.0:
        return str(seconds)
    return str(max(1, math.ceil(seconds * time_scale)))


def create_table_request(table: TableSpec) -> dict[str, Any]:
    request: dict[str, Any] = {
        "TableName": table.name,
        "KeySchema": table.key_schema,
        "AttributeDefinitions": table.attribute_definitions,
        "BillingMode": "PAY_PER_REQUEST",
    }
    if table.global_secondary_indexes:
        request["GlobalSecondaryIndexes"] = table.global_secondary_indexes
    if table.local_secondary_indexes:
        request["LocalSecondaryIndexes"] = table.local_secondary_indexes
    if table.stream_view_type:
        request["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": table.stream_view_type}
    return request


def create_queue_request(queue: QueueSpec, values: LocalValues, time_scale: float) -> dict[str, Any]:
    attributes = dict(queue.attributes)
    for key in ("VisibilityTimeout", "DelaySeconds"):
        if key in attributes:
            attributes[key] = scale_seconds(attributes[key], time_scale)
    if "VisibilityTimeout" not in attributes and time_scale != 1.0:
        attributes["VisibilityTimeout"] = scale_seconds(30, time_scale)  # SQS's default, scaled
    if queue.dead_letter_target and queue.max_receive_count:
        attributes["RedrivePolicy"] = json.dumps(
            {
                "deadLetterTargetArn": values.queue_arn(queue.dead_letter_target),
                "maxReceiveCount": queue.max_receive_count,
            }
        )
    return {"QueueName": queue.name, "Attributes": attributes}


def setup_requests(model: StackModel, values: LocalValues, time_scale: float) -> list[dict[str, Any]]:
    """{"service", "action", "payload"} for each table (and its TTL setting), then each queue."""
    requests = []
    for table in model.tables.values():
        requests.append(("dynamodb", "CreateTable", create_table_request(table)))
        if table.ttl_attribute:
            specification = {"AttributeName": table.ttl_attribute, "Enabled": True}
            payload = {"TableName": table.name, "TimeToLiveSpecification": specification}
            requests.append(("dynamodb", "UpdateTimeToLive", payload))
    for queue in queues_in_creation_order(model):
        requests.append(("sqs", "CreateQueue", create_queue_request(queue, values, time_scale)))
    return [dict(zip(("service", "action", "payload"), request, strict=True)) for request in requests]


def queues_in_creation_order(model: StackModel) -> list[QueueSpec]:
    """Every dead-letter queue before the queues that redrive to it."""
    ordered: list[QueueSpec] = []
    created: set[str] = set()
    remaining = list(model.queues.values())
    while remaining:
        ready = [
            q
            for q in remaining
            if q.dead_letter_target in (None, *created) or q.dead_letter_target not in model.queues
        ]
        if not ready:  # a redrive cycle: CloudFormation would refuse it too
            raise ValueError("queues redrive to each other in a cycle")
        for queue in ready:
            ordered.append(queue)
            created.add(queue.logical_id)
            remaining.remove(queue)
    return ordered
