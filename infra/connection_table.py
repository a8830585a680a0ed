"""ConnectionTable: one row per open WebSocket connection, expired by DynamoDB TTL."""

from __future__ import annotations

from aws_cdk import aws_dynamodb as dynamodb
from constructs import Construct

from infra.config import StageConfig
from infra.retention import removal_policy
from taskflow import table_schema


class ConnectionTable(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, stage: StageConfig) -> None:
        super().__init__(scope, construct_id)
        # No point-in-time recovery: connections are ephemeral (a client reconnects).
        self.table = dynamodb.Table(
            self,
            "Default",
            partition_key=dynamodb.Attribute(
                name=table_schema.CONNECTION_PK, type=dynamodb.AttributeType.STRING
            ),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            time_to_live_attribute=table_schema.CONNECTION_TTL_ATTRIBUTE,
            encryption=dynamodb.TableEncryption.AWS_MANAGED,
            removal_policy=removal_policy(stage),
        )
