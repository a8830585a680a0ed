"""TaskTable and ConnectionTable: keys, indexes, stream, TTL, encryption, what happens on delete."""

from __future__ import annotations

from typing import Any

import pytest
from aws_cdk.assertions import Match
from template_queries import function_ids, on_variants, properties, resources

from taskflow import table_schema

# dev has `auth: none`; prod and jwt_issuer have `auth: jwt` (created user pool, external issuer).
STAGES = ("dev", "prod", "jwt_issuer")
TABLE = "AWS::DynamoDB::Table"
LOG_GROUP = "AWS::Logs::LogGroup"


def _key(attribute: str) -> list[dict[str, str]]:
    return [{"AttributeName": attribute, "KeyType": "HASH"}]


@on_variants(*STAGES)
def test_task_table_has_a_key_per_task_a_keys_only_listing_index_and_a_sparse_finished_index(variant):
    # The same keys on every stage (docs/decisions.md, "Task table keys"): `pk` is the taskId, or
    # <owner>#<taskId> on auth: jwt; ByCreated is written once per task and projects keys only (a
    # status change or a lease claim rewrites no entry); ByFinished holds finished tasks only.
    variant.template.has_resource_properties(
        TABLE,
        {
            "KeySchema": _key("pk"),
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


@pytest.mark.parametrize(("variant", "shards"), [("dev", 16), ("prod", 4)], indirect=["variant"])
def test_functions_that_write_listing_keys_get_the_stages_shard_count(variant, shards):
    assert variant.stage.task_list_shards == shards

    for handler in ("http_api", "processor", "dlq_consumer"):
        variant.template.has_resource_properties(
            "AWS::Lambda::Function",
            {
                "Handler": f"taskflow.handlers.{handler}.handler",
                "Environment": {"Variables": Match.object_like({"TASK_LIST_SHARDS": str(shards)})},
            },
        )


@on_variants("dev")
def test_task_table_streams_old_and_new_images_for_enqueue_and_notify(variant):
    variant.template.has_resource_properties(
        TABLE,
        {
            "KeySchema": _key(table_schema.TASK_PK),
            "StreamSpecification": Match.object_equals({"StreamViewType": "NEW_AND_OLD_IMAGES"}),
        },
    )


@on_variants("dev")
def test_both_tables_are_encrypted_at_rest(variant):
    # dev: DynamoDB's AWS managed key. prod encrypts with a key of its own (test_data_key_template.py).
    variant.template.resource_count_is(TABLE, 2)
    variant.template.all_resources_properties(
        TABLE, {"SSESpecification": Match.object_equals({"SSEEnabled": True})}
    )


@on_variants("prod")
def test_task_table_has_point_in_time_recovery(variant):
    variant.template.has_resource_properties(
        TABLE,
        {
            "KeySchema": _key(table_schema.TASK_PK),
            "PointInTimeRecoverySpecification": Match.object_equals({"PointInTimeRecoveryEnabled": True}),
        },
    )


@on_variants("dev")
def test_connection_rows_expire_through_ttl(variant):
    variant.template.has_resource_properties(
        TABLE,
        {
            "KeySchema": _key(table_schema.CONNECTION_PK),
            "BillingMode": "PAY_PER_REQUEST",
            "TimeToLiveSpecification": Match.object_equals(
                {"AttributeName": table_schema.CONNECTION_TTL_ATTRIBUTE, "Enabled": True}
            ),
        },
    )


@on_variants("prod")
def test_prod_tables_and_log_groups_survive_stack_deletion(variant):
    for resource_type in (TABLE, LOG_GROUP):
        assert resources(variant.template, resource_type)
        variant.template.all_resources(
            resource_type, {"DeletionPolicy": "Retain", "UpdateReplacePolicy": "Retain"}
        )


@on_variants("dev")
def test_dev_tables_and_log_groups_are_destroyed_with_the_stack(variant):
    for resource_type in (TABLE, LOG_GROUP):
        assert resources(variant.template, resource_type)
        variant.template.all_resources(resource_type, {"DeletionPolicy": "Delete"})


@on_variants("dev", "prod")
def test_every_log_group_keeps_logs_for_the_stage_retention(variant):
    # one per function, one per API stage
    variant.template.resource_count_is(LOG_GROUP, len(function_ids(variant.template)) + 2)
    variant.template.all_resources_properties(
        LOG_GROUP, {"RetentionInDays": variant.stage.log_retention_days}
    )


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


@on_variants(*STAGES)
def test_task_table_is_declared_as_the_create_table_request_tests_use(variant):
    # Tests and benchmarks create their moto tables from table_schema.task_table_request: it must be
    # the table the template declares (keys, attributes, indexes and projections, stream).
    declared = _as_create_table_request(properties(variant.template, variant.ids.task_table), "tasks")

    assert declared == _canonical(table_schema.task_table_request("tasks"))


@on_variants(*STAGES)
def test_connection_table_is_declared_as_the_create_table_request_tests_use(variant):
    connection_table = properties(variant.template, variant.ids.connection_table)

    declared = _as_create_table_request(connection_table, "connections")

    assert declared == _canonical(
        table_schema.connection_table_request("connections", owner_scoped=variant.stage.uses_jwt)
    )


@on_variants("prod", "jwt_issuer")
def test_jwt_stage_finds_an_owners_connections_through_a_keys_only_index(variant):
    # keys only, sorted by the token's expiry: the notifier's one Query per owner returns each
    # connection with its expiry, so none gets a frame past it
    variant.template.has_resource_properties(
        TABLE,
        {
            "KeySchema": _key(table_schema.CONNECTION_PK),
            "GlobalSecondaryIndexes": [
                Match.object_equals(
                    {
                        "IndexName": "ByOwner",
                        "KeySchema": [
                            {"AttributeName": "owner", "KeyType": "HASH"},
                            {"AttributeName": "tokenExpiresAt", "KeyType": "RANGE"},
                        ],
                        "Projection": {"ProjectionType": "KEYS_ONLY"},
                    }
                )
            ],
            "AttributeDefinitions": Match.array_with(
                [
                    {"AttributeName": "owner", "AttributeType": "S"},
                    {"AttributeName": "tokenExpiresAt", "AttributeType": "N"},
                ]
            ),
        },
    )


@on_variants("dev")
def test_stage_without_auth_has_no_owner_index_on_the_connection_table(variant):
    variant.template.has_resource_properties(
        TABLE,
        {
            "KeySchema": _key(table_schema.CONNECTION_PK),
            "GlobalSecondaryIndexes": Match.absent(),
            "AttributeDefinitions": Match.not_(
                Match.array_with([Match.object_like({"AttributeName": "owner"})])
            ),
        },
    )
