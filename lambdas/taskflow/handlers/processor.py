"""ProcessorFunction: TaskQueue (SQS) -> TaskRunner, with partial batch responses."""

from __future__ import annotations

import math
import random
from typing import Any

# This function loads no pydantic (its Task is a plain dataclass). Were pydantic loaded before it,
# Powertools' batch utility would also import its parser models (+0.25x `import boto3` at cold start).
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from taskflow.clients.queue_client import QueueClient
from taskflow.domain import processing
from taskflow.lazy import Lazy
from taskflow.observability import logger, metrics
from taskflow.repositories.task_repository import TaskRepository
from taskflow.services.task_runner import BackoffPolicy, ReceivedMessage, TaskRunner
from taskflow.settings import ProcessorSettings, load_settings

# Without a usable context (never on Lambda), assume the longest possible invocation.
_MAX_INVOCATION_SECONDS = 900


def _build_runner() -> TaskRunner:
    settings = load_settings(ProcessorSettings)
    processing.configure(
        failure_rate=settings.failure_rate,
        seed=settings.failure_seed,
        allow_fault_injection=settings.allow_fault_injection,
    )
    return TaskRunner(
        TaskRepository(settings.task_table_name, list_shards=settings.task_list_shards),
        QueueClient(settings.task_queue_url),
        BackoffPolicy(
            max_receive_count=settings.max_receive_count,
            base_seconds=settings.backoff_base_seconds,
            cap_seconds=settings.backoff_cap_seconds,
        ),
        # Jitter follows FAILURE_SEED too, so a seeded stage replays the same delays.
        jitter_rng=random.Random(settings.failure_seed),
    )


runner: Lazy[TaskRunner] = Lazy(_build_runner)


def _invocation_seconds(context: LambdaContext | None) -> int:
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    return math.ceil(remaining() / 1000) if callable(remaining) else _MAX_INVOCATION_SECONDS


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    task_runner = runner.get()
    invocation_seconds = _invocation_seconds(context)

    def handle_record(record: SQSRecord) -> None:
        task_runner.handle(
            ReceivedMessage(
                message_id=record.message_id,
                receipt_handle=record.receipt_handle,
                body=record.body,
                receive_count=int(record.attributes.approximate_receive_count or 1),
            ),
            invocation_seconds,
        )

    processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
    return dict(process_partial_response(event, handle_record, processor, context))
