"""The stage variants the template tests read, synthesized once per session, and how to read a
template: find resources by what they are, follow references.

Logical ids carry hashes, so tests locate resources by their properties (a function by its
handler, a table by its key) and compare references built from the ids found.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Capture, Match, Matcher, Template

from infra.config import StageConfig, load_stages
from infra.stack import TaskBackendStack, stack_name_for
from taskflow import auth_contract, table_schema

REPO_ROOT = Path(__file__).resolve().parents[2]

# Construct id -> handler, as the SPEC table lists them.
HANDLERS = {
    "HttpApiFunction": "taskflow.handlers.http_api.handler",
    "EnqueueFunction": "taskflow.handlers.enqueue.handler",
    "ProcessorFunction": "taskflow.handlers.processor.handler",
    "DlqConsumerFunction": "taskflow.handlers.dlq_consumer.handler",
    "NotifierFunction": "taskflow.handlers.notifier.handler",
    "WsConnectFunction": "taskflow.handlers.ws_connect.handler",
    "WsDisconnectFunction": "taskflow.handlers.ws_disconnect.handler",
    "WsDefaultFunction": "taskflow.handlers.ws_default.handler",
}
# Functions of stages with `auth: jwt` only.
AUTH_HANDLERS = {"WsAuthorizerFunction": "taskflow.handlers.ws_authorizer.handler"}
ALL_HANDLERS = {**HANDLERS, **AUTH_HANDLERS}
# A configured (not created) issuer, for the `auth: jwt` stages that bring their own identity provider.
EXTERNAL_ISSUER = "https://issuer.example.com/"
EXTERNAL_AUDIENCE = ("web-client",)


def handlers_of(stage: StageConfig) -> dict[str, str]:
    """Construct id -> handler of every function the stage has."""
    return ALL_HANDLERS if stage.auth == auth_contract.AUTH_JWT else HANDLERS


@functools.cache
def cdk_json_stages() -> dict[str, StageConfig]:
    context = json.loads((REPO_ROOT / "cdk.json").read_text())["context"]
    return load_stages(context["stages"])


def changed(stage: StageConfig, **changes: Any) -> StageConfig:
    """A copy of the stage with some settings changed, validated like cdk.json values."""
    return StageConfig.model_validate({**stage.model_dump(), **changes})


@functools.cache
def build_stack(stage: StageConfig) -> TaskBackendStack:
    """The stack of a stage, built once per session (the nag tests inspect its construct tree)."""
    return TaskBackendStack(cdk.App(), stack_name_for(stage), stage=stage)


@functools.cache
def synth(stage: StageConfig) -> Template:
    return Template.from_stack(build_stack(stage))


def ref(logical_id: str) -> dict[str, Any]:
    return {"Ref": logical_id}


def arn(logical_id: str, attribute: str = "Arn") -> dict[str, Any]:
    return {"Fn::GetAtt": [logical_id, attribute]}


def resources(template: Template, resource_type: str) -> dict[str, dict[str, Any]]:
    return template.find_resources(resource_type)


def only(found: dict[str, Any]) -> str:
    assert len(found) == 1, f"expected exactly one match, found {sorted(found)}"
    return next(iter(found))


def properties(template: Template, logical_id: str) -> dict[str, Any]:
    return template.to_json()["Resources"][logical_id].get("Properties", {})


def function_id(template: Template, construct_id: str) -> str:
    handler = ALL_HANDLERS[construct_id]
    return only(template.find_resources("AWS::Lambda::Function", {"Properties": {"Handler": handler}}))


def function_ids(template: Template) -> dict[str, str]:
    """Construct id -> logical id of every function in the template (each one a known handler)."""
    found = {
        construct_id: function_id(template, construct_id)
        for construct_id, handler in ALL_HANDLERS.items()
        if template.find_resources("AWS::Lambda::Function", {"Properties": {"Handler": handler}})
    }
    assert len(found) == len(resources(template, "AWS::Lambda::Function")), "a function with another handler"
    return found


def environment(template: Template, fn_id: str) -> dict[str, Any]:
    return properties(template, fn_id)["Environment"]["Variables"]


def role_id(template: Template, fn_id: str) -> str:
    role = properties(template, fn_id)["Role"]
    assert "Fn::GetAtt" in role, role
    return role["Fn::GetAtt"][0]


def permissions(template: Template, fn_id: str) -> set[tuple[str, str]]:
    """Every (action, resource) pair the function's role is allowed, from all its policies."""
    role = role_id(template, fn_id)
    pairs: set[tuple[str, str]] = set()
    for policy in resources(template, "AWS::IAM::Policy").values():
        if ref(role) not in policy["Properties"]["Roles"]:
            continue
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            assert statement["Effect"] == "Allow", statement
            actions = statement["Action"]
            targets = statement["Resource"]
            for action in actions if isinstance(actions, list) else [actions]:
                for target in targets if isinstance(targets, list) else [targets]:
                    pairs.add((action, canonical(target)))
    return pairs


def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def event_source_mapping(template: Template, fn_id: str) -> dict[str, Any]:
    found = template.find_resources(
        "AWS::Lambda::EventSourceMapping", {"Properties": {"FunctionName": ref(fn_id)}}
    )
    return found[only(found)]["Properties"]


def integration_target(template: Template, route_props: dict[str, Any]) -> str:
    """The logical id of the Lambda function a route's integration invokes."""
    parts = route_props["Target"]["Fn::Join"][1]
    assert parts[0] == "integrations/", parts
    integration = properties(template, parts[1]["Ref"])
    assert integration["IntegrationType"] == "AWS_PROXY", integration
    uri = integration["IntegrationUri"]
    if "Fn::GetAtt" in uri:  # HTTP API: the function ARN
        return uri["Fn::GetAtt"][0]
    # WebSocket API: arn:...:apigateway:{region}:lambda:path/2015-03-31/functions/{fn arn}/invocations
    targets = [p["Fn::GetAtt"][0] for p in uri["Fn::Join"][1] if isinstance(p, dict) and "Fn::GetAtt" in p]
    return only(dict.fromkeys(targets))


def routes(template: Template, api_id: str) -> dict[str, dict[str, Any]]:
    """Route key -> route properties, for one API."""
    found = template.find_resources("AWS::ApiGatewayV2::Route", {"Properties": {"ApiId": ref(api_id)}})
    return {props["Properties"]["RouteKey"]: props["Properties"] for props in found.values()}


@dataclass(frozen=True)
class StackIds:
    """Logical ids of the stack's stateful resources and APIs."""

    task_table: str
    connection_table: str
    queue: str
    dlq: str
    http_api: str
    websocket_api: str
    websocket_stage: str
    http_stage: str
    # The stage's customer managed key of the task data (`customer_managed_keys`), or None.
    data_key: str | None


def stack_ids(template: Template) -> StackIds:
    tables = resources(template, "AWS::DynamoDB::Table")
    by_key = {props["Properties"]["KeySchema"][0]["AttributeName"]: tid for tid, props in tables.items()}
    queues = resources(template, "AWS::SQS::Queue")
    queue = only({qid: q for qid, q in queues.items() if "RedrivePolicy" in q["Properties"]})
    dlq = only({qid: q for qid, q in queues.items() if "RedrivePolicy" not in q["Properties"]})
    apis = resources(template, "AWS::ApiGatewayV2::Api")
    http_api = only({aid: a for aid, a in apis.items() if a["Properties"]["ProtocolType"] == "HTTP"})
    ws_api = only({aid: a for aid, a in apis.items() if a["Properties"]["ProtocolType"] == "WEBSOCKET"})
    stages = resources(template, "AWS::ApiGatewayV2::Stage")
    table_key = tables[by_key[table_schema.TASK_PK]]["Properties"]["SSESpecification"].get("KMSMasterKeyId")
    return StackIds(
        task_table=by_key[table_schema.TASK_PK],
        connection_table=by_key[table_schema.CONNECTION_PK],
        queue=queue,
        dlq=dlq,
        http_api=http_api,
        websocket_api=ws_api,
        http_stage=only({sid: s for sid, s in stages.items() if s["Properties"]["ApiId"] == ref(http_api)}),
        websocket_stage=only(
            {sid: s for sid, s in stages.items() if s["Properties"]["ApiId"] == ref(ws_api)}
        ),
        data_key=table_key["Fn::GetAtt"][0] if table_key else None,
    )


# Variant name -> (cdk.json stage it starts from, the settings it changes). Each differs from its
# cdk.json stage in one concern, so a test of that concern compares the two.
STAGE_VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    # As deployed: dev has `auth: none`; prod `auth: jwt` with a created user pool, and its own data key.
    "dev": ("dev", {}),
    "prod": ("prod", {}),
    # dev with `auth: jwt`: creating its Cognito user pool, or naming an external issuer.
    "jwt_pool": ("dev", {"auth": "jwt"}),
    "jwt_issuer": ("dev", {"auth": "jwt", "jwt_issuer": EXTERNAL_ISSUER, "jwt_audience": EXTERNAL_AUDIENCE}),
    # dev with the task data encrypted under a key of its own, as prod is (an `auth: none` stage with it).
    "dev_cmk": ("dev", {"customer_managed_keys": True}),
    # prod as it was before authentication existed: the template of an `auth: none` stage must not change.
    "prod_auth_none": ("prod", {"auth": "none"}),
    # Settings that change which resources exist (and so what cdk-nag and checkov see).
    "dev_without_websocket_access_logs": ("dev", {"websocket_access_logs": False}),
    "prod_with_alarm_email": ("prod", {"alarm_email": "ops@example.com"}),
    "prod_with_reserved_processor": ("prod", {"processor_reserved_concurrency": 100}),
}


@dataclass(frozen=True)
class Variant:
    """A stage variant as the tests read it: its settings, its stack and the synthesized template."""

    name: str
    stage: StageConfig
    stack: TaskBackendStack
    template: Template
    ids: StackIds


@functools.cache
def stage_variant(name: str) -> Variant:
    """The stage variant of that name (STAGE_VARIANTS), synthesized once per session."""
    base, settings = STAGE_VARIANTS[name]
    stage = changed(cdk_json_stages()[base], **settings)
    template = synth(stage)
    return Variant(name, stage, build_stack(stage), template, stack_ids(template))


def on_variants(*names: str) -> pytest.MarkDecorator:
    """Run the test once per stage variant, each handing the test's `variant` fixture (conftest)."""
    assert set(names) <= set(STAGE_VARIANTS), sorted(set(names) - set(STAGE_VARIANTS))
    return pytest.mark.parametrize("variant", names, indirect=True)


def has_environment(template: Template, construct_id: str, variables: dict[str, Any]) -> None:
    """Assert the function's environment holds these variables (among others)."""
    template.has_resource_properties(
        "AWS::Lambda::Function",
        {"Handler": ALL_HANDLERS[construct_id], "Environment": {"Variables": Match.object_like(variables)}},
    )


def has_api_stage(template: Template, api_id: str, stage_properties: dict[str, Any]) -> None:
    """Assert the API has a stage with these properties."""
    template.has_resource_properties("AWS::ApiGatewayV2::Stage", {"ApiId": ref(api_id), **stage_properties})


def throttling(rate: int, burst: int) -> Matcher:
    """An API stage's DefaultRouteSettings: exactly this throttling, nothing else."""
    return Match.object_equals({"ThrottlingRateLimit": rate, "ThrottlingBurstLimit": burst})


def has_json_access_logs(template: Template, api_id: str, fields: dict[str, str]) -> None:
    """Assert the API's stage writes JSON access logs with these fields to a log group of the stack."""
    log_group = Capture()
    has_api_stage(
        template,
        api_id,
        {
            "AccessLogSettings": {
                "DestinationArn": {"Fn::GetAtt": [log_group, "Arn"]},
                "Format": Match.serialized_json(Match.object_like(fields)),
            }
        },
    )
    assert log_group.as_string() in template.find_resources("AWS::Logs::LogGroup")
