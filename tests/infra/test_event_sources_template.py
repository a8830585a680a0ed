"""Event source mappings: partial batch responses everywhere, batch sizes, retries, the enqueue filter."""

from __future__ import annotations

import json

import pytest
from template_queries import (
    arn,
    changed,
    event_source_mapping,
    function_id,
    function_ids,
    properties,
    ref,
    resources,
    synth,
)

from infra.task_pipeline import ENQUEUE_MAX_RECORD_AGE_SECONDS, ENQUEUE_RETRY_ATTEMPTS
from local.sources.event_filter import matches  # what the local stack filters with

STREAM_CONSUMERS = ("EnqueueFunction", "NotifierFunction")
QUEUE_CONSUMERS = ("ProcessorFunction", "DlqConsumerFunction")


@pytest.mark.parametrize("stage_name", ["dev", "prod"])
def test_every_event_source_reports_batch_item_failures(request, stage_name):
    template = request.getfixturevalue(f"{stage_name}_template")

    mappings = resources(template, "AWS::Lambda::EventSourceMapping")
    by_function = {m["Properties"]["FunctionName"]["Ref"]: m["Properties"] for m in mappings.values()}
    ids = function_ids(template)

    assert set(by_function) == {ids[name] for name in STREAM_CONSUMERS + QUEUE_CONSUMERS}
    for mapping in by_function.values():
        assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]


@pytest.mark.parametrize("stage_name", ["dev", "prod"])
def test_processor_consumes_the_task_queue_with_capped_concurrency(request, stage_name):
    template = request.getfixturevalue(f"{stage_name}_template")
    ids = request.getfixturevalue(f"{stage_name}_ids")
    stage = request.getfixturevalue(f"{stage_name}_stage")

    mapping = event_source_mapping(template, function_id(template, "ProcessorFunction"))

    assert mapping["EventSourceArn"] == arn(ids.queue)
    assert mapping["BatchSize"] == stage.processor_batch_size
    assert mapping["ScalingConfig"] == {"MaximumConcurrency": stage.processor_max_concurrency}


def test_dlq_consumer_consumes_the_dead_letter_queue(dev_template, dev_ids, dev_stage):
    mapping = event_source_mapping(dev_template, function_id(dev_template, "DlqConsumerFunction"))

    assert mapping["EventSourceArn"] == arn(dev_ids.dlq)
    assert mapping["BatchSize"] == dev_stage.dlq_batch_size


@pytest.mark.parametrize("construct_id", STREAM_CONSUMERS)
def test_stream_consumers_read_the_task_stream_from_the_start_and_bisect_failures(
    dev_template, dev_ids, dev_stage, construct_id
):
    mapping = event_source_mapping(dev_template, function_id(dev_template, construct_id))
    batch_size = {
        "EnqueueFunction": dev_stage.enqueue_batch_size,
        "NotifierFunction": dev_stage.notifier_batch_size,
    }[construct_id]

    assert mapping["EventSourceArn"] == arn(dev_ids.task_table, "StreamArn")
    assert mapping["StartingPosition"] == "TRIM_HORIZON"
    assert mapping["BatchSize"] == batch_size
    assert mapping["BisectBatchOnFunctionError"] is True
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]


@pytest.mark.parametrize("stage_name", ["dev", "prod"])
def test_enqueue_never_drops_a_stream_record_while_sqs_is_down(request, stage_name):
    # Given SQS rejects every send, the enqueue mapping must keep the records until SQS is back:
    # unlimited retries and no age limit (a record only leaves with the stream's 24 h retention).
    template = request.getfixturevalue(f"{stage_name}_template")

    mapping = event_source_mapping(template, function_id(template, "EnqueueFunction"))

    assert mapping["MaximumRetryAttempts"] == ENQUEUE_RETRY_ATTEMPTS == -1
    assert mapping["MaximumRecordAgeInSeconds"] == ENQUEUE_MAX_RECORD_AGE_SECONDS == -1


@pytest.mark.parametrize("stage_name", ["dev", "prod"])
def test_notifier_retries_a_failed_push_a_bounded_number_of_times(request, stage_name):
    # Losing a push is not losing a task: the notifier gives up after the stage's retry budget.
    template = request.getfixturevalue(f"{stage_name}_template")
    stage = request.getfixturevalue(f"{stage_name}_stage")

    mapping = event_source_mapping(template, function_id(template, "NotifierFunction"))

    assert mapping["MaximumRetryAttempts"] == stage.notifier_retry_attempts
    assert 0 <= stage.notifier_retry_attempts <= 10_000


def test_changed_notifier_retry_budget_reaches_only_the_notifier(dev_stage):
    template = synth(changed(dev_stage, notifier_retry_attempts=3))

    notifier = event_source_mapping(template, function_id(template, "NotifierFunction"))
    enqueue = event_source_mapping(template, function_id(template, "EnqueueFunction"))

    assert notifier["MaximumRetryAttempts"] == 3
    assert enqueue["MaximumRetryAttempts"] == -1


def _patterns(template, function):
    mapping = event_source_mapping(template, function_id(template, function))
    return [json.loads(f["Pattern"]) for f in mapping["FilterCriteria"]["Filters"]]


@pytest.fixture(scope="module")
def enqueue_patterns(dev_template):
    return _patterns(dev_template, "EnqueueFunction")


def _task_image(status, lease_state=None, retries=0):
    image = {"taskId": {"S": "t-1"}, "status": {"S": status}, "retries": {"N": str(retries)}}
    if lease_state:
        image["leaseState"] = {"S": lease_state}
    return image


def _change(event_name, old=None, new=None):
    dynamodb = {"Keys": {"taskId": {"S": "t-1"}}}
    if old:
        dynamodb["OldImage"] = old
    if new:
        dynamodb["NewImage"] = new
    return {"eventName": event_name, "dynamodb": dynamodb}


@pytest.mark.parametrize(
    ("record", "notified"),
    [
        pytest.param(_change("INSERT", new=_task_image("pending")), True, id="created"),
        pytest.param(
            _change("MODIFY", _task_image("pending"), _task_image("pending", "running")), False, id="claim"
        ),
        pytest.param(
            _change("MODIFY", _task_image("pending", "running"), _task_image("pending", "backing-off", 1)),
            True,
            id="failed attempt",
        ),
        pytest.param(
            _change("MODIFY", _task_image("pending", "running"), _task_image("pending", "released")),
            False,
            id="release",
        ),
        pytest.param(
            _change("MODIFY", _task_image("pending", "backing-off", 1), _task_image("pending", "running", 1)),
            False,
            id="claim after a failed attempt",
        ),
        pytest.param(
            _change("MODIFY", _task_image("pending", "running"), _task_image("success")), True, id="success"
        ),
        pytest.param(
            _change("MODIFY", _task_image("pending", "backing-off", 2), _task_image("error", retries=2)),
            True,
            id="dead-lettered",
        ),
        pytest.param(_change("MODIFY", _task_image("error"), _task_image("pending")), True, id="retried"),
    ],
)
@pytest.mark.parametrize("stage_name", ["dev", "prod"])
def test_notifier_is_invoked_only_for_changes_a_client_can_see(request, stage_name, record, notified):
    patterns = _patterns(request.getfixturevalue(f"{stage_name}_template"), "NotifierFunction")

    assert any(matches(pattern, record) for pattern in patterns) is notified


def test_stream_mappings_have_no_batching_window_unless_the_stage_sets_one(dev_template, dev_stage):
    template = synth(changed(dev_stage, stream_batching_window_seconds=2))

    for function in STREAM_CONSUMERS:
        assert "MaximumBatchingWindowInSeconds" not in event_source_mapping(
            dev_template, function_id(dev_template, function)
        )
        assert (
            event_source_mapping(template, function_id(template, function))["MaximumBatchingWindowInSeconds"]
            == 2
        )


def test_enqueue_filter_is_insert_or_error_to_pending(enqueue_patterns):
    assert enqueue_patterns == [
        {"eventName": ["INSERT"]},
        {
            "eventName": ["MODIFY"],
            "dynamodb": {
                "NewImage": {"status": {"S": ["pending"]}},
                "OldImage": {"status": {"S": ["error"]}},
            },
        },
    ]


def _record(event_name, old_status=None, new_status=None):
    dynamodb = {"Keys": {"taskId": {"S": "t-1"}}}
    if old_status:
        dynamodb["OldImage"] = {"taskId": {"S": "t-1"}, "status": {"S": old_status}}
    if new_status:
        dynamodb["NewImage"] = {"taskId": {"S": "t-1"}, "status": {"S": new_status}}
    return {"eventName": event_name, "dynamodb": dynamodb}


@pytest.mark.parametrize(
    ("record", "enqueued"),
    [
        pytest.param(_record("INSERT", new_status="pending"), True, id="new task"),
        pytest.param(_record("MODIFY", "error", "pending"), True, id="retry"),
        pytest.param(_record("MODIFY", "pending", "pending"), False, id="failed attempt"),
        pytest.param(_record("MODIFY", "pending", "success"), False, id="success"),
        pytest.param(_record("MODIFY", "pending", "error"), False, id="dead-lettered"),
        pytest.param(_record("REMOVE", old_status="error"), False, id="deleted"),
    ],
)
def test_enqueue_filter_passes_only_new_and_retried_tasks(enqueue_patterns, record, enqueued):
    assert any(matches(pattern, record) for pattern in enqueue_patterns) is enqueued


def test_mappings_belong_to_their_own_functions(dev_template):
    # Each consumer is invoked by exactly one mapping.
    for construct_id in STREAM_CONSUMERS + QUEUE_CONSUMERS:
        fn = function_id(dev_template, construct_id)
        found = dev_template.find_resources(
            "AWS::Lambda::EventSourceMapping", {"Properties": {"FunctionName": ref(fn)}}
        )
        assert len(found) == 1, construct_id


@pytest.mark.parametrize("stage_name", ["dev", "prod"])
def test_processor_is_not_reserved_below_its_poller_concurrency(request, stage_name):
    # A throttled invocation hands its batch back to SQS, burning a receive of the retry budget; so a
    # reserved concurrency, if any, must be at least the ESM's maximum concurrency.
    template = request.getfixturevalue(f"{stage_name}_template")
    processor = function_id(template, "ProcessorFunction")

    max_concurrency = event_source_mapping(template, processor)["ScalingConfig"]["MaximumConcurrency"]
    reserved = properties(template, processor).get("ReservedConcurrentExecutions")

    assert reserved is None or reserved >= max_concurrency


def test_reserved_processor_concurrency_reaches_the_template_only_when_configured(dev_stage):
    template = synth(changed(dev_stage, processor_max_concurrency=10, processor_reserved_concurrency=12))
    processor = function_id(template, "ProcessorFunction")

    assert properties(template, processor)["ReservedConcurrentExecutions"] == 12
    assert event_source_mapping(template, processor)["ScalingConfig"] == {"MaximumConcurrency": 10}
    for fn in function_ids(template).values():
        if fn != processor:
            assert "ReservedConcurrentExecutions" not in properties(template, fn)


def test_no_function_reserves_concurrency_by_default(dev_template):
    for fn in function_ids(dev_template).values():
        assert "ReservedConcurrentExecutions" not in properties(dev_template, fn)
