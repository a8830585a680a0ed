"""Event source mappings: partial batch responses everywhere, batch sizes, retries, the enqueue filter."""

from __future__ import annotations

import json

import pytest
from aws_cdk.assertions import Match
from template_queries import (
    ALL_HANDLERS,
    arn,
    cdk_json_stages,
    changed,
    event_source_mapping,
    function_id,
    on_variants,
    properties,
    ref,
    synth,
)

from infra.task_pipeline import ENQUEUE_MAX_RECORD_AGE_SECONDS, ENQUEUE_RETRY_ATTEMPTS
from local.sources.event_filter import matches  # what the local stack filters with

STREAM_CONSUMERS = ("EnqueueFunction", "NotifierFunction")
QUEUE_CONSUMERS = ("ProcessorFunction", "DlqConsumerFunction")
MAPPING = "AWS::Lambda::EventSourceMapping"
FUNCTION = "AWS::Lambda::Function"
RESERVED = {"ReservedConcurrentExecutions": Match.any_value()}


def _mapping_of(template, construct_id: str, **properties) -> None:
    """Assert the mapping that invokes the function has these properties."""
    template.has_resource_properties(
        MAPPING, {"FunctionName": ref(function_id(template, construct_id)), **properties}
    )


@on_variants("dev", "prod")
def test_every_event_source_reports_batch_item_failures(variant):
    # Each consumer is invoked by exactly one mapping, and there are no others.
    template = variant.template

    template.resource_count_is(MAPPING, len(STREAM_CONSUMERS + QUEUE_CONSUMERS))
    for construct_id in STREAM_CONSUMERS + QUEUE_CONSUMERS:
        fn = ref(function_id(template, construct_id))
        template.resource_properties_count_is(MAPPING, {"FunctionName": fn}, 1)
    template.all_resources_properties(MAPPING, {"FunctionResponseTypes": ["ReportBatchItemFailures"]})


@on_variants("dev", "prod")
def test_processor_consumes_the_task_queue_with_capped_concurrency(variant):
    _mapping_of(
        variant.template,
        "ProcessorFunction",
        EventSourceArn=arn(variant.ids.queue),
        BatchSize=variant.stage.processor_batch_size,
        ScalingConfig=Match.object_equals({"MaximumConcurrency": variant.stage.processor_max_concurrency}),
    )


@on_variants("dev")
def test_dlq_consumer_consumes_the_dead_letter_queue(variant):
    _mapping_of(
        variant.template,
        "DlqConsumerFunction",
        EventSourceArn=arn(variant.ids.dlq),
        BatchSize=variant.stage.dlq_batch_size,
    )


@on_variants("dev")
@pytest.mark.parametrize("construct_id", STREAM_CONSUMERS)
def test_stream_consumers_read_the_task_stream_from_the_start_and_bisect_failures(variant, construct_id):
    batch_size = {
        "EnqueueFunction": variant.stage.enqueue_batch_size,
        "NotifierFunction": variant.stage.notifier_batch_size,
    }[construct_id]

    _mapping_of(
        variant.template,
        construct_id,
        EventSourceArn=arn(variant.ids.task_table, "StreamArn"),
        StartingPosition="TRIM_HORIZON",
        BatchSize=batch_size,
        BisectBatchOnFunctionError=True,
        FunctionResponseTypes=["ReportBatchItemFailures"],
    )


@on_variants("dev", "prod")
def test_enqueue_never_drops_a_stream_record_while_sqs_is_down(variant):
    # Given SQS rejects every send, the enqueue mapping must keep the records until SQS is back:
    # unlimited retries and no age limit (a record only leaves with the stream's 24 h retention).
    assert ENQUEUE_RETRY_ATTEMPTS == ENQUEUE_MAX_RECORD_AGE_SECONDS == -1  # -1: no limit

    _mapping_of(
        variant.template,
        "EnqueueFunction",
        MaximumRetryAttempts=ENQUEUE_RETRY_ATTEMPTS,
        MaximumRecordAgeInSeconds=ENQUEUE_MAX_RECORD_AGE_SECONDS,
    )


@on_variants("dev", "prod")
def test_notifier_retries_a_failed_push_a_bounded_number_of_times(variant):
    # Losing a push is not losing a task: the notifier gives up after the stage's retry budget.
    retry_attempts = variant.stage.notifier_retry_attempts

    _mapping_of(variant.template, "NotifierFunction", MaximumRetryAttempts=retry_attempts)
    assert 0 <= retry_attempts <= 10_000


def test_changed_notifier_retry_budget_reaches_only_the_notifier():
    template = synth(changed(cdk_json_stages()["dev"], notifier_retry_attempts=3))

    _mapping_of(template, "NotifierFunction", MaximumRetryAttempts=3)
    _mapping_of(template, "EnqueueFunction", MaximumRetryAttempts=-1)


def _patterns(template, function):
    mapping = event_source_mapping(template, function_id(template, function))
    return [json.loads(f["Pattern"]) for f in mapping["FilterCriteria"]["Filters"]]


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
@on_variants("dev", "prod")
def test_notifier_is_invoked_only_for_changes_a_client_can_see(variant, record, notified):
    patterns = _patterns(variant.template, "NotifierFunction")

    assert any(matches(pattern, record) for pattern in patterns) is notified


@on_variants("dev")
def test_stream_mappings_have_no_batching_window_unless_the_stage_sets_one(variant):
    template = synth(changed(variant.stage, stream_batching_window_seconds=2))

    for construct_id in STREAM_CONSUMERS:
        _mapping_of(variant.template, construct_id, MaximumBatchingWindowInSeconds=Match.absent())
        _mapping_of(template, construct_id, MaximumBatchingWindowInSeconds=2)


@on_variants("dev")
def test_enqueue_filter_is_insert_or_error_to_pending(variant):
    _mapping_of(
        variant.template,
        "EnqueueFunction",
        FilterCriteria={
            "Filters": [
                {"Pattern": Match.serialized_json({"eventName": ["INSERT"]})},
                {
                    "Pattern": Match.serialized_json(
                        {
                            "eventName": ["MODIFY"],
                            "dynamodb": {
                                "NewImage": {"status": {"S": ["pending"]}},
                                "OldImage": {"status": {"S": ["error"]}},
                            },
                        }
                    )
                },
            ]
        },
    )


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
@on_variants("dev")
def test_enqueue_filter_passes_only_new_and_retried_tasks(variant, record, enqueued):
    patterns = _patterns(variant.template, "EnqueueFunction")

    assert any(matches(pattern, record) for pattern in patterns) is enqueued


@on_variants("dev", "prod")
def test_processor_is_not_reserved_below_its_poller_concurrency(variant):
    # A throttled invocation hands its batch back to SQS, burning a receive of the retry budget; so a
    # reserved concurrency, if any, must be at least the ESM's maximum concurrency.
    template = variant.template
    processor = function_id(template, "ProcessorFunction")

    max_concurrency = event_source_mapping(template, processor)["ScalingConfig"]["MaximumConcurrency"]
    reserved = properties(template, processor).get("ReservedConcurrentExecutions")

    assert reserved is None or reserved >= max_concurrency


def test_reserved_processor_concurrency_reaches_the_template_only_when_configured():
    stage = changed(cdk_json_stages()["dev"], processor_max_concurrency=10, processor_reserved_concurrency=12)

    template = synth(stage)

    template.resource_properties_count_is(FUNCTION, RESERVED, 1)
    template.has_resource_properties(
        FUNCTION, {"Handler": ALL_HANDLERS["ProcessorFunction"], "ReservedConcurrentExecutions": 12}
    )
    _mapping_of(template, "ProcessorFunction", ScalingConfig=Match.object_equals({"MaximumConcurrency": 10}))


@on_variants("dev")
def test_no_function_reserves_concurrency_by_default(variant):
    variant.template.resource_properties_count_is(FUNCTION, RESERVED, 0)
