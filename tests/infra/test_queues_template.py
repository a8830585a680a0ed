"""TaskQueue and its DLQ: redrive, visibility vs function timeout, retention, encryption, TLS."""

from __future__ import annotations

import pytest
from template_queries import arn, function_id, properties, ref, resources

from infra.config import DLQ_RETENTION_SECONDS, TASK_QUEUE_RETENTION_SECONDS


@pytest.mark.parametrize("stage_name", ["dev", "prod"])
def test_queue_dead_letters_after_the_stage_retry_budget(request, stage_name):
    template = request.getfixturevalue(f"{stage_name}_template")
    ids = request.getfixturevalue(f"{stage_name}_ids")
    stage = request.getfixturevalue(f"{stage_name}_stage")

    queue = properties(template, ids.queue)

    assert queue["RedrivePolicy"] == {
        "deadLetterTargetArn": arn(ids.dlq),
        "maxReceiveCount": stage.max_receive_count,
    }


def test_cdk_json_retry_budgets_differ_per_stage(dev_stage, prod_stage):
    # Makes the parametrized redrive test above meaningful: the two stages assert different values.
    assert dev_stage.max_receive_count != prod_stage.max_receive_count


@pytest.mark.parametrize("stage_name", ["dev", "prod"])
def test_visibility_timeout_is_at_least_six_times_the_consumer_timeout(request, stage_name):
    template = request.getfixturevalue(f"{stage_name}_template")
    ids = request.getfixturevalue(f"{stage_name}_ids")

    processor_timeout = properties(template, function_id(template, "ProcessorFunction"))["Timeout"]
    dlq_consumer_timeout = properties(template, function_id(template, "DlqConsumerFunction"))["Timeout"]

    assert properties(template, ids.queue)["VisibilityTimeout"] >= 6 * processor_timeout
    assert properties(template, ids.dlq)["VisibilityTimeout"] >= 6 * dlq_consumer_timeout


def test_dlq_keeps_messages_14_days_longer_than_the_queue(dev_template, dev_ids):
    # A dead-lettered message keeps its original enqueue time, so the DLQ must outlast the queue.
    assert (
        properties(dev_template, dev_ids.dlq)["MessageRetentionPeriod"] == DLQ_RETENTION_SECONDS == 14 * 86400
    )
    assert properties(dev_template, dev_ids.queue)["MessageRetentionPeriod"] == TASK_QUEUE_RETENTION_SECONDS
    assert TASK_QUEUE_RETENTION_SECONDS < DLQ_RETENTION_SECONDS


def test_both_queues_use_sqs_managed_encryption(dev_template, dev_ids):
    for queue_id in (dev_ids.queue, dev_ids.dlq):
        assert properties(dev_template, queue_id)["SqsManagedSseEnabled"] is True


def test_both_queues_refuse_requests_without_tls(dev_template, dev_ids):
    policies = resources(dev_template, "AWS::SQS::QueuePolicy").values()

    for queue_id in (dev_ids.queue, dev_ids.dlq):
        (policy,) = [p["Properties"] for p in policies if p["Properties"]["Queues"] == [ref(queue_id)]]
        assert policy["PolicyDocument"]["Statement"] == [
            {
                "Action": "sqs:*",
                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                "Effect": "Deny",
                "Principal": {"AWS": "*"},
                "Resource": arn(queue_id),
            }
        ]
