"""Task statuses and the status transitions that are allowed (no pydantic: functions that never
build a Task, like the enqueuer and the DLQ consumer, read these too).

Status machine (every write to the table is conditional on the source status, so a late or
duplicate delivery can never move a task backwards):

    pending --attempt failed--> pending   (retries/errorMessage change; SQS will retry)
    pending --step succeeded--> success   (terminal)
    pending --dead-lettered---> error
    error   --POST /retry-----> pending   (run + 1, retries 0)
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final, NamedTuple


class TaskStatus(StrEnum):
    PENDING = "pending"
    SUCCESS = "success"
    ERROR = "error"


class Transition(NamedTuple):
    name: str
    source: TaskStatus
    target: TaskStatus


ATTEMPT_FAILED: Final = Transition("attempt failed", TaskStatus.PENDING, TaskStatus.PENDING)
SUCCEEDED: Final = Transition("succeed", TaskStatus.PENDING, TaskStatus.SUCCESS)
DEAD_LETTERED: Final = Transition("dead-letter", TaskStatus.PENDING, TaskStatus.ERROR)
RETRIED: Final = Transition("retry", TaskStatus.ERROR, TaskStatus.PENDING)
ALLOWED_TRANSITIONS: Final = frozenset({ATTEMPT_FAILED, SUCCEEDED, DEAD_LETTERED, RETRIED})


def is_allowed(source: TaskStatus, target: TaskStatus) -> bool:
    return any(t.source == source and t.target == target for t in ALLOWED_TRANSITIONS)
