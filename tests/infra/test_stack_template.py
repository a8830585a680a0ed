"""The stack: outputs, tags, environment-agnostic, and stage values that reach the template."""

from __future__ import annotations

import aws_cdk as cdk
from template_queries import (
    changed,
    environment,
    function_id,
    only,
    properties,
    ref,
    resources,
    stack_ids,
    synth,
)

from infra.stack import TaskBackendStack, stack_name_for


def test_stack_name_carries_the_stage(dev_stage, prod_stage):
    assert stack_name_for(dev_stage) == "TaskBackend-dev"
    assert stack_name_for(prod_stage) == "TaskBackend-prod"


def test_outputs_publish_urls_and_resource_names(dev_template, dev_ids):
    outputs = dev_template.to_json()["Outputs"]

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
        "HttpApiUrl": url("https", dev_ids.http_api, "/"),
        "WebSocketUrl": url("wss", dev_ids.websocket_api, "/dev"),
        "TaskTableName": ref(dev_ids.task_table),
        "ConnectionTableName": ref(dev_ids.connection_table),
        "TaskQueueUrl": ref(dev_ids.queue),
        "TaskDlqUrl": ref(dev_ids.dlq),
        "AlarmTopicArn": ref(only(resources(dev_template, "AWS::SNS::Topic"))),
        "DashboardName": ref(only(resources(dev_template, "AWS::CloudWatch::Dashboard"))),
    }


def test_taggable_resources_carry_project_and_stage(prod_template):
    for resource_type in (
        "AWS::DynamoDB::Table",
        "AWS::SQS::Queue",
        "AWS::Lambda::Function",
        "AWS::IAM::Role",
        "AWS::SNS::Topic",
        "AWS::KMS::Key",
        "AWS::CloudWatch::Alarm",
    ):
        for resource in resources(prod_template, resource_type).values():
            tags = {tag["Key"]: tag["Value"] for tag in resource["Properties"]["Tags"]}
            assert tags == {"Project": "TaskBackend", "Stage": "prod"}
    for api in resources(prod_template, "AWS::ApiGatewayV2::Api").values():
        assert api["Properties"]["Tags"] == {"Project": "TaskBackend", "Stage": "prod"}
    (user_pool,) = resources(prod_template, "AWS::Cognito::UserPool").values()  # prod: auth jwt
    assert user_pool["Properties"]["UserPoolTags"] == {"Project": "TaskBackend", "Stage": "prod"}


def test_stack_is_environment_agnostic(dev_stage):
    stack = TaskBackendStack(cdk.App(), "Agnostic", stage=dev_stage)

    assert cdk.Token.is_unresolved(stack.account)
    assert cdk.Token.is_unresolved(stack.region)


def test_changed_cors_origin_and_retry_budget_reach_the_template(dev_stage):
    stage = changed(dev_stage, cors_origins="https://staging.example.com", max_receive_count=7)

    template = synth(stage)
    ids = stack_ids(template)

    assert properties(template, ids.http_api)["CorsConfiguration"]["AllowOrigins"] == [
        "https://staging.example.com"
    ]
    assert properties(template, ids.queue)["RedrivePolicy"]["maxReceiveCount"] == 7
    http_env = environment(template, function_id(template, "HttpApiFunction"))
    assert http_env["CORS_ORIGINS"] == "https://staging.example.com"
    for construct_id in ("ProcessorFunction", "DlqConsumerFunction"):
        assert environment(template, function_id(template, construct_id))["MAX_RECEIVE_COUNT"] == "7"


def test_changed_backoff_and_batch_sizes_reach_the_template(dev_stage):
    stage = changed(dev_stage, backoff_base_seconds=1, backoff_cap_seconds=30, processor_batch_size=5)

    template = synth(stage)

    processor = function_id(template, "ProcessorFunction")
    assert environment(template, processor)["BACKOFF_BASE_SECONDS"] == "1"
    assert environment(template, processor)["BACKOFF_CAP_SECONDS"] == "30"
    mapping = template.find_resources(
        "AWS::Lambda::EventSourceMapping", {"Properties": {"FunctionName": ref(processor)}}
    )
    assert [m["Properties"]["BatchSize"] for m in mapping.values()] == [5]
