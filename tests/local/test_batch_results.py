"""Partial batch responses are read exactly as Lambda documents them."""

import pytest

from local.runtime.pool import InvocationResult
from local.sources.batch_results import evaluate_batch, stream_retry_position

IDS = ["m1", "m2", "m3"]


def ok(payload):
    return InvocationResult("ok", 1.0, "r", payload=payload)


@pytest.mark.parametrize(
    "payload", [None, {}, "", {"batchItemFailures": []}, {"batchItemFailures": None}, {"x": 1}]
)
def test_empty_responses_are_complete_success(payload):
    outcome = evaluate_batch(ok(payload), IDS, report_batch_item_failures=True)
    assert outcome.succeeded
    assert outcome.failed_ids == ()


def test_listed_items_are_the_only_failures():
    payload = {"batchItemFailures": [{"itemIdentifier": "m2"}, {"itemIdentifier": "m2"}]}
    outcome = evaluate_batch(ok(payload), IDS, report_batch_item_failures=True)
    assert outcome.failed_ids == ("m2",)
    assert not outcome.complete_failure
    assert outcome.summary == "partial 1 failed"


@pytest.mark.parametrize(
    "payload",
    [
        {"batchItemFailures": [{"itemIdentifier": "not-in-batch"}]},
        {"batchItemFailures": [{"itemIdentifier": ""}]},
        {"batchItemFailures": [{"itemIdentifier": None}]},
        {"batchItemFailures": [{"id": "m1"}]},
        {"batchItemFailures": "m1"},
        ["m1"],
        "ok",
    ],
)
def test_malformed_responses_fail_the_whole_batch(payload):
    outcome = evaluate_batch(ok(payload), IDS, report_batch_item_failures=True)
    assert outcome.complete_failure
    assert outcome.failed_ids == tuple(IDS)
    assert outcome.problem


def test_errors_and_timeouts_fail_the_whole_batch():
    error = InvocationResult("error", 1.0, "r", error={"errorType": "KeyError", "errorMessage": "'x'"})
    timeout = InvocationResult("timeout", 1.0, "r")
    assert evaluate_batch(error, IDS, True).failed_ids == tuple(IDS)
    assert evaluate_batch(error, IDS, True).summary.startswith("error KeyError")
    assert evaluate_batch(timeout, IDS, False).summary == "timeout"


def test_without_report_batch_item_failures_any_response_is_success():
    payload = {"batchItemFailures": [{"itemIdentifier": "m1"}]}
    assert evaluate_batch(ok(payload), IDS, report_batch_item_failures=False).succeeded


def test_a_stream_batch_restarts_at_the_lowest_failed_sequence_number():
    assert stream_retry_position(
        ["1100000000000000000010", "1100000000000000000009", "1100000000000000000011"]
    ) == ("1100000000000000000009")
