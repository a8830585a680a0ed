"""A task as stored: a plain frozen dataclass, built from a table item and written back as one.

No pydantic here: the functions that only handle stored tasks (the processor, the DLQ consumer)
start without loading it. What a client submits is validated by the pydantic models of
taskflow.domain.submission, which the HTTP API loads. Statuses and transitions live in
taskflow.domain.status, field limits in taskflow.domain.limits, the timestamp format in
taskflow.domain.clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

from taskflow.domain.clock import utc_timestamp
from taskflow.domain.limits import MAX_ERROR_MESSAGE_LENGTH
from taskflow.domain.status import TaskStatus

if TYPE_CHECKING:
    from taskflow.domain.submission import TaskSubmission


# The fields of a task a client sees (GET /tasks, POST /tasks), in this order.
PUBLIC_FIELDS: Final = (
    *("taskId", "answer", "payload", "status", "retries"),
    *("errorMessage", "createdAt", "updatedAt", "version", "run"),
)


class InvalidTaskItemError(ValueError):
    """A stored item that is not a task (a required attribute missing or of the wrong type)."""


@dataclass(frozen=True)
class Simulation:
    """Per-task fault injection: fail attempts 1..fail_attempts, then succeed."""

    fail_attempts: int


@dataclass(frozen=True)
class Task:
    """A task as stored (internal fields included); `to_public()` is what clients see."""

    task_id: str
    answer: str
    status: TaskStatus
    retries: int  # attempts after the first
    created_at: str
    updated_at: str
    version: int  # +1 on every write
    run: int  # +1 on every POST /retry
    request_hash: str
    payload: dict[str, Any] | None = None
    simulate: Simulation | None = None
    error_message: str | None = None
    lease_owner: str | None = None
    lease_expires_at: int | None = None
    lease_state: str | None = None  # "running", "backing-off" or "released" (TaskRepository.claim)
    # The id of the HTTP request that created the task; every function logs it with the task.
    correlation_id: str | None = None
    # Who may see and retry the task: the creator's verified identity (the token's sub) on stages
    # with `auth: jwt`, None on `auth: none` stages. Internal: never in to_public() or a frame.
    owner: str | None = None
    # When the task last became final (success or error); None while pending. Internal: it is the
    # sort key of the ByFinished index (taskflow.table_schema).
    finished_at: str | None = None

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> Task:
        """The task of a table item (plain values, as taskflow.repositories.dynamodb.deserialize
        gives them); attributes that are not task fields (index keys) are ignored."""
        try:
            simulate = item.get("simulate")
            return cls(
                task_id=_text(item["taskId"]),
                answer=_text(item["answer"]),
                status=TaskStatus(item["status"]),
                retries=_count(item["retries"], 0),
                created_at=_text(item["createdAt"]),
                updated_at=_text(item["updatedAt"]),
                version=_count(item["version"], 1),
                run=_count(item["run"], 1),
                request_hash=_text(item["requestHash"]),
                payload=_optional(item, "payload", dict),
                simulate=Simulation(_count(simulate["failAttempts"], 0)) if simulate else None,
                error_message=_optional(item, "errorMessage", str),
                lease_owner=_optional(item, "leaseOwner", str),
                lease_expires_at=_count(item["leaseExpiresAt"], 0) if "leaseExpiresAt" in item else None,
                lease_state=_optional(item, "leaseState", str),
                correlation_id=_optional(item, "correlationId", str),
                owner=_optional(item, "owner", str),
                finished_at=_optional(item, "finishedAt", str),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise InvalidTaskItemError(f"not a stored task: {error!r}") from None

    def to_item(self) -> dict[str, Any]:
        """The table item of this task (camelCase attributes; None fields left out)."""
        item: dict[str, Any] = {
            "taskId": self.task_id,
            "answer": self.answer,
            "payload": self.payload,
            "simulate": {"failAttempts": self.simulate.fail_attempts} if self.simulate else None,
            "status": self.status.value,
            "retries": self.retries,
            "errorMessage": self.error_message,
            "createdAt": self.created_at,
            "updatedAt": self.updated_at,
            "version": self.version,
            "run": self.run,
            "requestHash": self.request_hash,
            "leaseOwner": self.lease_owner,
            "leaseExpiresAt": self.lease_expires_at,
            "leaseState": self.lease_state,
            "correlationId": self.correlation_id,
            "owner": self.owner,
            "finishedAt": self.finished_at,
        }
        return {name: value for name, value in item.items() if value is not None}

    def to_public(self) -> dict[str, Any]:
        """What clients see: the public fields of the item, absent ones as None."""
        item = self.to_item()
        return {name: item.get(name) for name in PUBLIC_FIELDS}


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {type(value).__name__}")
    return value


def _count(value: Any, minimum: int) -> int:
    """A whole number >= minimum (deserialize gives DynamoDB's whole numbers as int)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"expected a whole number, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"expected a whole number >= {minimum}, got {value}")
    return value


def _optional(item: Mapping[str, Any], name: str, kind: type) -> Any:
    value = item.get(name)
    if value is not None and not isinstance(value, kind):
        raise TypeError(f"{name}: expected {kind.__name__}, got {type(value).__name__}")
    return value


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
        simulate=Simulation(submission.simulate.fail_attempts) if submission.simulate else None,
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
