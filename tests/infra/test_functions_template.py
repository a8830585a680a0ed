"""Functions: shared defaults (runtime, arch, logging, layer, code) and the environment of each."""

from __future__ import annotations

import pytest
from template_queries import (
    HANDLERS,
    arn,
    cdk_json_stages,
    environment,
    function_id,
    function_ids,
    handlers_of,
    only,
    properties,
    ref,
    resources,
)

from infra.config import POWERTOOLS_VERSION

COMMON = {"POWERTOOLS_SERVICE_NAME": "taskflow", "POWERTOOLS_METRICS_NAMESPACE": "TaskBackend"}
# (stage, function) for every function of the two cdk.json stages (prod has `auth: jwt`).
STAGE_FUNCTIONS = [
    (stage_name, construct_id)
    for stage_name in ("dev", "prod")
    for construct_id in sorted(handlers_of(cdk_json_stages()[stage_name]))
]


def _layer_parameter(template) -> str:
    parameters = template.to_json()["Parameters"]
    (name,) = [
        name
        for name, parameter in parameters.items()
        if parameter["Default"].startswith("/aws/service/powertools/")
    ]
    assert parameters[name]["Type"] == "AWS::SSM::Parameter::Value<String>"
    return name


def test_powertools_layer_is_resolved_from_the_public_ssm_parameter_at_deploy_time(dev_template):
    name = _layer_parameter(dev_template)

    assert dev_template.to_json()["Parameters"][name]["Default"] == (
        f"/aws/service/powertools/python/arm64/python3.14/{POWERTOOLS_VERSION}"
    )


@pytest.mark.parametrize("construct_id", sorted(HANDLERS))
def test_function_uses_the_shared_defaults(dev_template, dev_stage, construct_id):
    fn = properties(dev_template, function_id(dev_template, construct_id))

    assert fn["Runtime"] == "python3.14"
    assert fn["Architectures"] == ["arm64"]
    assert fn["MemorySize"] == dev_stage.memory_of(construct_id)
    assert fn["Layers"] == [ref(_layer_parameter(dev_template))]
    assert fn["LoggingConfig"]["LogFormat"] == "JSON"
    log_group = fn["LoggingConfig"]["LogGroup"]["Ref"]
    assert dev_template.to_json()["Resources"][log_group]["Type"] == "AWS::Logs::LogGroup"


def test_memory_is_set_per_function_where_the_stage_says_and_the_default_elsewhere(dev_template):
    # bench memory chose 256 MB for the stream consumers (docs/performance.md); the rest keep 512.
    sizes = {
        name: properties(dev_template, fn)["MemorySize"] for name, fn in function_ids(dev_template).items()
    }

    assert {name: size for name, size in sizes.items() if size != 512} == {
        "EnqueueFunction": 256,
        "NotifierFunction": 256,
    }


def test_functions_share_one_code_asset_and_each_has_its_own_log_group(dev_template):
    functions = [properties(dev_template, fn) for fn in function_ids(dev_template).values()]

    assert len({f["Code"]["S3Key"] for f in functions}) == 1
    assert len({f["LoggingConfig"]["LogGroup"]["Ref"] for f in functions}) == len(HANDLERS)
    assert len(resources(dev_template, "AWS::Lambda::Function")) == len(HANDLERS)


@pytest.mark.parametrize("stage_name", ["dev", "prod"])
def test_timeouts_follow_the_stage(request, stage_name):
    template = request.getfixturevalue(f"{stage_name}_template")
    stage = request.getfixturevalue(f"{stage_name}_stage")
    timeouts = {name: properties(template, fn)["Timeout"] for name, fn in function_ids(template).items()}

    expected = {
        "HttpApiFunction": stage.api_timeout_seconds,
        "WsConnectFunction": stage.api_timeout_seconds,
        "WsDisconnectFunction": stage.api_timeout_seconds,
        "WsDefaultFunction": stage.api_timeout_seconds,
        "WsAuthorizerFunction": stage.api_timeout_seconds,
        "EnqueueFunction": stage.stream_timeout_seconds,
        "NotifierFunction": stage.stream_timeout_seconds,
        "ProcessorFunction": stage.processor_timeout_seconds,
        "DlqConsumerFunction": stage.processor_timeout_seconds,
    }
    assert timeouts == {name: expected[name] for name in handlers_of(stage)}


def _expected_environment(stage_name: str, template, ids, callback_url) -> dict[str, dict]:
    dev = stage_name == "dev"
    common = {"STAGE": stage_name, **COMMON, "POWERTOOLS_LOG_LEVEL": "INFO"}
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


@pytest.mark.parametrize(("stage_name", "construct_id"), STAGE_FUNCTIONS)
def test_function_gets_exactly_the_environment_the_spec_lists(request, stage_name, construct_id):
    template = request.getfixturevalue(f"{stage_name}_template")
    ids = request.getfixturevalue(f"{stage_name}_ids")
    # The callback URL is asserted on its own in the WebSocket tests.
    callback_url = environment(template, function_id(template, "NotifierFunction"))["WEBSOCKET_CALLBACK_URL"]

    actual = environment(template, function_id(template, construct_id))

    assert actual == _expected_environment(stage_name, template, ids, callback_url)[construct_id]


def test_every_function_of_a_stage_has_an_expected_environment(prod_template, prod_ids):
    # Guards the parametrization above: it covers each function the template has, no more, no less.
    expected = _expected_environment("prod", prod_template, prod_ids, callback_url=None)

    assert (
        set(expected)
        == set(function_ids(prod_template))
        == {name for stage, name in STAGE_FUNCTIONS if stage == "prod"}
    )
