"""Tables and queues are created from the template, with --time-scale applied to queue times."""

import json

import pytest
from local_support import FIXTURE_ASSEMBLY

from local.emulator.provision import (
    create_queue_request,
    create_table_request,
    queues_in_creation_order,
    scale_seconds,
)
from local.template.cdk_out import find_stack
from local.template.reader import build_stack_model
from local.template.values import LocalValues


@pytest.fixture(scope="module")
def model():
    stack = find_stack(FIXTURE_ASSEMBLY, "dev")
    return build_stack_model(stack.template, stack.stack_name, stack.cdk_out)


@pytest.mark.parametrize(
    ("seconds", "scale", "expected"),
    [("30", 0.01, "1"), ("180", 0.01, "2"), ("0", 0.01, "0"), ("30", 1.0, "30")],
)
def test_queue_times_scale_to_whole_seconds(seconds, scale, expected):
    assert scale_seconds(seconds, scale) == expected


def test_the_dead_letter_queue_is_created_first_and_targeted_by_arn(model):
    order = [q.logical_id for q in queues_in_creation_order(model)]
    assert order.index("WorkDlqAAAA1111") < order.index("WorkQueueBBBB2222")
    values = LocalValues(model, "http://127.0.0.1:1")
    request = create_queue_request(model.queues["WorkQueueBBBB2222"], values, time_scale=0.1)
    assert request["QueueName"] == "Fixture-dev-WorkQueueBBBB2222"
    assert request["Attributes"]["VisibilityTimeout"] == "3"
    assert json.loads(request["Attributes"]["RedrivePolicy"]) == {
        "deadLetterTargetArn": "arn:aws:sqs:us-east-1:123456789012:Fixture-dev-WorkDlqAAAA1111",
        "maxReceiveCount": 2,
    }


def test_tables_keep_keys_indexes_and_streams(model):
    request = create_table_request(model.tables["ItemsTable1A2B3C4D"])
    assert request["KeySchema"] == [{"AttributeName": "id", "KeyType": "HASH"}]
    assert request["GlobalSecondaryIndexes"][0]["IndexName"] == "ByKind"
    assert request["StreamSpecification"] == {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
