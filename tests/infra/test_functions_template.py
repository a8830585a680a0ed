"""Functions: shared defaults (runtime, arch, logging, layer, code) and the environment of each."""

from __future__ import annotations

import pytest
from template_queries import HANDLERS, environment, function_id, function_ids, properties, ref, resources

from infra.config import POWERTOOLS_VERSION

COMMON = {"POWERTOOLS_SERVICE_NAME": "taskflow", "POWERTOOLS_METRICS_NAMESPACE": "TaskBackend"}


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
def test_function_uses_the_shared_defaults(dev_template, construct_id):
    fn = properties(dev_template, function_id(dev_template, construct_id))

    assert fn["Runtime"] == "python3.14"
    assert fn["Architectures"] == ["arm64"]
    assert fn["MemorySize"] == 512
    assert fn["Layers"] == [ref(_layer_parameter(dev_template))]
    assert fn["LoggingConfig"]["LogFormat"] == "JSON"
    log_group = fn["LoggingConfig"]["LogGroup"]["Ref"]
    assert dev_template.to_json()["Resources"][log_group]["Type"] == "AWS::Logs::LogGroup"


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

    assert timeouts == {
        "HttpApiFunction": stage.api_timeout_seconds,
        "WsConnectFunction": stage.api_timeout_seconds,
        "WsDisconnectFunction": stage.api_timeout_seconds,
        "WsDefaultFunction": stage.api_timeout_seconds,
        "EnqueueFunction": stage.stream_timeout_seconds,
        "NotifierFunction": stage.stream_timeout_seconds,
        "ProcessorFunction": stage.processor_timeout_seconds,
        "DlqConsumerFunction": stage.processor_timeout_seconds,
    }


def _expected_environment(stage_name: str, ids, callback_url) -> dict[str, dict]:
    dev = stage_name == "dev"
    common = {"STAGE": stage_name, **COMMON, "POWERTOOLS_LOG_LEVEL": "INFO"}
    task_table = {"TASK_TABLE_NAME": ref(ids.task_table)}
    connections = {"CONNECTION_TABLE_NAME": ref(ids.connection_table)}
    return {
        "HttpApiFunction": {
            **common,
            **task_table,
            "CORS_ORIGINS": "http://localhost:4200" if dev else "https://app.example.com",
            "CORS_HEADERS": "Content-Type,X-Amz-Date,Authorization,X-Amz-Security-Token,X-Api-Key",
            "ALLOW_FAULT_INJECTION": "true" if dev else "false",
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
        "NotifierFunction": {**common, **connections, "WEBSOCKET_CALLBACK_URL": callback_url},
        "WsConnectFunction": {**common, **connections, "CONNECTION_TTL_SECONDS": "7800"},
        "WsDisconnectFunction": {**common, **connections},
        "WsDefaultFunction": common,
    }


@pytest.mark.parametrize("stage_name", ["dev", "prod"])
@pytest.mark.parametrize("construct_id", sorted(HANDLERS))
def test_function_gets_exactly_the_environment_the_spec_lists(request, stage_name, construct_id):
    template = request.getfixturevalue(f"{stage_name}_template")
    ids = request.getfixturevalue(f"{stage_name}_ids")
    # The callback URL is asserted on its own in the WebSocket tests.
    callback_url = environment(template, function_id(template, "NotifierFunction"))["WEBSOCKET_CALLBACK_URL"]

    actual = environment(template, function_id(template, construct_id))

    assert actual == _expected_environment(stage_name, ids, callback_url)[construct_id]
