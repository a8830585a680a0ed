"""EnqueueFunction: TaskTable stream (INSERT, MODIFY error->pending) -> TaskQueue."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from taskflow.clients.queue_client import QueueClient
from taskflow.lazy import Lazy
from taskflow.observability import logger, metrics
from taskflow.services.stream_changes import batch_item_failures, stream_changes
from taskflow.services.task_enqueuer import TaskEnqueuer
from taskflow.settings import EnqueueSettings, load_settings

enqueuer: Lazy[TaskEnqueuer] = Lazy(
    lambda: TaskEnqueuer(QueueClient(load_settings(EnqueueSettings).task_queue_url))
)


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    # One SendMessageBatch per 10 records (not one call per record), so this handler builds
    # the partial batch response itself instead of using Powertools' BatchProcessor.
    return batch_item_failures(enqueuer.get().enqueue(stream_changes(event)))
