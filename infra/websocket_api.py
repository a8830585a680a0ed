"""WebSocketApi: browsers connect here and receive a frame for every task status change."""

from __future__ import annotations

from aws_cdk import Stack
from aws_cdk import aws_apigatewayv2 as apigwv2
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk.aws_apigatewayv2_integrations import WebSocketLambdaIntegration
from constructs import Construct

from infra.access_logs import JsonAccessLogSettings
from infra.auth import Auth
from infra.data_key import allow_table
from infra.lambda_function import LambdaDefaults, TaskFunction, api_function, stream_source
from infra.retention import log_group
from infra.task_table import allow_listing, task_table_environment
from taskflow import auth_contract, env_vars, table_schema

ACCESS_LOG_FIELDS = {
    "requestId": "$context.requestId",
    "connectionId": "$context.connectionId",
    "eventType": "$context.eventType",
    "routeKey": "$context.routeKey",
    "status": "$context.status",
    "requestTime": "$context.requestTime",
    "ip": "$context.identity.sourceIp",
    "integrationLatency": "$context.integrationLatency",
    "error": "$context.error.message",
}


# Stream records the notifier sees: the changes a client can see (taskflow.domain.notifications).
# A claim (leaseState running) and a release (released) change nothing visible; Lambda drops them
# before invoking, so they cost no invocation. The handler still checks every record it gets.
NOTIFY_FILTERS = [
    lambda_.FilterCriteria.filter({"eventName": lambda_.FilterRule.is_equal("INSERT")}),
    # finished (success, error) or retried: the lease attributes are removed
    lambda_.FilterCriteria.filter(
        {
            "eventName": lambda_.FilterRule.is_equal("MODIFY"),
            "dynamodb": {"NewImage": {table_schema.TASK_LEASE_STATE: lambda_.FilterRule.not_exists()}},
        }
    ),
    # a failed attempt: retries and errorMessage change, the lease backs off
    lambda_.FilterCriteria.filter(
        {
            "eventName": lambda_.FilterRule.is_equal("MODIFY"),
            "dynamodb": {
                "NewImage": {
                    table_schema.TASK_LEASE_STATE: {
                        "S": lambda_.FilterRule.is_equal(table_schema.LEASE_BACKING_OFF)
                    }
                }
            },
        }
    ),
]


class WebSocketApi(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        defaults: LambdaDefaults,
        task_table: dynamodb.Table,
        connection_table: dynamodb.Table,
        auth: Auth | None = None,
    ) -> None:
        """`auth` (stages with `auth: jwt`): its Lambda authorizer admits connections on $connect, and
        the notifier pushes a task's changes to its owner's connections only."""
        super().__init__(scope, construct_id)
        stage = defaults.stage
        connections_env = {env_vars.CONNECTION_TABLE_NAME: connection_table.table_name}
        # Set on jwt stages only: a stage with `auth: none` keeps its environment as it was.
        auth_env = {env_vars.AUTH_MODE: auth_contract.AUTH_JWT} if auth else {}
        # @connections methods the posting functions may call: DELETE closes a connection whose
        # token expired (stages with authorizers only).
        self.connection_methods: tuple[str, ...] = ("POST", "DELETE") if auth else ("POST",)

        self.connect = api_function(
            self,
            "WsConnectFunction",
            defaults=defaults,
            handler="taskflow.handlers.ws_connect.handler",
            environment={
                **connections_env,
                env_vars.CONNECTION_TTL_SECONDS: str(stage.connection_ttl_seconds),
                **auth_env,
            },
        )
        _allow(self.connect, connection_table, "dynamodb:PutItem")

        self.disconnect = api_function(
            self,
            "WsDisconnectFunction",
            defaults=defaults,
            handler="taskflow.handlers.ws_disconnect.handler",
            environment=connections_env,
        )
        _allow(self.disconnect, connection_table, "dynamodb:DeleteItem")

        # Answers client frames ({"action": "ping"} -> pong, "resume" -> the missed frames (its
        # environment and grants are added below, once the stage's @connections URL exists),
        # anything else -> error frame).
        self.default = api_function(
            self,
            "WsDefaultFunction",
            defaults=defaults,
            handler="taskflow.handlers.ws_default.handler",
            timeout_seconds=defaults.stage.resume_timeout_seconds,
        )

        self.api = apigwv2.WebSocketApi(
            self,
            "Default",
            api_name=f"{Stack.of(self).stack_name}-{construct_id}",
            # API Gateway authorizes a WebSocket connection once, on $connect; the other routes run on
            # an admitted connection.
            connect_route_options=apigwv2.WebSocketRouteOptions(
                integration=WebSocketLambdaIntegration("ConnectIntegration", self.connect.function),
                authorizer=auth.ws_authorizer if auth else None,
            ),
            disconnect_route_options=apigwv2.WebSocketRouteOptions(
                integration=WebSocketLambdaIntegration("DisconnectIntegration", self.disconnect.function)
            ),
            # Two-way route: the body the handler returns is sent back to the client as a frame.
            default_route_options=apigwv2.WebSocketRouteOptions(
                integration=WebSocketLambdaIntegration("DefaultIntegration", self.default.function),
                return_response=True,
            ),
        )

        access_log_settings = None
        if stage.websocket_access_logs:
            self.access_logs = log_group(self, "AccessLogs", stage)
            access_log_settings = JsonAccessLogSettings(self.access_logs, ACCESS_LOG_FIELDS)
        self.stage = apigwv2.WebSocketStage(
            self,
            "Stage",
            web_socket_api=self.api,
            stage_name=stage.name,
            auto_deploy=True,
            throttle=apigwv2.ThrottleSettings(
                rate_limit=stage.ws_throttle_rate, burst_limit=stage.ws_throttle_burst
            ),
            access_log_settings=access_log_settings,
        )
        self.url = self.stage.url

        self.notifier = TaskFunction(
            self,
            "NotifierFunction",
            defaults=defaults,
            handler="taskflow.handlers.notifier.handler",
            timeout_seconds=stage.stream_timeout_seconds,
            environment={
                **connections_env,
                # https://{apiId}.execute-api.{region}.{urlSuffix}/{stage}: the @connections endpoint.
                env_vars.WEBSOCKET_CALLBACK_URL: self.stage.callback_url,
                **auth_env,
            },
        )
        self.notifier.function.add_event_source(
            stream_source(
                task_table,
                stage,
                batch_size=stage.notifier_batch_size,
                retry_attempts=stage.notifier_retry_attempts,
                filters=NOTIFY_FILTERS,
            )
        )
        if auth:
            # A task's owner's connections, from the owner index: no Scan on this stage.
            allow_table(
                self.notifier.role,
                connection_table,
                ["dynamodb:Query"],
                [f"{connection_table.table_arn}/index/{table_schema.CONNECTIONS_BY_OWNER_INDEX}"],
            )
            _allow(self.notifier, connection_table, "dynamodb:DeleteItem")
        else:
            # Every connection gets every task's changes.
            _allow(self.notifier, connection_table, "dynamodb:Scan", "dynamodb:DeleteItem")
        self._allow_posts(self.notifier)

        # {"action": "resume"} on $default replays the changes a reconnecting client missed
        # (taskflow.services.resume): it reads the caller's tasks and posts frames, like the notifier.
        for name, value in {
            **task_table_environment(task_table, stage),
            env_vars.WEBSOCKET_CALLBACK_URL: self.stage.callback_url,
            env_vars.RESUME_MAX_CHANGES: str(stage.resume_max_changes),
            env_vars.RESUME_WINDOW_SECONDS: str(stage.resume_window_seconds),
            **auth_env,
        }.items():
            self.default.function.add_environment(name, value)
        allow_listing(self.default.role, task_table)
        _allow(self.default, task_table, "dynamodb:BatchGetItem")
        self._allow_posts(self.default)

    def _allow_posts(self, function: TaskFunction) -> None:
        """execute-api:ManageConnections on this stage's @connections: POST (post_to_connection),
        and on `auth: jwt` stages DELETE (delete_connection: a connection ends with its token);
        never reading connections. (The L2 grant_management_api_access would allow every method.)
        The trailing * is the connection id, known only at run time."""
        function.role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["execute-api:ManageConnections"],
                resources=[
                    Stack.of(self).format_arn(
                        service="execute-api",
                        resource=self.api.api_id,
                        resource_name=f"{self.stage.stage_name}/{method}/@connections/*",
                    )
                    for method in self.connection_methods
                ],
            )
        )


def _allow(function: TaskFunction, table: dynamodb.Table, *actions: str) -> None:
    allow_table(function.role, table, actions, [table.table_arn])
