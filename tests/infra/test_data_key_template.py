"""Stage setting `customer_managed_keys`: the task data (tables, their streams, queues) under a key of the
stage's own on prod; DynamoDB's AWS managed key and SQS-managed SSE on dev. The key grants of each
role are in test_iam_template.py."""

from __future__ import annotations

import pytest
from aws_cdk.assertions import Match
from template_queries import arn, cdk_json_stages, only, properties, resources


def test_cdk_json_prod_encrypts_its_task_data_with_its_own_key_and_dev_does_not():
    stages = cdk_json_stages()

    assert stages["prod"].customer_managed_keys is True
    assert stages["dev"].customer_managed_keys is False


@pytest.mark.parametrize("stage_name", ["prod", "dev_cmk"])
def test_with_customer_managed_keys_both_tables_and_both_queues_use_the_stage_key(request, stage_name):
    template = request.getfixturevalue(f"{stage_name}_template")
    ids = request.getfixturevalue(f"{stage_name}_ids")

    assert ids.data_key is not None
    template.resource_properties_count_is(
        "AWS::DynamoDB::Table",
        {"SSESpecification": {"SSEEnabled": True, "SSEType": "KMS", "KMSMasterKeyId": arn(ids.data_key)}},
        2,
    )
    template.resource_properties_count_is(
        "AWS::SQS::Queue", {"KmsMasterKeyId": arn(ids.data_key), "SqsManagedSseEnabled": Match.absent()}, 2
    )
    assert (
        len(resources(template, "AWS::DynamoDB::Table")) == len(resources(template, "AWS::SQS::Queue")) == 2
    )


def test_prod_data_key_rotates_and_outlives_the_stack_like_the_tables(prod_template, prod_ids):
    # The tables are retained on prod: their data stays readable only while the key exists.
    prod_template.has_resource(
        "AWS::KMS::Key",
        {
            "Properties": {"EnableKeyRotation": True, "Description": Match.string_like_regexp("Task data")},
            "DeletionPolicy": "Retain",
            "UpdateReplacePolicy": "Retain",
        },
    )
    assert prod_template.to_json()["Resources"][prod_ids.task_table]["DeletionPolicy"] == "Retain"


def test_without_customer_managed_keys_the_only_key_is_the_alarm_topics(dev_template, dev_ids):
    (key,) = resources(dev_template, "AWS::KMS::Key")
    topic = only(resources(dev_template, "AWS::SNS::Topic"))

    assert dev_ids.data_key is None
    assert properties(dev_template, topic)["KmsMasterKeyId"] == arn(key)
    dev_template.has_resource_properties("AWS::DynamoDB::Table", {"SSESpecification": {"SSEEnabled": True}})
    dev_template.resource_properties_count_is("AWS::SQS::Queue", {"SqsManagedSseEnabled": True}, 2)


def test_no_role_may_use_a_key_without_customer_managed_keys(dev_template):
    for policy in resources(dev_template, "AWS::IAM::Policy").values():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            assert not [action for action in actions if action.startswith("kms:")], statement
