"""The stack: its name, outputs, tags, environment-agnostic, and stage values that reach the template."""

from __future__ import annotations

import json

import aws_cdk as cdk
import boto3
from aws_cdk.assertions import Match
from moto import mock_aws
from template_queries import (
    cdk_json_stages,
    changed,
    function_id,
    has_environment,
    on_variants,
    only,
    ref,
    resources,
    synth,
)

from ops.stack_outputs import resolve_outputs

# A stack of almost nothing: what the ops tools look for is its name.
STAND_IN_TEMPLATE = json.dumps({"Resources": {"Queue": {"Type": "AWS::SQS::Queue"}}})
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@on_variants("dev", "prod")
def test_each_stage_synthesizes_the_stack_the_ops_tools_look_up(variant, monkeypatch):
    # Given the stack of the cloud assembly `cdk deploy` reads, deployed (to moto) under its name
    (stack,) = variant.stack.node.root.synth().stacks
    for name, value in FAKE_CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    with mock_aws():
        boto3.client("cloudformation").create_stack(
            StackName=stack.stack_name, TemplateBody=STAND_IN_TEMPLATE
        )

        # When the ops tools (redrive, migrate-keys) look the stage up by its name
        found = resolve_outputs(variant.stage.name, "aws")

    # Then they find that stack, whose name carries the stage
    assert found.stack_name == stack.stack_name
    assert stack.stack_name.endswith(f"-{variant.stage.name}")


@on_variants("dev")
def test_outputs_publish_urls_and_resource_names(variant):
    template, ids = variant.template, variant.ids
    outputs = template.find_outputs("*")

    def url(scheme, api_id, path):
        return {
            "Fn::Join": [
                "",
                [
                    f"{scheme}://",
                    ref(api_id),
                    ".execute-api.",
                    ref("AWS::Region"),
                    ".",
                    ref("AWS::URLSuffix"),
                    path,
                ],
            ]
        }

    assert {name: output["Value"] for name, output in outputs.items()} == {
        "HttpApiUrl": url("https", ids.http_api, "/"),
        "WebSocketUrl": url("wss", ids.websocket_api, f"/{variant.stage.name}"),
        "TaskTableName": ref(ids.task_table),
        "ConnectionTableName": ref(ids.connection_table),
        "TaskQueueUrl": ref(ids.queue),
        "TaskDlqUrl": ref(ids.dlq),
        "AlarmTopicArn": ref(only(resources(template, "AWS::SNS::Topic"))),
        "DashboardName": ref(only(resources(template, "AWS::CloudWatch::Dashboard"))),
    }


@on_variants("prod")
def test_taggable_resources_carry_project_and_stage(variant):
    template = variant.template
    tags = {"Project": "TaskBackend", "Stage": "prod"}

    for resource_type in (
        "AWS::DynamoDB::Table",
        "AWS::SQS::Queue",
        "AWS::Lambda::Function",
        "AWS::IAM::Role",
        "AWS::SNS::Topic",
        "AWS::KMS::Key",
        "AWS::CloudWatch::Alarm",
    ):
        assert resources(template, resource_type), resource_type
        template.all_resources_properties(
            resource_type, {"Tags": [{"Key": key, "Value": value} for key, value in tags.items()]}
        )
    # The APIs and the user pool (prod has `auth: jwt`) take tags as a map.
    template.all_resources_properties("AWS::ApiGatewayV2::Api", {"Tags": Match.object_equals(tags)})
    template.resource_count_is("AWS::Cognito::UserPool", 1)
    template.has_resource_properties("AWS::Cognito::UserPool", {"UserPoolTags": Match.object_equals(tags)})


@on_variants("dev")
def test_stack_is_environment_agnostic(variant):
    assert cdk.Token.is_unresolved(variant.stack.account)
    assert cdk.Token.is_unresolved(variant.stack.region)


def test_changed_cors_origin_and_retry_budget_reach_the_template():
    stage = changed(cdk_json_stages()["dev"], cors_origins="https://staging.example.com", max_receive_count=7)

    template = synth(stage)

    template.has_resource_properties(
        "AWS::ApiGatewayV2::Api",
        {"ProtocolType": "HTTP", "CorsConfiguration": {"AllowOrigins": ["https://staging.example.com"]}},
    )
    template.has_resource_properties("AWS::SQS::Queue", {"RedrivePolicy": {"maxReceiveCount": 7}})
    has_environment(template, "HttpApiFunction", {"CORS_ORIGINS": "https://staging.example.com"})
    for construct_id in ("ProcessorFunction", "DlqConsumerFunction"):
        has_environment(template, construct_id, {"MAX_RECEIVE_COUNT": "7"})


def test_changed_backoff_and_batch_sizes_reach_the_template():
    stage = changed(
        cdk_json_stages()["dev"], backoff_base_seconds=1, backoff_cap_seconds=30, processor_batch_size=5
    )

    template = synth(stage)

    has_environment(template, "ProcessorFunction", {"BACKOFF_BASE_SECONDS": "1", "BACKOFF_CAP_SECONDS": "30"})
    template.resource_properties_count_is(
        "AWS::Lambda::EventSourceMapping",
        {"FunctionName": ref(function_id(template, "ProcessorFunction")), "BatchSize": 5},
        1,
    )
