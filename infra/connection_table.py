"""ConnectionTable: one row per open WebSocket connection, expired by DynamoDB TTL."""

from __future__ import annotations

from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_kms as kms
from constructs import Construct

from infra.config import StageConfig
from infra.data_key import table_encryption
from infra.retention import removal_policy
from taskflow import table_schema


class ConnectionTable(Construct):
    """Declared as taskflow.table_schema.connection_table_request describes it (tests compare the two).

    On `auth: jwt` stages each row carries its owner and its token's expiry, and the ByOwner index
    (keys only, sorted by expiry) finds one owner's connections: a task change is pushed to its
    owner only, without scanning the table, and a connection past its token's expiry is closed
    instead (taskflow.services.task_notifier).
    """

    def __init__(
        self, scope: Construct, construct_id: str, *, stage: StageConfig, key: kms.IKey | None = None
    ) -> None:
        super().__init__(scope, construct_id)
        # No point-in-time recovery: connections are ephemeral (a client reconnects).
        self.table = dynamodb.Table(
            self,
            # ByOwner gained its sort key (the token's expiry). A GSI's keys cannot change in place,
            # and one stack update cannot drop and add an index, so `auth: jwt` stages get a new
            # table under a new id: CloudFormation creates it and switches the functions to it
            # (connections open during that deploy reconnect; docs/operations.md).
            "OwnerScoped" if stage.uses_jwt else "Default",
            partition_key=dynamodb.Attribute(
                name=table_schema.CONNECTION_PK, type=dynamodb.AttributeType.STRING
            ),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            time_to_live_attribute=table_schema.CONNECTION_TTL_ATTRIBUTE,
            **table_encryption(key),
            removal_policy=removal_policy(stage),
        )
        if stage.uses_jwt:
            self.table.add_global_secondary_index(
                index_name=table_schema.CONNECTIONS_BY_OWNER_INDEX,
                partition_key=dynamodb.Attribute(
                    name=table_schema.CONNECTION_OWNER, type=dynamodb.AttributeType.STRING
                ),
                sort_key=dynamodb.Attribute(
                    name=table_schema.CONNECTION_TOKEN_EXPIRES_AT, type=dynamodb.AttributeType.NUMBER
                ),
                projection_type=dynamodb.ProjectionType.KEYS_ONLY,
            )
