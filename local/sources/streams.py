"""DynamoDB stream event source mappings: Lambda's stream poller, run locally.

One batch at a time per shard (order kept), read through moto's dynamodbstreams API, with
Lambda's rules for FilterCriteria, ReportBatchItemFailures (retry from the lowest failed
SequenceNumber), BisectBatchOnFunctionError, MaximumRetryAttempts (-1: until the records are
MaximumRecordAgeInSeconds old) and MaximumRecordAgeInSeconds; a record given up on is skipped
with a loud line.

With `checkpoints` (a durable stack, local/state/stack_state.py) the mapping saves the sequence
number of the last record it finished after each batch and starts after it, like Lambda's own
checkpoint: after a restart of the stack, or of the embedded AWS (which forgets every iterator).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from local.console import Console
from local.emulator.aws_json import AwsError, AwsJsonClient, EmulatorRestarting, describe_call_error
from local.runtime.pool import Invoke
from local.sources.batch_results import evaluate_batch, stream_retry_position
from local.sources.event_filter import matches_any
from local.state.store import sequence_key
from local.template.model import EventSourceMappingSpec

IDLE_POLL_SECONDS = 0.1  # Lambda polls each shard 4 times a second; locally a little faster
RETRY_BACKOFF_BASE = 0.1
RETRY_BACKOFF_CAP = 2.0


@dataclass(frozen=True)
class StreamSource:
    spec: EventSourceMappingSpec
    function_name: str
    table_name: str  # as the console shows it
    stream_arn: str
    region: str
    table: str = ""  # the table's name (where its checkpoint is kept)


class Checkpoints(Protocol):
    def checkpoint(self, mapping: str, table: str, starting_position: str) -> str:
        """The sequence key (local/state/store.py) of the last record the mapping finished."""
        ...

    def save_checkpoint(self, mapping: str, table: str, sequence: str) -> None: ...


def _sequence(record: dict[str, Any]) -> str:
    return str(record["dynamodb"]["SequenceNumber"])


@dataclass(eq=False)
class StreamPoller:
    source: StreamSource
    aws: AwsJsonClient
    invoke: Invoke
    console: Console
    checkpoints: Checkpoints | None = None
    skipped_records: int = field(default=0, init=False)
    _task: asyncio.Task[None] | None = field(default=None, init=False)
    _busy: bool = field(default=False, init=False)  # a batch is being processed
    _stopping: bool = field(default=False, init=False)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self, drain_seconds: float = 0.0) -> None:
        """Stop reading; a batch being processed gets up to `drain_seconds` to finish."""
        self._stopping = True
        if self._task is None:
            return
        if self._busy and drain_seconds > 0:
            await asyncio.wait([self._task], timeout=drain_seconds)
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        iterator: str | None = None
        while not self._stopping:
            try:
                if iterator is None:
                    iterator = await self._first_iterator()
                records, iterator = await self._read_batch(iterator)
                if not records:
                    await asyncio.sleep(IDLE_POLL_SECONDS)
                    continue
                self._busy = True
                try:
                    await self._process(records)
                finally:
                    self._busy = False
                if self.checkpoints is not None:
                    spec = self.source.spec
                    self.checkpoints.save_checkpoint(
                        spec.logical_id, self.source.table, sequence_key(_sequence(records[-1]))
                    )
            except asyncio.CancelledError:
                raise
            except Exception as error:
                if self.checkpoints is not None:
                    iterator = None  # from the checkpoint again: a restarted emulator knows no iterator
                # An iterator of the emulator before its restart has expired: the checkpoint gives a
                # new one, quietly.
                expired = isinstance(error, AwsError) and error.code == "ExpiredIteratorException"
                expected = isinstance(error, EmulatorRestarting) or (expired and self.checkpoints is not None)
                if not expected:
                    self.console.warn(f"stream poller {self.source.table_name}: {describe_call_error(error)}")
                    await asyncio.sleep(1)

    async def _first_iterator(self) -> str:
        description = await self.aws.streams("DescribeStream", {"StreamArn": self.source.stream_arn})
        shard = description["StreamDescription"]["Shards"][0]
        position = "LATEST" if self.source.spec.starting_position == "LATEST" else "TRIM_HORIZON"
        request = {
            "StreamArn": self.source.stream_arn,
            "ShardId": shard["ShardId"],
            "ShardIteratorType": position,
        }
        if self.checkpoints is not None:
            after = int(self.checkpoints.checkpoint(self.source.spec.logical_id, self.source.table, position))
            if after >= int(shard["SequenceNumberRange"]["StartingSequenceNumber"]):
                request |= {"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": str(after)}
            else:  # every record still kept comes after the checkpoint
                request["ShardIteratorType"] = "TRIM_HORIZON"
        response = await self.aws.streams("GetShardIterator", request)
        return str(response["ShardIterator"])

    async def _get_records(self, iterator: str, limit: int) -> tuple[list[dict[str, Any]], str]:
        response = await self.aws.streams("GetRecords", {"ShardIterator": iterator, "Limit": limit})
        return response.get("Records", []), str(response.get("NextShardIterator") or iterator)

    async def _read_batch(self, iterator: str) -> tuple[list[dict[str, Any]], str]:
        spec = self.source.spec
        records, iterator = await self._get_records(iterator, min(spec.batch_size, 1000))
        if not records or spec.batching_window_seconds <= 0:
            return records, iterator
        deadline = time.monotonic() + spec.batching_window_seconds
        while len(records) < spec.batch_size and time.monotonic() < deadline:
            more, iterator = await self._get_records(iterator, min(spec.batch_size - len(records), 1000))
            if more:
                records.extend(more)
            else:
                await asyncio.sleep(min(IDLE_POLL_SECONDS, max(0.0, deadline - time.monotonic())))
        return records, iterator

    async def _process(self, records: list[dict[str, Any]]) -> None:
        for record in records:
            record["eventSourceARN"] = self.source.stream_arn
            record["awsRegion"] = self.source.region
        patterns = self.source.spec.filter_patterns
        batch = [record for record in records if matches_any(patterns, record)]
        if batch:
            await self._deliver(batch)

    def _drop_expired(self, batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
        max_age = self.source.spec.maximum_record_age_seconds
        if max_age < 0:
            return batch
        oldest_allowed = time.time() - max_age
        fresh = [
            r for r in batch if float(r["dynamodb"].get("ApproximateCreationDateTime", 0)) >= oldest_allowed
        ]
        if len(fresh) < len(batch):
            self._skip(batch[: len(batch) - len(fresh)], f"older than MaximumRecordAgeInSeconds {max_age}")
        return fresh

    def _skip(self, records: list[dict[str, Any]], why: str) -> None:
        self.skipped_records += len(records)
        first, last = _sequence(records[0]), _sequence(records[-1])
        self.console.event(
            f"!!! {self.source.function_name}: SKIPPED {len(records)} stream record(s) of "
            f"{self.source.table_name} (SequenceNumber {first}..{last}): {why}"
        )

    async def _deliver(self, batch: list[dict[str, Any]]) -> None:
        spec = self.source.spec
        attempt = 0
        while batch:
            batch = self._drop_expired(batch)
            if not batch:
                return
            result = await self.invoke({"Records": batch})
            outcome = evaluate_batch(result, [_sequence(r) for r in batch], spec.report_batch_item_failures)
            count = len(batch)
            self.console.invocation(
                self.source.function_name,
                result,
                outcome.summary,
                f"stream {self.source.table_name}: {count} record{'s' if count != 1 else ''}"
                + (f" (retry {attempt})" if attempt else ""),
            )
            if outcome.problem:
                self.console.warn(f"{self.source.function_name}: {outcome.problem}: the whole batch fails")
            if outcome.succeeded:
                return
            if outcome.complete_failure and spec.bisect_on_error and len(batch) > 1:
                half = len(batch) // 2
                await self._deliver(batch[:half])
                await self._deliver(batch[half:])
                return
            if not outcome.complete_failure:
                start = int(stream_retry_position(outcome.failed_ids))
                batch = [r for r in batch if int(_sequence(r)) >= start]
            attempt += 1
            if 0 <= spec.maximum_retry_attempts < attempt:
                self._skip(
                    batch,
                    f"MaximumRetryAttempts {spec.maximum_retry_attempts} exhausted ({outcome.summary})",
                )
                return
            await asyncio.sleep(min(RETRY_BACKOFF_CAP, RETRY_BACKOFF_BASE * 2 ** (attempt - 1)))
