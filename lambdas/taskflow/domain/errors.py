"""Domain errors. The HTTP API maps each of them to a status code in one place (taskflow.api.errors)."""

from __future__ import annotations


class TaskError(Exception):
    """Base class of the domain errors."""


class TaskNotFoundError(TaskError):
    def __init__(self, task_id: str) -> None:
        super().__init__(f"task {task_id!r} not found")
        self.task_id = task_id


class TaskConflictError(TaskError):
    """A task with this id exists and was submitted with a different body."""

    def __init__(self, task_id: str) -> None:
        super().__init__(
            f"task {task_id!r} already exists with a different body; "
            "resubmit the same body, or use a new taskId"
        )
        self.task_id = task_id


class InvalidTransitionError(TaskError):
    """The requested change is not allowed from the task's current status."""

    def __init__(self, task_id: str, status: str, action: str, allowed_from: str) -> None:
        super().__init__(
            f"cannot {action} task {task_id!r}: it is {status!r}, only {allowed_from!r} tasks can be"
        )
        self.task_id = task_id
        self.status = status


class FaultInjectionDisabledError(TaskError):
    def __init__(self, stage: str) -> None:
        super().__init__(
            f"'simulate' is only accepted on stages that allow fault injection; stage {stage!r} does not"
        )
        self.stage = stage


class TaskLeasedError(TaskError):
    """Another message holds a live processing lease on this run of the task: it may still commit."""

    def __init__(self, task_id: str, holder: str | None, until: int | None) -> None:
        super().__init__(f"task {task_id!r} is leased by message {holder!r} until {until}")
        self.task_id = task_id
        self.holder = holder
        self.until = until


class MalformedMessageError(TaskError):
    """A queue message that is not a task message (bad JSON, no taskId, ...)."""
