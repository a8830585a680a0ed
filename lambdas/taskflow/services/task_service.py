"""TaskService: what the HTTP API does with tasks (submit, read, list, retry).

Owners (stages with `auth: jwt`, `owner_scoped=True`): every call names its caller (`owner=`, the
token's sub) and reaches only that caller's tasks: the owner is part of the task's key
(taskflow.table_schema), so each owner has its own namespace of task ids. Another owner's task is
never read, and no answer depends on it: reading or retrying an id only another owner uses is a
TaskNotFoundError, submitting it creates the caller's own task. A call without an owner fails
closed (UnauthenticatedError). With `owner_scoped=False` (`auth: none`) owners are not used at all:
every client sees every task, as before authentication existed.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass
from typing import Final

from taskflow.domain.clock import Clock, utc_now
from taskflow.domain.errors import FaultInjectionDisabledError, TaskConflictError, TaskNotFoundError
from taskflow.domain.limits import TASK_ID_PATTERN
from taskflow.domain.owners import owner_or_none
from taskflow.domain.status import TaskStatus
from taskflow.domain.submission import TaskSubmission
from taskflow.domain.task import Task, new_task
from taskflow.errors import UnauthenticatedError
from taskflow.observability import MetricName, count, logger
from taskflow.repositories.task_repository import TaskRepository

# Lambda's synchronous response limit is 6 MB (the whole result: status, headers and the body as a
# JSON string); a listing page stops growing well before that (`_result_bytes`).
MAX_LIST_RESPONSE_BYTES: Final = 5 * 1024 * 1024
_TASK_ID: Final = re.compile(TASK_ID_PATTERN)


@dataclass(frozen=True)
class Submitted:
    task: Task
    created: bool  # False: an identical earlier submission; `task` is the existing one


@dataclass(frozen=True)
class Listing:
    tasks: list[Task]  # may be empty while next_key is set (a sparse status filter, see TaskRepository)
    next_key: dict[str, str] | None  # where the next page starts, None on the last page


@dataclass
class TaskService:
    tasks: TaskRepository
    _: KW_ONLY
    stage: str
    allow_fault_injection: bool
    clock: Clock = utc_now
    new_task_id: Callable[[], str] = lambda: str(uuid.uuid4())
    max_list_response_bytes: int = MAX_LIST_RESPONSE_BYTES
    owner_scoped: bool = False

    def _scope(self, owner: str | None) -> str | None:
        """The owner to scope a call to: the caller on owner-scoped stages (required), else None."""
        if not self.owner_scoped:
            return None
        checked = owner_or_none(owner)
        if checked is None:
            raise UnauthenticatedError("this request carries no verified caller")
        return checked

    def submit(
        self, submission: TaskSubmission, correlation_id: str | None = None, *, owner: str | None = None
    ) -> Submitted:
        """Create the task, or return the existing one if the same body was submitted before (by
        the same owner). Raises TaskConflictError if the caller has a task with this id and a
        different body."""
        scope = self._scope(owner)
        if submission.simulate is not None and not self.allow_fault_injection:
            raise FaultInjectionDisabledError(self.stage)
        task_id = submission.task_id or self.new_task_id()
        result = self.tasks.create(new_task(submission, task_id, self.clock(), correlation_id, owner=scope))
        if result.created:
            count(MetricName.TASK_SUBMITTED)
            logger.info("task submitted", extra={"task_id": task_id})
            return Submitted(task=result.task, created=True)
        if result.task.request_hash != submission.request_hash():
            raise TaskConflictError(task_id)
        logger.info("task resubmitted with the same body", extra={"task_id": task_id})
        return Submitted(task=result.task, created=False)

    def get(self, task_id: str, *, owner: str | None = None) -> Task:
        scope = self._scope(owner)
        task = self.tasks.get(task_id, owner=scope) if _TASK_ID.fullmatch(task_id) else None
        if task is None:
            raise TaskNotFoundError(task_id)
        return task

    def list(
        self,
        *,
        limit: int,
        status: TaskStatus | None,
        start_key: dict[str, str] | None,
        owner: str | None = None,
    ) -> Listing:
        scope = self._scope(owner)
        page = self.tasks.list_page(limit=limit, status=status, start_key=start_key, owner=scope)
        tasks = page.tasks
        budget = self.max_list_response_bytes
        for index, task in enumerate(tasks):
            budget -= _result_bytes(task.to_public()) + 1  # + the comma
            if budget < 0 and index > 0:  # cut short: the next page starts after the last task kept
                kept = tasks[:index]
                return Listing(tasks=kept, next_key=self.tasks.page_key(kept[-1], status, owner=scope))
        if not page.has_more:
            return Listing(tasks=tasks, next_key=None)
        if page.resume_key is not None:
            return Listing(tasks=tasks, next_key=page.resume_key)
        next_key = self.tasks.page_key(tasks[-1], status, owner=scope) if tasks else None
        return Listing(tasks=tasks, next_key=next_key)

    def retry(self, task_id: str, *, owner: str | None = None) -> Task:
        """Re-run a task in error. Raises TaskNotFoundError (also for another owner's task) or
        InvalidTransitionError."""
        scope = self._scope(owner)
        if not _TASK_ID.fullmatch(task_id):
            raise TaskNotFoundError(task_id)
        task = self.tasks.retry(task_id, owner=scope)
        count(MetricName.TASK_RETRIED)
        logger.info("task retried", extra={"task_id": task_id, "run": task.run})
        return task


def _result_bytes(value: object) -> int:
    """What `value` adds to the Lambda result as part of a JSON response body: the body is JSON
    (compact, unescaped Unicode: taskflow.api.errors.json_response), and the result carries it as a
    JSON string, where each `"` and `\\` of the body takes one more byte (the body escapes every
    control character already; Python runtimes 3.12+ leave Unicode unescaped)."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return len(text.encode("utf-8")) + text.count('"') + text.count("\\")
