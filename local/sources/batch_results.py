"""How Lambda reads a batch invocation's result (SQS and stream event source mappings).

With ReportBatchItemFailures the function returns `{"batchItemFailures": [{"itemIdentifier": id}]}`
(the SQS messageId, or the stream record's SequenceNumber). Lambda's documented rules: a null or
empty response or list is a complete success; a malformed one (each case in `batch_item_failures`)
fails the whole batch, as a raised error or a timeout does. Without ReportBatchItemFailures, any
response is a success.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from local.runtime.pool import InvocationResult


@dataclass(frozen=True)
class BatchOutcome:
    failed_ids: tuple[str, ...]  # the items to process again (all of them on complete failure)
    complete_failure: bool
    summary: str  # for the console: "ok", "partial 2 failed", "error ...", "timeout"
    problem: str | None = None  # why a response was rejected as malformed

    @property
    def succeeded(self) -> bool:
        return not self.failed_ids and not self.complete_failure


def evaluate_batch(
    result: InvocationResult, item_ids: Sequence[str], report_batch_item_failures: bool
) -> BatchOutcome:
    all_ids = tuple(item_ids)
    if result.outcome == "timeout":
        return BatchOutcome(all_ids, True, "timeout")
    if result.outcome != "ok":
        return BatchOutcome(all_ids, True, f"error {result.error_summary()}")
    if not report_batch_item_failures:
        return BatchOutcome((), False, "ok")
    failed, problem = batch_item_failures(result.payload, all_ids)
    if problem:
        return BatchOutcome(all_ids, True, "error invalid batchItemFailures", problem)
    if failed:
        return BatchOutcome(failed, False, f"partial {len(failed)} failed")
    return BatchOutcome((), False, "ok")


def batch_item_failures(  # noqa: PLR0911 - one return per documented rule
    payload: Any, item_ids: Sequence[str]
) -> tuple[tuple[str, ...], str | None]:
    """The failed item ids of a ReportBatchItemFailures response, or a problem that fails the batch."""
    if payload in (None, {}, ""):
        return (), None
    if not isinstance(payload, dict):
        return (), f"response is {type(payload).__name__}, not an object"
    failures = payload.get("batchItemFailures")
    if failures is None:
        return (), None
    if not isinstance(failures, list):
        return (), "batchItemFailures is not a list"
    known = set(item_ids)
    failed: list[str] = []
    for entry in failures:
        identifier = entry.get("itemIdentifier") if isinstance(entry, dict) else None
        if not isinstance(identifier, str) or not identifier:
            return (), f"entry without an itemIdentifier: {entry!r}"
        if identifier not in known:
            return (), f"itemIdentifier {identifier!r} is not in the batch"
        if identifier not in failed:
            failed.append(identifier)
    return tuple(failed), None


def stream_retry_position(failed_sequence_numbers: Sequence[str]) -> str:
    """Where a stream batch restarts after a partial failure: the lowest failed SequenceNumber."""
    return min(failed_sequence_numbers, key=int)
