"""Functions: shared defaults (runtime, arch, logging, layer, code) and the environment of each."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from aws_cdk.assertions import Capture, Match
from template_queries import (
    HANDLERS,
    REPO_ROOT,
    arn,
    cdk_json_stages,
    environment,
    function_id,
    function_ids,
    handlers_of,
    on_variants,
    only,
    properties,
    ref,
    resources,
    stage_variant,
)

from infra.config import POWERTOOLS_VERSION

FUNCTION = "AWS::Lambda::Function"
LAMBDAS = REPO_ROOT / "lambdas"
COMMON = {
    "POWERTOOLS_SERVICE_NAME": "taskflow",
    "POWERTOOLS_METRICS_NAMESPACE": "TaskBackend",
    "PYDANTIC_DISABLE_PLUGINS": "__all__",
}
# (stage, function) for every function of the two cdk.json stages (prod has `auth: jwt`).
STAGE_FUNCTIONS = [
    (stage_name, construct_id)
    for stage_name in ("dev", "prod")
    for construct_id in sorted(handlers_of(cdk_json_stages()[stage_name]))
]


def _layer_parameter(template) -> str:
    """The template parameter the Powertools layer ARN is resolved from at deploy time."""
    return only(
        template.find_parameters(
            "*",
            {
                "Type": "AWS::SSM::Parameter::Value<String>",
                "Default": Match.string_like_regexp("^/aws/service/powertools/"),
            },
        )
    )


@on_variants("dev")
def test_powertools_layer_is_resolved_from_the_public_ssm_parameter_at_deploy_time(variant):
    variant.template.has_parameter(
        _layer_parameter(variant.template),
        {"Default": f"/aws/service/powertools/python/arm64/python3.14/{POWERTOOLS_VERSION}"},
    )


@on_variants("dev")
@pytest.mark.parametrize("construct_id", sorted(HANDLERS))
def test_function_uses_the_shared_defaults(variant, construct_id):
    template = variant.template
    log_group = Capture()

    template.has_resource_properties(
        FUNCTION,
        {
            "Handler": HANDLERS[construct_id],
            "Runtime": "python3.14",
            "Architectures": ["arm64"],
            "MemorySize": variant.stage.memory_of(construct_id),
            "Layers": [ref(_layer_parameter(template))],
            "LoggingConfig": {"LogFormat": "JSON", "LogGroup": {"Ref": log_group}},
        },
    )
    assert log_group.as_string() in resources(template, "AWS::Logs::LogGroup")


@on_variants("dev")
def test_memory_is_set_per_function_where_the_stage_says_and_the_default_elsewhere(variant):
    # bench memory chose 256 MB for the stream consumers (docs/performance.md); the rest keep 512.
    template = variant.template
    sizes = {name: properties(template, fn)["MemorySize"] for name, fn in function_ids(template).items()}

    assert {name: size for name, size in sizes.items() if size != 512} == {
        "EnqueueFunction": 256,
        "NotifierFunction": 256,
    }


@on_variants("dev")
def test_functions_share_one_code_asset_and_each_has_its_own_log_group(variant):
    functions = [properties(variant.template, fn) for fn in function_ids(variant.template).values()]

    variant.template.resource_count_is(FUNCTION, len(HANDLERS))
    assert len({f["Code"]["S3Key"] for f in functions}) == 1
    assert len({f["LoggingConfig"]["LogGroup"]["Ref"] for f in functions}) == len(HANDLERS)


@on_variants("dev", "prod")
def test_timeouts_follow_the_stage(variant):
    template, stage = variant.template, variant.stage
    timeouts = {name: properties(template, fn)["Timeout"] for name, fn in function_ids(template).items()}

    expected = {
        "HttpApiFunction": stage.api_timeout_seconds,
        "WsConnectFunction": stage.api_timeout_seconds,
        "WsDisconnectFunction": stage.api_timeout_seconds,
        "WsDefaultFunction": stage.resume_timeout_seconds,
        "WsAuthorizerFunction": stage.api_timeout_seconds,
        "EnqueueFunction": stage.stream_timeout_seconds,
        "NotifierFunction": stage.stream_timeout_seconds,
        "ProcessorFunction": stage.processor_timeout_seconds,
        "DlqConsumerFunction": stage.processor_timeout_seconds,
    }
    assert timeouts == {name: expected[name] for name in handlers_of(stage)}


def _expected_environment(variant, callback_url) -> dict[str, dict]:
    template, ids = variant.template, variant.ids
    dev = variant.name == "dev"
    common = {"STAGE": variant.stage.name, **COMMON, "POWERTOOLS_LOG_LEVEL": "INFO"}
    task_table = {"TASK_TABLE_NAME": ref(ids.task_table), "TASK_LIST_SHARDS": "16" if dev else "4"}
    connections = {"CONNECTION_TABLE_NAME": ref(ids.connection_table)}
    # prod has `auth: jwt` with a created user pool; dev has `auth: none` and no AUTH_MODE at all.
    auth_mode = {} if dev else {"AUTH_MODE": "jwt"}
    expected = {
        "HttpApiFunction": {
            **common,
            **task_table,
            "CORS_ORIGINS": "http://localhost:4200" if dev else "https://app.example.com",
            "CORS_HEADERS": "Content-Type,X-Amz-Date,Authorization,X-Amz-Security-Token,X-Api-Key",
            "ALLOW_FAULT_INJECTION": "true" if dev else "false",
            **auth_mode,
        },
        "EnqueueFunction": {**common, "TASK_QUEUE_URL": ref(ids.queue)},
        "ProcessorFunction": {
            **common,
            **task_table,
            "TASK_QUEUE_URL": ref(ids.queue),
            "FAILURE_RATE": "0.3" if dev else "0.0",
            "FAILURE_SEED": "",
            "ALLOW_FAULT_INJECTION": "true" if dev else "false",
            "MAX_RECEIVE_COUNT": "3" if dev else "5",
            "BACKOFF_BASE_SECONDS": "2" if dev else "5",
            "BACKOFF_CAP_SECONDS": "60" if dev else "900",
        },
        "DlqConsumerFunction": {**common, **task_table, "MAX_RECEIVE_COUNT": "3" if dev else "5"},
        "NotifierFunction": {
            **common,
            **connections,
            "WEBSOCKET_CALLBACK_URL": callback_url,
            **auth_mode,
        },
        "WsConnectFunction": {**common, **connections, "CONNECTION_TTL_SECONDS": "7800", **auth_mode},
        "WsDisconnectFunction": {**common, **connections},
        "WsDefaultFunction": {
            **common,
            **task_table,
            "WEBSOCKET_CALLBACK_URL": callback_url,
            "RESUME_MAX_CHANGES": "500",
            "RESUME_WINDOW_SECONDS": "86400",
            **auth_mode,
        },
    }
    if not dev:
        user_pool = only(resources(template, "AWS::Cognito::UserPool"))
        expected["WsAuthorizerFunction"] = {
            **common,
            "JWT_ISSUER": arn(user_pool, "ProviderURL"),
            "JWT_AUDIENCE": ref(only(resources(template, "AWS::Cognito::UserPoolClient"))),
        }
    return expected


@pytest.mark.parametrize(("variant", "construct_id"), STAGE_FUNCTIONS, indirect=["variant"])
def test_function_gets_exactly_the_environment_the_spec_lists(variant, construct_id):
    template = variant.template
    # The callback URL is asserted on its own in the WebSocket tests.
    callback_url = environment(template, function_id(template, "NotifierFunction"))["WEBSOCKET_CALLBACK_URL"]

    actual = environment(template, function_id(template, construct_id))

    assert actual == _expected_environment(variant, callback_url)[construct_id]


@on_variants("prod")
def test_every_function_of_a_stage_has_an_expected_environment(variant):
    # Guards the parametrization above: it covers each function the template has, no more, no less.
    expected = _expected_environment(variant, callback_url=None)

    assert (
        set(expected)
        == set(function_ids(variant.template))
        == {name for stage, name in STAGE_FUNCTIONS if stage == "prod"}
    )


def _module_defines(path: Path, name: str) -> bool:
    """The module at path defines `name` at top level (a function or an assignment)."""
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == name:
            return True
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == name for t in node.targets):
            return True
    return False


def _handlers(template) -> set[str]:
    return {function["Properties"]["Handler"] for function in resources(template, FUNCTION).values()}


@on_variants("dev", "prod")
def test_every_function_handler_names_a_handler_of_the_lambda_package(variant):
    # A typo in a handler string would deploy a function that fails on every invocation.
    for handler in _handlers(variant.template):
        module, attribute = handler.rsplit(".", 1)
        path = LAMBDAS / Path(*module.split(".")).with_suffix(".py")

        assert path.is_file(), f"{handler}: {path} does not exist"
        assert _module_defines(path, attribute), f"{handler}: {path} defines no {attribute}"


def test_every_handler_module_runs_in_a_function_of_a_cdk_json_stage():
    # prod (`auth: jwt`) has every function dev has and the WebSocket authorizer: none is left unused.
    modules = {path.stem for path in (LAMBDAS / "taskflow" / "handlers").glob("*.py")} - {"__init__"}

    deployed = set().union(*(_handlers(stage_variant(name).template) for name in ("dev", "prod")))

    assert {handler.rsplit(".", 1)[0] for handler in deployed} == {
        f"taskflow.handlers.{module}" for module in modules
    }
