"""The JSON shapes the HTTP API answers with, as pydantic models, for its OpenAPI document.

The routes build their bodies directly (`Task.to_public()`, the error map in taskflow.api.errors)
and never instantiate these models, so a request pays nothing for them; they exist so that the
document (taskflow.api.openapi) describes each response exactly. tests/lambdas keeps them in step
with the code (`TaskView` has exactly the keys of `Task.to_public()`), and the schemathesis run
against the local stack checks every response it provokes against them.
"""

from __future__ import annotations

from typing import Annotated, Any, Final

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from taskflow.domain.limits import MAX_ANSWER_LENGTH, MAX_ERROR_MESSAGE_LENGTH, TASK_ID_PATTERN
from taskflow.domain.status import TaskStatus

TIMESTAMP_PATTERN: Final = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$"

TaskId = Annotated[str, Field(pattern=TASK_ID_PATTERN, examples=["7c9e6679-7425-40de-944b-e07fc1f90ae7"])]
Timestamp = Annotated[
    str,
    Field(pattern=TIMESTAMP_PATTERN, description="ISO-8601 UTC with microseconds and Z"),
]


class _Body(BaseModel):
    # Open shapes: a client must accept fields it does not know (the contract allows more).
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class TaskView(_Body):
    """A task as every route returns it (`Task.to_public()`)."""

    task_id: TaskId
    answer: Annotated[str, Field(min_length=1, max_length=MAX_ANSWER_LENGTH)]
    payload: dict[str, Any] | None = Field(description="the submitted payload, null when none was sent")
    status: TaskStatus
    retries: Annotated[int, Field(ge=0, description="attempts after the first")]
    error_message: Annotated[str, Field(max_length=MAX_ERROR_MESSAGE_LENGTH)] | None = Field(
        description="why the last attempt failed; null when none did (or after a retry)"
    )
    created_at: Timestamp
    updated_at: Timestamp
    version: Annotated[int, Field(ge=1, description="+1 on every write")]
    run: Annotated[int, Field(ge=1, description="1 at creation, +1 on every POST /tasks/{taskId}/retry")]


class ErrorBody(_Body):
    """Every error: a human-readable message (some statuses add details, below)."""

    message: Annotated[str, Field(min_length=1)]


class FieldError(_Body):
    field: Annotated[str, Field(description="the field, query parameter or 'body'", examples=["answer"])]
    reason: Annotated[str, Field(min_length=1)]


class ValidationErrorBody(ErrorBody):
    """422: every invalid field of the request, with why."""

    errors: Annotated[list[FieldError], Field(min_length=1)]


class NotFoundBody(ErrorBody):
    """404: `taskId` names the task when the task does not exist (absent for an unknown route)."""

    task_id: str | None = None


class ConflictBody(ErrorBody):
    """409: the task's id, and its status when a retry was refused."""

    task_id: str
    status: TaskStatus | None = None


class TooLargeBody(ErrorBody):
    """413: the limit the body broke (`limitBytes` is absent when API Gateway itself refused the
    request, over its 10 MB payload limit)."""

    limit_bytes: int | None = None


class UnavailableBody(ErrorBody):
    """503: which dependency is down; retry after the Retry-After header's seconds."""

    dependency: str


RESPONSE_MODELS: Final[tuple[type[BaseModel], ...]] = (
    TaskView,
    ErrorBody,
    ValidationErrorBody,
    NotFoundBody,
    ConflictBody,
    TooLargeBody,
    UnavailableBody,
)
