"""TaskBackendStack: composes the constructs of one stage; owns tags, cdk-nag and checkov acknowledgments,
outputs."""

from __future__ import annotations

from typing import Any

from aws_cdk import Aspects, CfnOutput, Stack, Tags
from constructs import Construct

from infra.auth import Auth
from infra.checkov_skips import AcceptedCheckovFindings
from infra.config import StageConfig
from infra.connection_table import ConnectionTable
from infra.data_key import DataKey
from infra.http_api import HttpApi
from infra.lambda_function import LambdaDefaults, TaskFunction, comma_list
from infra.monitoring import Monitoring
from infra.nag_suppressions import Suppression, acknowledge_accepted_findings
from infra.task_pipeline import TaskPipeline
from infra.task_queue import TaskQueue
from infra.task_table import TaskTable
from infra.websocket_api import WebSocketApi

PROJECT = "TaskBackend"


def stack_name_for(stage: StageConfig) -> str:
    return f"{PROJECT}-{stage.name}"


class TaskBackendStack(Stack):
    """Environment-agnostic: no account/region lookups, nothing resolved at synth time."""

    def __init__(self, scope: Construct, construct_id: str, *, stage: StageConfig, **kwargs: Any) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.stage = stage

        defaults = LambdaDefaults(self, "LambdaDefaults", stage=stage)
        # The task data's own KMS key, on stages with `customer_managed_keys` (infra/data_key.py).
        self.data_key = DataKey(self, "DataKey", stage=stage) if stage.customer_managed_keys else None
        key = self.data_key.key if self.data_key else None
        self.task_table = TaskTable(self, "TaskTable", stage=stage, key=key)
        self.connection_table = ConnectionTable(self, "ConnectionTable", stage=stage, key=key)
        self.task_queue = TaskQueue(self, "TaskQueue", stage=stage, key=key)
        self.pipeline = TaskPipeline(
            self,
            "TaskPipeline",
            defaults=defaults,
            task_table=self.task_table.table,
            task_queue=self.task_queue,
        )
        # Authorizers (and a Cognito user pool, unless the stage names an issuer): `auth: jwt` only.
        self.auth = Auth(self, "Auth", defaults=defaults) if stage.uses_jwt else None
        self.http_api = HttpApi(
            self, "HttpApi", defaults=defaults, task_table=self.task_table.table, auth=self.auth
        )
        self.websocket_api = WebSocketApi(
            self,
            "WebSocketApi",
            defaults=defaults,
            task_table=self.task_table.table,
            connection_table=self.connection_table.table,
            auth=self.auth,
        )

        self.functions: tuple[TaskFunction, ...] = (
            self.http_api.handler,
            self.pipeline.enqueue,
            self.pipeline.processor,
            self.pipeline.dlq_consumer,
            self.websocket_api.notifier,
            self.websocket_api.connect,
            self.websocket_api.disconnect,
            self.websocket_api.default,
            *((self.auth.ws_authorizer_function,) if self.auth else ()),
        )
        stream_consumers = (self.pipeline.enqueue, self.websocket_api.notifier)
        self.monitoring = Monitoring(
            self,
            "Monitoring",
            stage=stage,
            functions=self.functions,
            stream_consumers=stream_consumers,
            task_queue=self.task_queue,
            http_api=self.http_api.api,
            token_authorizer=self.auth.ws_authorizer_function if self.auth else None,
        )

        # cdk-nag findings this app accepts, on their exact resources (infra/nag_suppressions.py).
        self.nag_suppressions: list[tuple[str, Suppression]] = acknowledge_accepted_findings(
            stage=stage,
            http_api=self.http_api,
            websocket_api=self.websocket_api,
            stream_consumers=stream_consumers,
            connection_table=self.connection_table.table,
            auth=self.auth,
        )

        # checkov findings this app accepts, written onto their resources at synth (infra/checkov_skips.py).
        self.checkov_skips = AcceptedCheckovFindings(
            stage=stage, connection_table=self.connection_table.table
        )
        Aspects.of(self).add(self.checkov_skips)

        Tags.of(self).add("Project", PROJECT)
        Tags.of(self).add("Stage", stage.name)

        CfnOutput(self, "HttpApiUrl", value=self.http_api.url)
        CfnOutput(self, "WebSocketUrl", value=self.websocket_api.url)
        CfnOutput(self, "TaskTableName", value=self.task_table.table.table_name)
        CfnOutput(self, "ConnectionTableName", value=self.connection_table.table.table_name)
        CfnOutput(self, "TaskQueueUrl", value=self.task_queue.queue.queue_url)
        CfnOutput(self, "TaskDlqUrl", value=self.task_queue.dead_letter_queue.queue_url)
        CfnOutput(self, "AlarmTopicArn", value=self.monitoring.topic.topic_arn)
        CfnOutput(self, "DashboardName", value=self.monitoring.dashboard.dashboard_name)
        if self.auth:
            # What a client needs to get a token: the issuer and the audiences it is checked against.
            CfnOutput(self, "JwtIssuer", value=self.auth.issuer)
            CfnOutput(self, "JwtAudience", value=comma_list(self.auth.audience))
            if self.auth.user_pool and self.auth.user_pool_client:
                CfnOutput(self, "UserPoolId", value=self.auth.user_pool.user_pool_id)
                CfnOutput(self, "UserPoolClientId", value=self.auth.user_pool_client.user_pool_client_id)
