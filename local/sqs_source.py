"""SQS event source mappings: Lambda's queue poller, run locally.

Like Lambda, the poller only receives and deletes: visibility timeouts, receive counts and
dead-lettering at maxReceiveCount stay the queue's (moto's). Per batch:

* success -> every message is deleted;
* ReportBatchItemFailures with failures -> only the listed messages stay (they come back when
  their visibility timeout, possibly changed by the function, expires); all others are deleted;
* error, timeout or a malformed failure list -> nothing is deleted: the whole batch comes back.

Messages that match no FilterCriteria pattern are deleted without an invocation, as Lambda
does. `pollers` batches run concurrently (ScalingConfig.MaximumConcurrency, capped locally).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from local.aws_json import AwsError, AwsJsonClient
from local.batch_results import evaluate_batch
from local.console import Console
from local.event_filter import matches_any, sqs_filter_view
from local.lambda_runtime import InvocationResult
from local.stack_model import EventSourceMappingSpec

Invoke = Callable[[Any], Awaitable[InvocationResult]]
LONG_POLL_SECONDS = 20


@dataclass(frozen=True)
class SqsSource:
    spec: EventSourceMappingSpec
    function_name: str
    queue_name: str
    queue_url: str
    queue_arn: str
    region: str
    pollers: int


def lambda_sqs_record(message: dict[str, Any], queue_arn: str, region: str) -> dict[str, Any]:
    """A ReceiveMessage message in the shape of a Lambda SQS event record."""
    attributes: dict[str, Any] = {}
    for name, value in (message.get("MessageAttributes") or {}).items():
        converted: dict[str, Any] = {
            "stringListValues": value.get("StringListValues", []),
            "binaryListValues": value.get("BinaryListValues", []),
            "dataType": value.get("DataType"),
        }
        if "StringValue" in value:
            converted["stringValue"] = value["StringValue"]
        if "BinaryValue" in value:
            converted["binaryValue"] = value["BinaryValue"]
        attributes[name] = converted
    record = {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message.get("Body", ""),
        "attributes": dict(message.get("Attributes") or {}),
        "messageAttributes": attributes,
        "md5OfBody": message.get("MD5OfBody", ""),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }
    if "MD5OfMessageAttributes" in message:
        record["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
    return record


class SqsPoller:
    def __init__(self, source: SqsSource, aws: AwsJsonClient, invoke: Invoke, console: Console) -> None:
        self.source = source
        self._aws = aws
        self._invoke = invoke
        self._console = console
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        for _ in range(self.source.pollers):
            self._tasks.append(loop.create_task(self._run()))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            try:
                records = await self._receive_batch()
                if records:
                    await self._deliver(records)
            except asyncio.CancelledError:
                raise
            except Exception as error:  # moto restarting, a bug: keep polling, say it
                self._console.warn(f"SQS poller {self.source.queue_name}: {error!r}")
                await asyncio.sleep(1)

    async def _receive(self, count: int, wait_seconds: int) -> list[dict[str, Any]]:
        response = await self._aws.sqs(
            "ReceiveMessage",
            {
                "QueueUrl": self.source.queue_url,
                "MaxNumberOfMessages": count,
                "WaitTimeSeconds": wait_seconds,
                "MessageSystemAttributeNames": ["All"],
                "MessageAttributeNames": ["All"],
            },
            timeout=wait_seconds + 30,
        )
        messages: list[dict[str, Any]] = response.get("Messages", [])
        return messages

    async def _receive_batch(self) -> list[dict[str, Any]]:
        spec = self.source.spec
        batch = await self._receive(min(10, spec.batch_size), LONG_POLL_SECONDS)
        if not batch or spec.batching_window_seconds <= 0:
            return batch
        deadline = time.monotonic() + spec.batching_window_seconds
        while len(batch) < spec.batch_size:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            more = await self._receive(
                min(10, spec.batch_size - len(batch)), min(LONG_POLL_SECONDS, math.ceil(remaining))
            )
            batch.extend(more)
        return batch

    async def _deliver(self, messages: list[dict[str, Any]]) -> None:
        source = self.source
        records = [lambda_sqs_record(m, source.queue_arn, source.region) for m in messages]
        patterns = source.spec.filter_patterns
        if patterns:
            dropped = [r for r in records if not matches_any(patterns, sqs_filter_view(r))]
            records = [r for r in records if r not in dropped]
            await self._delete(dropped)
            if not records:
                return
        result = await self._invoke({"Records": records})
        ids = [r["messageId"] for r in records]
        outcome = evaluate_batch(result, ids, source.spec.report_batch_item_failures)
        keep = set(outcome.failed_ids)
        await self._delete([r for r in records if r["messageId"] not in keep])
        count = len(records)
        self._console.invocation(
            source.function_name,
            result,
            outcome.summary,
            f"sqs {source.queue_name}: {count} message{'s' if count != 1 else ''}",
        )
        if outcome.problem:
            self._console.warn(f"{source.function_name}: {outcome.problem}: the whole batch is retried")

    async def _delete(self, records: list[dict[str, Any]]) -> None:
        for start in range(0, len(records), 10):
            chunk = records[start : start + 10]
            entries = [{"Id": str(i), "ReceiptHandle": r["receiptHandle"]} for i, r in enumerate(chunk)]
            with contextlib.suppress(AwsError):
                response = await self._aws.sqs(
                    "DeleteMessageBatch", {"QueueUrl": self.source.queue_url, "Entries": entries}
                )
                for failure in response.get("Failed", []):
                    self._console.warn(
                        f"{self.source.queue_name}: delete failed ({failure.get('Code')}): "
                        "the message will be delivered again"
                    )
