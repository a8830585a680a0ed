"""Monitoring: the alarm topic (encrypted, TLS only, email iff configured), every alarm's metric,
threshold and actions, and the dashboard, per stage."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aws_cdk.assertions import Capture, Match
from template_queries import (
    arn,
    cdk_json_stages,
    changed,
    function_id,
    function_ids,
    on_variants,
    only,
    ref,
    resources,
    synth,
)

from infra.monitoring import AUTH_METRICS, NOTIFICATION_METRICS, TASK_METRICS
from taskflow.metric_names import MetricName

STREAM_CONSUMERS = ("EnqueueFunction", "NotifierFunction")
TOKEN_AUTHORIZER = "WsAuthorizerFunction"
STAGES = ("dev", "prod")
ALARM = "AWS::CloudWatch::Alarm"
TOPIC = "AWS::SNS::Topic"
SUBSCRIPTION = "AWS::SNS::Subscription"
DASHBOARD = "AWS::CloudWatch::Dashboard"


def _topic(template) -> str:
    return only(resources(template, "AWS::SNS::Topic"))


def _alarms(template) -> dict[str, dict[str, Any]]:
    """Alarm name (its construct id without the Alarm suffix) -> properties."""
    found = {}
    for logical_id, alarm in resources(template, "AWS::CloudWatch::Alarm").items():
        assert logical_id.startswith("Monitoring"), logical_id
        name = logical_id.removeprefix("Monitoring")[: logical_id.rindex("Alarm") - len("Monitoring")]
        found[name] = alarm["Properties"]
    return found


def _dimensions(alarm: dict[str, Any]) -> dict[str, Any]:
    return {d["Name"]: d["Value"] for d in alarm["Dimensions"]}


def _math_metrics(alarm: dict[str, Any]) -> tuple[str, dict[str, dict[str, Any]]]:
    """(expression, metric id -> MetricStat) of a metric math alarm."""
    (expression,) = [m["Expression"] for m in alarm["Metrics"] if "Expression" in m]
    return expression, {m["Id"]: m["MetricStat"] for m in alarm["Metrics"] if "MetricStat" in m}


def _metric_stat(
    namespace: str, metric_name: str, dimensions: list[dict[str, Any]], stat: str, period: int
) -> dict[str, Any]:
    """A MetricStat of a metric math alarm, as the template declares it."""
    return {
        "Metric": {"Namespace": namespace, "MetricName": metric_name, "Dimensions": dimensions},
        "Stat": stat,
        "Period": period,
    }


def test_handlers_emit_the_metrics_the_dashboard_and_alarms_read():
    assert set(TASK_METRICS) | set(NOTIFICATION_METRICS) | set(AUTH_METRICS) == {
        name.value for name in MetricName
    }


@on_variants(*STAGES)
def test_stage_has_the_expected_alarms_all_notifying_the_topic_on_alarm_and_ok(variant):
    # Every function of the stage: on prod (`auth: jwt`) the WebSocket authorizer's too.
    template = variant.template
    functions = function_ids(template)
    topic = ref(_topic(template))

    alarms = _alarms(template)

    assert set(alarms) == {
        "DeadLetterQueueNotDrained",
        "TasksDeadLettered",
        "TaskQueueBacklog",
        "HttpApi5xxRate",
        *(f"{name}Errors" for name in functions),
        *(f"{name}Throttles" for name in functions),
        *(f"{name}IteratorAge" for name in STREAM_CONSUMERS),
    }
    template.all_resources_properties(
        ALARM,
        {
            "AlarmActions": [topic],
            "OKActions": [topic],
            "ComparisonOperator": "GreaterThanThreshold",
            "TreatMissingData": "notBreaching",
            "AlarmDescription": Match.string_like_regexp(r"docs/operations\.md#alarms"),
        },
    )


@on_variants(*STAGES)
def test_dlq_alarm_fires_when_messages_stay_in_the_dlq_for_five_minutes(variant):
    template = variant.template
    ids = variant.ids

    alarm = _alarms(template)["DeadLetterQueueNotDrained"]
    expression, metrics = _math_metrics(alarm)

    dlq = [{"Name": "QueueName", "Value": arn(ids.dlq, "QueueName")}]
    assert expression == "visible + inFlight"
    assert metrics == {
        "visible": _metric_stat("AWS/SQS", "ApproximateNumberOfMessagesVisible", dlq, "Maximum", 60),
        "inFlight": _metric_stat("AWS/SQS", "ApproximateNumberOfMessagesNotVisible", dlq, "Maximum", 60),
    }
    assert alarm["Threshold"] == 0
    assert alarm["EvaluationPeriods"] == alarm["DatapointsToAlarm"] == 5


@on_variants(*STAGES)
def test_dead_lettered_tasks_alarm_reads_the_handlers_metric_of_this_stage(variant):
    template = variant.template
    stage = variant.stage

    alarm = _alarms(template)["TasksDeadLettered"]

    assert (alarm["Namespace"], alarm["MetricName"]) == ("TaskBackend", "TaskDeadLettered")
    assert _dimensions(alarm) == {"service": "taskflow", "stage": variant.stage.name}
    assert (alarm["Statistic"], alarm["Period"]) == ("Sum", 300)
    assert alarm["Threshold"] == stage.dead_letter_alarm_threshold


@pytest.mark.parametrize(("variant", "threshold"), [("dev", 300), ("prod", 600)], indirect=["variant"])
def test_queue_backlog_alarm_watches_the_oldest_message_age(variant, threshold):
    template = variant.template
    ids = variant.ids

    alarm = _alarms(template)["TaskQueueBacklog"]

    assert (alarm["Namespace"], alarm["MetricName"]) == ("AWS/SQS", "ApproximateAgeOfOldestMessage")
    assert _dimensions(alarm) == {"QueueName": arn(ids.queue, "QueueName")}
    assert (alarm["Statistic"], alarm["Period"]) == ("Maximum", 60)
    assert alarm["Threshold"] == threshold


@on_variants(*STAGES)
@pytest.mark.parametrize("metric_name", ["Errors", "Throttles"])
def test_every_function_alarms_on_any_error_and_any_throttle(variant, metric_name):
    template = variant.template
    alarms = _alarms(template)

    for construct_id in function_ids(template):
        if (construct_id, metric_name) == (TOKEN_AUTHORIZER, "Errors"):
            continue  # refused tokens are not failures: see the test below
        alarm = alarms[f"{construct_id}{metric_name}"]
        assert (alarm["Namespace"], alarm["MetricName"]) == ("AWS/Lambda", metric_name)
        assert _dimensions(alarm) == {"FunctionName": ref(function_id(template, construct_id))}
        assert (alarm["Statistic"], alarm["Period"]) == ("Sum", 60)
        assert alarm["Threshold"] == 0


@on_variants("prod")
def test_token_authorizer_alarms_on_errors_other_than_refused_tokens(variant):
    # Given prod (`auth: jwt`): a refused token fails the authorizer's invocation on purpose (401)
    alarm = _alarms(variant.template)[f"{TOKEN_AUTHORIZER}Errors"]

    # Then its Errors alarm subtracts the refusals the handler counts, and fires on anything left
    expression, metrics = _math_metrics(alarm)
    assert expression == "FILL(errors, 0) - FILL(refused, 0)"
    assert metrics["errors"]["Metric"]["MetricName"] == "Errors"
    assert _dimensions(metrics["errors"]["Metric"]) == {
        "FunctionName": ref(function_id(variant.template, TOKEN_AUTHORIZER))
    }
    assert (metrics["refused"]["Metric"]["Namespace"], metrics["refused"]["Metric"]["MetricName"]) == (
        "TaskBackend",
        MetricName.TOKENS_REJECTED,
    )
    assert _dimensions(metrics["refused"]["Metric"]) == {"service": "taskflow", "stage": "prod"}
    assert {stat["Stat"] for stat in metrics.values()} == {"Sum"}
    assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (0, "GreaterThanThreshold")


@on_variants(*STAGES)
@pytest.mark.parametrize("construct_id", STREAM_CONSUMERS)
def test_stream_consumers_alarm_when_they_fall_behind_the_table(variant, construct_id):
    template = variant.template
    stage = variant.stage

    alarm = _alarms(template)[f"{construct_id}IteratorAge"]

    assert (alarm["Namespace"], alarm["MetricName"]) == ("AWS/Lambda", "IteratorAge")
    assert _dimensions(alarm) == {"FunctionName": ref(function_id(template, construct_id))}
    assert alarm["Statistic"] == "Maximum"
    assert alarm["Threshold"] == stage.stream_age_alarm_seconds * 1000  # milliseconds
    # Stream records expire after 24 h: the alarm must leave time to act.
    assert alarm["Threshold"] <= 12 * 3600 * 1000


@on_variants(*STAGES)
def test_http_5xx_alarm_is_a_share_of_this_apis_requests(variant):
    template = variant.template
    ids = variant.ids
    stage = variant.stage

    alarm = _alarms(template)["HttpApi5xxRate"]
    expression, metrics = _math_metrics(alarm)

    api = [{"Name": "ApiId", "Value": ref(ids.http_api)}]
    assert expression == "100 * FILL(errors, 0) / requests"
    assert metrics == {
        "errors": _metric_stat("AWS/ApiGateway", "5xx", api, "Sum", 300),
        "requests": _metric_stat("AWS/ApiGateway", "Count", api, "Sum", 300),
    }
    assert alarm["Threshold"] == stage.http_5xx_alarm_percent


def test_changed_alarm_thresholds_reach_the_template():
    template = synth(
        changed(
            cdk_json_stages()["dev"],
            queue_age_alarm_seconds=900,
            stream_age_alarm_seconds=120,
            http_5xx_alarm_percent=5,
            dead_letter_alarm_threshold=3,
        )
    )

    alarms = _alarms(template)

    assert alarms["TaskQueueBacklog"]["Threshold"] == 900
    assert alarms["EnqueueFunctionIteratorAge"]["Threshold"] == 120_000
    assert alarms["HttpApi5xxRate"]["Threshold"] == 5
    assert alarms["TasksDeadLettered"]["Threshold"] == 3


@on_variants(*STAGES)
def test_alarm_topic_is_encrypted_with_a_rotated_key_cloudwatch_may_use(variant):
    template = variant.template
    key = Capture()
    template.has_resource_properties(TOPIC, {"KmsMasterKeyId": {"Fn::GetAtt": [key, "Arn"]}})

    rotated_for_cloudwatch = template.find_resources(
        "AWS::KMS::Key",
        {
            "Properties": {
                "EnableKeyRotation": True,
                # alias/aws/sns would not do: CloudWatch alarms cannot use the AWS managed key.
                "KeyPolicy": {
                    "Statement": Match.array_with(
                        [
                            Match.object_equals(
                                {
                                    "Action": ["kms:Decrypt", "kms:GenerateDataKey*"],
                                    "Effect": "Allow",
                                    "Principal": {"Service": "cloudwatch.amazonaws.com"},
                                    "Resource": "*",
                                    "Sid": "AllowCloudWatchAlarmsToUseTheKey",
                                }
                            )
                        ]
                    )
                },
            }
        },
    )

    assert key.as_string() in rotated_for_cloudwatch


@on_variants(*STAGES)
def test_alarm_topic_refuses_plain_http_and_admits_only_this_accounts_alarms(variant):
    template = variant.template
    topic = ref(_topic(template))
    source = Capture()

    template.resource_count_is("AWS::SNS::TopicPolicy", 1)
    template.has_resource_properties(
        "AWS::SNS::TopicPolicy",
        {
            "Topics": [topic],
            "PolicyDocument": {
                "Statement": [
                    {
                        "Effect": "Deny",
                        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                        "Principal": "*",
                        "Resource": topic,
                    },
                    {
                        "Effect": "Allow",
                        "Principal": {"Service": "cloudwatch.amazonaws.com"},
                        "Action": "sns:Publish",
                        "Resource": topic,
                        "Condition": {"ArnLike": {"aws:SourceArn": {"Fn::Join": ["", source]}}},
                    },
                ]
            },
        },
    )
    assert source.as_array()[-4:] == [{"Ref": "AWS::Region"}, ":", {"Ref": "AWS::AccountId"}, ":alarm:*"]


@on_variants(*STAGES)
def test_no_email_subscription_unless_the_stage_names_an_address(variant):
    assert variant.stage.alarm_email is None
    variant.template.resource_count_is(SUBSCRIPTION, 0)


@on_variants("prod_with_alarm_email")
def test_configured_alarm_email_subscribes_to_the_topic(variant):
    template = variant.template

    template.resource_count_is(SUBSCRIPTION, 1)
    template.has_resource_properties(
        SUBSCRIPTION,
        Match.object_equals(
            {"Protocol": "email", "Endpoint": variant.stage.alarm_email, "TopicArn": ref(_topic(template))}
        ),
    )
    assert variant.stage.alarm_email == "ops@example.com"


def _dashboard_body(template) -> str:
    """The dashboard body is an Fn::Join of literal JSON and references: stringify it to search."""
    (dashboard,) = resources(template, DASHBOARD).values()
    return json.dumps(dashboard["Properties"]["DashboardBody"])


@on_variants(*STAGES)
def test_dashboard_shows_task_metrics_of_this_stage(variant):
    body = _dashboard_body(variant.template)
    authenticated = variant.stage.auth == "jwt"

    for metric in (*TASK_METRICS, *NOTIFICATION_METRICS, *AUTH_METRICS):
        shown = (
            f'[\\"TaskBackend\\",\\"{metric}\\",\\"service\\",\\"taskflow\\",\\"stage\\",\\"{variant.stage.name}\\"'
            in body
        )
        # refused tokens exist only where there is an authorizer (prod: `auth: jwt`)
        assert shown == (authenticated or metric not in AUTH_METRICS), metric


@on_variants(*STAGES)
def test_dashboard_shows_queues_functions_and_http_api(variant):
    template = variant.template
    ids = variant.ids
    body = _dashboard_body(template)

    for metric in (
        "ApproximateNumberOfMessagesVisible",
        "ApproximateNumberOfMessagesNotVisible",
        "ApproximateAgeOfOldestMessage",
        "Duration",
        "Errors",
        "Throttles",
        "IteratorAge",
        "Latency",
        "IntegrationLatency",
        "4xx",
        "5xx",
        "Count",
    ):
        assert f'\\"{metric}\\"' in body, metric
    for queue in (ids.queue, ids.dlq):
        assert json.dumps(arn(queue, "QueueName")) in body
    for construct_id, fn in function_ids(template).items():
        assert json.dumps(ref(fn)) in body, construct_id
    assert json.dumps(ref(ids.http_api)) in body
    assert '\\"alarms\\"' in body  # the alarm status widget


@on_variants(*STAGES)
def test_dashboard_is_named_after_the_stack_and_region(variant):
    variant.template.resource_count_is(DASHBOARD, 1)
    variant.template.has_resource_properties(
        DASHBOARD,
        {"DashboardName": {"Fn::Join": ["", [f"{variant.stack.stack_name}-", {"Ref": "AWS::Region"}]]}},
    )
