"""Stage setting `customer_managed_keys`: the task data (tables, their streams, queues) under a key of the
stage's own on prod; DynamoDB's AWS managed key and SQS-managed SSE on dev. The key grants of each
role are in test_iam_template.py."""

from __future__ import annotations

import pytest
from aws_cdk.assertions import Match
from template_queries import arn, on_variants, resources

KEY = "AWS::KMS::Key"


@pytest.mark.parametrize(("variant", "own_key"), [("dev", False), ("prod", True)], indirect=["variant"])
def test_cdk_json_prod_encrypts_its_task_data_with_its_own_key_and_dev_does_not(variant, own_key):
    # The task table's SSE names the stage's data key on prod; dev's the AWS managed key (no key id).
    assert (variant.ids.data_key is not None) is own_key
    assert variant.stage.customer_managed_keys is own_key


@on_variants("prod", "dev_cmk")
def test_with_customer_managed_keys_both_tables_and_both_queues_use_the_stage_key(variant):
    template, data_key = variant.template, variant.ids.data_key

    assert data_key is not None
    template.resource_count_is("AWS::DynamoDB::Table", 2)
    template.resource_properties_count_is(
        "AWS::DynamoDB::Table",
        {"SSESpecification": {"SSEEnabled": True, "SSEType": "KMS", "KMSMasterKeyId": arn(data_key)}},
        2,
    )
    template.resource_count_is("AWS::SQS::Queue", 2)
    template.resource_properties_count_is(
        "AWS::SQS::Queue", {"KmsMasterKeyId": arn(data_key), "SqsManagedSseEnabled": Match.absent()}, 2
    )


@on_variants("prod")
def test_prod_data_key_rotates_and_outlives_the_stack_like_the_tables(variant):
    # The tables are retained on prod: their data stays readable only while the key exists.
    retained = {"DeletionPolicy": "Retain", "UpdateReplacePolicy": "Retain"}

    variant.template.has_resource(
        KEY,
        {
            "Properties": {"EnableKeyRotation": True, "Description": Match.string_like_regexp("Task data")},
            **retained,
        },
    )
    assert variant.ids.data_key in variant.template.find_resources(KEY, retained)
    assert variant.ids.task_table in variant.template.find_resources("AWS::DynamoDB::Table", retained)


@on_variants("dev")
def test_without_customer_managed_keys_the_only_key_is_the_alarm_topics(variant):
    template = variant.template
    (key,) = resources(template, KEY)

    assert variant.ids.data_key is None
    template.has_resource_properties("AWS::SNS::Topic", {"KmsMasterKeyId": arn(key)})
    template.all_resources_properties(
        "AWS::DynamoDB::Table", {"SSESpecification": Match.object_equals({"SSEEnabled": True})}
    )
    template.resource_count_is("AWS::SQS::Queue", 2)
    template.all_resources_properties(
        "AWS::SQS::Queue", {"SqsManagedSseEnabled": True, "KmsMasterKeyId": Match.absent()}
    )


@on_variants("dev")
def test_no_role_may_use_a_key_without_customer_managed_keys(variant):
    for policy in resources(variant.template, "AWS::IAM::Policy").values():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            assert not [action for action in actions if action.startswith("kms:")], statement
