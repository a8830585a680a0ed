"""TaskPipeline: stream -> EnqueueFunction -> TaskQueue -> ProcessorFunction; TaskDLQ -> DlqConsumerFunction.

Each function's role gets only what its handler calls (plus what its event source mapping polls).
"""

from __future__ import annotations

from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as sources
from constructs import Construct

from infra.data_key import allow_send, allow_table
from infra.lambda_function import (
    LambdaDefaults,
    TaskFunction,
    flag,
    only_event_source_mapping,
    stream_source,
)
from infra.task_queue import TaskQueue
from infra.task_table import task_table_environment
from taskflow import env_vars

# Task statuses as stored in the table (SPEC data model); used by the enqueue filter.
PENDING = "pending"
ERROR = "error"

# The enqueue mapping never discards a record: a task the table accepted (202) must reach the queue
# even if SQS is down for hours. -1 = retry until the record leaves the stream (24 h retention); the
# EnqueueFunction iterator-age alarm (infra/monitoring.py) fires long before that. These are not stage
# settings on purpose: no stage may trade accepted tasks for a shorter outage.
ENQUEUE_RETRY_ATTEMPTS = -1
ENQUEUE_MAX_RECORD_AGE_SECONDS = -1

# Stream records the enqueue function sees: a new task, and a retry (POST /tasks/{id}/retry moves
# error -> pending). Lambda drops everything else before invoking, so processing transitions
# (pending -> success/error) never enqueue a second message.
ENQUEUE_FILTERS = [
    lambda_.FilterCriteria.filter({"eventName": lambda_.FilterRule.is_equal("INSERT")}),
    lambda_.FilterCriteria.filter(
        {
            "eventName": lambda_.FilterRule.is_equal("MODIFY"),
            "dynamodb": {
                "NewImage": {"status": {"S": lambda_.FilterRule.is_equal(PENDING)}},
                "OldImage": {"status": {"S": lambda_.FilterRule.is_equal(ERROR)}},
            },
        }
    ),
]


class TaskPipeline(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        defaults: LambdaDefaults,
        task_table: dynamodb.Table,
        task_queue: TaskQueue,
    ) -> None:
        super().__init__(scope, construct_id)
        stage = defaults.stage
        queue, dlq = task_queue.queue, task_queue.dead_letter_queue

        self.enqueue = TaskFunction(
            self,
            "EnqueueFunction",
            defaults=defaults,
            handler="taskflow.handlers.enqueue.handler",
            timeout_seconds=stage.stream_timeout_seconds,
            environment={env_vars.TASK_QUEUE_URL: queue.queue_url},
        )
        self.enqueue.function.add_event_source(
            stream_source(
                task_table,
                stage,
                batch_size=stage.enqueue_batch_size,
                retry_attempts=ENQUEUE_RETRY_ATTEMPTS,
                filters=ENQUEUE_FILTERS,
            )
        )
        # CDK's max_record_age only takes 60 s..7 days; -1 (unlimited) is set on the L1 mapping.
        enqueue_mapping = only_event_source_mapping(self.enqueue.function)
        enqueue_mapping.add_property_override("MaximumRecordAgeInSeconds", ENQUEUE_MAX_RECORD_AGE_SECONDS)
        allow_send(self.enqueue.role, queue)

        self.processor = TaskFunction(
            self,
            "ProcessorFunction",
            defaults=defaults,
            handler="taskflow.handlers.processor.handler",
            timeout_seconds=stage.processor_timeout_seconds,
            reserved_concurrency=stage.processor_reserved_concurrency,
            environment={
                **task_table_environment(task_table, stage),
                env_vars.TASK_QUEUE_URL: queue.queue_url,
                env_vars.FAILURE_RATE: str(stage.failure_rate),
                env_vars.FAILURE_SEED: "",
                env_vars.ALLOW_FAULT_INJECTION: flag(stage.allow_fault_injection),
                env_vars.MAX_RECEIVE_COUNT: str(stage.max_receive_count),
                env_vars.BACKOFF_BASE_SECONDS: str(stage.backoff_base_seconds),
                env_vars.BACKOFF_CAP_SECONDS: str(stage.backoff_cap_seconds),
            },
        )
        self.processor.function.add_event_source(
            sources.SqsEventSource(
                queue,
                batch_size=stage.processor_batch_size,
                report_batch_item_failures=True,
                # Caps the poller instead of reserved concurrency: throttled invocations would
                # otherwise return messages to the queue and burn receive attempts. StageConfig
                # rejects a reserved concurrency below this.
                max_concurrency=stage.processor_max_concurrency,
            )
        )
        allow_table(
            self.processor.role,
            task_table,
            ["dynamodb:GetItem", "dynamodb:UpdateItem"],
            [task_table.table_arn],
        )
        # The handler sets the backoff itself (the event source grant includes it too).
        self.processor.role.add_to_principal_policy(
            iam.PolicyStatement(actions=["sqs:ChangeMessageVisibility"], resources=[queue.queue_arn])
        )

        self.dlq_consumer = TaskFunction(
            self,
            "DlqConsumerFunction",
            defaults=defaults,
            handler="taskflow.handlers.dlq_consumer.handler",
            timeout_seconds=stage.processor_timeout_seconds,
            environment={
                **task_table_environment(task_table, stage),
                env_vars.MAX_RECEIVE_COUNT: str(stage.max_receive_count),
            },
        )
        self.dlq_consumer.function.add_event_source(
            sources.SqsEventSource(dlq, batch_size=stage.dlq_batch_size, report_batch_item_failures=True)
        )
        allow_table(self.dlq_consumer.role, task_table, ["dynamodb:UpdateItem"], [task_table.table_arn])
