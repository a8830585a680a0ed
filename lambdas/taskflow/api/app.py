"""The HTTP API routes (payload v2) over TaskService.

POST /tasks                   submit (idempotent on taskId)          202 + Location
GET  /tasks                   newest first, ?limit ?status ?cursor   200 + Link rel="next"
GET  /tasks/{taskId}          one task                               200 / 404
POST /tasks/{taskId}/retry    re-run a task in error                 202 / 404 / 409
GET  /openapi.json            this API's OpenAPI document            200

With `auth: jwt` (settings.auth_mode) every task route is scoped to the caller, the verified `sub`
of the request's token (taskflow.api.caller): 401 without one, and another owner's task is a 404
like an unknown id (TaskService). With `auth: none` nothing here looks at callers.

Each route declares every status it can answer (`responses=`) for the OpenAPI document
(taskflow.api.openapi), naming the body models of taskflow.api.response_bodies; the bodies
themselves are built by the routes and the error map.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from http import HTTPStatus
from typing import Annotated, Any, Final

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, CORSConfig, Response
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.middlewares import NextMiddleware
from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from aws_lambda_powertools.utilities.typing import LambdaContext

from taskflow.api import openapi
from taskflow.api.caller import verified_owner
from taskflow.api.errors import json_response, register_error_handlers
from taskflow.api.openapi import (
    LINK_HEADER,
    LOCATION_HEADER,
    RETRY_AFTER_HEADER,
    component,
    json_request_body,
    list_of,
)
from taskflow.api.pagination import (
    CURSOR_PATTERN,
    MAX_CURSOR_LENGTH,
    decode_cursor,
    encode_cursor,
    next_link,
)
from taskflow.api.request_body import JSON_MEDIA_TYPE, MAX_BODY_BYTES, read_model
from taskflow.auth_contract import AUTH_JWT
from taskflow.deadline import answer_before_timeout
from taskflow.domain.limits import TASK_ID_PATTERN
from taskflow.domain.status import TaskStatus
from taskflow.domain.submission import TaskSubmission
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
    r"/openapi\.json": frozenset({"GET"}),
}

# The pattern is documented, not validated: no task has an id outside it, so any other id is a 404
# (like an unknown one), not a 422.
TaskIdPath = Annotated[
    str,
    Path(
        alias="taskId",
        description="the task's id; any string outside this pattern is answered 404, like an unknown id",
        json_schema_extra={"pattern": TASK_ID_PATTERN},
    ),
]

# Answers more than one route gives.
THROTTLED: Final = openapi.json_response(
    "throttled by the API Gateway stage (rate/burst of the stage config)", component("ErrorBody")
)
UNAVAILABLE: Final = openapi.json_response(
    "DynamoDB is down or throttling; retry after Retry-After seconds",
    component("UnavailableBody"),
    RETRY_AFTER_HEADER,
)
TASK_ACCEPTED: Final = openapi.json_response("the task, as stored", component("TaskView"), LOCATION_HEADER)
TASK_NOT_FOUND: Final = openapi.json_response("no task with this id", component("NotFoundBody"))


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
    owner_scoped = settings.auth_mode == AUTH_JWT

    def caller() -> str | None:
        """The caller's owner id on jwt stages (401 without one), None on `auth: none` stages.
        Each task route asks first, before reading the body or the table. (Powertools validates
        the query and path parameters before a route runs: a bad `?limit=` is a 422 even then.)"""
        return verified_owner(app.current_event.raw_event) if owner_scoped else None

    @app.post(
        "/tasks",
        operation_id="submitTask",
        summary="Submit a task (idempotent on taskId)",
        description=(
            "Creates the task and queues it. The same body again (same taskId) returns the existing "
            "task unchanged, whatever its status; the same taskId with a different body is a 409. "
            "Fields the server owns (`status`, `retries`, anything unknown) are ignored."
        ),
        openapi_extensions={
            "requestBody": json_request_body(
                "TaskSubmission",
                f"JSON (Content-Type: application/json), at most {MAX_BODY_BYTES} bytes",
            )
        },
        responses={
            202: TASK_ACCEPTED,
            400: openapi.json_response(
                "the body is empty, not UTF-8, broken base64 or not valid JSON", component("ErrorBody")
            ),
            409: openapi.json_response(
                "a task with this taskId exists with a different body", component("ConflictBody")
            ),
            413: openapi.json_response(f"the body is over {MAX_BODY_BYTES} bytes", component("TooLargeBody")),
            415: openapi.json_response(
                "the body is not declared as application/json", component("ErrorBody")
            ),
            422: openapi.json_response(
                "the body is not a valid task submission (every invalid field, with why)",
                component("ValidationErrorBody"),
            ),
            429: THROTTLED,
            503: UNAVAILABLE,
        },
    )
    def submit_task() -> Response[str]:
        owner = caller()
        submission = read_model(app.current_event, TaskSubmission)
        # The API Gateway request id becomes the task's correlation id (logged by every function).
        submitted = service.submit(submission, app.current_event.request_context.request_id, owner=owner)
        task = submitted.task
        return json_response(HTTPStatus.ACCEPTED, task.to_public(), {"Location": f"/tasks/{task.task_id}"})

    @app.get(
        "/tasks",
        operation_id="listTasks",
        summary="List tasks, newest first",
        description='A bare JSON array; the next page, if any, is in the `Link: <...>; rel="next"` header.',
        responses={
            200: openapi.json_response("one page of tasks, newest first", list_of("TaskView"), LINK_HEADER),
            422: openapi.json_response(
                "`limit`, `status` or `cursor` is invalid", component("ValidationErrorBody")
            ),
            429: THROTTLED,
            503: UNAVAILABLE,
        },
    )
    def list_tasks(
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE, description="page size")] = DEFAULT_PAGE_SIZE,
        status: Annotated[TaskStatus | None, Query(description="only tasks in this status")] = None,
        cursor: Annotated[
            str | None,
            Query(
                max_length=MAX_CURSOR_LENGTH,
                pattern=CURSOR_PATTERN,
                description="where the page starts: copy it from the previous page's Link header",
            ),
        ] = None,
    ) -> Response[str]:
        owner = caller()
        start_key = decode_cursor(cursor) if cursor is not None else None
        listing = service.list(limit=limit, status=status, start_key=start_key, owner=owner)
        headers: dict[str, str] = {}
        if listing.next_key is not None:
            headers["Link"] = next_link(
                "/tasks",
                limit=limit,
                cursor=encode_cursor(listing.next_key),
                status=status.value if status else None,
            )
        return json_response(HTTPStatus.OK, [task.to_public() for task in listing.tasks], headers)

    @app.get(
        "/tasks/<taskId>",
        operation_id="getTask",
        summary="Read one task",
        responses={
            200: openapi.json_response("the task", component("TaskView")),
            404: TASK_NOT_FOUND,
            429: THROTTLED,
            503: UNAVAILABLE,
        },
    )
    def get_task(task_id: TaskIdPath) -> Response[str]:
        return json_response(HTTPStatus.OK, service.get(task_id, owner=caller()).to_public())

    @app.post(
        "/tasks/<taskId>/retry",
        operation_id="retryTask",
        summary="Re-run a task in error",
        description=(
            "Moves an `error` task back to `pending` (run + 1, retries 0). Any request body is ignored."
        ),
        responses={
            202: TASK_ACCEPTED,
            404: TASK_NOT_FOUND,
            409: openapi.json_response(
                "the task is not in `error` (its status is in the body)", component("ConflictBody")
            ),
            429: THROTTLED,
            503: UNAVAILABLE,
        },
    )
    def retry_task(task_id: TaskIdPath) -> Response[str]:
        task = service.retry(task_id, owner=caller())
        return json_response(HTTPStatus.ACCEPTED, task.to_public(), {"Location": f"/tasks/{task.task_id}"})

    @functools.cache
    def document() -> str:
        # Built on the first request, not at cold start.
        document = openapi.build_document(app, auth_mode=settings.auth_mode)
        return json.dumps(document, ensure_ascii=False, separators=(",", ":"))

    @app.get(
        openapi.DOCUMENT_PATH,
        operation_id="getOpenApiDocument",
        summary="This API's OpenAPI document",
        responses={
            200: openapi.json_response("the OpenAPI 3.1 document of this API", {"type": "object"}),
            429: THROTTLED,
        },
    )
    def openapi_document() -> Response[str]:
        return Response(
            status_code=HTTPStatus.OK.value,
            content_type=JSON_MEDIA_TYPE,
            body=document(),
        )

    register_error_handlers(app, ROUTES)
    app.use(middlewares=[_whole_path_only, _answer_before_timeout])
    return app


def _whole_path_only(app: APIGatewayHttpResolver, next_middleware: NextMiddleware) -> Response[Any]:
    """A path ending in a newline is no route. Powertools matches `^route$`, and `$` also matches
    before a final newline, so `/tasks/t1%0A` (API Gateway decodes the path) would read task t1."""
    if app.current_event.path.endswith("\n"):
        raise NotFoundError
    return next_middleware(app)


def _answer_before_timeout(app: APIGatewayHttpResolver, next_middleware: NextMiddleware) -> Response[Any]:
    """The route runs under the invocation's deadline (taskflow.deadline): a dependency too slow for
    the function's timeout becomes the 503 with Retry-After. Only the route: once it returns, or
    an error handler or the response builder runs, no timer can interrupt them."""
    with answer_before_timeout(app.lambda_context):
        return next_middleware(app)


def resolve(app: APIGatewayHttpResolver, event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Resolve one request; every response varies by Origin (the CORS headers depend on it)."""
    response = app.resolve(event, context)
    headers = response.setdefault("headers", {})
    headers["Vary"] = "Origin"
    return response
