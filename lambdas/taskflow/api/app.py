"""The HTTP API routes (payload v2) over TaskService.

POST /tasks                   submit (idempotent on taskId)          202 + Location
GET  /tasks                   newest first, ?limit ?status ?cursor   200 + Link rel="next"
GET  /tasks/{taskId}          one task                               200 / 404
POST /tasks/{taskId}/retry    re-run a task in error                 202 / 404 / 409
"""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus
from typing import Annotated, Any, Final

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, CORSConfig, Response
from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.utilities.typing import LambdaContext

from taskflow.api.errors import json_response, register_error_handlers
from taskflow.api.pagination import MAX_CURSOR_LENGTH, decode_cursor, encode_cursor, next_link
from taskflow.api.request_body import read_model
from taskflow.domain.task import TaskStatus, TaskSubmission
from taskflow.services.task_service import TaskService
from taskflow.settings import HttpApiSettings

DEFAULT_PAGE_SIZE: Final = 100
MAX_PAGE_SIZE: Final = 500
EXPOSED_HEADERS: Final = ["Location", "Link"]

# Path regex -> methods, for telling 405 from 404 (keep in step with the routes below).
ROUTES: Final[Mapping[str, frozenset[str]]] = {
    r"/tasks": frozenset({"GET", "POST"}),
    r"/tasks/[^/]+": frozenset({"GET"}),
    r"/tasks/[^/]+/retry": frozenset({"POST"}),
}


def cors_config(settings: HttpApiSettings) -> CORSConfig:
    """Allowed origins and headers from the stage config (the same values API Gateway's
    preflight uses). Powertools only sends Access-Control-Allow-Origin for a listed origin."""
    first, *rest = settings.cors_origins
    return CORSConfig(
        allow_origin=first,
        extra_origins=rest,
        allow_headers=list(settings.cors_headers),
        expose_headers=EXPOSED_HEADERS,
    )


def create_app(settings: HttpApiSettings, service: TaskService) -> APIGatewayHttpResolver:
    app = APIGatewayHttpResolver(cors=cors_config(settings), enable_validation=True)

    @app.post("/tasks")
    def submit_task() -> Response[str]:
        submission = read_model(app.current_event, TaskSubmission)
        submitted = service.submit(submission)
        task = submitted.task
        return json_response(HTTPStatus.ACCEPTED, task.to_public(), {"Location": f"/tasks/{task.task_id}"})

    @app.get("/tasks")
    def list_tasks(
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = DEFAULT_PAGE_SIZE,
        status: Annotated[TaskStatus | None, Query()] = None,
        cursor: Annotated[str | None, Query(max_length=MAX_CURSOR_LENGTH)] = None,
    ) -> Response[str]:
        start_key = decode_cursor(cursor) if cursor is not None else None
        listing = service.list(limit=limit, status=status, start_key=start_key)
        headers: dict[str, str] = {}
        if listing.next_key is not None:
            headers["Link"] = next_link(
                "/tasks",
                limit=limit,
                cursor=encode_cursor(listing.next_key),
                status=status.value if status else None,
            )
        return json_response(HTTPStatus.OK, [task.to_public() for task in listing.tasks], headers)

    @app.get("/tasks/<task_id>")
    def get_task(task_id: str) -> Response[str]:
        return json_response(HTTPStatus.OK, service.get(task_id).to_public())

    @app.post("/tasks/<task_id>/retry")
    def retry_task(task_id: str) -> Response[str]:
        task = service.retry(task_id)
        return json_response(HTTPStatus.ACCEPTED, task.to_public(), {"Location": f"/tasks/{task.task_id}"})

    register_error_handlers(app, ROUTES)
    return app


def resolve(app: APIGatewayHttpResolver, event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Resolve one request; every response varies by Origin (the CORS headers depend on it)."""
    response = app.resolve(event, context)
    headers = response.setdefault("headers", {})
    headers["Vary"] = "Origin"
    return response
