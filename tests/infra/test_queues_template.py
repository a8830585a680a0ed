"""TaskQueue and its DLQ: redrive, visibility vs function timeout, retention, encryption, TLS."""

from __future__ import annotations

import pytest
from aws_cdk.assertions import Match
from template_queries import arn, function_id, on_variants, properties, ref, stage_variant

from infra.config import TASK_QUEUE_RETENTION_SECONDS

QUEUE = "AWS::SQS::Queue"


@on_variants("dev", "prod")
def test_queue_dead_letters_after_the_stage_retry_budget(variant):
    variant.template.has_resource_properties(
        QUEUE,
        {
            "RedrivePolicy": Match.object_equals(
                {
                    "deadLetterTargetArn": arn(variant.ids.dlq),
                    "maxReceiveCount": variant.stage.max_receive_count,
                }
            )
        },
    )


def _retry_budget(name: str) -> int:
    variant = stage_variant(name)
    return properties(variant.template, variant.ids.queue)["RedrivePolicy"]["maxReceiveCount"]


def test_cdk_json_retry_budgets_differ_per_stage():
    # Makes the parametrized redrive test above meaningful: the two stages' queues differ in it.
    assert _retry_budget("dev") != _retry_budget("prod")


@on_variants("dev", "prod")
def test_visibility_timeout_is_at_least_six_times_the_consumer_timeout(variant):
    template, ids = variant.template, variant.ids

    processor_timeout = properties(template, function_id(template, "ProcessorFunction"))["Timeout"]
    dlq_consumer_timeout = properties(template, function_id(template, "DlqConsumerFunction"))["Timeout"]

    assert properties(template, ids.queue)["VisibilityTimeout"] >= 6 * processor_timeout
    assert properties(template, ids.dlq)["VisibilityTimeout"] >= 6 * dlq_consumer_timeout


@on_variants("dev")
def test_dlq_keeps_messages_14_days_longer_than_the_queue(variant):
    # A dead-lettered message keeps its original enqueue time, so the DLQ must outlast the queue.
    queue = properties(variant.template, variant.ids.queue)["MessageRetentionPeriod"]
    dlq = properties(variant.template, variant.ids.dlq)["MessageRetentionPeriod"]

    assert dlq == 14 * 86400
    assert queue == TASK_QUEUE_RETENTION_SECONDS  # what the stage config checks the retry budget against
    assert queue < dlq


@on_variants("dev")
def test_both_queues_use_sqs_managed_encryption(variant):
    variant.template.resource_count_is(QUEUE, 2)
    variant.template.resource_properties_count_is(QUEUE, {"SqsManagedSseEnabled": True}, 2)


@on_variants("dev")
@pytest.mark.parametrize("queue", ["queue", "dlq"])
def test_both_queues_refuse_requests_without_tls(variant, queue):
    queue_id = getattr(variant.ids, queue)

    variant.template.has_resource_properties(
        "AWS::SQS::QueuePolicy",
        {
            "Queues": [ref(queue_id)],
            "PolicyDocument": {
                "Statement": [
                    Match.object_equals(
                        {
                            "Action": "sqs:*",
                            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                            "Effect": "Deny",
                            "Principal": {"AWS": "*"},
                            "Resource": arn(queue_id),
                        }
                    )
                ]
            },
        },
    )
