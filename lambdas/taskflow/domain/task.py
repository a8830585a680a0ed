"""The Task model (pydantic): its fields, the client-owned submission and its validation.

Statuses and transitions live in taskflow.domain.status, field limits in taskflow.domain.limits and
the timestamp format in taskflow.domain.clock: plain modules, so that functions which never build
a Task (enqueue, notifier, DLQ consumer, WebSocket) do not import pydantic.
"""

from __future__ import annotations

import hashlib
import json
import math
from datetime import datetime
from typing import Annotated, Any, Final

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, field_validator
from pydantic.alias_generators import to_camel

from taskflow.domain.clock import utc_timestamp
from taskflow.domain.limits import (
    MAX_ANSWER_LENGTH,
    MAX_ERROR_MESSAGE_LENGTH,
    MAX_FAIL_ATTEMPTS,
    MAX_NUMBER_DIGITS,
    MAX_PAYLOAD_BYTES,
    MAX_PAYLOAD_DEPTH,
    TASK_ID_PATTERN,
)
from taskflow.domain.status import TaskStatus

# DynamoDB numbers: up to MAX_NUMBER_DIGITS significant digits, magnitude 1e-130 .. 9.99...e125.
_MIN_FLOAT_MAGNITUDE: Final = 1e-130
_MAX_FLOAT_MAGNITUDE: Final = 9.9e125


class _CamelModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True)


class Simulation(_CamelModel):
    """Per-task fault injection: fail attempts 1..fail_attempts, then succeed."""

    model_config = ConfigDict(extra="forbid")

    fail_attempts: Annotated[StrictInt, Field(ge=0, le=MAX_FAIL_ATTEMPTS)]


class Task(_CamelModel):
    """A task as stored (internal fields included); `to_public()` is what clients see."""

    model_config = ConfigDict(extra="ignore")

    task_id: str
    answer: str
    payload: dict[str, Any] | None = None
    simulate: Simulation | None = None
    status: TaskStatus
    retries: int = Field(ge=0)  # attempts after the first
    error_message: str | None = None
    created_at: str
    updated_at: str
    version: int = Field(ge=1)  # +1 on every write
    run: int = Field(ge=1)  # +1 on every POST /retry
    request_hash: str
    lease_owner: str | None = None
    lease_expires_at: int | None = None
    lease_state: str | None = None  # "running", "backing-off" or "released" (TaskRepository.claim)
    # The id of the HTTP request that created the task; every function logs it with the task.
    correlation_id: str | None = None
    # Who may see and retry the task: the creator's verified identity (the token's sub) on stages
    # with `auth: jwt`, None on `auth: none` stages. Internal: never in to_public() or a frame.
    owner: str | None = None

    def to_public(self) -> dict[str, Any]:
        return {
            "taskId": self.task_id,
            "answer": self.answer,
            "payload": self.payload,
            "status": self.status.value,
            "retries": self.retries,
            "errorMessage": self.error_message,
            "createdAt": self.created_at,
            "updatedAt": self.updated_at,
            "version": self.version,
            "run": self.run,
        }


def _check_encodable(text: str, where: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{where} contains an unpaired surrogate (not valid UTF-8)") from None


def _check_json_value(value: Any, depth: int, path: str) -> None:
    """Raise ValueError if `value` (parsed JSON) cannot be stored as-is in DynamoDB."""
    if isinstance(value, dict | list):
        if depth > MAX_PAYLOAD_DEPTH:
            raise ValueError(f"payload is nested deeper than {MAX_PAYLOAD_DEPTH} levels (at {path})")
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for key, item in items:
            if isinstance(key, str):
                if not key:
                    raise ValueError(f"payload keys must be non-empty strings (at {path})")
                _check_encodable(key, f"a key at {path}")
            _check_json_value(item, depth + 1, f"{path}.{key}" if isinstance(key, str) else f"{path}[{key}]")
    else:
        _check_json_scalar(value, path)


def _check_json_scalar(value: Any, path: str) -> None:
    if isinstance(value, str):
        _check_encodable(value, f"the string at {path}")
    elif isinstance(value, bool) or value is None:
        return
    elif isinstance(value, int):
        if len(str(abs(value))) > MAX_NUMBER_DIGITS:
            raise ValueError(f"the integer at {path} has more than {MAX_NUMBER_DIGITS} digits")
    elif isinstance(value, float):
        magnitude = abs(value)
        if not math.isfinite(value) or (
            magnitude and not _MIN_FLOAT_MAGNITUDE <= magnitude <= _MAX_FLOAT_MAGNITUDE
        ):
            raise ValueError(f"the number at {path} is outside the range 1e-130..9.9e125")
    else:  # pragma: no cover - json.loads yields nothing else
        raise ValueError(f"unsupported value at {path}")


class TaskSubmission(_CamelModel):
    """The client-owned fields of POST /tasks. Unknown fields (the frontend's `status`,
    `retries`) are ignored: the server owns them."""

    model_config = ConfigDict(extra="ignore")

    task_id: Annotated[StrictStr, Field(pattern=TASK_ID_PATTERN)] | None = None
    answer: Annotated[StrictStr, Field(min_length=1, max_length=MAX_ANSWER_LENGTH)]
    payload: dict[str, Any] | None = None
    simulate: Simulation | None = None

    @field_validator("answer")
    @classmethod
    def _answer_is_utf8(cls, answer: str) -> str:
        _check_encodable(answer, "answer")
        return answer

    @field_validator("payload")
    @classmethod
    def _payload_fits(cls, payload: dict[str, Any] | None) -> dict[str, Any] | None:
        if payload is None:
            return None
        _check_json_value(payload, 1, "payload")
        size = len(_canonical_json(payload).encode("utf-8"))
        if size > MAX_PAYLOAD_BYTES:
            raise ValueError(f"payload is {size} bytes as JSON; the limit is {MAX_PAYLOAD_BYTES}")
        return payload

    def request_hash(self) -> str:
        """sha256 of the canonical JSON of the client-owned fields (idempotency check)."""
        owned = {
            "answer": self.answer,
            "payload": self.payload,
            "simulate": self.simulate.model_dump(by_alias=True) if self.simulate else None,
        }
        return hashlib.sha256(_canonical_json(owned).encode("utf-8")).hexdigest()


def _canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def new_task(
    submission: TaskSubmission,
    task_id: str,
    now: datetime,
    correlation_id: str | None = None,
    owner: str | None = None,
) -> Task:
    timestamp = utc_timestamp(now)
    return Task(
        task_id=task_id,
        answer=submission.answer,
        payload=submission.payload,
        simulate=submission.simulate,
        status=TaskStatus.PENDING,
        retries=0,
        error_message=None,
        created_at=timestamp,
        updated_at=timestamp,
        version=1,
        run=1,
        request_hash=submission.request_hash(),
        correlation_id=correlation_id,
        owner=owner,
    )


def truncate_error(message: str) -> str:
    if len(message) <= MAX_ERROR_MESSAGE_LENGTH:
        return message
    return message[: MAX_ERROR_MESSAGE_LENGTH - 1] + "…"
