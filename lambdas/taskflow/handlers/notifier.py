"""NotifierFunction: TaskTable stream (all changes) -> WebSocket frames via @connections."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from taskflow.auth_contract import AUTH_JWT
from taskflow.clients.connections_client import ConnectionsClient
from taskflow.deadline import seconds_left
from taskflow.lazy import Lazy
from taskflow.observability import logger, metrics
from taskflow.repositories.connection_repository import ConnectionRepository
from taskflow.services.stream_changes import batch_item_failures, stream_changes
from taskflow.services.task_notifier import TaskNotifier
from taskflow.settings import NotifierSettings, load_settings


def _build() -> TaskNotifier:
    settings = load_settings(NotifierSettings)
    return TaskNotifier(
        ConnectionRepository(settings.connection_table_name),
        ConnectionsClient(settings.websocket_callback_url),
        # auth: jwt -> each change goes to its owner's connections only.
        owner_scoped=settings.auth_mode == AUTH_JWT,
    )


notifier: Lazy[TaskNotifier] = Lazy(_build)


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    # The connection lists are shared by the whole batch, so the batch is handled as one unit
    # (see TaskNotifier) and the partial batch response is built here.
    # Posting stops before the timeout: what is left is redelivered, not the whole batch again.
    return batch_item_failures(notifier.get().notify(stream_changes(event), seconds_left(context)))
