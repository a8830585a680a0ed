"""Monitoring: one alarm topic, the alarms of a stage and its dashboard.

Every alarm notifies the topic when it fires and when it recovers; the topic emails the stage's
`alarm_email` when one is configured. docs/operations.md says what to do for each alarm (the
alarm descriptions point there). Missing data never breaches: a quiet stage is a healthy one.
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import ArnFormat, Aws, Duration, RemovalPolicy, Stack
from aws_cdk import aws_apigatewayv2 as apigwv2
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct

from infra.config import StageConfig
from infra.lambda_function import METRICS_NAMESPACE, SERVICE_NAME, TaskFunction
from infra.task_queue import TaskQueue
from taskflow.metric_names import MetricName

# The handlers' Powertools EMF metrics (names shared through taskflow.metric_names), in namespace
# TaskBackend with the dimensions service=taskflow (Powertools' own) and stage=<stage> (a default
# dimension the handlers add when they load their settings).
TASK_METRICS = (
    MetricName.TASK_SUBMITTED,
    MetricName.TASK_SUCCEEDED,
    MetricName.TASK_FAILED,
    MetricName.TASK_RETRIED,
    MetricName.TASK_DEAD_LETTERED,
)
NOTIFICATION_METRICS = (MetricName.NOTIFICATIONS_SENT, MetricName.CONNECTIONS_GONE)
# Emitted on `auth: jwt` stages only, so only their dashboards show them.
AUTH_METRICS = (MetricName.TOKENS_REJECTED, MetricName.CONNECTIONS_EXPIRED)
SERVICE_DIMENSION = "service"
STAGE_DIMENSION = "stage"

ALARM_PERIOD = Duration.minutes(1)
RATE_PERIOD = Duration.minutes(5)  # windows of the rate-like alarms (HTTP 5xx share, dead letters)
# The DLQ consumer deletes a dead-lettered message within seconds; messages that stay this long mean
# it is not draining (failing, throttled or disabled) and their tasks are still shown as pending.
DLQ_UNDRAINED_MINUTES = 5
RUNBOOK = "docs/operations.md#alarms"
CLOUDWATCH = iam.ServicePrincipal("cloudwatch.amazonaws.com")


class Monitoring(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        stage: StageConfig,
        functions: Sequence[TaskFunction],
        stream_consumers: Sequence[TaskFunction],
        task_queue: TaskQueue,
        http_api: apigwv2.HttpApi,
        token_authorizer: TaskFunction | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        self.stage = stage
        stack = Stack.of(self)
        self.topic = self._alarm_topic(stack)
        self._topic_action = actions.SnsAction(self.topic)
        self.alarms: dict[str, cloudwatch.Alarm] = {}

        queue, dlq = task_queue.queue, task_queue.dead_letter_queue
        dlq_messages = cloudwatch.MathExpression(
            label="DLQ messages (visible + in flight)",
            expression="visible + inFlight",
            using_metrics={
                "visible": dlq.metric_approximate_number_of_messages_visible(
                    period=ALARM_PERIOD, statistic="Maximum"
                ),
                "inFlight": dlq.metric_approximate_number_of_messages_not_visible(
                    period=ALARM_PERIOD, statistic="Maximum"
                ),
            },
            period=ALARM_PERIOD,
        )
        self._alarm(
            "DeadLetterQueueNotDrained",
            dlq_messages,
            threshold=0,
            evaluation_periods=DLQ_UNDRAINED_MINUTES,
            description=(
                f"The DLQ has held messages for {DLQ_UNDRAINED_MINUTES} minutes: the DLQ consumer is not "
                "marking dead-lettered tasks as error (they still show pending)."
            ),
        )
        self._alarm(
            "TasksDeadLettered",
            self.task_metric(MetricName.TASK_DEAD_LETTERED, period=RATE_PERIOD),
            threshold=stage.dead_letter_alarm_threshold,
            description=(
                f"{_more_than(stage.dead_letter_alarm_threshold, 'task')} exhausted the retry budget "
                f"({stage.max_receive_count} attempts) within 5 minutes and went to error."
            ),
        )
        self._alarm(
            "TaskQueueBacklog",
            queue.metric_approximate_age_of_oldest_message(period=ALARM_PERIOD, statistic="Maximum"),
            threshold=stage.queue_age_alarm_seconds,
            description=(
                f"The oldest task queue message is older than {stage.queue_age_alarm_seconds} s: "
                "processing is stuck or cannot keep up."
            ),
        )
        for function in functions:
            name = function.node.id
            errors: cloudwatch.IMetric = function.function.metric_errors(period=ALARM_PERIOD, statistic="Sum")
            description = f"{name} raised errors or timed out (a whole invocation failed)."
            if function is token_authorizer:
                # A refused token fails the invocation on purpose (API Gateway then answers 401):
                # anyone can send bad tokens, so only the other failures page someone.
                errors = cloudwatch.MathExpression(
                    label=f"{name} errors other than refused tokens",
                    expression="FILL(errors, 0) - FILL(refused, 0)",
                    using_metrics={
                        "errors": errors,
                        "refused": self.task_metric(MetricName.TOKENS_REJECTED),
                    },
                    period=ALARM_PERIOD,
                )
                description = (
                    f"{name} failed other than by refusing a token (refusals are 401s, counted as "
                    f"{MetricName.TOKENS_REJECTED}): the issuer's keys are unreachable, or it crashed or "
                    "timed out. New WebSocket connections get 500."
                )
            self._alarm(f"{name}Errors", errors, threshold=0, description=description)
            self._alarm(
                f"{name}Throttles",
                function.function.metric_throttles(period=ALARM_PERIOD, statistic="Sum"),
                threshold=0,
                description=f"{name} was throttled (account or reserved concurrency exhausted).",
            )
        for consumer in stream_consumers:
            name = consumer.node.id
            self._alarm(
                f"{name}IteratorAge",
                consumer.function.metric("IteratorAge", period=ALARM_PERIOD, statistic="Maximum"),
                threshold=stage.stream_age_alarm_seconds * 1000,  # IteratorAge is in milliseconds
                description=(
                    f"{name} lags more than {stage.stream_age_alarm_seconds} s behind the task table "
                    "stream; records older than 24 h are lost."
                ),
            )
        http_5xx_percent = cloudwatch.MathExpression(
            label="HTTP 5xx (% of requests)",
            expression="100 * FILL(errors, 0) / requests",
            using_metrics={
                "errors": http_api.metric_server_error(period=RATE_PERIOD, statistic="Sum"),
                "requests": http_api.metric_count(period=RATE_PERIOD, statistic="Sum"),
            },
            period=RATE_PERIOD,
        )
        self._alarm(
            "HttpApi5xxRate",
            http_5xx_percent,
            threshold=stage.http_5xx_alarm_percent,
            description=f"More than {stage.http_5xx_alarm_percent} % of HTTP API requests got a 5xx.",
        )

        self.dashboard = cloudwatch.Dashboard(
            self,
            "Dashboard",
            # Dashboards are global to the account: the region keeps two deployments of a stage apart.
            dashboard_name=f"{stack.stack_name}-{Aws.REGION}",
            default_interval=Duration.hours(3),
            widgets=self._widgets(functions, stream_consumers, task_queue, http_api, http_5xx_percent),
        )

    def task_metric(self, name: str, *, period: Duration = ALARM_PERIOD) -> cloudwatch.Metric:
        """One of the handlers' EMF count metrics, for this stage."""
        return cloudwatch.Metric(
            namespace=METRICS_NAMESPACE,
            metric_name=name,
            dimensions_map={SERVICE_DIMENSION: SERVICE_NAME, STAGE_DIMENSION: self.stage.name},
            statistic="Sum",
            period=period,
        )

    def _alarm_topic(self, stack: Stack) -> sns.Topic:
        # A customer managed key, not alias/aws/sns: CloudWatch alarms cannot publish to a topic
        # encrypted with the AWS managed key (its key policy does not let cloudwatch.amazonaws.com use
        # it, and it cannot be edited). The key only protects notifications in flight, so it goes
        # with the stack.
        key = kms.Key(
            self,
            "AlarmTopicKey",
            description=f"{stack.stack_name} alarm topic",
            enable_key_rotation=True,
            removal_policy=RemovalPolicy.DESTROY,
            pending_window=Duration.days(7),
        )
        key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowCloudWatchAlarmsToUseTheKey",
                principals=[CLOUDWATCH],
                actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                resources=["*"],  # in a key policy: this key
            )
        )
        topic = sns.Topic(
            self,
            "AlarmTopic",
            display_name=f"{stack.stack_name} alarms",
            master_key=key,
            enforce_ssl=True,
        )
        # The topic policy replaces SNS's default one: let this account's alarms publish, nobody else.
        topic.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowThisAccountsAlarmsToPublish",
                principals=[CLOUDWATCH],
                actions=["sns:Publish"],
                resources=[topic.topic_arn],
                conditions={
                    "ArnLike": {
                        "aws:SourceArn": stack.format_arn(
                            service="cloudwatch",
                            resource="alarm",
                            resource_name="*",
                            arn_format=ArnFormat.COLON_RESOURCE_NAME,
                        )
                    }
                },
            )
        )
        if self.stage.alarm_email:
            topic.add_subscription(subscriptions.EmailSubscription(self.stage.alarm_email))
        return topic

    def _alarm(
        self,
        construct_id: str,
        metric: cloudwatch.IMetric,
        *,
        threshold: float,
        description: str,
        evaluation_periods: int = 1,
    ) -> cloudwatch.Alarm:
        alarm = cloudwatch.Alarm(
            self,
            f"{construct_id}Alarm",
            metric=metric,
            threshold=threshold,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            evaluation_periods=evaluation_periods,
            datapoints_to_alarm=evaluation_periods,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            alarm_description=f"{description} Stage {self.stage.name}. What to do: {RUNBOOK}",
        )
        alarm.add_alarm_action(self._topic_action)
        alarm.add_ok_action(self._topic_action)
        self.alarms[construct_id] = alarm
        return alarm

    def _widgets(
        self,
        functions: Sequence[TaskFunction],
        stream_consumers: Sequence[TaskFunction],
        task_queue: TaskQueue,
        http_api: apigwv2.HttpApi,
        http_5xx_percent: cloudwatch.IMetric,
    ) -> list[list[cloudwatch.IWidget]]:
        queue, dlq = task_queue.queue, task_queue.dead_letter_queue
        depth = {"period": ALARM_PERIOD, "statistic": "Maximum"}

        def per_function(metric_name: str, statistic: str) -> list[cloudwatch.IMetric]:
            return [
                f.function.metric(metric_name, period=ALARM_PERIOD, statistic=statistic, label=f.node.id)
                for f in functions
            ]

        return [
            [
                cloudwatch.AlarmStatusWidget(
                    title="Alarms", alarms=list(self.alarms.values()), width=24, height=4
                )
            ],
            [
                cloudwatch.GraphWidget(
                    title="Tasks (count per minute)",
                    left=[self.task_metric(name) for name in TASK_METRICS],
                    width=12,
                ),
                cloudwatch.GraphWidget(
                    title="WebSocket notifications (count per minute)",
                    left=[
                        self.task_metric(name)
                        for name in NOTIFICATION_METRICS + (AUTH_METRICS if self.stage.uses_jwt else ())
                    ],
                    width=12,
                ),
            ],
            [
                cloudwatch.GraphWidget(
                    title="Queue depth (messages)",
                    left=[
                        queue.metric_approximate_number_of_messages_visible(label="queue visible", **depth),
                        queue.metric_approximate_number_of_messages_not_visible(
                            label="queue in flight / backing off", **depth
                        ),
                        dlq.metric_approximate_number_of_messages_visible(label="DLQ visible", **depth),
                        dlq.metric_approximate_number_of_messages_not_visible(label="DLQ in flight", **depth),
                    ],
                    width=12,
                ),
                cloudwatch.GraphWidget(
                    title="Oldest task queue message (s) and stream lag (ms)",
                    left=[queue.metric_approximate_age_of_oldest_message(label="oldest message", **depth)],
                    left_annotations=[
                        cloudwatch.HorizontalAnnotation(
                            value=self.stage.queue_age_alarm_seconds, label="alarm"
                        )
                    ],
                    right=[
                        c.function.metric(
                            "IteratorAge", period=ALARM_PERIOD, statistic="Maximum", label=c.node.id
                        )
                        for c in stream_consumers
                    ],
                    width=12,
                ),
            ],
            [
                cloudwatch.GraphWidget(
                    title="Function duration p99 (ms)", left=per_function("Duration", "p99"), width=8
                ),
                cloudwatch.GraphWidget(
                    title="Function errors (count)", left=per_function("Errors", "Sum"), width=8
                ),
                cloudwatch.GraphWidget(
                    title="Function throttles (count)", left=per_function("Throttles", "Sum"), width=8
                ),
            ],
            [
                cloudwatch.GraphWidget(
                    title="HTTP API latency (ms)",
                    left=[
                        http_api.metric_latency(period=ALARM_PERIOD, statistic="p50", label="latency p50"),
                        http_api.metric_latency(period=ALARM_PERIOD, statistic="p99", label="latency p99"),
                        http_api.metric_integration_latency(
                            period=ALARM_PERIOD, statistic="p99", label="integration p99"
                        ),
                    ],
                    width=12,
                ),
                cloudwatch.GraphWidget(
                    title="HTTP API responses (count per minute) and 5xx share (%)",
                    left=[
                        http_api.metric_count(period=ALARM_PERIOD, statistic="Sum", label="requests"),
                        http_api.metric_client_error(period=ALARM_PERIOD, statistic="Sum", label="4xx"),
                        http_api.metric_server_error(period=ALARM_PERIOD, statistic="Sum", label="5xx"),
                    ],
                    right=[http_5xx_percent],
                    width=12,
                ),
            ],
        ]


def _more_than(threshold: int, noun: str) -> str:
    return f"A {noun}" if threshold == 0 else f"More than {threshold} {noun}s"
