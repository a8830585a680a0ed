"""What the local stack runs, read from the synthesized template.

`build_stack_model` turns the template's resources into specs (tables, queues, functions,
event source mappings, HTTP and WebSocket APIs) and findings: every template feature that
the local stack supports only partly, does not support, or does not need. Nothing is ignored
silently: a resource type or property that is not handled becomes a finding.

Physical names are deterministic (`<stack>-<LogicalId>`), so two runs of the same template
name things the same way. Values only known once moto runs (queue URLs, stream ARNs) come from
`LocalValues`, which answers Ref / Fn::GetAtt for the resolver.
"""

from __future__ import annotations

import hashlib
import re
import string
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from local.gateways.cors import CorsConfig
from local.sources.event_filter import FilterPatternError, parse_patterns
from local.template.intrinsics import IntrinsicError, PseudoParameters, Resolver, referenced_logical_ids
from local.template.report import Finding, FindingKind

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

# The local token issuers (local/auth.py) are served by the HTTP API's server (or, without an
# HTTP API, the WebSocket API's) under this path: {base}/<user pool id>/.well-known/...
ISSUERS_PATH = "/_local/issuers"
DEFAULT_ISSUER_BASE = f"http://127.0.0.1:4000{ISSUERS_PATH}"

# Resource types with no effect on how requests, messages and records flow on one machine.
NO_BEHAVIOUR_TYPES = {
    "AWS::IAM::Role": "IAM is not enforced locally",
    "AWS::IAM::Policy": "IAM is not enforced locally",
    "AWS::IAM::ManagedPolicy": "IAM is not enforced locally",
    "AWS::Lambda::Permission": "API Gateway may always invoke locally",
    "AWS::Logs::LogGroup": "function logs go to the local log folder",
    "AWS::SQS::QueuePolicy": "queue policies (e.g. deny non-TLS) are not enforced locally",
    "AWS::CDK::Metadata": "CDK analytics",
    "AWS::CloudWatch::Alarm": "no metrics locally",
    "AWS::CloudWatch::Dashboard": "no metrics locally",
    "AWS::ApiGatewayV2::Deployment": "routes are live at start",
    "AWS::SSM::Parameter": "not read by the local stack",
    "AWS::SNS::TopicPolicy": "topic policies are not enforced locally",
    "AWS::KMS::Key": "nothing is encrypted locally",
    "AWS::KMS::Alias": "nothing is encrypted locally",
    "AWS::Lambda::LayerVersionPermission": "layer permissions are not enforced locally",
}

# Resource types that only matter for alarms; a topic referenced by nothing else only
# carries alarm notifications, which never fire locally.
ALARM_ONLY_REFERRERS = {"AWS::CloudWatch::Alarm", "AWS::CloudWatch::CompositeAlarm", "AWS::SNS::TopicPolicy"}

# Lambda's own limit for the functions' timeout (s), and the default when absent.
DEFAULT_FUNCTION_TIMEOUT = 3
DEFAULT_MEMORY_SIZE = 128


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
    payload_format_version: str
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


def physical_name(stack_name: str, logical_id: str, max_length: int, suffix: str = "") -> str:
    name = f"{stack_name}-{logical_id}"
    return name[: max_length - len(suffix)] + suffix


def api_id_for(stack_name: str, logical_id: str) -> str:
    """A 10-character id like API Gateway's, stable for a stack and logical id."""
    return hashlib.sha256(f"{stack_name}/{logical_id}".encode()).hexdigest()[:10]


def _stable_text(seed: str, alphabet: str, length: int) -> str:
    number = int.from_bytes(hashlib.sha256(seed.encode()).digest(), "big")
    characters = []
    for _ in range(length):
        number, index = divmod(number, len(alphabet))
        characters.append(alphabet[index])
    return "".join(characters)


def user_pool_id_for(stack_name: str, logical_id: str, region: str) -> str:
    """`<region>_<9 letters/digits>` like Cognito's, stable for a stack and logical id."""
    suffix = _stable_text(f"{stack_name}/{logical_id}", string.ascii_letters + string.digits, 9)
    return f"{region}_{suffix}"


def user_pool_client_id_for(stack_name: str, logical_id: str) -> str:
    """26 lower-case letters and digits like a Cognito app client id, stable."""
    return _stable_text(f"{stack_name}/{logical_id}", string.ascii_lowercase + string.digits, 26)


class LocalValues:
    """Ref and Fn::GetAtt answers for the local stack's resources."""

    def __init__(
        self,
        model: StackModel,
        moto_endpoint: str,
        stream_arns: dict[str, str] | None = None,
        *,
        issuer_base: str = DEFAULT_ISSUER_BASE,
    ) -> None:
        self._model = model
        self._endpoint = moto_endpoint.rstrip("/")
        self._stream_arns = dict(stream_arns or {})
        self._pseudo = model.pseudo
        self.issuer_base = issuer_base.rstrip("/")

    def issuer_url(self, pool_logical_id: str) -> str:
        """The local issuer standing in for a user pool (its ProviderURL)."""
        return f"{self.issuer_base}/{self.ref(pool_logical_id)}"

    def _arn(self, service: str, resource: str, region: bool = True, account: bool = True) -> str:
        pseudo = self._pseudo
        return (
            f"arn:{pseudo.partition}:{service}:{pseudo.region if region else ''}:"
            f"{pseudo.account_id if account else ''}:{resource}"
        )

    def ref(self, logical_id: str) -> Any:  # noqa: PLR0911 - one answer per resource type
        model = self._model
        if logical_id in model.tables:
            return model.tables[logical_id].name
        if logical_id in model.queues:
            return self.queue_url(logical_id)
        if logical_id in model.functions:
            return model.functions[logical_id].name
        resource = model.resources.get(logical_id)
        if resource is None:
            raise KeyError(logical_id)
        resource_type = resource.get("Type", "")
        properties = resource.get("Properties", {})
        if resource_type == API_TYPE:
            return api_id_for(model.stack_name, logical_id)
        if resource_type == STAGE_TYPE:
            return properties.get("StageName", "$default")
        if resource_type in (INTEGRATION_TYPE, ROUTE_TYPE, ROUTE_RESPONSE_TYPE, AUTHORIZER_TYPE):
            return api_id_for(model.stack_name, logical_id)[:7]
        if resource_type == USER_POOL_TYPE:
            return user_pool_id_for(model.stack_name, logical_id, self._pseudo.region)
        if resource_type == USER_POOL_CLIENT_TYPE:
            return user_pool_client_id_for(model.stack_name, logical_id)
        if resource_type == LAYER_VERSION_TYPE:
            name = model.layers[logical_id].name if logical_id in model.layers else logical_id
            return self._arn("lambda", f"layer:{name}:1")
        if resource_type == "AWS::Logs::LogGroup":
            return properties.get("LogGroupName") or physical_name(model.stack_name, logical_id, 512)
        return properties.get("Name") or physical_name(model.stack_name, logical_id, 64)

    def get_att(self, logical_id: str, attribute: str) -> Any:  # noqa: PLR0911, PLR0912 - as ref()
        model = self._model
        if logical_id in model.tables:
            table = model.tables[logical_id]
            arn = self._arn("dynamodb", f"table/{table.name}")
            if attribute == "Arn":
                return arn
            if attribute in ("StreamArn", "LatestStreamArn"):
                return self._stream_arns.get(logical_id, f"{arn}/stream/local")
            if attribute == "TableId":
                return api_id_for(model.stack_name, logical_id)
        if logical_id in model.queues:
            queue = model.queues[logical_id]
            if attribute == "Arn":
                return self.queue_arn(logical_id)
            if attribute == "QueueName":
                return queue.name
            if attribute == "QueueUrl":
                return self.queue_url(logical_id)
        if logical_id in model.functions and attribute == "Arn":
            return self._arn("lambda", f"function:{model.functions[logical_id].name}")
        resource = model.resources.get(logical_id)
        if resource is None:
            raise KeyError(logical_id)
        resource_type = resource.get("Type", "")
        if resource_type == API_TYPE and attribute == "ApiEndpoint":
            protocol = resource.get("Properties", {}).get("ProtocolType")
            scheme = "wss" if protocol == "WEBSOCKET" else "https"
            api_id = api_id_for(model.stack_name, logical_id)
            return f"{scheme}://{api_id}.execute-api.{self._pseudo.region}.{self._pseudo.url_suffix}"
        if resource_type == API_TYPE and attribute == "ApiId":
            return api_id_for(model.stack_name, logical_id)
        if resource_type == USER_POOL_TYPE:
            pool_id = self.ref(logical_id)
            if attribute == "ProviderURL":
                return self.issuer_url(logical_id)
            if attribute == "ProviderName":
                return self.issuer_url(logical_id).split("://", 1)[-1]
            if attribute == "UserPoolId":
                return pool_id
            if attribute == "Arn":
                return self._arn("cognito-idp", f"userpool/{pool_id}")
        if resource_type == USER_POOL_CLIENT_TYPE and attribute == "ClientId":
            return self.ref(logical_id)
        if resource_type == USER_POOL_CLIENT_TYPE and attribute == "Name":
            return resource.get("Properties", {}).get("ClientName") or physical_name(
                model.stack_name, logical_id, 128
            )
        if resource_type == LAYER_VERSION_TYPE and attribute == "LayerVersionArn":
            return self.ref(logical_id)
        if resource_type == "AWS::IAM::Role" and attribute == "Arn":
            return self._arn("iam", f"role/{self.ref(logical_id)}", region=False)
        if resource_type == "AWS::Logs::LogGroup" and attribute == "Arn":
            return self._arn("logs", f"log-group:{self.ref(logical_id)}:*")
        if attribute == "Arn":
            service = resource_type.split("::")[1].lower() if "::" in resource_type else "local"
            return self._arn(service, str(self.ref(logical_id)))
        raise KeyError(f"{logical_id}.{attribute}")

    def queue_url(self, logical_id: str) -> str:
        return f"{self._endpoint}/{self._pseudo.account_id}/{self._model.queues[logical_id].name}"

    def queue_arn(self, logical_id: str) -> str:
        return self._arn("sqs", self._model.queues[logical_id].name)


def build_stack_model(
    template: dict[str, Any],
    stack_name: str,
    cdk_out: Path,
    pseudo: PseudoParameters | None = None,
) -> StackModel:
    model = StackModel(
        stack_name=stack_name,
        pseudo=pseudo or PseudoParameters(stack_name=stack_name),
        template=template,
        cdk_out=Path(cdk_out),
    )
    resources = model.resources
    by_type: dict[str, list[str]] = {}
    for logical_id, resource in resources.items():
        by_type.setdefault(str(resource.get("Type")), []).append(logical_id)

    for logical_id in by_type.get("AWS::DynamoDB::Table", []) + by_type.get("AWS::DynamoDB::GlobalTable", []):
        _read_table(model, logical_id)
    for logical_id in by_type.get(QUEUE_TYPE, []):
        _read_queue(model, logical_id)
    _mark_dead_letter_queues(model)
    for logical_id in by_type.get(LAYER_VERSION_TYPE, []):
        _read_layer(model, logical_id)
    for logical_id in by_type.get(FUNCTION_TYPE, []):
        _read_function(model, logical_id)
    _read_user_pools(model, by_type.get(USER_POOL_TYPE, []), by_type.get(USER_POOL_CLIENT_TYPE, []))
    for logical_id in by_type.get(MAPPING_TYPE, []):
        _read_mapping(model, logical_id)
    for logical_id in by_type.get(API_TYPE, []):
        _read_api(model, logical_id)

    handled = {
        *TABLE_TYPES,
        QUEUE_TYPE,
        FUNCTION_TYPE,
        MAPPING_TYPE,
        API_TYPE,
        ROUTE_TYPE,
        INTEGRATION_TYPE,
        STAGE_TYPE,
        ROUTE_RESPONSE_TYPE,
        AUTHORIZER_TYPE,
        USER_POOL_TYPE,
        USER_POOL_CLIENT_TYPE,
        LAYER_VERSION_TYPE,
    }
    alarm_topics = _alarm_only_topics(model, by_type.get("AWS::SNS::Topic", []))
    if alarm_topics:
        model.note(
            FindingKind.NOT_EMULATED,
            f"AWS::SNS::Topic x{len(alarm_topics)}",
            "alarm notifications only (no alarms fire locally)",
        )
    counts = Counter(str(r.get("Type")) for lid, r in resources.items() if lid not in alarm_topics)
    for resource_type, count in sorted(counts.items()):
        if resource_type in handled:
            continue
        if resource_type in NO_BEHAVIOUR_TYPES:
            model.note(
                FindingKind.NOT_EMULATED,
                f"{resource_type} x{count}",
                NO_BEHAVIOUR_TYPES[resource_type],
            )
        else:
            names = ", ".join(
                model.display_name(lid) for lid in by_type[resource_type] if lid not in alarm_topics
            )
            model.note(
                FindingKind.UNSUPPORTED,
                f"{resource_type} x{count} ({names})",
                "resource type not emulated: whatever it does on AWS does not happen locally",
            )
    _note_parameters(model)
    return model


def _alarm_only_topics(model: StackModel, topic_ids: list[str]) -> set[str]:
    """Topics that only alarms (and their own policy) refer to."""
    referrers: dict[str, set[str]] = {lid: set() for lid in topic_ids}
    for resource in model.resources.values():
        for referenced in set(referenced_logical_ids(resource.get("Properties", {}))):
            if referenced in referrers:
                referrers[referenced].add(str(resource.get("Type")))
    return {lid for lid, types in referrers.items() if types and types <= ALARM_ONLY_REFERRERS}


# --- tables --------------------------------------------------------------------------------

_TABLE_NO_BEHAVIOUR = {
    "BillingMode": "capacity mode (no throttling locally)",
    "ProvisionedThroughput": "capacity mode (no throttling locally)",
    "WriteProvisionedThroughputSettings": "capacity mode (no throttling locally)",
    "WriteOnDemandThroughputSettings": "capacity mode (no throttling locally)",
    "OnDemandThroughput": "capacity mode (no throttling locally)",
    "WarmThroughput": "capacity mode (no throttling locally)",
    "SSESpecification": "encryption at rest",
    "PointInTimeRecoverySpecification": "point-in-time recovery",
    "DeletionProtectionEnabled": "deletion protection",
    "Tags": "tags",
    "TableClass": "table class",
    "ContributorInsightsSpecification": "contributor insights",
    "ResourcePolicy": "resource policy",
    "Replicas": "replicas (one region locally)",
}


def _read_table(model: StackModel, logical_id: str) -> None:
    resource = model.resources[logical_id]
    properties = resource.get("Properties", {})
    name = properties.get("TableName")
    if not isinstance(name, str):
        if name is not None:
            model.note(
                FindingKind.APPROXIMATED, model.display_name(logical_id), "computed TableName replaced"
            )
        name = physical_name(model.stack_name, logical_id, 255)
    stream = properties.get("StreamSpecification") or {}
    ttl = properties.get("TimeToLiveSpecification") or {}
    gsis = []
    for index in properties.get("GlobalSecondaryIndexes", []):
        gsis.append({k: index[k] for k in ("IndexName", "KeySchema", "Projection") if k in index})
    lsis = [
        {k: index[k] for k in ("IndexName", "KeySchema", "Projection") if k in index}
        for index in properties.get("LocalSecondaryIndexes", [])
    ]
    spec = TableSpec(
        logical_id=logical_id,
        display_name=model.display_name(logical_id),
        name=name,
        resource_type=resource["Type"],
        key_schema=properties.get("KeySchema", []),
        attribute_definitions=properties.get("AttributeDefinitions", []),
        global_secondary_indexes=gsis,
        local_secondary_indexes=lsis,
        stream_view_type=stream.get("StreamViewType"),
        ttl_attribute=ttl.get("AttributeName") if ttl.get("Enabled", True) and ttl else None,
    )
    model.tables[logical_id] = spec
    ignored = sorted({_TABLE_NO_BEHAVIOUR[k] for k in properties if k in _TABLE_NO_BEHAVIOUR})
    if ignored:
        model.note(FindingKind.NOT_EMULATED, f"table {spec.display_name}", ", ".join(ignored))
    for key in ("KinesisStreamSpecification", "ImportSourceSpecification"):
        if key in properties:
            model.note(FindingKind.UNSUPPORTED, f"table {spec.display_name}", f"{key} is not emulated")
    if resource["Type"] == "AWS::DynamoDB::GlobalTable" and len(properties.get("Replicas", [])) > 1:
        model.note(FindingKind.APPROXIMATED, f"table {spec.display_name}", "global table: one local replica")


# --- queues --------------------------------------------------------------------------------

_QUEUE_ATTRIBUTES = (
    "DelaySeconds",
    "MaximumMessageSize",
    "MessageRetentionPeriod",
    "ReceiveMessageWaitTimeSeconds",
    "VisibilityTimeout",
    "FifoQueue",
    "ContentBasedDeduplication",
    "DeduplicationScope",
    "FifoThroughputLimit",
)
_QUEUE_NO_BEHAVIOUR = {
    "SqsManagedSseEnabled": "encryption (SSE)",
    "KmsMasterKeyId": "encryption (SSE)",
    "KmsDataKeyReusePeriodSeconds": "encryption (SSE)",
    "Tags": "tags",
    "RedriveAllowPolicy": "redrive allow policy",
}


def _read_queue(model: StackModel, logical_id: str) -> None:
    resource = model.resources[logical_id]
    properties = resource.get("Properties", {})
    fifo = str(properties.get("FifoQueue", "false")).lower() == "true"
    name = properties.get("QueueName")
    if not isinstance(name, str):
        name = physical_name(model.stack_name, logical_id, 80, ".fifo" if fifo else "")
    attributes = {
        key: str(value).lower() if isinstance(value, bool) else str(value)
        for key, value in properties.items()
        if key in _QUEUE_ATTRIBUTES
    }
    redrive = properties.get("RedrivePolicy") or {}
    target = None
    max_receive_count = None
    if redrive:
        targets = [lid for lid in referenced_logical_ids(redrive.get("deadLetterTargetArn")) if lid]
        target = targets[0] if targets else None
        max_receive_count = int(redrive.get("maxReceiveCount", 0)) or None
        if target is None:
            model.note(
                FindingKind.UNSUPPORTED,
                f"queue {model.display_name(logical_id)}",
                "RedrivePolicy targets a queue outside this template: no dead-lettering locally",
            )
    model.queues[logical_id] = QueueSpec(
        logical_id=logical_id,
        display_name=model.display_name(logical_id),
        name=name,
        fifo=fifo,
        attributes=attributes,
        dead_letter_target=target,
        max_receive_count=max_receive_count,
    )
    ignored = sorted({_QUEUE_NO_BEHAVIOUR[k] for k in properties if k in _QUEUE_NO_BEHAVIOUR})
    if ignored:
        model.note(FindingKind.NOT_EMULATED, f"queue {model.display_name(logical_id)}", ", ".join(ignored))


def _mark_dead_letter_queues(model: StackModel) -> None:
    targets = {q.dead_letter_target for q in model.queues.values() if q.dead_letter_target}
    for logical_id in targets:
        if logical_id in model.queues:
            queue = model.queues[logical_id]
            model.queues[logical_id] = QueueSpec(**{**queue.__dict__, "is_dead_letter_queue": True})


# --- functions -----------------------------------------------------------------------------


def _read_function(model: StackModel, logical_id: str) -> None:
    resource = model.resources[logical_id]
    properties = resource.get("Properties", {})
    metadata = resource.get("Metadata", {})
    shown = model.display_name(logical_id)
    name = properties.get("FunctionName")
    if not isinstance(name, str):
        name = physical_name(model.stack_name, logical_id, 64)
    asset_dir: Path | None = None
    inline_code = None
    code = properties.get("Code", {})
    staged = _staged_asset(model.cdk_out, code)
    if metadata.get("aws:asset:path"):
        asset_dir = (model.cdk_out / str(metadata["aws:asset:path"])).resolve()
        if not asset_dir.is_dir():
            model.note(FindingKind.UNSUPPORTED, f"function {shown}", f"asset folder {asset_dir} is missing")
    elif staged is not None:
        asset_dir = staged  # synthesized without asset metadata: the staged folder of the S3 key
    elif isinstance(code, dict) and isinstance(code.get("ZipFile"), str):
        inline_code = code["ZipFile"]
    else:
        model.note(
            FindingKind.UNSUPPORTED,
            f"function {shown}",
            "code is neither a cdk.out asset folder nor inline: it cannot run locally",
        )
    package_type = properties.get("PackageType", "Zip")
    if package_type != "Zip":
        model.note(FindingKind.UNSUPPORTED, f"function {shown}", f"PackageType {package_type} cannot run")
    runtime = str(properties.get("Runtime", ""))
    if not runtime.startswith("python"):
        model.note(FindingKind.UNSUPPORTED, f"function {shown}", f"runtime {runtime!r}: only Python runs")

    spec = FunctionSpec(
        logical_id=logical_id,
        display_name=shown,
        name=name,
        handler=str(properties.get("Handler", "")),
        runtime=runtime,
        timeout=int(properties.get("Timeout", DEFAULT_FUNCTION_TIMEOUT)),
        memory_size=int(properties.get("MemorySize", DEFAULT_MEMORY_SIZE)),
        environment=dict(properties.get("Environment", {}).get("Variables", {})),
        asset_dir=asset_dir,
        inline_code=inline_code,
        reserved_concurrency=(
            int(properties["ReservedConcurrentExecutions"])
            if "ReservedConcurrentExecutions" in properties
            else None
        ),
        log_format=properties.get("LoggingConfig", {}).get("LogFormat"),
    )
    model.functions[logical_id] = spec
    if properties.get("TracingConfig", {}).get("Mode") == "Active":
        model.note(
            FindingKind.NOT_EMULATED, f"function {shown}", "X-Ray tracing (POWERTOOLS_TRACE_DISABLED=true)"
        )
    for key, what in (
        ("DeadLetterConfig", "DeadLetterConfig (asynchronous invocations only; none happen locally)"),
        ("VpcConfig", "VpcConfig (no network isolation locally)"),
        ("FileSystemConfigs", "EFS mounts"),
        ("SnapStart", "SnapStart"),
    ):
        if key in properties:
            kind = FindingKind.UNSUPPORTED if key == "FileSystemConfigs" else FindingKind.NOT_EMULATED
            model.note(kind, f"function {shown}", what)


def _staged_asset(cdk_out: Path, code: Any) -> Path | None:
    """cdk.out/asset.<hash> for Code.S3Key "<hash>.zip", when that folder exists."""
    key = code.get("S3Key") if isinstance(code, dict) else None
    match = re.fullmatch(r"([0-9a-f]{64})\.zip", key) if isinstance(key, str) else None
    if match is None:
        return None
    folder = (cdk_out / f"asset.{match.group(1)}").resolve()
    return folder if folder.is_dir() else None


def layer_summary(model: StackModel) -> str | None:
    """Which layers the functions use: the venv's packages stand in for them."""
    layers: set[str] = set()
    functions = 0
    parameters = model.parameter_values()
    for spec in model.functions.values():
        raw = model.resources[spec.logical_id].get("Properties", {}).get("Layers", [])
        if raw:
            functions += 1
        for layer in raw:
            ref = layer.get("Ref") if isinstance(layer, dict) else None
            if ref in parameters:
                layers.add(f"SSM parameter {parameters[ref]}")
            elif ref in model.layers:
                layers.add(f"layer {model.layers[ref].display_name} (local asset)")
            else:
                layers.add(str(layer) if isinstance(layer, str) else "a layer ARN")
    if not layers:
        return None
    return f"layers of {functions} functions ({'; '.join(sorted(layers))})"


def layer_packages(layer: LayerSpec) -> list[tuple[str, str]]:
    """(name, version) of the distributions in a layer's asset folder (`python/...dist-info`)."""
    if layer.asset_dir is None or not layer.asset_dir.is_dir():
        return []
    found = []
    patterns = ("python/*.dist-info/METADATA", "python/lib/python3*/site-packages/*.dist-info/METADATA")
    for pattern in patterns:
        for metadata in sorted(layer.asset_dir.glob(pattern)):
            fields: dict[str, str] = {}
            for line in metadata.read_text(errors="replace").splitlines():
                if not line.strip():
                    break
                key, _, value = line.partition(":")
                fields.setdefault(key.strip(), value.strip())
            if "Name" in fields:
                found.append((fields["Name"], fields.get("Version", "?")))
    return found


def _read_layer(model: StackModel, logical_id: str) -> None:
    resource = model.resources[logical_id]
    properties = resource.get("Properties", {})
    asset_path = resource.get("Metadata", {}).get("aws:asset:path")
    asset_dir = (
        (model.cdk_out / str(asset_path)).resolve()
        if asset_path
        else _staged_asset(model.cdk_out, properties.get("Content"))
    )
    name = properties.get("LayerName")
    model.layers[logical_id] = LayerSpec(
        logical_id=logical_id,
        display_name=model.display_name(logical_id),
        name=name if isinstance(name, str) else physical_name(model.stack_name, logical_id, 140),
        asset_dir=asset_dir,
    )


# --- Cognito -------------------------------------------------------------------------------

_USER_POOL_UNSUPPORTED = {
    "LambdaConfig": "Lambda triggers (e.g. pre token generation) are not run: tokens carry only the "
    "claims they are minted with",
}


def _read_user_pools(model: StackModel, pool_ids: list[str], client_ids: list[str]) -> None:
    for logical_id in client_ids:
        properties = model.resources[logical_id].get("Properties", {})
        pools = [lid for lid in referenced_logical_ids(properties.get("UserPoolId")) if lid in pool_ids]
        model.user_pool_clients[logical_id] = UserPoolClientSpec(
            logical_id, model.display_name(logical_id), pools[0] if pools else None
        )
        if not pools:
            model.note(
                FindingKind.UNSUPPORTED,
                f"Cognito app client {model.display_name(logical_id)}",
                "its user pool is not in this template: no local issuer plays it",
            )
    for logical_id in pool_ids:
        clients = tuple(c.logical_id for c in model.user_pool_clients.values() if c.pool_id == logical_id)
        spec = UserPoolSpec(logical_id, model.display_name(logical_id), clients)
        model.user_pools[logical_id] = spec
        names = ", ".join(model.user_pool_clients[c].display_name for c in clients)
        model.note(
            FindingKind.APPROXIMATED,
            f"Cognito user pool {spec.display_name}" + (f" (app client {names})" if names else ""),
            "only its token issuer is emulated: a local signing key, JWKS and OIDC discovery at its "
            "ProviderURL, app client ids as audiences; no users, sign-up, sign-in or hosted UI: use the "
            "dev token printed at start, or `python -m local.token --sub NAME` for more",
        )
        properties = model.resources[logical_id].get("Properties", {})
        for key, detail in _USER_POOL_UNSUPPORTED.items():
            if properties.get(key):
                model.note(FindingKind.UNSUPPORTED, f"Cognito user pool {spec.display_name}", detail)


# --- event source mappings -----------------------------------------------------------------

_SQS_MAPPING_KEYS = {
    "BatchSize",
    "EventSourceArn",
    "FunctionName",
    "FunctionResponseTypes",
    "MaximumBatchingWindowInSeconds",
    "ScalingConfig",
    "FilterCriteria",
    "Enabled",
    "Tags",
}
_STREAM_MAPPING_KEYS = {
    "BatchSize",
    "EventSourceArn",
    "FunctionName",
    "FunctionResponseTypes",
    "MaximumBatchingWindowInSeconds",
    "FilterCriteria",
    "Enabled",
    "Tags",
    "StartingPosition",
    "MaximumRetryAttempts",
    "BisectBatchOnFunctionError",
    "MaximumRecordAgeInSeconds",
    "ParallelizationFactor",
}


def _read_mapping(model: StackModel, logical_id: str) -> None:
    properties = model.resources[logical_id].get("Properties", {})
    function_ids = [
        lid for lid in referenced_logical_ids(properties.get("FunctionName")) if lid in model.functions
    ]
    source_ids = list(referenced_logical_ids(properties.get("EventSourceArn")))
    subject = f"event source mapping {model.display_name(logical_id)}"
    if not function_ids:
        model.note(FindingKind.UNSUPPORTED, subject, "its function is not in this template: not run")
        return
    function_id = function_ids[0]
    subject = f"{model.functions[function_id].display_name} <- "
    source_id = source_ids[0] if source_ids else ""
    if source_id in model.queues:
        kind = "sqs"
        subject += f"queue {model.queues[source_id].display_name}"
        allowed = _SQS_MAPPING_KEYS
    elif source_id in model.tables:
        kind = "dynamodb"
        subject += f"stream of {model.tables[source_id].display_name}"
        allowed = _STREAM_MAPPING_KEYS
        if not model.tables[source_id].stream_view_type:
            model.note(FindingKind.UNSUPPORTED, subject, "the table has no stream: not run")
            return
    else:
        model.note(
            FindingKind.UNSUPPORTED,
            f"event source mapping of {model.functions[function_id].display_name}",
            f"event source {properties.get('EventSourceArn')!r} is not a queue or table stream "
            "of this template: not run",
        )
        return

    try:
        patterns = parse_patterns(properties.get("FilterCriteria", {}).get("Filters", []))
    except FilterPatternError as error:
        model.note(FindingKind.UNSUPPORTED, subject, f"FilterCriteria: {error}; mapping not run")
        return
    response_types = properties.get("FunctionResponseTypes", [])
    default_batch = 10 if kind == "sqs" else 100
    scaling = properties.get("ScalingConfig", {}) or {}
    retry = properties.get("MaximumRetryAttempts", -1)
    spec = EventSourceMappingSpec(
        logical_id=logical_id,
        function_id=function_id,
        source_kind=kind,
        source_id=source_id,
        batch_size=int(properties.get("BatchSize", default_batch)),
        batching_window_seconds=float(properties.get("MaximumBatchingWindowInSeconds", 0)),
        report_batch_item_failures="ReportBatchItemFailures" in response_types,
        maximum_concurrency=int(scaling["MaximumConcurrency"]) if "MaximumConcurrency" in scaling else None,
        starting_position=properties.get("StartingPosition"),
        filter_patterns=patterns,
        maximum_retry_attempts=int(retry),
        bisect_on_error=bool(properties.get("BisectBatchOnFunctionError", False)),
        maximum_record_age_seconds=int(properties.get("MaximumRecordAgeInSeconds", -1)),
        enabled=bool(properties.get("Enabled", True)),
    )
    model.mappings.append(spec)
    if not spec.enabled:
        model.note(FindingKind.INFO, subject, "Enabled: false, so it does not run (as on AWS)")
    if properties.get("Tags"):
        pass  # tags change nothing
    for key in sorted(set(properties) - allowed):
        detail = {
            "DestinationConfig": "on-failure destination is not emulated: discarded records are only logged",
            "TumblingWindowInSeconds": "tumbling windows are not emulated",
            "MetricsConfig": "ESM metrics are not emulated",
        }.get(key, f"{key} is not emulated")
        model.note(FindingKind.UNSUPPORTED, subject, detail)
    factor = int(properties.get("ParallelizationFactor", 1))
    if kind == "dynamodb" and factor > 1:
        model.note(
            FindingKind.APPROXIMATED,
            subject,
            f"ParallelizationFactor {factor} -> 1 batch at a time per shard (order kept, less throughput)",
        )
    if spec.starting_position not in (None, "TRIM_HORIZON", "LATEST") and kind == "dynamodb":
        model.note(
            FindingKind.APPROXIMATED, subject, f"StartingPosition {spec.starting_position} -> TRIM_HORIZON"
        )


# --- APIs ----------------------------------------------------------------------------------


def _children(model: StackModel, resource_type: str, api_id: str) -> list[str]:
    return [
        lid
        for lid, resource in model.resources.items()
        if resource.get("Type") == resource_type
        and api_id in referenced_logical_ids(resource.get("Properties", {}).get("ApiId"))
    ]


def _integration_function(model: StackModel, integration_id: str, subject: str) -> tuple[str | None, str]:
    integration = model.resources.get(integration_id, {}).get("Properties", {})
    integration_type = integration.get("IntegrationType")
    version = str(integration.get("PayloadFormatVersion", "1.0"))
    if integration_type != "AWS_PROXY":
        model.note(
            FindingKind.UNSUPPORTED, subject, f"integration type {integration_type}: route answers 500"
        )
        return None, version
    functions = [
        lid for lid in referenced_logical_ids(integration.get("IntegrationUri")) if lid in model.functions
    ]
    if not functions:
        model.note(FindingKind.UNSUPPORTED, subject, "integration target is not a function of this template")
        return None, version
    return functions[0], version


def _route_target(model: StackModel, route_id: str) -> str | None:
    target = model.resources[route_id].get("Properties", {}).get("Target")
    for lid in referenced_logical_ids(target):
        if model.resources.get(lid, {}).get("Type") == INTEGRATION_TYPE:
            return lid
    return None


def _read_api(model: StackModel, logical_id: str) -> None:
    properties = model.resources[logical_id].get("Properties", {})
    protocol = properties.get("ProtocolType")
    shown = model.display_name(logical_id)
    if protocol not in ("HTTP", "WEBSOCKET"):
        model.note(FindingKind.UNSUPPORTED, f"API {shown}", f"ProtocolType {protocol!r} is not emulated")
        return
    stages = _children(model, STAGE_TYPE, logical_id)
    stage_name = "$default"
    for stage_id in stages:
        stage = model.resources[stage_id].get("Properties", {})
        stage_name = str(stage.get("StageName", "$default"))
        _note_stage(model, f"{'WebSocket' if protocol == 'WEBSOCKET' else 'HTTP'} API {shown} stage", stage)
    if len(stages) > 1:
        model.note(
            FindingKind.APPROXIMATED, f"API {shown}", f"{len(stages)} stages: only {stage_name!r} is served"
        )
    authorizers = _read_authorizers(model, logical_id, protocol)
    api_id = api_id_for(model.stack_name, logical_id)
    if protocol == "HTTP":
        _read_http_api(
            model,
            logical_id,
            properties=properties,
            api_id=api_id,
            stage_name=stage_name,
            authorizers=authorizers,
        )
    else:
        stage_variables = {}
        for stage_id in stages[-1:]:
            raw = model.resources[stage_id].get("Properties", {}).get("StageVariables") or {}
            stage_variables = {str(k): str(v) for k, v in raw.items() if isinstance(v, str | int | float)}
        _read_websocket_api(
            model,
            logical_id,
            properties=properties,
            api_id=api_id,
            stage_name=stage_name,
            authorizers=authorizers,
            stage_variables=stage_variables,
        )


def _note_stage(model: StackModel, subject: str, stage: dict[str, Any]) -> None:
    route_settings = stage.get("DefaultRouteSettings", {}) or {}
    rate = route_settings.get("ThrottlingRateLimit")
    burst = route_settings.get("ThrottlingBurstLimit")
    if rate is not None or burst is not None or stage.get("RouteSettings"):
        model.note(
            FindingKind.UNSUPPORTED,
            subject,
            f"throttling (rate {rate}/s, burst {burst}) is not enforced: no 429s locally",
        )
    if stage.get("AccessLogSettings"):
        model.note(FindingKind.NOT_EMULATED, subject, "access logs (every invocation is printed instead)")


Authorizer = JwtAuthorizerSpec | RequestAuthorizerSpec

_JWT_IDENTITY_SOURCE = re.compile(r"\$request\.(header|querystring)\.[^\s,]+")
_REQUEST_IDENTITY_SOURCE = re.compile(
    r"(route\.request\.(header|querystring)|stageVariables|context)\.[^\s,]+"
)


def _read_authorizers(model: StackModel, api_logical_id: str, protocol: str) -> dict[str, Authorizer]:
    """The authorizers of an API that the local gateways run, by logical id; the rest reported."""
    api_kind = "WebSocket" if protocol == "WEBSOCKET" else "HTTP"
    result: dict[str, Authorizer] = {}
    for logical_id in _children(model, AUTHORIZER_TYPE, api_logical_id):
        properties = model.resources[logical_id].get("Properties", {})
        shown = model.display_name(logical_id)
        kind = properties.get("AuthorizerType")
        subject = f"{api_kind} API {model.display_name(api_logical_id)} authorizer {shown}"
        sources = properties.get("IdentitySource") or []
        sources = [sources] if isinstance(sources, str) else [str(source) for source in sources]
        if protocol == "HTTP" and kind == "JWT":
            jwt_config = properties.get("JwtConfiguration") or {}
            if not sources:
                sources = ["$request.header.Authorization"]
            if len(sources) != 1 or not _JWT_IDENTITY_SOURCE.fullmatch(sources[0]):
                model.note(
                    FindingKind.UNSUPPORTED,
                    subject,
                    f"IdentitySource {sources} is not emulated: its routes are not authorized locally",
                )
                continue
            if "Issuer" not in jwt_config:
                model.note(
                    FindingKind.UNSUPPORTED,
                    subject,
                    "JwtConfiguration has no Issuer: its routes are not authorized locally",
                )
                continue
            result[logical_id] = model.jwt_authorizers[logical_id] = JwtAuthorizerSpec(
                logical_id=logical_id,
                display_name=shown,
                identity_source=sources[0],
                issuer=jwt_config["Issuer"],
                audience=jwt_config.get("Audience", []),
            )
        elif protocol == "WEBSOCKET" and kind == "REQUEST":
            functions = [
                lid
                for lid in referenced_logical_ids(properties.get("AuthorizerUri"))
                if lid in model.functions
            ]
            if not functions:
                model.note(
                    FindingKind.UNSUPPORTED,
                    subject,
                    "its function is not in this template: every $connect answers 500",
                )
            unknown = [source for source in sources if not _REQUEST_IDENTITY_SOURCE.fullmatch(source)]
            if unknown:
                model.note(
                    FindingKind.UNSUPPORTED,
                    subject,
                    f"IdentitySource {unknown}: not understood, so never missing (no 401 without a call)",
                )
            result[logical_id] = model.request_authorizers[logical_id] = RequestAuthorizerSpec(
                logical_id=logical_id,
                display_name=shown,
                function_id=functions[0] if functions else None,
                identity_sources=tuple(s for s in sources if s not in unknown),
            )
            if functions:
                model.note(
                    FindingKind.SATISFIED,
                    subject,
                    f"run on $connect like API Gateway does (function {model.display_name(functions[0])}, "
                    f"identity sources {', '.join(sources) or '-'}): 401/403/500 refuse the handshake, "
                    "its context reaches every event of the connection",
                )
            _note_request_authorizer(model, subject, properties)
        else:
            model.note(
                FindingKind.UNSUPPORTED,
                subject,
                f"AuthorizerType {kind} on a{'' if protocol == 'WEBSOCKET' else 'n'} {api_kind} API is not "
                "run: the routes that use it are not authorized locally",
            )
    return result


def _note_request_authorizer(model: StackModel, subject: str, properties: dict[str, Any]) -> None:
    ttl = properties.get("AuthorizerResultTtlInSeconds")
    if ttl:
        model.note(
            FindingKind.APPROXIMATED,
            subject,
            f"AuthorizerResultTtlInSeconds {ttl}: results are not cached, "
            "the function runs on every $connect",
        )
    if properties.get("IdentityValidationExpression"):
        model.note(FindingKind.UNSUPPORTED, subject, "IdentityValidationExpression is not applied")
    if properties.get("AuthorizerCredentialsArn"):
        model.note(
            FindingKind.NOT_EMULATED, subject, "AuthorizerCredentialsArn (IAM is not enforced locally)"
        )


def _route_auth(
    model: StackModel,
    route: dict[str, Any],
    subject: str,
    authorizers: Mapping[str, Authorizer],
) -> tuple[Authorizer | None, tuple[str, ...]]:
    """The authorizer a route runs locally (None: none, or one that cannot run, reported)."""
    auth = route.get("AuthorizationType") or "NONE"
    if auth == "NONE":
        return None, ()
    wanted = {"JWT": JwtAuthorizerSpec, "CUSTOM": RequestAuthorizerSpec}.get(str(auth))
    if wanted is None:
        model.note(FindingKind.UNSUPPORTED, subject, f"AuthorizationType {auth}: not enforced locally")
        return None, ()
    referenced = list(referenced_logical_ids(route.get("AuthorizerId")))
    spec = next((authorizers[lid] for lid in referenced if lid in authorizers), None)
    if spec is None:
        known = any(model.resources.get(lid, {}).get("Type") == AUTHORIZER_TYPE for lid in referenced)
        model.note(
            FindingKind.UNSUPPORTED,
            subject,
            f"AuthorizationType {auth}: "
            + ("its authorizer is not run" if known else "AuthorizerId is not an authorizer of this API")
            + ", so requests are not authorized locally",
        )
        return None, ()
    if not isinstance(spec, wanted):
        model.note(
            FindingKind.UNSUPPORTED,
            subject,
            f"AuthorizationType {auth} with authorizer {spec.display_name} of another type: not authorized",
        )
        return None, ()
    scopes = tuple(str(scope) for scope in route.get("AuthorizationScopes") or [])
    return spec, scopes


def _read_http_api(
    model: StackModel,
    logical_id: str,
    *,
    properties: dict[str, Any],
    api_id: str,
    stage_name: str,
    authorizers: Mapping[str, Authorizer],
) -> None:
    shown = model.display_name(logical_id)
    routes = []
    for route_id in _children(model, ROUTE_TYPE, logical_id):
        route = model.resources[route_id].get("Properties", {})
        route_key = str(route.get("RouteKey"))
        subject = f"HTTP API {shown} route {route_key}"
        authorizer, scopes = _route_auth(model, route, subject, authorizers)
        integration_id = _route_target(model, route_id)
        function_id, version = (None, "2.0")
        if integration_id is None:
            model.note(FindingKind.UNSUPPORTED, subject, "route has no integration: answers 404 as on AWS")
        else:
            function_id, version = _integration_function(model, integration_id, subject)
            if function_id and version != "2.0":
                model.note(
                    FindingKind.UNSUPPORTED, subject, f"payload format {version}: local API speaks 2.0"
                )
        routes.append(
            HttpRouteSpec(
                route_key,
                function_id,
                version,
                authorizer=authorizer if isinstance(authorizer, JwtAuthorizerSpec) else None,
                authorization_scopes=scopes,
            )
        )
    cors = properties.get("CorsConfiguration")
    model.http_apis.append(
        HttpApiSpec(
            logical_id=logical_id,
            display_name=shown,
            api_id=api_id,
            routes=routes,
            cors=CorsConfig.from_template(cors) if cors else None,
            stage_name=stage_name,
        )
    )
    for key in ("Body", "BodyS3Location", "DisableExecuteApiEndpoint"):
        if key in properties:
            model.note(FindingKind.UNSUPPORTED, f"HTTP API {shown}", f"{key} is not emulated")


def _read_websocket_api(
    model: StackModel,
    logical_id: str,
    *,
    properties: dict[str, Any],
    api_id: str,
    stage_name: str,
    authorizers: Mapping[str, Authorizer],
    stage_variables: dict[str, str],
) -> None:
    shown = model.display_name(logical_id)
    expression = str(properties.get("RouteSelectionExpression", "$request.body.action"))
    if not re.fullmatch(r"\$request\.body(\.[A-Za-z0-9_-]+)+", expression):
        model.note(
            FindingKind.UNSUPPORTED,
            f"WebSocket API {shown}",
            f"RouteSelectionExpression {expression!r}: every message goes to $default",
        )
    two_way = {
        lid
        for response_id in _children(model, ROUTE_RESPONSE_TYPE, logical_id)
        for lid in referenced_logical_ids(model.resources[response_id].get("Properties", {}).get("RouteId"))
    }
    routes: dict[str, WebSocketRouteSpec] = {}
    for route_id in _children(model, ROUTE_TYPE, logical_id):
        route = model.resources[route_id].get("Properties", {})
        route_key = str(route.get("RouteKey"))
        subject = f"WebSocket API {shown} route {route_key}"
        authorizer, scopes = _route_auth(model, route, subject, authorizers)
        if authorizer is not None and route_key != "$connect":
            model.note(FindingKind.UNSUPPORTED, subject, "an authorizer runs on $connect only: not run here")
            authorizer = None
        if scopes:
            model.note(FindingKind.UNSUPPORTED, subject, "AuthorizationScopes are not applied")
        if route.get("ApiKeyRequired"):
            model.note(FindingKind.UNSUPPORTED, subject, "ApiKeyRequired: API keys are not checked locally")
        integration_id = _route_target(model, route_id)
        function_id = None
        if integration_id is None:
            model.note(FindingKind.UNSUPPORTED, subject, "route has no integration")
        else:
            function_id, _ = _integration_function(model, integration_id, subject)
        is_two_way = route_id in two_way or "RouteResponseSelectionExpression" in route
        routes[route_key] = WebSocketRouteSpec(
            route_key,
            function_id,
            is_two_way,
            authorizer=authorizer if isinstance(authorizer, RequestAuthorizerSpec) else None,
        )
        for key in ("RequestModels", "RequestParameters", "ModelSelectionExpression"):
            if key in route:
                model.note(FindingKind.UNSUPPORTED, subject, f"{key} (request validation) is not emulated")
    model.websocket_apis.append(
        WebSocketApiSpec(
            logical_id=logical_id,
            display_name=shown,
            api_id=api_id,
            route_selection_expression=expression,
            routes=routes,
            stage_name=stage_name,
            stage_variables=stage_variables,
        )
    )


def _note_parameters(model: StackModel) -> None:
    for name, parameter in model.template.get("Parameters", {}).items():
        parameter_type = str(parameter.get("Type", ""))
        if name == "BootstrapVersion":
            continue
        if parameter_type.startswith("AWS::SSM::Parameter::Value"):
            continue  # reported with the layers that use them
        if "Default" not in parameter:
            model.note(
                FindingKind.UNSUPPORTED, f"parameter {name}", "no default: resolves to an empty string"
            )


def check_resolvable(model: StackModel, values: LocalValues) -> None:
    """Resolve every function environment once, so a bad value is reported at start."""
    resolver = model.resolver(values)
    for spec in model.functions.values():
        for key, value in spec.environment.items():
            try:
                resolver.resolve(value)
            except IntrinsicError as error:
                model.note(FindingKind.UNSUPPORTED, f"function {spec.display_name} env {key}", str(error))
