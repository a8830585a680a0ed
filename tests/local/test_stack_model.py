"""The template is read into specs, and everything not run as on AWS is reported."""

import copy
import json
from pathlib import Path

import pytest

from local.template.cdk_out import TemplateError, find_stack
from local.template.reader import build_stack_model, layer_summary
from local.template.report import FindingKind, render_findings
from local.template.values import LocalValues, check_resolvable

FIXTURE = Path(__file__).parent / "fixtures" / "assembly"
REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def fixture_stack():
    return find_stack(FIXTURE, "dev")


@pytest.fixture(scope="module")
def model(fixture_stack):
    return build_stack_model(fixture_stack.template, fixture_stack.stack_name, fixture_stack.cdk_out)


def findings(model, kind):
    return [str(f) for f in model.findings if f.kind is kind]


def test_global_tables_are_read_with_keys_indexes_stream_and_ttl(model):
    table = model.tables["ItemsTable1A2B3C4D"]
    assert table.name == "Fixture-dev-ItemsTable1A2B3C4D"
    assert table.key_schema == [{"AttributeName": "id", "KeyType": "HASH"}]
    assert [i["IndexName"] for i in table.global_secondary_indexes] == ["ByKind"]
    assert table.stream_view_type == "NEW_AND_OLD_IMAGES"
    assert table.ttl_attribute == "expiresAt"


def test_queues_keep_their_redrive_policy_and_the_dlq_is_known(model):
    queue = model.queues["WorkQueueBBBB2222"]
    assert queue.dead_letter_target == "WorkDlqAAAA1111"
    assert queue.max_receive_count == 2
    assert queue.attributes["VisibilityTimeout"] == "30"
    assert model.queues["WorkDlqAAAA1111"].is_dead_letter_queue


def test_functions_environment_resolves_to_local_values(model):
    values = LocalValues(model, "http://127.0.0.1:5555")
    environment = model.resolver(values).resolve(model.functions["ApiFunctionCCCC3333"].environment)
    assert environment == {
        "TABLE_NAME": "Fixture-dev-ItemsTable1A2B3C4D",
        "TABLE_ARN": "arn:aws:dynamodb:us-east-1:123456789012:table/Fixture-dev-ItemsTable1A2B3C4D",
        "QUEUE_URL": "http://127.0.0.1:5555/123456789012/Fixture-dev-WorkQueueBBBB2222",
        "WHERE": "us-east-1/123456789012/Fixture-dev-WorkQueueBBBB2222",
        "IN_US_EAST": "yes",
        "FAILURE_RATE": "0.5",
    }
    assert model.functions["ApiFunctionCCCC3333"].asset_dir == (FIXTURE / "functions").resolve()
    assert model.functions["ApiFunctionCCCC3333"].timeout == 2


def test_event_source_mappings_keep_every_setting_that_changes_behaviour(model):
    by_function = {m.function_id: m for m in model.mappings}
    stream = by_function["StreamFunctionDDDD4444"]
    assert (stream.source_kind, stream.batch_size, stream.maximum_retry_attempts) == ("dynamodb", 10, 2)
    assert stream.bisect_on_error
    assert stream.report_batch_item_failures
    assert stream.filter_patterns == [{"eventName": ["INSERT"]}]
    worker = by_function["WorkerFunctionFFFF6666"]
    assert (worker.source_kind, worker.batch_size, worker.maximum_concurrency) == ("sqs", 5, 2)
    assert not by_function["DlqFunction77778888"].report_batch_item_failures


def test_apis_routes_cors_and_two_way_routes(model):
    (http,) = model.http_apis
    assert {r.route_key for r in http.routes} >= {"POST /items", "GET /items/{id}", "ANY /echo/{proxy+}"}
    assert {r.function_id for r in http.routes} == {"ApiFunctionCCCC3333"}
    assert http.cors is not None
    assert http.cors.allow_origins == ("http://localhost:4200",)
    (ws,) = model.websocket_apis
    assert ws.stage_name == "test"
    assert ws.routes["$default"].two_way
    assert ws.routes["push"].two_way
    assert not ws.routes["$connect"].two_way


def test_layers_are_reported_with_their_ssm_parameter(model):
    assert "/aws/service/powertools/python/x86_64/python3.12/3.37.0" in (layer_summary(model) or "")


def test_resources_without_local_behaviour_are_listed_as_not_emulated(model):
    not_emulated = findings(model, FindingKind.NOT_EMULATED)
    assert any("AWS::IAM::Role x1" in line for line in not_emulated)
    assert any("AWS::Logs::LogGroup x1" in line for line in not_emulated)
    assert findings(model, FindingKind.UNSUPPORTED) == []


def test_features_that_change_behaviour_are_reported_as_unsupported(fixture_stack):
    template = copy.deepcopy(fixture_stack.template)
    resources = template["Resources"]
    resources["Topic"] = {"Type": "AWS::SNS::Topic", "Properties": {}}
    resources["Authorizer"] = {
        "Type": "AWS::ApiGatewayV2::Authorizer",
        "Properties": {"ApiId": {"Ref": "HttpApi55556666"}, "AuthorizerType": "REQUEST"},
    }
    resources["RouteBoom"]["Properties"]["AuthorizationType"] = "CUSTOM"
    resources["RouteBoom"]["Properties"]["AuthorizerId"] = {"Ref": "Authorizer"}
    resources["RouteSlow"]["Properties"]["AuthorizationType"] = "AWS_IAM"
    resources["HttpStage"]["Properties"]["DefaultRouteSettings"] = {
        "ThrottlingRateLimit": 5,
        "ThrottlingBurstLimit": 9,
    }
    resources["StreamMapping"]["Properties"]["DestinationConfig"] = {
        "OnFailure": {"Destination": "arn:aws:sqs:x"}
    }
    resources["StreamMapping"]["Properties"]["ParallelizationFactor"] = 4
    resources["HttpIntegration"]["Properties"]["PayloadFormatVersion"] = "1.0"
    resources["ApiFunctionCCCC3333"]["Properties"]["Environment"]["Variables"]["OTHER"] = {
        "Fn::ImportValue": "X"
    }

    model = build_stack_model(template, "Fixture-dev", fixture_stack.cdk_out)
    check_resolvable(model, LocalValues(model, "http://127.0.0.1:1"))
    text = "\n".join(render_findings(model.findings))

    assert any("AWS::SNS::Topic x1" in line for line in findings(model, FindingKind.UNSUPPORTED))
    assert "authorizer Authorizer: AuthorizerType REQUEST on an HTTP API is not run" in text
    assert "route GET /boom: AuthorizationType CUSTOM: its authorizer is not run" in text
    assert "route GET /slow: AuthorizationType AWS_IAM: not enforced locally" in text
    assert "throttling (rate 5/s, burst 9) is not enforced" in text
    assert "on-failure destination is not emulated" in text
    assert "ParallelizationFactor 4 -> 1" in text
    assert "payload format 1.0" in text
    assert "env OTHER: Fn::ImportValue is not supported" in text
    assert text.index("Unsupported") < text.index("Approximated") < text.index("Not emulated")


def test_a_missing_stage_is_a_clear_error(tmp_path):
    (tmp_path / "A-dev.template.json").write_text(json.dumps({"Resources": {}}))
    with pytest.raises(TemplateError, match="stage 'prod' matches 0"):
        find_stack(tmp_path, "prod")
    with pytest.raises(TemplateError, match="run `make synth`"):
        find_stack(tmp_path / "empty", "dev")


@pytest.mark.parametrize("manifest", ["{", "[]", '{"artifacts": 5}'])
def test_a_broken_manifest_is_a_clear_error(tmp_path, manifest):
    (tmp_path / "manifest.json").write_text(manifest)
    with pytest.raises(TemplateError, match=r"manifest\.json.*run `make synth` again"):
        find_stack(tmp_path, "dev")


def test_a_topic_only_alarms_notify_is_not_emulated(fixture_stack):
    template = copy.deepcopy(fixture_stack.template)
    resources = template["Resources"]
    resources["AlarmTopic"] = {"Type": "AWS::SNS::Topic", "Properties": {}}
    resources["Alarm"] = {
        "Type": "AWS::CloudWatch::Alarm",
        "Properties": {"AlarmActions": [{"Ref": "AlarmTopic"}]},
    }
    model = build_stack_model(template, "Fixture-dev", fixture_stack.cdk_out)
    assert findings(model, FindingKind.UNSUPPORTED) == []
    assert any(
        "AWS::SNS::Topic x1: alarm notifications" in line
        for line in findings(model, FindingKind.NOT_EMULATED)
    )


@pytest.mark.skipif(not (REPO_ROOT / "cdk.out" / "manifest.json").exists(), reason="cdk.out not synthesized")
def test_the_synthesized_dev_stack_is_fully_runnable():
    stack = find_stack(REPO_ROOT / "cdk.out", "dev")
    model = build_stack_model(stack.template, stack.stack_name, stack.cdk_out)
    check_resolvable(model, LocalValues(model, "http://127.0.0.1:1"))
    assert len(model.functions) == 8
    assert {m.source_kind for m in model.mappings} == {"sqs", "dynamodb"}
    assert all(spec.asset_dir and spec.asset_dir.is_dir() for spec in model.functions.values())
    # only API Gateway throttling differs locally; everything else runs or has no local effect
    unsupported = findings(model, FindingKind.UNSUPPORTED)
    assert all("throttling" in line for line in unsupported), unsupported
