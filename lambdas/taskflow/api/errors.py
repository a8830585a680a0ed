"""HTTP errors and the one place where every error is mapped to a status code and a JSON body.

Every error body is JSON with a human-readable "message", plus details for some:
    400  {"message": "the body is not valid JSON: ... (line 1, column 2)"}
    415  {"message": "the body must be JSON (Content-Type: application/json); got 'text/plain'"}
    422  {"message": "request validation failed", "errors": [{"field": "answer", "reason": "..."}]}
    401  {"message": "this request carries no verified caller: ..."}  (auth: jwt; WWW-Authenticate)
    404  {"message": "task 'x' not found", "taskId": "x"}  /  {"message": "no route for GET /x"}
    409  {"message": "...", "taskId": "x"}  (+ "status" when a retry is refused)
    405  {"message": "...", "allowed": ["GET", "POST"]}        (and an Allow header)
    413  {"message": "...", "limitBytes": 32768}
    503  {"message": "...", "dependency": "DynamoDB"}           (and Retry-After)
    500  {"message": "internal error", "requestId": "..."}      (never for what a client sent)
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from http import HTTPStatus
from typing import Any, Final

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from pydantic import ValidationError

from taskflow.domain.errors import (
    FaultInjectionDisabledError,
    InvalidTransitionError,
    TaskConflictError,
    TaskNotFoundError,
)
from taskflow.errors import DependencyUnavailableError, InvalidCursorError, UnauthenticatedError
from taskflow.observability import logger

RETRY_AFTER_SECONDS: Final = 2


class HttpError(Exception):
    """An error response decided by the API layer itself (body parsing, routing)."""

    def __init__(
        self,
        status: HTTPStatus,
        message: str,
        *,
        details: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.details = dict(details or {})
        self.headers = dict(headers or {})


def field_errors(error: ValidationError) -> list[dict[str, str]]:
    """A pydantic ValidationError of a request model as [{"field", "reason"}]."""
    return _field_errors([dict(e) for e in error.errors()], skip_location=False)


def validation_failed(errors: list[dict[str, str]]) -> HttpError:
    return HttpError(HTTPStatus.UNPROCESSABLE_ENTITY, "request validation failed", details={"errors": errors})


def json_response(status: HTTPStatus, body: Any, headers: Mapping[str, str] | None = None) -> Response[str]:
    return Response(
        status_code=status.value,
        content_type=content_types.APPLICATION_JSON,
        body=json.dumps(body, ensure_ascii=False, separators=(",", ":")),
        headers=dict(headers or {}),
    )


def _error(
    http_status: HTTPStatus, message: str, headers: Mapping[str, str] | None = None, /, **details: Any
) -> Response[str]:
    return json_response(http_status, {"message": message, **details}, headers)


def _clean_reason(message: str) -> str:
    # pydantic prefixes the message of a ValueError raised in a validator.
    return message.removeprefix("Value error, ")


def _field_errors(errors: list[Any], skip_location: bool) -> list[dict[str, str]]:
    result = []
    for error in errors:
        location = list(error.get("loc", ()))
        if skip_location and location and location[0] in ("query", "path", "header", "body"):
            location = location[1:]
        field = ".".join(str(part) for part in location) or "body"
        result.append({"field": field, "reason": _clean_reason(str(error.get("msg", "is invalid")))})
    return result


def _validation_response(errors: list[dict[str, str]]) -> Response[str]:
    return _error(HTTPStatus.UNPROCESSABLE_ENTITY, "request validation failed", errors=errors)


def _http_error(error: HttpError) -> Response[str]:
    return _error(error.status, error.message, error.headers, **error.details)


def _request_invalid(error: RequestValidationError) -> Response[str]:
    return _validation_response(_field_errors(list(error.errors()), skip_location=True))


def _cursor_invalid(error: InvalidCursorError) -> Response[str]:
    reason = f"{error}; use the Link header of the previous page"
    return _validation_response([{"field": "cursor", "reason": reason}])


def _simulate_refused(error: FaultInjectionDisabledError) -> Response[str]:
    return _validation_response([{"field": "simulate", "reason": str(error)}])


def _unauthenticated(error: UnauthenticatedError) -> Response[str]:
    logger.warning("request without a verified caller refused", extra={"reason": str(error)})
    return _error(HTTPStatus.UNAUTHORIZED, str(error), {"WWW-Authenticate": "Bearer"})


def _task_not_found(error: TaskNotFoundError) -> Response[str]:
    return _error(HTTPStatus.NOT_FOUND, str(error), taskId=error.task_id)


def _task_conflict(error: TaskConflictError) -> Response[str]:
    return _error(HTTPStatus.CONFLICT, str(error), taskId=error.task_id)


def _transition_refused(error: InvalidTransitionError) -> Response[str]:
    return _error(HTTPStatus.CONFLICT, str(error), taskId=error.task_id, status=error.status)


def _dependency_down(error: DependencyUnavailableError) -> Response[str]:
    logger.warning("dependency unavailable", extra={"dependency": error.dependency, "detail": error.detail})
    return _error(
        HTTPStatus.SERVICE_UNAVAILABLE,
        f"{error.dependency} is unavailable right now; retry in a few seconds (the request may have "
        "taken effect: a POST /tasks sent again with the same taskId is never created twice)",
        {"Retry-After": str(RETRY_AFTER_SECONDS)},
        dependency=error.dependency,
    )


# The one error map (most specific class wins: Powertools looks handlers up along the MRO).
ERROR_HANDLERS: Final[Mapping[type[Exception], Callable[[Any], Response[str]]]] = {
    HttpError: _http_error,
    RequestValidationError: _request_invalid,
    InvalidCursorError: _cursor_invalid,
    FaultInjectionDisabledError: _simulate_refused,
    UnauthenticatedError: _unauthenticated,
    TaskNotFoundError: _task_not_found,
    TaskConflictError: _task_conflict,
    InvalidTransitionError: _transition_refused,
    DependencyUnavailableError: _dependency_down,
}


def register_error_handlers(app: APIGatewayHttpResolver, routes: Mapping[str, frozenset[str]]) -> None:
    """Install ERROR_HANDLERS, the 404/405 answer for unknown routes (`routes`: path regex ->
    allowed methods) and a JSON 500 for anything unexpected."""
    for error_class, handle in ERROR_HANDLERS.items():
        app.exception_handler(error_class)(handle)

    def no_route(_: NotFoundError) -> Response[str]:
        method = app.current_event.http_method.upper()
        path = app.current_event.path
        for pattern, methods in routes.items():
            # A method the path does allow ends up here when a path parameter holds characters
            # Powertools' route patterns do not take (e.g. '€', '"'): no such task, so 404.
            if re.fullmatch(pattern, path) and method not in methods:
                allowed = sorted(methods)
                return _error(
                    HTTPStatus.METHOD_NOT_ALLOWED,
                    f"method {method} is not allowed on {path}",
                    {"Allow": ", ".join(allowed)},
                    allowed=allowed,
                )
        return _error(HTTPStatus.NOT_FOUND, f"no route for {method} {path}")

    def unexpected(error: Exception) -> Response[str]:
        logger.exception("unhandled error", extra={"error": repr(error)})
        request_context = app.current_event.get("requestContext") or {}
        return _error(
            HTTPStatus.INTERNAL_SERVER_ERROR, "internal error", requestId=request_context.get("requestId")
        )

    app.not_found(no_route)
    app.exception_handler(Exception)(unexpected)
