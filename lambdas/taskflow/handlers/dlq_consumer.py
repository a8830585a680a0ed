"""DlqConsumerFunction: TaskDLQ (SQS) -> tasks marked error, with partial batch responses."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from taskflow.lazy import Lazy
from taskflow.observability import logger, metrics
from taskflow.repositories.task_repository import TaskRepository
from taskflow.services.dead_letter_handler import DeadLetterHandler
from taskflow.settings import DlqConsumerSettings, load_settings


def _build() -> DeadLetterHandler:
    settings = load_settings(DlqConsumerSettings)
    return DeadLetterHandler(
        TaskRepository(settings.task_table_name, list_shards=settings.task_list_shards),
        settings.max_receive_count,
    )


dead_letters: Lazy[DeadLetterHandler] = Lazy(_build)


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    dead_letter_handler = dead_letters.get()

    def handle_record(record: SQSRecord) -> None:
        dead_letter_handler.handle(record.message_id, record.body)

    processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
    return dict(process_partial_response(event, handle_record, processor, context))
