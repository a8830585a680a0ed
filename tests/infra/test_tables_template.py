"""TaskTable and ConnectionTable: keys, indexes, stream, TTL, encryption, what happens on delete."""

from __future__ import annotations

from typing import Any

import pytest
from aws_cdk.assertions import Match
from template_queries import handlers_of, properties, resources

from taskflow import table_schema

# dev has `auth: none`; prod and jwt_issuer have `auth: jwt` (created user pool, external issuer).
STAGES = ["dev", "prod", "jwt_issuer"]


@pytest.mark.parametrize("stage_name", STAGES)
def test_task_table_has_a_key_per_task_a_keys_only_listing_index_and_a_sparse_finished_index(
    request, stage_name
):
    # The same keys on every stage (docs/decisions.md, "Task table keys"): `pk` is the taskId, or
    # <owner>#<taskId> on auth: jwt; ByCreated is written once per task and projects keys only (a
    # status change or a lease claim rewrites no entry); ByFinished holds finished tasks only.
    template = request.getfixturevalue(f"{stage_name}_template")

    template.has_resource_properties(
        "AWS::DynamoDB::Table",
        {
            "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
            "BillingMode": "PAY_PER_REQUEST",
            "GlobalSecondaryIndexes": Match.array_equals(
                [
                    {
                        "IndexName": "ByCreated",
                        "KeySchema": [
                            {"AttributeName": "listKey", "KeyType": "HASH"},
                            {"AttributeName": "createdAt", "KeyType": "RANGE"},
                        ],
                        "Projection": {"ProjectionType": "KEYS_ONLY"},
                    },
                    {
                        "IndexName": "ByFinished",
                        "KeySchema": [
                            {"AttributeName": "finishedKey", "KeyType": "HASH"},
                            {"AttributeName": "finishedAt", "KeyType": "RANGE"},
                        ],
                        "Projection": {"ProjectionType": "ALL"},
                    },
                ]
            ),
        },
    )


@pytest.mark.parametrize(("stage_name", "shards"), [("dev", 16), ("prod", 4)])
def test_functions_that_write_listing_keys_get_the_stages_shard_count(request, stage_name, shards):
    template = request.getfixturevalue(f"{stage_name}_template")
    stage = request.getfixturevalue(f"{stage_name}_stage")
    assert stage.task_list_shards == shards

    for handler in ("http_api", "processor", "dlq_consumer"):
        template.has_resource_properties(
            "AWS::Lambda::Function",
            {
                "Handler": f"taskflow.handlers.{handler}.handler",
                "Environment": {"Variables": Match.object_like({"TASK_LIST_SHARDS": str(shards)})},
            },
        )


def test_task_table_streams_old_and_new_images_for_enqueue_and_notify(dev_template, dev_ids):
    table = properties(dev_template, dev_ids.task_table)

    assert table["StreamSpecification"] == {"StreamViewType": "NEW_AND_OLD_IMAGES"}


def test_both_tables_are_encrypted_at_rest(dev_template):
    # dev: DynamoDB's AWS managed key. prod encrypts with a key of its own (test_data_key_template.py).
    for table in resources(dev_template, "AWS::DynamoDB::Table").values():
        assert table["Properties"]["SSESpecification"] == {"SSEEnabled": True}


def test_task_table_has_point_in_time_recovery(prod_template, prod_ids):
    table = properties(prod_template, prod_ids.task_table)

    assert table["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}


def test_connection_rows_expire_through_ttl(dev_template, dev_ids):
    table = properties(dev_template, dev_ids.connection_table)

    assert table["KeySchema"] == [{"AttributeName": table_schema.CONNECTION_PK, "KeyType": "HASH"}]
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert table["TimeToLiveSpecification"] == {
        "AttributeName": table_schema.CONNECTION_TTL_ATTRIBUTE,
        "Enabled": True,
    }


def test_prod_tables_and_log_groups_survive_stack_deletion(prod_template):
    for resource_type in ("AWS::DynamoDB::Table", "AWS::Logs::LogGroup"):
        found = resources(prod_template, resource_type)
        assert found
        for resource in found.values():
            assert resource["DeletionPolicy"] == "Retain"
            assert resource["UpdateReplacePolicy"] == "Retain"


def test_dev_tables_and_log_groups_are_destroyed_with_the_stack(dev_template):
    for resource_type in ("AWS::DynamoDB::Table", "AWS::Logs::LogGroup"):
        found = resources(dev_template, resource_type)
        assert found
        for resource in found.values():
            assert resource["DeletionPolicy"] == "Delete"


@pytest.mark.parametrize("stage_name", ["dev", "prod"])
def test_every_log_group_keeps_logs_for_the_stage_retention(request, stage_name):
    template = request.getfixturevalue(f"{stage_name}_template")
    stage = request.getfixturevalue(f"{stage_name}_stage")

    log_groups = resources(template, "AWS::Logs::LogGroup")

    assert len(log_groups) == len(handlers_of(stage)) + 2  # one per function, one per API stage
    for log_group in log_groups.values():
        assert log_group["Properties"]["RetentionInDays"] == stage.log_retention_days


def _as_create_table_request(table: dict[str, Any], name: str) -> dict[str, Any]:
    """A template table as CreateTable parameters (lists in a canonical order: order means nothing)."""
    request = {
        "TableName": name,
        "BillingMode": table["BillingMode"],
        "KeySchema": table["KeySchema"],
        "AttributeDefinitions": table["AttributeDefinitions"],
    }
    if "GlobalSecondaryIndexes" in table:
        request["GlobalSecondaryIndexes"] = table["GlobalSecondaryIndexes"]
    if "StreamSpecification" in table:
        request["StreamSpecification"] = {"StreamEnabled": True, **table["StreamSpecification"]}
    return _canonical(request)


def _canonical(request: dict[str, Any]) -> dict[str, Any]:
    ordered = dict(request)
    ordered["AttributeDefinitions"] = sorted(
        request["AttributeDefinitions"], key=lambda a: a["AttributeName"]
    )
    if "GlobalSecondaryIndexes" in request:
        ordered["GlobalSecondaryIndexes"] = sorted(
            request["GlobalSecondaryIndexes"], key=lambda index: index["IndexName"]
        )
    return ordered


@pytest.mark.parametrize("stage_name", STAGES)
def test_task_table_is_declared_as_the_create_table_request_tests_use(request, stage_name):
    # Tests and benchmarks create their moto tables from table_schema.task_table_request: it must be
    # the table the template declares (keys, attributes, indexes and projections, stream).
    template = request.getfixturevalue(f"{stage_name}_template")
    ids = request.getfixturevalue(f"{stage_name}_ids")

    declared = _as_create_table_request(properties(template, ids.task_table), "tasks")

    assert declared == _canonical(table_schema.task_table_request("tasks"))


@pytest.mark.parametrize("stage_name", STAGES)
def test_connection_table_is_declared_as_the_create_table_request_tests_use(request, stage_name):
    template = request.getfixturevalue(f"{stage_name}_template")
    ids = request.getfixturevalue(f"{stage_name}_ids")
    stage = request.getfixturevalue(f"{stage_name}_stage")

    declared = _as_create_table_request(properties(template, ids.connection_table), "connections")

    assert declared == _canonical(
        table_schema.connection_table_request("connections", owner_scoped=stage.auth == "jwt")
    )


@pytest.mark.parametrize("stage_name", ["prod", "jwt_issuer"])
def test_jwt_stage_finds_an_owners_connections_through_a_keys_only_index(request, stage_name):
    template = request.getfixturevalue(f"{stage_name}_template")
    ids = request.getfixturevalue(f"{stage_name}_ids")

    table = properties(template, ids.connection_table)

    # keys only, sorted by the token's expiry: the notifier's one Query per owner returns each
    # connection with its expiry, so none gets a frame past it
    assert table["GlobalSecondaryIndexes"] == [
        {
            "IndexName": "ByOwner",
            "KeySchema": [
                {"AttributeName": "owner", "KeyType": "HASH"},
                {"AttributeName": "tokenExpiresAt", "KeyType": "RANGE"},
            ],
            "Projection": {"ProjectionType": "KEYS_ONLY"},
        }
    ]
    assert {"AttributeName": "owner", "AttributeType": "S"} in table["AttributeDefinitions"]
    assert {"AttributeName": "tokenExpiresAt", "AttributeType": "N"} in table["AttributeDefinitions"]


def test_stage_without_auth_has_no_owner_index_on_the_connection_table(dev_template, dev_ids):
    connection_table = properties(dev_template, dev_ids.connection_table)

    assert "GlobalSecondaryIndexes" not in connection_table
    assert all(a["AttributeName"] != "owner" for a in connection_table["AttributeDefinitions"])
