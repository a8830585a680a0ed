"""HttpApi: the REST-ish task API (payload v2) in front of one HttpApiFunction."""

from __future__ import annotations

from aws_cdk import Duration, Stack
from aws_cdk import aws_apigatewayv2 as apigwv2
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk.aws_apigatewayv2_integrations import HttpLambdaIntegration
from constructs import Construct

from infra.access_logs import JsonAccessLogSettings
from infra.auth import Auth
from infra.data_key import allow_table
from infra.lambda_function import LambdaDefaults, api_function, comma_list, flag
from infra.retention import log_group
from infra.task_table import allow_listing, task_table_environment
from taskflow import auth_contract, env_vars

# The API's own OpenAPI document, served by the function (taskflow.api.openapi; docs/openapi.json).
OPENAPI_DOCUMENT_PATH = "/openapi.json"
# (path, methods) served by the API; all reach the same function.
ROUTES: tuple[tuple[str, tuple[apigwv2.HttpMethod, ...]], ...] = (
    ("/tasks", (apigwv2.HttpMethod.POST, apigwv2.HttpMethod.GET)),
    ("/tasks/{taskId}", (apigwv2.HttpMethod.GET,)),
    ("/tasks/{taskId}/retry", (apigwv2.HttpMethod.POST,)),
    (OPENAPI_DOCUMENT_PATH, (apigwv2.HttpMethod.GET,)),
)
EXPOSED_HEADERS = ["Location", "Link"]  # Location on 202, Link rel="next" on GET /tasks
CORS_MAX_AGE = Duration.hours(1)

# HTTP API access log: one JSON object per request.
ACCESS_LOG_FIELDS = {
    "requestId": "$context.requestId",
    "ip": "$context.identity.sourceIp",
    "requestTime": "$context.requestTime",
    "routeKey": "$context.routeKey",
    "status": "$context.status",
    "protocol": "$context.protocol",
    "responseLength": "$context.responseLength",
    "responseLatency": "$context.responseLatency",
    "integrationLatency": "$context.integrationLatency",
    "integrationError": "$context.integrationErrorMessage",
    "error": "$context.error.message",
}


class HttpApi(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        defaults: LambdaDefaults,
        task_table: dynamodb.Table,
        auth: Auth | None = None,
    ) -> None:
        """`auth` (stages with `auth: jwt`): its JWT authorizer guards every route."""
        super().__init__(scope, construct_id)
        stage = defaults.stage
        # Set on jwt stages only: a stage with `auth: none` keeps its environment as it was.
        auth_env = {env_vars.AUTH_MODE: auth_contract.AUTH_JWT} if auth else {}

        # One function behind a Powertools resolver for every route: one cold-start pool and
        # shared warm containers instead of four small ones, and the routing is tested in-process.
        self.handler = api_function(
            self,
            "HttpApiFunction",
            defaults=defaults,
            handler="taskflow.handlers.http_api.handler",
            environment={
                **task_table_environment(task_table, stage),
                env_vars.CORS_ORIGINS: comma_list(stage.cors_origins),
                env_vars.CORS_HEADERS: comma_list(stage.cors_headers),
                env_vars.ALLOW_FAULT_INJECTION: flag(stage.allow_fault_injection),
                **auth_env,
            },
        )
        allow_table(
            self.handler.role,
            task_table,
            # BatchGetItem: a listing page reads its tasks after the keys-only ByCreated Queries.
            ["dynamodb:PutItem", "dynamodb:GetItem", "dynamodb:UpdateItem", "dynamodb:BatchGetItem"],
            [task_table.table_arn],
        )
        allow_listing(self.handler.role, task_table)

        self.api = apigwv2.HttpApi(
            self,
            "Default",
            api_name=f"{Stack.of(self).stack_name}-{construct_id}",
            # The default stage is created below: HttpApi's own has no throttle or access-log props.
            create_default_stage=False,
            cors_preflight=apigwv2.CorsPreflightOptions(
                allow_origins=list(stage.cors_origins),
                allow_headers=list(stage.cors_headers),
                allow_methods=[
                    apigwv2.CorsHttpMethod.GET,
                    apigwv2.CorsHttpMethod.POST,
                    apigwv2.CorsHttpMethod.OPTIONS,
                ],
                expose_headers=EXPOSED_HEADERS,
                max_age=CORS_MAX_AGE,
            ),
            # Every route added below, the OpenAPI document included. Preflight stays open: with CORS
            # configured and no OPTIONS route, API Gateway answers OPTIONS itself, before any authorizer.
            default_authorizer=auth.http_authorizer if auth else None,
        )
        integration = HttpLambdaIntegration("TaskIntegration", self.handler.function)
        for path, methods in ROUTES:
            self.api.add_routes(path=path, methods=list(methods), integration=integration)

        self.access_logs = log_group(self, "AccessLogs", stage)
        self.stage = apigwv2.HttpStage(
            self,
            "DefaultStage",
            http_api=self.api,
            stage_name="$default",
            auto_deploy=True,
            throttle=apigwv2.ThrottleSettings(
                rate_limit=stage.http_throttle_rate, burst_limit=stage.http_throttle_burst
            ),
            access_log_settings=JsonAccessLogSettings(self.access_logs, ACCESS_LOG_FIELDS),
        )
        self.url = self.stage.url
