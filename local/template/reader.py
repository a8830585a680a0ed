"""`build_stack_model`: the template's resources read into specs; what is not handled, a finding.

Tables, queues, functions, layers, user pools and event source mappings here; the APIs in
local/template/apis.py. Nothing is ignored silently.
"""

from __future__ import annotations

import dataclasses
import re
from collections import Counter
from pathlib import Path
from typing import Any

from local.sources.event_filter import FilterPatternError, parse_patterns
from local.template.apis import read_api
from local.template.intrinsics import PseudoParameters, referenced_logical_ids
from local.template.model import (
    API_TYPE,
    AUTHORIZER_TYPE,
    FUNCTION_TYPE,
    INTEGRATION_TYPE,
    LAYER_VERSION_TYPE,
    MAPPING_TYPE,
    QUEUE_TYPE,
    ROUTE_RESPONSE_TYPE,
    ROUTE_TYPE,
    STAGE_TYPE,
    TABLE_TYPES,
    USER_POOL_CLIENT_TYPE,
    USER_POOL_TYPE,
    EventSourceMappingSpec,
    FunctionSpec,
    LayerSpec,
    QueueSpec,
    StackModel,
    TableSpec,
    UserPoolClientSpec,
    UserPoolSpec,
)
from local.template.report import FindingKind
from local.template.values import physical_name

# Resource types with no effect on how requests, messages and records flow on one machine.
_IAM_TYPES = ("AWS::IAM::Role", "AWS::IAM::Policy", "AWS::IAM::ManagedPolicy")
NO_BEHAVIOUR_TYPES = {
    **dict.fromkeys(_IAM_TYPES, "IAM is not enforced locally"),
    "AWS::Lambda::Permission": "API Gateway may always invoke locally",
    "AWS::Logs::LogGroup": "function logs go to the local log folder",
    "AWS::SQS::QueuePolicy": "queue policies (e.g. deny non-TLS) are not enforced locally",
    "AWS::CDK::Metadata": "CDK analytics",
    **dict.fromkeys(("AWS::CloudWatch::Alarm", "AWS::CloudWatch::Dashboard"), "no metrics locally"),
    "AWS::ApiGatewayV2::Deployment": "routes are live at start",
    "AWS::SSM::Parameter": "not read by the local stack",
    "AWS::SNS::TopicPolicy": "topic policies are not enforced locally",
    **dict.fromkeys(("AWS::KMS::Key", "AWS::KMS::Alias"), "nothing is encrypted locally"),
    "AWS::Lambda::LayerVersionPermission": "layer permissions are not enforced locally",
}

# Resource types that only matter for alarms; a topic referenced by nothing else only
# carries alarm notifications, which never fire locally.
ALARM_ONLY_REFERRERS = {"AWS::CloudWatch::Alarm", "AWS::CloudWatch::CompositeAlarm", "AWS::SNS::TopicPolicy"}

# Lambda's own limit for the functions' timeout (s), and the default when absent.
DEFAULT_FUNCTION_TIMEOUT = 3
DEFAULT_MEMORY_SIZE = 128


def build_stack_model(
    template: dict[str, Any], stack_name: str, cdk_out: Path, pseudo: PseudoParameters | None = None
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

    for logical_id in [lid for resource_type in TABLE_TYPES for lid in by_type.get(resource_type, [])]:
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
        read_api(model, logical_id)

    handled = {*TABLE_TYPES, QUEUE_TYPE, FUNCTION_TYPE, MAPPING_TYPE, LAYER_VERSION_TYPE, USER_POOL_TYPE}
    handled |= {USER_POOL_CLIENT_TYPE, API_TYPE, ROUTE_TYPE, INTEGRATION_TYPE, STAGE_TYPE}
    handled |= {ROUTE_RESPONSE_TYPE, AUTHORIZER_TYPE}
    alarm_topics = _alarm_only_topics(model, by_type.get("AWS::SNS::Topic", []))
    if alarm_topics:
        subject = f"AWS::SNS::Topic x{len(alarm_topics)}"
        model.note(FindingKind.NOT_EMULATED, subject, "alarm notifications only (no alarms fire locally)")
    counts = Counter(str(r.get("Type")) for lid, r in resources.items() if lid not in alarm_topics)
    for resource_type, count in sorted(counts.items()):
        if resource_type in handled:
            continue
        if resource_type in NO_BEHAVIOUR_TYPES:
            model.note(
                FindingKind.NOT_EMULATED, f"{resource_type} x{count}", NO_BEHAVIOUR_TYPES[resource_type]
            )
        else:
            names = ", ".join(
                model.display_name(lid) for lid in by_type[resource_type] if lid not in alarm_topics
            )
            model.unsupported(
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

_CAPACITY_KEYS: tuple[str, ...] = ("BillingMode", "ProvisionedThroughput", "OnDemandThroughput")
_CAPACITY_KEYS += ("WriteProvisionedThroughputSettings", "WriteOnDemandThroughputSettings", "WarmThroughput")
_TABLE_NO_BEHAVIOUR = {
    **dict.fromkeys(_CAPACITY_KEYS, "capacity mode (no throttling locally)"),
    "SSESpecification": "encryption at rest",
    "PointInTimeRecoverySpecification": "point-in-time recovery",
    "DeletionProtectionEnabled": "deletion protection",
    "Tags": "tags",
    "TableClass": "table class",
    "ContributorInsightsSpecification": "contributor insights",
    "ResourcePolicy": "resource policy",
    "Replicas": "replicas (one region locally)",
}


def _name(model: StackModel, logical_id: str, given: Any, max_length: int, suffix: str = "") -> str:
    """The name the template gives, or the deterministic physical name when it gives none."""
    return (
        given if isinstance(given, str) else physical_name(model.stack_name, logical_id, max_length, suffix)
    )


def _note_ignored(
    model: StackModel, subject: str, properties: dict[str, Any], ignored: dict[str, str]
) -> None:
    """One finding for the properties with no effect locally (`ignored`: property -> what it is)."""
    found = sorted({ignored[key] for key in properties if key in ignored})
    if found:
        model.note(FindingKind.NOT_EMULATED, subject, ", ".join(found))


def _indexes(properties: dict[str, Any], key: str) -> list[dict[str, Any]]:
    return [
        {k: index[k] for k in ("IndexName", "KeySchema", "Projection") if k in index}
        for index in properties.get(key, [])
    ]


def _read_table(model: StackModel, logical_id: str) -> None:
    resource = model.resources[logical_id]
    properties = resource.get("Properties", {})
    if properties.get("TableName") is not None and not isinstance(properties["TableName"], str):
        model.approximated(model.display_name(logical_id), "computed TableName replaced")
    stream = properties.get("StreamSpecification") or {}
    ttl = properties.get("TimeToLiveSpecification") or {}
    spec = TableSpec(
        logical_id=logical_id,
        display_name=model.display_name(logical_id),
        name=_name(model, logical_id, properties.get("TableName"), 255),
        resource_type=resource["Type"],
        key_schema=properties.get("KeySchema", []),
        attribute_definitions=properties.get("AttributeDefinitions", []),
        global_secondary_indexes=_indexes(properties, "GlobalSecondaryIndexes"),
        local_secondary_indexes=_indexes(properties, "LocalSecondaryIndexes"),
        stream_view_type=stream.get("StreamViewType"),
        ttl_attribute=ttl.get("AttributeName") if ttl.get("Enabled", True) and ttl else None,
    )
    model.tables[logical_id] = spec
    _note_ignored(model, f"table {spec.display_name}", properties, _TABLE_NO_BEHAVIOUR)
    for key in ("KinesisStreamSpecification", "ImportSourceSpecification"):
        if key in properties:
            model.unsupported(f"table {spec.display_name}", f"{key} is not emulated")
    if resource["Type"] == "AWS::DynamoDB::GlobalTable" and len(properties.get("Replicas", [])) > 1:
        model.approximated(f"table {spec.display_name}", "global table: one local replica")


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
    **dict.fromkeys(
        ("SqsManagedSseEnabled", "KmsMasterKeyId", "KmsDataKeyReusePeriodSeconds"), "encryption (SSE)"
    ),
    "Tags": "tags",
    "RedriveAllowPolicy": "redrive allow policy",
}


def _read_queue(model: StackModel, logical_id: str) -> None:
    resource = model.resources[logical_id]
    properties = resource.get("Properties", {})
    fifo = str(properties.get("FifoQueue", "false")).lower() == "true"
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
            model.unsupported(
                f"queue {model.display_name(logical_id)}",
                "RedrivePolicy targets a queue outside this template: no dead-lettering locally",
            )
    model.queues[logical_id] = QueueSpec(
        logical_id=logical_id,
        display_name=model.display_name(logical_id),
        name=_name(model, logical_id, properties.get("QueueName"), 80, ".fifo" if fifo else ""),
        fifo=fifo,
        attributes=attributes,
        dead_letter_target=target,
        max_receive_count=max_receive_count,
    )
    _note_ignored(model, f"queue {model.display_name(logical_id)}", properties, _QUEUE_NO_BEHAVIOUR)


def _mark_dead_letter_queues(model: StackModel) -> None:
    targets = {q.dead_letter_target for q in model.queues.values() if q.dead_letter_target}
    for logical_id in targets:
        if logical_id in model.queues:
            queue = model.queues[logical_id]
            model.queues[logical_id] = dataclasses.replace(queue, is_dead_letter_queue=True)


# --- functions -----------------------------------------------------------------------------


def _read_function(model: StackModel, logical_id: str) -> None:
    resource = model.resources[logical_id]
    properties = resource.get("Properties", {})
    metadata = resource.get("Metadata", {})
    shown = model.display_name(logical_id)
    asset_dir: Path | None = None
    inline_code = None
    code = properties.get("Code", {})
    staged = _staged_asset(model.cdk_out, code)
    if metadata.get("aws:asset:path"):
        asset_dir = (model.cdk_out / str(metadata["aws:asset:path"])).resolve()
        if not asset_dir.is_dir():
            model.unsupported(f"function {shown}", f"asset folder {asset_dir} is missing")
    elif staged is not None:
        asset_dir = staged  # synthesized without asset metadata: the staged folder of the S3 key
    elif isinstance(code, dict) and isinstance(code.get("ZipFile"), str):
        inline_code = code["ZipFile"]
    else:
        model.unsupported(
            f"function {shown}", "code is neither a cdk.out asset folder nor inline: it cannot run locally"
        )
    package_type = properties.get("PackageType", "Zip")
    if package_type != "Zip":
        model.unsupported(f"function {shown}", f"PackageType {package_type} cannot run")
    runtime = str(properties.get("Runtime", ""))
    if not runtime.startswith("python"):
        model.unsupported(f"function {shown}", f"runtime {runtime!r}: only Python runs")

    spec = FunctionSpec(
        logical_id=logical_id,
        display_name=shown,
        name=_name(model, logical_id, properties.get("FunctionName"), 64),
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
    model.layers[logical_id] = LayerSpec(
        logical_id=logical_id,
        display_name=model.display_name(logical_id),
        name=_name(model, logical_id, properties.get("LayerName"), 140),
        asset_dir=asset_dir,
    )


# --- Cognito -------------------------------------------------------------------------------

_USER_POOL_UNSUPPORTED = {
    "LambdaConfig": "Lambda triggers (e.g. pre token generation) are not run: tokens carry only the "
    "claims they are minted with"
}


def _read_user_pools(model: StackModel, pool_ids: list[str], client_ids: list[str]) -> None:
    for logical_id in client_ids:
        properties = model.resources[logical_id].get("Properties", {})
        pools = [lid for lid in referenced_logical_ids(properties.get("UserPoolId")) if lid in pool_ids]
        model.user_pool_clients[logical_id] = UserPoolClientSpec(
            logical_id, model.display_name(logical_id), pools[0] if pools else None
        )
        if not pools:
            model.unsupported(
                f"Cognito app client {model.display_name(logical_id)}",
                "its user pool is not in this template: no local issuer plays it",
            )
    for logical_id in pool_ids:
        clients = tuple(c.logical_id for c in model.user_pool_clients.values() if c.pool_id == logical_id)
        spec = UserPoolSpec(logical_id, model.display_name(logical_id), clients)
        model.user_pools[logical_id] = spec
        names = ", ".join(model.user_pool_clients[c].display_name for c in clients)
        model.approximated(
            f"Cognito user pool {spec.display_name}" + (f" (app client {names})" if names else ""),
            "only its token issuer is emulated: a local signing key, JWKS and OIDC discovery at its "
            "ProviderURL, app client ids as audiences; no users, sign-up, sign-in or hosted UI: use the "
            "dev token printed at start, or `python -m local.token --sub NAME` for more",
        )
        properties = model.resources[logical_id].get("Properties", {})
        for key, detail in _USER_POOL_UNSUPPORTED.items():
            if properties.get(key):
                model.unsupported(f"Cognito user pool {spec.display_name}", detail)


# --- event source mappings -----------------------------------------------------------------

# The properties each kind of mapping honours locally; any other is reported.
_MAPPING_KEYS = {"BatchSize", "EventSourceArn", "FunctionName", "FunctionResponseTypes", "FilterCriteria"}
_MAPPING_KEYS |= {"MaximumBatchingWindowInSeconds", "Enabled", "Tags"}
_SQS_MAPPING_KEYS = _MAPPING_KEYS | {"ScalingConfig"}
_STREAM_MAPPING_KEYS = _MAPPING_KEYS | {"StartingPosition", "MaximumRetryAttempts", "ParallelizationFactor"}
_STREAM_MAPPING_KEYS |= {"MaximumRecordAgeInSeconds", "BisectBatchOnFunctionError"}


def _read_mapping(model: StackModel, logical_id: str) -> None:
    properties = model.resources[logical_id].get("Properties", {})
    function_ids = [
        lid for lid in referenced_logical_ids(properties.get("FunctionName")) if lid in model.functions
    ]
    source_ids = list(referenced_logical_ids(properties.get("EventSourceArn")))
    subject = f"event source mapping {model.display_name(logical_id)}"
    if not function_ids:
        model.unsupported(subject, "its function is not in this template: not run")
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
            model.unsupported(subject, "the table has no stream: not run")
            return
    else:
        model.unsupported(
            f"event source mapping of {model.functions[function_id].display_name}",
            f"event source {properties.get('EventSourceArn')!r} is not a queue or table stream "
            "of this template: not run",
        )
        return

    try:
        patterns = parse_patterns(properties.get("FilterCriteria", {}).get("Filters", []))
    except FilterPatternError as error:
        model.unsupported(subject, f"FilterCriteria: {error}; mapping not run")
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
    for key in sorted(set(properties) - allowed):
        detail = {
            "DestinationConfig": "on-failure destination is not emulated: discarded records are only logged",
            "TumblingWindowInSeconds": "tumbling windows are not emulated",
            "MetricsConfig": "ESM metrics are not emulated",
        }.get(key, f"{key} is not emulated")
        model.unsupported(subject, detail)
    factor = int(properties.get("ParallelizationFactor", 1))
    if kind == "dynamodb" and factor > 1:
        model.approximated(
            subject,
            f"ParallelizationFactor {factor} -> 1 batch at a time per shard (order kept, less throughput)",
        )
    if spec.starting_position not in (None, "TRIM_HORIZON", "LATEST") and kind == "dynamodb":
        model.approximated(subject, f"StartingPosition {spec.starting_position} -> TRIM_HORIZON")


def _note_parameters(model: StackModel) -> None:
    for name, parameter in model.template.get("Parameters", {}).items():
        parameter_type = str(parameter.get("Type", ""))
        if name == "BootstrapVersion":
            continue
        if parameter_type.startswith("AWS::SSM::Parameter::Value"):
            continue  # reported with the layers that use them
        if "Default" not in parameter:
            model.unsupported(f"parameter {name}", "no default: resolves to an empty string")
