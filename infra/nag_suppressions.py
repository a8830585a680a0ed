"""cdk-nag (AwsSolutions pack): the findings this app accepts, each on its exact resource, with why.

app.py runs the pack on every stage at synth (`Validations.of(app).add_plugins(AwsSolutionsChecks(...))`)
and synth fails on any finding not acknowledged here; tests/infra/test_nag.py runs it on each stage.
Everything else the pack checks is fixed in the constructs, not acknowledged.

cdk-nag 3 reads CDK's own acknowledgments (`Validations.of(construct).acknowledge(...)`, which
replaced v2's NagSuppressions). An acknowledgment covers the construct it is put on and all its
children, so each one here goes on the L1 resource the finding names (a CfnRoute, a CfnPolicy, a
CfnTable), never on a parent construct or the stack; findings with a detail (IAM5 wildcards) are
acknowledged by that exact finding, `RuleId[finding]`, not by rule. docs/security.md lists them all.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Acknowledgment, CfnResource, Stack, Validations
from aws_cdk import aws_apigatewayv2 as apigwv2
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from constructs import IConstruct

from infra.auth import Auth
from infra.config import StageConfig
from infra.http_api import OPENAPI_DOCUMENT_PATH, HttpApi
from infra.lambda_function import TaskFunction
from infra.websocket_api import WebSocketApi


@dataclass(frozen=True)
class Suppression:
    rule_id: str  # a rule ("AwsSolutions-APIG4") or one finding of a rule ("AwsSolutions-IAM5[Resource::*]")
    reason: str


HTTP_ROUTES_WITHOUT_AUTH = Suppression(
    "AwsSolutions-APIG4",
    "Stages with `auth: none` only: the task API serves the existing browser frontend, which sends no "
    "credentials (wire contract), so the routes are public by design: stage throttling limits abuse, "
    "every input is validated, and nothing but tasks is reachable through them. Stages with "
    "`auth: jwt` put a JWT authorizer on every route and carry no such acknowledgment.",
)
OPENAPI_DOCUMENT_WITHOUT_AUTH = Suppression(
    "AwsSolutions-APIG4",
    "Stages with `auth: none` only: GET /openapi.json serves the API's own OpenAPI document, generated "
    "from the function's routes: it describes the public task routes (the same text is in the "
    "repository, docs/openapi.json) and holds no data, no stage settings and no secrets. On stages "
    "with `auth: jwt` it is behind the JWT authorizer like every route.",
)
WEBSOCKET_CONNECT_WITHOUT_AUTH = Suppression(
    "AwsSolutions-APIG4",
    "Stages with `auth: none` only: the frontend opens the WebSocket without credentials (wire "
    "contract) and only receives task status frames. Stages with `auth: jwt` have a Lambda "
    "authorizer on $connect and carry no such acknowledgment.",
)
WEBSOCKET_ROUTE_AFTER_CONNECT = Suppression(
    "AwsSolutions-APIG4",
    "API Gateway authorizes a WebSocket connection on $connect only; $disconnect and $default run on "
    "an already admitted connection and cannot have an authorizer of their own.",
)
STREAM_LISTING = Suppression(
    "AwsSolutions-IAM5[Resource::*]",
    "dynamodb:ListStreams has no resource-level permissions (IAM service authorization reference), "
    "and Lambda's stream poller calls it; CDK's DynamoEventSource grants only that action on *. The "
    "stream reads (DescribeStream, GetRecords, GetShardIterator) are on this table's stream ARN.",
)
CONNECTION_TABLE_WITHOUT_PITR = Suppression(
    "AwsSolutions-DDB3",
    "The connection table holds live WebSocket connection ids only, each gone within 2 h (API "
    "Gateway's connection limit, then TTL); a restored row would point at a closed connection. "
    "There is nothing point-in-time recovery could give back. The task table has PITR.",
)
USER_POOL_MFA_OPTIONAL = Suppression(
    "AwsSolutions-COG2",
    "The user pool created by `auth: jwt` stages offers MFA (authenticator app, TOTP) without "
    "requiring it: its users are created by admins (no self sign-up), passwords are strong (12+ "
    "characters of four classes) and tokens live 1 h. Requiring MFA is one setting (mfa=REQUIRED) "
    "for a deployment whose users can all enrol a second factor; stages that need more use their own "
    "identity provider (jwt_issuer).",
)
USER_POOL_LITE_PLAN = Suppression(
    "AwsSolutions-COG8",
    "The user pool uses Cognito's Lite feature plan: it has all this app uses (SRP sign-in, "
    "admin-created users, TOTP MFA, token revocation). Plus (threat protection, compromised "
    "credential checks) is billed per monthly active user on top; a deployment that wants it sets "
    "feature_plan=PLUS, or points jwt_issuer at an identity provider that has such protection.",
)
WEBSOCKET_WITHOUT_ACCESS_LOGS = Suppression(
    "AwsSolutions-APIG1",
    "The stage config turns WebSocket access logs off (websocket_access_logs: false) because the "
    "account has no API Gateway CloudWatch Logs role, which they need; set the role up once and "
    "turn them back on (docs/operations.md).",
)


CONNECTION_METHODS = {
    "POST": "post_to_connection",
    "DELETE": "delete_connection: closing a connection whose token expired, `auth: jwt` stages",
}


def connections_wildcard(
    websocket_api: WebSocketApi, stage: StageConfig, method: str = "POST"
) -> Suppression:
    """The ManageConnections grant of the functions that post frames (the notifier, and $default for
    a resume), and on `auth: jwt` stages close connections: one finding per method, naming this API
    and stage."""
    cfn_api = websocket_api.api.node.default_child
    assert isinstance(cfn_api, apigwv2.CfnApi)
    api_logical_id = Stack.of(cfn_api).resolve(cfn_api.logical_id)
    resource = (
        "arn:<AWS::Partition>:execute-api:<AWS::Region>:<AWS::AccountId>:"
        f"<{api_logical_id}>/{stage.name}/{method}/@connections/*"
    )
    return Suppression(
        f"AwsSolutions-IAM5[Resource::{resource}]",
        f"execute-api:ManageConnections is already limited to this API, this stage and {method} "
        f"({CONNECTION_METHODS[method]}); the last segment is the connection id, which exists only at "
        "run time.",
    )


def acknowledge_accepted_findings(
    *,
    stage: StageConfig,
    http_api: HttpApi,
    websocket_api: WebSocketApi,
    stream_consumers: tuple[TaskFunction, ...],
    connection_table: dynamodb.Table,
    auth: Auth | None = None,
) -> list[tuple[str, Suppression]]:
    """Acknowledge each accepted finding on its resource. Returns (construct path, suppression) pairs.

    With `auth` (stages with `auth: jwt`) the HTTP routes and WebSocket $connect are authorized: no
    APIG4 acknowledgment there, so a route that lost its authorizer is reported.
    """
    applied: list[tuple[str, Suppression]] = []

    def acknowledge(resource: IConstruct, suppression: Suppression) -> None:
        assert isinstance(resource, CfnResource), f"{resource.node.path} is not an L1 resource"
        Validations.of(resource).acknowledge(
            Acknowledgment(id=suppression.rule_id, reason=suppression.reason)
        )
        applied.append((resource.node.path, suppression))

    if auth is None:
        for route in _routes(http_api.api):
            document = route.route_key == f"GET {OPENAPI_DOCUMENT_PATH}"
            acknowledge(route, OPENAPI_DOCUMENT_WITHOUT_AUTH if document else HTTP_ROUTES_WITHOUT_AUTH)
    for route in _routes(websocket_api.api):
        if route.route_key != "$connect":
            acknowledge(route, WEBSOCKET_ROUTE_AFTER_CONNECT)
        elif auth is None:
            acknowledge(route, WEBSOCKET_CONNECT_WITHOUT_AUTH)
    for consumer in stream_consumers:
        acknowledge(_default_policy(consumer.role), STREAM_LISTING)
    for poster in (websocket_api.notifier, websocket_api.default):
        for method in websocket_api.connection_methods:
            acknowledge(_default_policy(poster.role), connections_wildcard(websocket_api, stage, method))
    acknowledge(_l1(connection_table), CONNECTION_TABLE_WITHOUT_PITR)
    if auth is not None and auth.user_pool is not None:
        acknowledge(_l1(auth.user_pool), USER_POOL_MFA_OPTIONAL)
        acknowledge(_l1(auth.user_pool), USER_POOL_LITE_PLAN)
    if not stage.websocket_access_logs:
        acknowledge(_l1(websocket_api.stage), WEBSOCKET_WITHOUT_ACCESS_LOGS)
    return applied


def _routes(api: IConstruct) -> list[apigwv2.CfnRoute]:
    return [child for child in api.node.find_all() if isinstance(child, apigwv2.CfnRoute)]


def _default_policy(role: iam.Role) -> CfnResource:
    return _l1(role.node.find_child("DefaultPolicy"))


def _l1(construct: IConstruct) -> CfnResource:
    cfn = construct.node.default_child
    assert isinstance(cfn, CfnResource), f"{construct.node.path} has no L1 resource"
    return cfn
