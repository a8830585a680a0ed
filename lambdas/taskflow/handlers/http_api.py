"""HttpApiFunction: the HTTP API (payload v2), all routes (see taskflow.api.app)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from taskflow.api.app import create_app, resolve
from taskflow.auth_contract import AUTH_JWT
from taskflow.lazy import Lazy
from taskflow.observability import logger, metrics
from taskflow.repositories.task_repository import TaskRepository
from taskflow.services.task_service import TaskService
from taskflow.settings import HttpApiSettings, load_settings


def _build_service() -> TaskService:
    settings = load_settings(HttpApiSettings)
    return TaskService(
        TaskRepository(settings.task_table_name, list_shards=settings.task_list_shards),
        stage=settings.stage,
        allow_fault_injection=settings.allow_fault_injection,
        # auth: jwt -> every call is scoped to the caller (the token's sub).
        owner_scoped=settings.auth_mode == AUTH_JWT,
    )


service: Lazy[TaskService] = Lazy(_build_service)
app: Lazy[APIGatewayHttpResolver] = Lazy(lambda: create_app(load_settings(HttpApiSettings), service.get()))


@metrics.log_metrics
@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return resolve(app.get(), event, context)
