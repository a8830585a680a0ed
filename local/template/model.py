"""What the local stack runs: the specs read from the synthesized template, and the findings.

`build_stack_model` (local/template/reader.py) fills a StackModel with specs (tables, queues,
functions, event source mappings, HTTP and WebSocket APIs) and findings: every template feature
that the local stack supports only partly, does not support, or does not need.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from local.gateways.cors import CorsConfig
from local.template.intrinsics import PseudoParameters, Resolver
from local.template.report import Finding, FindingKind

if TYPE_CHECKING:
    from local.template.values import LocalValues

TABLE_TYPES = ("AWS::DynamoDB::Table", "AWS::DynamoDB::GlobalTable")
QUEUE_TYPE = "AWS::SQS::Queue"
FUNCTION_TYPE = "AWS::Lambda::Function"
MAPPING_TYPE = "AWS::Lambda::EventSourceMapping"
API_TYPE = "AWS::ApiGatewayV2::Api"
ROUTE_TYPE = "AWS::ApiGatewayV2::Route"
INTEGRATION_TYPE = "AWS::ApiGatewayV2::Integration"
STAGE_TYPE = "AWS::ApiGatewayV2::Stage"
ROUTE_RESPONSE_TYPE = "AWS::ApiGatewayV2::RouteResponse"
AUTHORIZER_TYPE = "AWS::ApiGatewayV2::Authorizer"
USER_POOL_TYPE = "AWS::Cognito::UserPool"
USER_POOL_CLIENT_TYPE = "AWS::Cognito::UserPoolClient"
LAYER_VERSION_TYPE = "AWS::Lambda::LayerVersion"

# The local token issuers (local/auth/issuer.py) are served by the HTTP API's server (or, without an
# HTTP API, the WebSocket API's) under this path: {base}/<user pool id>/.well-known/...
ISSUERS_PATH = "/_local/issuers"
DEFAULT_ISSUER_BASE = f"http://127.0.0.1:4000{ISSUERS_PATH}"


@dataclass(frozen=True)
class TableSpec:
    logical_id: str
    display_name: str
    name: str
    resource_type: str
    key_schema: list[dict[str, str]]
    attribute_definitions: list[dict[str, str]]
    global_secondary_indexes: list[dict[str, Any]]
    local_secondary_indexes: list[dict[str, Any]]
    stream_view_type: str | None
    ttl_attribute: str | None


@dataclass(frozen=True)
class QueueSpec:
    logical_id: str
    display_name: str
    name: str
    fifo: bool
    attributes: dict[str, str]  # CreateQueue attributes, times unscaled
    dead_letter_target: str | None  # logical id of the DLQ
    max_receive_count: int | None
    is_dead_letter_queue: bool = False


@dataclass(frozen=True)
class FunctionSpec:
    logical_id: str
    display_name: str
    name: str
    handler: str
    runtime: str
    timeout: int
    memory_size: int
    environment: dict[str, Any]  # unresolved template values
    asset_dir: Path | None
    inline_code: str | None
    reserved_concurrency: int | None
    log_format: str | None


@dataclass(frozen=True)
class EventSourceMappingSpec:
    logical_id: str
    function_id: str
    source_kind: str  # "sqs" | "dynamodb"
    source_id: str  # logical id of the queue or table
    batch_size: int
    batching_window_seconds: float
    report_batch_item_failures: bool
    maximum_concurrency: int | None
    starting_position: str | None
    filter_patterns: list[dict[str, Any]]
    maximum_retry_attempts: int  # -1: until the record expires
    bisect_on_error: bool
    maximum_record_age_seconds: int  # -1: no limit
    enabled: bool


@dataclass(frozen=True)
class JwtAuthorizerSpec:
    """An HTTP API authorizer of type JWT."""

    logical_id: str
    display_name: str
    identity_source: str  # "$request.header.Authorization" (or another header / query parameter)
    issuer: Any  # template value (JwtConfiguration.Issuer), resolved at start
    audience: Any  # template value (JwtConfiguration.Audience: a list), resolved at start


@dataclass(frozen=True)
class RequestAuthorizerSpec:
    """A WebSocket API Lambda authorizer of type REQUEST (on $connect)."""

    logical_id: str
    display_name: str
    function_id: str | None  # None: its function is not in this template ($connect answers 500)
    identity_sources: tuple[str, ...]  # e.g. ("route.request.querystring.token",)

    @property
    def query_parameter(self) -> str | None:
        """The query-string parameter it reads (the token, for a browser), if any."""
        prefix = "route.request.querystring."
        return next((s.removeprefix(prefix) for s in self.identity_sources if s.startswith(prefix)), None)


@dataclass(frozen=True)
class UserPoolSpec:
    logical_id: str
    display_name: str
    client_ids: tuple[str, ...]  # logical ids of its app clients in this template


@dataclass(frozen=True)
class UserPoolClientSpec:
    logical_id: str
    display_name: str
    pool_id: str | None  # logical id of its user pool, when in this template


@dataclass(frozen=True)
class LayerSpec:
    """An AWS::Lambda::LayerVersion of this template (e.g. built from a local asset folder)."""

    logical_id: str
    display_name: str
    name: str
    asset_dir: Path | None


@dataclass(frozen=True)
class HttpRouteSpec:
    route_key: str
    function_id: str | None
    authorizer: JwtAuthorizerSpec | None = None
    authorization_scopes: tuple[str, ...] = ()


@dataclass(frozen=True)
class HttpApiSpec:
    logical_id: str
    display_name: str
    api_id: str
    routes: list[HttpRouteSpec]
    cors: CorsConfig | None
    stage_name: str


@dataclass(frozen=True)
class WebSocketRouteSpec:
    route_key: str
    function_id: str | None
    two_way: bool
    authorizer: RequestAuthorizerSpec | None = None


@dataclass(frozen=True)
class WebSocketApiSpec:
    logical_id: str
    display_name: str
    api_id: str
    route_selection_expression: str
    routes: dict[str, WebSocketRouteSpec]
    stage_name: str
    stage_variables: dict[str, str] = field(default_factory=dict)


@dataclass
class StackModel:
    stack_name: str
    pseudo: PseudoParameters
    template: dict[str, Any]
    cdk_out: Path
    tables: dict[str, TableSpec] = field(default_factory=dict)
    queues: dict[str, QueueSpec] = field(default_factory=dict)
    functions: dict[str, FunctionSpec] = field(default_factory=dict)
    mappings: list[EventSourceMappingSpec] = field(default_factory=list)
    http_apis: list[HttpApiSpec] = field(default_factory=list)
    websocket_apis: list[WebSocketApiSpec] = field(default_factory=list)
    jwt_authorizers: dict[str, JwtAuthorizerSpec] = field(default_factory=dict)
    request_authorizers: dict[str, RequestAuthorizerSpec] = field(default_factory=dict)
    user_pools: dict[str, UserPoolSpec] = field(default_factory=dict)
    user_pool_clients: dict[str, UserPoolClientSpec] = field(default_factory=dict)
    layers: dict[str, LayerSpec] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)

    @property
    def has_auth(self) -> bool:
        """Whether the stack needs the local issuer: authorizers that run, or a user pool."""
        return bool(self.jwt_authorizers or self.request_authorizers or self.user_pools)

    @property
    def resources(self) -> dict[str, Any]:
        resources: dict[str, Any] = self.template["Resources"]
        return resources

    def note(self, kind: FindingKind, subject: str, detail: str) -> None:
        self.findings.append(Finding(kind, subject, detail))

    def unsupported(self, subject: str, detail: str) -> None:
        self.note(FindingKind.UNSUPPORTED, subject, detail)

    def approximated(self, subject: str, detail: str) -> None:
        self.note(FindingKind.APPROXIMATED, subject, detail)

    def display_name(self, logical_id: str) -> str:
        return display_name(self.resources.get(logical_id, {}), logical_id)

    def parameter_values(self) -> dict[str, Any]:
        """Template parameters at their defaults (SSM-typed ones are the SSM parameter name)."""
        return {
            name: parameter.get("Default", "")
            for name, parameter in self.template.get("Parameters", {}).items()
        }

    def resolver(self, values: LocalValues) -> Resolver:
        return Resolver(
            self.pseudo,
            values.ref,
            values.get_att,
            parameters=self.parameter_values(),
            conditions=self.template.get("Conditions"),
            mappings=self.template.get("Mappings"),
        )


def display_name(resource: dict[str, Any], logical_id: str) -> str:
    """The construct id a person wrote: `Stack/Pipeline/ProcessorFunction/Default/Resource`.

    Without path metadata, the logical id without CDK's 8-character hash suffix.
    """
    path = str(resource.get("Metadata", {}).get("aws:cdk:path", ""))
    parts = [p for p in path.split("/")[1:] if p not in ("Resource", "Default")]
    if parts:
        return parts[-1]
    return re.sub(r"[0-9A-F]{8}$", "", logical_id) or logical_id
