"""SQS event source mappings: Lambda's queue poller, run locally.

Like Lambda, the poller only receives and deletes: visibility timeouts, receive counts and
dead-lettering at maxReceiveCount stay the queue's (moto's). A success deletes the batch; with
ReportBatchItemFailures only the listed messages stay; an error, a timeout or a malformed failure
list deletes nothing. Messages no FilterCriteria pattern matches are deleted uninvoked.

`--fault-duplicate-rate P` delivers each received message, with probability P, a second time in
a separate invocation concurrent with its batch, as SQS's at-least-once delivery can. That
invocation deletes nothing: a second copy has its own receipt handle, so its acknowledgement
cannot remove the first copy.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from dataclasses import dataclass
from typing import Any

from local.console import Console
from local.emulator.aws_json import AwsError, AwsJsonClient, EmulatorRestarting, describe_call_error
from local.faults.injection import Dice, SqsMappingStats
from local.runtime.pool import Invoke
from local.sources.batch_results import evaluate_batch
from local.sources.event_filter import matches_any, sqs_filter_view
from local.template.model import EventSourceMappingSpec

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


@dataclass(frozen=True)
class DuplicateDeliveries:
    """The duplicate-delivery fault of one mapping."""

    rate: float
    dice: Dice
    max_delay_seconds: float = 0.05  # the copy starts up to this much after its batch


class SqsPoller:
    def __init__(
        self,
        source: SqsSource,
        aws: AwsJsonClient,
        invoke: Invoke,
        console: Console,
        *,
        duplicates: DuplicateDeliveries | None = None,
        stats: SqsMappingStats | None = None,
    ) -> None:
        self.source = source
        self._aws = aws
        self._invoke = invoke
        self._console = console
        self._duplicates = duplicates
        self.stats = stats or SqsMappingStats(source.function_name, source.queue_name, False)
        self._tasks: list[asyncio.Task[None]] = []
        self._copies: set[asyncio.Task[None]] = set()
        self._receiving: set[asyncio.Task[Any]] = set()
        self._stopping = False

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        for _ in range(self.source.pollers):
            self._tasks.append(loop.create_task(self._run()))

    async def stop(self, drain_seconds: float = 0.0) -> None:
        """Stop polling; batches being processed get up to `drain_seconds` to finish and be
        deleted (a batch cut short comes back with a receive of its retry budget spent). With a
        drain, the receives under way are awaited, not abandoned: the stack has closed the
        emulator's receives first (Emulator.close_receives), so they return within a second, and
        what they took is processed like any batch in progress."""
        self._stopping = True
        for task in [*self._copies, *(self._receiving if drain_seconds <= 0 else ())]:
            task.cancel()
        if drain_seconds > 0 and self._tasks:
            await asyncio.wait(self._tasks, timeout=drain_seconds)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, *self._copies, return_exceptions=True)

    async def _run(self) -> None:
        task = asyncio.current_task()
        assert task is not None
        while not self._stopping:
            try:
                self._receiving.add(task)
                try:
                    records = await self._receive_batch()
                finally:
                    self._receiving.discard(task)
                if records:
                    await self._deliver(records)
            except asyncio.CancelledError:
                raise
            except EmulatorRestarting:
                continue  # the next receive waits until it is back
            except Exception as error:  # a bug or a silent embedded AWS: keep polling, say it
                self._console.warn(f"SQS poller {self.source.queue_name}: {describe_call_error(error)}")
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
            if not more and self._stopping:
                break  # the receives are closed: deliver what was taken
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
        self.stats.batches += 1
        self.stats.messages += len(records)
        self._maybe_duplicate(records)
        result = await self._invoke({"Records": records})
        ids = [r["messageId"] for r in records]
        outcome = evaluate_batch(result, ids, source.spec.report_batch_item_failures)
        keep = set(outcome.failed_ids)
        processed = [r for r in records if r["messageId"] not in keep]
        self.stats.consumed([str(r.get("body", "")) for r in processed])
        await self._delete(processed)
        count = len(records)
        self._console.invocation(
            source.function_name,
            result,
            outcome.summary,
            f"sqs {source.queue_name}: {count} message{'s' if count != 1 else ''}",
        )
        if outcome.problem:
            self._console.warn(f"{source.function_name}: {outcome.problem}: the whole batch is retried")

    def _maybe_duplicate(self, records: list[dict[str, Any]]) -> None:
        duplicates = self._duplicates
        if duplicates is None:
            return
        copies = [record for record in records if duplicates.dice.roll(duplicates.rate)]
        if not copies:
            return
        self.stats.duplicate_invocations += 1
        self.stats.duplicate_messages += len(copies)
        delay = duplicates.dice.uniform(0.0, duplicates.max_delay_seconds)
        task = asyncio.get_running_loop().create_task(self._deliver_copy(copies, delay))
        self._copies.add(task)
        task.add_done_callback(self._copies.discard)

    async def _deliver_copy(self, records: list[dict[str, Any]], delay: float) -> None:
        """A second delivery of `records` (local fault): invoked, logged, never deleted."""
        await asyncio.sleep(delay)
        try:
            result = await self._invoke({"Records": records})
        except Exception as error:  # the stack is stopping
            self._console.warn(f"SQS poller {self.source.queue_name}: duplicate delivery: {error!r}")
            return
        outcome = evaluate_batch(
            result, [r["messageId"] for r in records], self.source.spec.report_batch_item_failures
        )
        count = len(records)
        self._console.invocation(
            self.source.function_name,
            result,
            outcome.summary,
            f"sqs {self.source.queue_name}: {count} message{'s' if count != 1 else ''} "
            "(local fault: duplicate delivery)",
        )

    async def _delete(self, records: list[dict[str, Any]]) -> None:
        for start in range(0, len(records), 10):
            chunk = records[start : start + 10]
            entries = [{"Id": str(i), "ReceiptHandle": r["receiptHandle"]} for i, r in enumerate(chunk)]
            with contextlib.suppress(AwsError):
                response = await self._aws.sqs(
                    "DeleteMessageBatch", {"QueueUrl": self.source.queue_url, "Entries": entries}
                )
                failed = set()
                for failure in response.get("Failed", []):
                    failed.add(str(failure.get("Id")))
                    self._console.warn(
                        f"{self.source.queue_name}: delete failed ({failure.get('Code')}): "
                        "the message will be delivered again"
                    )
                self.stats.deleted += len(chunk) - len(failed)
