"""TaskTable and ConnectionTable: keys, indexes, stream, TTL, encryption, what happens on delete."""

from __future__ import annotations

import pytest
from template_queries import properties, resources

from taskflow import table_schema


def test_task_table_is_keyed_by_task_id_on_demand_with_both_list_indexes(dev_template, dev_ids):
    table = properties(dev_template, dev_ids.task_table)

    assert table["KeySchema"] == [{"AttributeName": table_schema.TASK_PK, "KeyType": "HASH"}]
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert sorted(table["GlobalSecondaryIndexes"], key=lambda index: index["IndexName"]) == [
        {
            "IndexName": table_schema.TASKS_BY_CREATED_INDEX,
            "KeySchema": [
                {"AttributeName": table_schema.TASKS_BY_CREATED_PK, "KeyType": "HASH"},
                {"AttributeName": table_schema.TASKS_BY_CREATED_SK, "KeyType": "RANGE"},
            ],
            "Projection": {"ProjectionType": "ALL"},
        },
        {
            "IndexName": table_schema.TASKS_BY_STATUS_INDEX,
            "KeySchema": [
                {"AttributeName": table_schema.TASKS_BY_STATUS_PK, "KeyType": "HASH"},
                {"AttributeName": table_schema.TASKS_BY_STATUS_SK, "KeyType": "RANGE"},
            ],
            "Projection": {"ProjectionType": "ALL"},
        },
    ]
    assert {(a["AttributeName"], a["AttributeType"]) for a in table["AttributeDefinitions"]} == {
        (table_schema.TASK_PK, "S"),
        (table_schema.TASKS_BY_CREATED_PK, "S"),
        (table_schema.TASKS_BY_CREATED_SK, "S"),
        (table_schema.TASKS_BY_STATUS_PK, "S"),
    }


def test_task_table_streams_old_and_new_images_for_enqueue_and_notify(dev_template, dev_ids):
    table = properties(dev_template, dev_ids.task_table)

    assert table["StreamSpecification"] == {"StreamViewType": "NEW_AND_OLD_IMAGES"}


@pytest.mark.parametrize("stage_name", ["dev", "prod"])
def test_both_tables_are_encrypted_at_rest(request, stage_name):
    template = request.getfixturevalue(f"{stage_name}_template")

    for table in resources(template, "AWS::DynamoDB::Table").values():
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

    assert len(log_groups) == 8 + 2  # one per function, one per API stage
    for log_group in log_groups.values():
        assert log_group["Properties"]["RetentionInDays"] == stage.log_retention_days
