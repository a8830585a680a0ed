"""TaskTable: the single source of truth. Every state change is one conditional write here; its
stream drives everything downstream (enqueue, notify)."""

from __future__ import annotations

from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from constructs import Construct

from infra.config import StageConfig
from infra.data_key import allow_table, table_encryption
from infra.retention import removal_policy
from taskflow import env_vars, table_schema

_STRING = dynamodb.AttributeType.STRING
# The indexes a listing Queries (taskflow.repositories.index_pages).
LIST_INDEXES = (table_schema.TASKS_BY_CREATED_INDEX, table_schema.TASKS_BY_FINISHED_INDEX)


class TaskTable(Construct):
    """Declared as taskflow.table_schema.task_table_request describes it (tests compare the two),
    the same on every stage; the keys and why: taskflow.table_schema and docs/decisions.md.

    ByCreated (keys only) is written once per task, at create. ByFinished (all attributes) is
    sparse: only finished tasks are in it. A lease claim or release changes no index key.
    """

    def __init__(
        self, scope: Construct, construct_id: str, *, stage: StageConfig, key: kms.IKey | None = None
    ) -> None:
        super().__init__(scope, construct_id)
        # Plain AWS::DynamoDB::Table (not TableV2's GlobalTable): single region, and its properties
        # map one to one onto CreateTable, which the local stack replays.
        self.table = dynamodb.Table(
            self,
            "Default",
            partition_key=dynamodb.Attribute(name=table_schema.TASK_PK, type=_STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            stream=dynamodb.StreamViewType.NEW_AND_OLD_IMAGES,
            **table_encryption(key),
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            removal_policy=removal_policy(stage),
        )
        self.table.add_global_secondary_index(
            index_name=table_schema.TASKS_BY_CREATED_INDEX,
            partition_key=dynamodb.Attribute(name=table_schema.TASKS_BY_CREATED_PK, type=_STRING),
            sort_key=dynamodb.Attribute(name=table_schema.TASKS_BY_CREATED_SK, type=_STRING),
            projection_type=dynamodb.ProjectionType.KEYS_ONLY,
        )
        self.table.add_global_secondary_index(
            index_name=table_schema.TASKS_BY_FINISHED_INDEX,
            partition_key=dynamodb.Attribute(name=table_schema.TASKS_BY_FINISHED_PK, type=_STRING),
            sort_key=dynamodb.Attribute(name=table_schema.TASKS_BY_FINISHED_SK, type=_STRING),
            projection_type=dynamodb.ProjectionType.ALL,
        )


def task_table_environment(table: dynamodb.ITable, stage: StageConfig) -> dict[str, str]:
    """What every function that reads or writes tasks is told: the table and its listing shards
    (taskflow.settings reads them together)."""
    return {
        env_vars.TASK_TABLE_NAME: table.table_name,
        env_vars.TASK_LIST_SHARDS: str(stage.task_list_shards),
    }


def allow_listing(role: iam.IRole, table: dynamodb.ITable) -> None:
    """Query on the list indexes, named one by one (no index/* wildcard). With auth, the caller's
    scope is in every key condition (TaskRepository.list_page)."""
    allow_table(
        role, table, ["dynamodb:Query"], [f"{table.table_arn}/index/{index}" for index in LIST_INDEXES]
    )
