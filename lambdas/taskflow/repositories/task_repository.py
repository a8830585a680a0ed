"""TaskRepository: every read and write of the TaskTable.

Every status write is a conditional UpdateItem/PutItem whose condition is the source status of
an allowed transition (taskflow.domain.task), plus the run and the processing lease where it
matters. So a late or duplicate delivery cannot move a task backwards, and a second delivery of
the same message cannot apply the processing step's outcome twice.

Lists are a Query on a GSI with Limit (never a Scan), looping on LastEvaluatedKey while a
1 MB response page cuts the page short.

Owners (stages with `auth: jwt`, taskflow.domain.owners): the methods taking `owner=` scope what
they read or change to that owner's tasks. A task created with an owner carries the `owner`
attribute (and no `listPartition`: such tables have no ByCreatedAt index); one owner's tasks are
listed from the ByOwner index, newest first. `owner=None` is the unscoped behaviour, unchanged:
what `auth: none` stages and operations tools (ops/redrive.py, across owners) use.

A status filter on an owner's listing is a FilterExpression on ByOwner (a per-owner status index
would be a second GSI whose partition is written on every status change). DynamoDB's Limit counts
the items it evaluates, not those that match, so one request reads at most
`max_filter_evaluated` items (and stops early once DynamoDB cuts a Query at 1 MB): a sparse status
can give a short, even empty, page that still says where to resume (`TaskPage.resume_key`, the
LastEvaluatedKey).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any, Final

from taskflow import table_schema
from taskflow.clients import aws
from taskflow.domain.clock import Clock, utc_now, utc_timestamp
from taskflow.domain.errors import InvalidTransitionError, TaskNotFoundError
from taskflow.domain.limits import TASK_ID_PATTERN
from taskflow.domain.status import (
    ATTEMPT_FAILED,
    DEAD_LETTERED,
    RETRIED,
    SUCCEEDED,
    TaskStatus,
    Transition,
)
from taskflow.domain.task import Task
from taskflow.errors import InvalidCursorError
from taskflow.repositories.dynamodb import (
    ConditionFailedError,
    deserialize,
    serialize,
    translated_errors,
)

_TIMESTAMP_PATTERN: Final = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")
_TASK_ID: Final = re.compile(TASK_ID_PATTERN)

# A status-filtered owner listing evaluates at most this many items per request (see the module
# docstring): about 1 MB of typical tasks, the most one Query call reads.
MAX_FILTER_EVALUATED: Final = 1000

# Attribute names used in expressions (status and run are DynamoDB reserved words).
_NAMES: Final = {
    "#status": "status",
    "#run": "run",
    "#retries": "retries",
    "#errorMessage": "errorMessage",
    "#updatedAt": "updatedAt",
    "#version": "version",
    "#leaseOwner": "leaseOwner",
    "#leaseExpiresAt": "leaseExpiresAt",
    "#leaseState": "leaseState",
    "#owner": table_schema.TASK_OWNER,
}


class ClaimOutcome(Enum):
    CLAIMED = "claimed"  # the caller holds the lease and may run the step
    NOT_FOUND = "not found"  # no such task
    STALE = "stale"  # the task is finished, or the message is for another run
    LEASED = "leased"  # another message holds a live lease on this run


@dataclass(frozen=True)
class Claim:
    outcome: ClaimOutcome
    task: Task | None  # the task as claimed (CLAIMED) or as found (other outcomes)


@dataclass(frozen=True)
class CreateResult:
    created: bool  # False: a task with this id already existed (it is returned unchanged)
    task: Task


@dataclass(frozen=True)
class TaskPage:
    tasks: list[Task]
    has_more: bool  # DynamoDB may hold more items after the last one returned
    # Where the listing resumes when that is not right after the last task: a status-filtered owner
    # listing cut by its read bound stops past the last match (its page may even be empty). None:
    # resume after the last task (`page_key`).
    resume_key: dict[str, str] | None = None


@dataclass(frozen=True)
class DeadLettered:
    """What mark_dead_lettered wrote: all the DLQ consumer needs, so it builds no Task."""

    task_id: str
    retries: int
    error_message: str | None


class TaskRepository:
    def __init__(
        self,
        table_name: str,
        client: Any | None = None,
        clock: Clock = utc_now,
        *,
        max_filter_evaluated: int = MAX_FILTER_EVALUATED,
    ) -> None:
        self.table_name = table_name
        self._client = client
        self._clock = clock
        if max_filter_evaluated < 1:
            raise ValueError("max_filter_evaluated must be at least 1")
        self._max_filter_evaluated = max_filter_evaluated

    def now(self) -> datetime:
        """The repository's clock (lease times are in its epoch seconds)."""
        return self._clock()

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = aws.client("dynamodb")
        return self._client

    # ----------------------------------------------------------------------------- reads

    def get(self, task_id: str, *, owner: str | None = None) -> Task | None:
        """The task, or None if absent; with `owner`, also None if someone else owns it."""
        with translated_errors():
            response = self.client.get_item(
                TableName=self.table_name, Key=serialize({table_schema.TASK_PK: task_id}), ConsistentRead=True
            )
        item = response.get("Item")
        task = Task.from_item(deserialize(item)) if item else None
        if task is None or (owner is not None and task.owner != owner):
            return None
        return task

    def list_page(
        self,
        *,
        limit: int,
        status: TaskStatus | None = None,
        start_key: dict[str, str] | None = None,
        owner: str | None = None,
    ) -> TaskPage:
        """Up to `limit` tasks, newest first, optionally of one status, after `start_key`
        (a `page_key()` of the last task of the previous page, or a page's `resume_key`).
        With `owner`: only that owner's tasks (see the module docstring); a `start_key` of another
        listing or owner raises InvalidCursorError."""
        if owner is not None:
            return self._owner_page(owner, limit=limit, status=status, start_key=start_key)
        index, partition_name, partition_value = _index_for(status)
        query: dict[str, Any] = {
            "TableName": self.table_name,
            "IndexName": index,
            "KeyConditionExpression": "#pk = :pk",
            "ExpressionAttributeNames": {"#pk": partition_name},
            "ExpressionAttributeValues": serialize({":pk": partition_value}),
            "ScanIndexForward": False,
        }
        if start_key is not None:
            query["ExclusiveStartKey"] = serialize(_checked_start_key(start_key, status))
        tasks: list[Task] = []
        while True:
            query["Limit"] = limit - len(tasks)
            with translated_errors():
                response = self.client.query(**query)
            tasks.extend(Task.from_item(deserialize(item)) for item in response.get("Items", []))
            last_key = response.get("LastEvaluatedKey")
            if not last_key:
                return TaskPage(tasks=tasks, has_more=False)
            if len(tasks) >= limit:
                return TaskPage(tasks=tasks, has_more=True)
            query["ExclusiveStartKey"] = last_key  # the 1 MB response limit cut this query short

    def _owner_page(
        self, owner: str, *, limit: int, status: TaskStatus | None, start_key: dict[str, str] | None
    ) -> TaskPage:
        names = {"#pk": table_schema.TASKS_BY_OWNER_PK}
        values: dict[str, Any] = {":pk": owner}
        query: dict[str, Any] = {
            "TableName": self.table_name,
            "IndexName": table_schema.TASKS_BY_OWNER_INDEX,
            "KeyConditionExpression": "#pk = :pk",
            "ScanIndexForward": False,
        }
        if status is not None:
            query["FilterExpression"] = "#status = :status"
            names["#status"] = _NAMES["#status"]
            values[":status"] = status.value
        query["ExpressionAttributeNames"] = names
        query["ExpressionAttributeValues"] = serialize(values)
        if start_key is not None:
            query["ExclusiveStartKey"] = serialize(_checked_owner_start_key(start_key, owner))
        tasks: list[Task] = []
        evaluated = 0
        asked = 0
        while True:
            wanted = limit - len(tasks)
            if status is None:
                asked = wanted  # no filter: every item evaluated is returned
            else:
                # Limit counts evaluated items: ask for what is missing first, then twice as many
                # each call (a sparse status), within what is left of the read bound.
                asked = min(max(wanted, 2 * asked), self._max_filter_evaluated - evaluated)
            query["Limit"] = asked
            with translated_errors():
                response = self.client.query(**query)
            items = response.get("Items", [])
            evaluated += int(response.get("ScannedCount", len(items)))
            tasks.extend(Task.from_item(deserialize(item)) for item in items)
            last_key = response.get("LastEvaluatedKey")
            if len(tasks) > limit:  # a filtered call matched more than needed
                return TaskPage(tasks=tasks[:limit], has_more=True)
            if not last_key:
                return TaskPage(tasks=tasks, has_more=False)
            if len(tasks) == limit:
                return TaskPage(tasks=tasks, has_more=True, resume_key=_plain_key(last_key))
            size_cut = int(response.get("ScannedCount", asked)) < asked  # DynamoDB's 1 MB
            if status is not None and (evaluated >= self._max_filter_evaluated or size_cut):
                return TaskPage(tasks=tasks, has_more=True, resume_key=_plain_key(last_key))
            query["ExclusiveStartKey"] = last_key

    @staticmethod
    def page_key(task: Task, status: TaskStatus | None = None, *, owner: str | None = None) -> dict[str, str]:
        """The key to resume a listing after `task`: the table key plus the index keys (of the
        ByOwner index for an owner's listing, whatever its status filter)."""
        if owner is not None:
            return {
                table_schema.TASK_PK: task.task_id,
                table_schema.TASKS_BY_OWNER_PK: owner,
                table_schema.TASKS_BY_OWNER_SK: task.created_at,
            }
        _, partition_name, partition_value = _index_for(status)
        return {
            table_schema.TASK_PK: task.task_id,
            partition_name: partition_value,
            table_schema.TASKS_BY_CREATED_SK: task.created_at,
        }

    # ----------------------------------------------------------------------------- writes

    def create(self, task: Task) -> CreateResult:
        """Insert `task` unless its id exists; then return the existing task unchanged (whoever
        owns it: the caller decides what to reveal). A task with an owner is stored with its
        `owner` (listed from ByOwner); one without, with the constant `listPartition` (ByCreatedAt)."""
        item = task.to_item()
        if task.owner is None:
            item[table_schema.TASKS_BY_CREATED_PK] = table_schema.LIST_PARTITION_VALUE
        try:
            with translated_errors():
                self.client.put_item(
                    TableName=self.table_name,
                    Item=serialize(item),
                    ConditionExpression="attribute_not_exists(#pk)",
                    ExpressionAttributeNames={"#pk": table_schema.TASK_PK},
                    ReturnValuesOnConditionCheckFailure="ALL_OLD",
                )
        except ConditionFailedError as refused:
            existing = Task.from_item(refused.item) if refused.item else self.get(task.task_id)
            if existing is None:  # pragma: no cover - deleted in between; tasks are never deleted
                raise
            return CreateResult(created=False, task=existing)
        return CreateResult(created=True, task=task)

    def retry(self, task_id: str, *, owner: str | None = None) -> Task:
        """error -> pending for a new run (run + 1, retries 0, errorMessage removed).
        With `owner`, conditional on the task being theirs too: another owner's task raises
        TaskNotFoundError, like an absent one (its status is not revealed)."""
        values: dict[str, Any] = {":zero": 0}
        if owner is not None:
            values[":taskOwner"] = owner
        try:
            attributes = self._transition(
                task_id,
                RETRIED,
                set_clauses=["#run = #run + :one", "#retries = :zero"],
                remove=["#errorMessage", "#leaseOwner", "#leaseExpiresAt", "#leaseState"],
                values=values,
                extra_condition="#owner = :taskOwner" if owner is not None else None,
            )
        except ConditionFailedError as refused:
            if refused.item is None or (
                owner is not None and refused.item.get(table_schema.TASK_OWNER) != owner
            ):
                raise TaskNotFoundError(task_id) from None
            raise InvalidTransitionError(
                task_id, str(refused.item.get("status")), "retry", RETRIED.source.value
            ) from None
        return Task.from_item(attributes)

    def claim(self, task_id: str, run: int, owner: str, lease_seconds: int) -> Claim:
        """Take the processing lease of (task, run) for `owner` (the SQS message id).

        Granted when the task is pending in this run and the lease is free, expired, or `owner`'s
        while it backs off or after it gave it back (the same message returning after a failed
        attempt or an invocation that could not complete). A live lease that
        is running is never shared, not even with another delivery of the same message: SQS can
        deliver one message twice at once (same MessageId), and both must not run the step."""
        now = int(self._clock().timestamp())
        try:
            with translated_errors():
                response = self.client.update_item(
                    TableName=self.table_name,
                    Key=serialize({table_schema.TASK_PK: task_id}),
                    UpdateExpression=(
                        "SET #leaseOwner = :owner, #leaseExpiresAt = :until, #leaseState = :running,"
                        " #version = #version + :one"
                    ),
                    ConditionExpression=(
                        "#status = :pending AND #run = :run AND (attribute_not_exists(#leaseOwner)"
                        " OR #leaseExpiresAt < :now OR (#leaseOwner = :owner AND #leaseState <> :running))"
                    ),
                    ExpressionAttributeNames=_names(
                        "#leaseOwner", "#leaseExpiresAt", "#leaseState", "#version", "#status", "#run"
                    ),
                    ExpressionAttributeValues=serialize(
                        {
                            ":owner": owner,
                            ":until": now + lease_seconds,
                            ":now": now,
                            ":one": 1,
                            ":pending": TaskStatus.PENDING.value,
                            ":run": run,
                            ":running": table_schema.LEASE_RUNNING,
                        }
                    ),
                    ReturnValues="ALL_NEW",
                    ReturnValuesOnConditionCheckFailure="ALL_OLD",
                )
        except ConditionFailedError as refused:
            if refused.item is None:
                return Claim(ClaimOutcome.NOT_FOUND, None)
            found = Task.from_item(refused.item)
            if found.status != TaskStatus.PENDING or found.run != run:
                return Claim(ClaimOutcome.STALE, found)
            return Claim(ClaimOutcome.LEASED, found)
        return Claim(ClaimOutcome.CLAIMED, Task.from_item(deserialize(response["Attributes"])))

    def record_success(self, task_id: str, run: int, owner: str, retries: int) -> bool:
        """pending -> success, if `owner` still holds the lease. False: the lease was lost."""
        try:
            self._transition(
                task_id,
                SUCCEEDED,
                set_clauses=["#retries = :retries"],
                remove=["#errorMessage", "#leaseOwner", "#leaseExpiresAt", "#leaseState"],
                values={":retries": retries, ":run": run, ":owner": owner},
                extra_condition="#run = :run AND #leaseOwner = :owner",
            )
        except ConditionFailedError:
            return False
        return True

    def release(self, task_id: str, run: int, owner: str, hold_seconds: int) -> bool:
        """`owner`'s running lease becomes released for `hold_seconds`, so its own redelivery can
        reclaim it at once (after an invocation that could not complete, e.g. a claim whose
        response was lost). False if `owner` holds no running lease on this run."""
        now = int(self._clock().timestamp())
        try:
            with translated_errors():
                self.client.update_item(
                    TableName=self.table_name,
                    Key=serialize({table_schema.TASK_PK: task_id}),
                    UpdateExpression=(
                        "SET #leaseState = :released, #leaseExpiresAt = :hold, #version = #version + :one"
                    ),
                    ConditionExpression=(
                        "#status = :pending AND #run = :run"
                        " AND #leaseOwner = :owner AND #leaseState = :running"
                    ),
                    ExpressionAttributeNames=_names(
                        "#leaseState", "#leaseExpiresAt", "#version", "#status", "#run", "#leaseOwner"
                    ),
                    ExpressionAttributeValues=serialize(
                        {
                            ":released": table_schema.LEASE_RELEASED,
                            ":running": table_schema.LEASE_RUNNING,
                            ":hold": now + hold_seconds,
                            ":one": 1,
                            ":pending": TaskStatus.PENDING.value,
                            ":run": run,
                            ":owner": owner,
                        }
                    ),
                )
        except ConditionFailedError:
            return False
        return True

    def record_failure(
        self, task_id: str, run: int, owner: str, *, retries: int, error_message: str, hold_seconds: int
    ) -> bool:
        """A failed attempt: set retries and errorMessage (status stays pending), if `owner` still
        holds the lease. The lease is kept for `hold_seconds` more (the backoff plus one
        invocation), so a duplicate message cannot run the step while this one backs off.
        False: the lease was lost."""
        now = int(self._clock().timestamp())
        try:
            self._transition(
                task_id,
                ATTEMPT_FAILED,
                set_clauses=[
                    "#retries = :retries",
                    "#errorMessage = :message",
                    "#leaseExpiresAt = :hold",
                    "#leaseState = :backingOff",
                ],
                values={
                    ":retries": retries,
                    ":message": error_message,
                    ":hold": now + hold_seconds,
                    ":backingOff": table_schema.LEASE_BACKING_OFF,
                    ":run": run,
                    ":owner": owner,
                },
                extra_condition="#run = :run AND #leaseOwner = :owner",
            )
        except ConditionFailedError:
            return False
        return True

    def mark_dead_lettered(self, task_id: str, run: int, default_error: str) -> DeadLettered | None:
        """pending -> error for a message SQS dead-lettered, keeping the last attempt's error.
        None if the task is absent, finished, or in another run (nothing to do)."""
        try:
            attributes = self._transition(
                task_id,
                DEAD_LETTERED,
                set_clauses=["#errorMessage = if_not_exists(#errorMessage, :default)"],
                remove=["#leaseOwner", "#leaseExpiresAt", "#leaseState"],
                values={":default": default_error, ":run": run},
                extra_condition="#run = :run",
            )
        except ConditionFailedError:
            return None
        return DeadLettered(
            task_id=task_id,
            retries=int(attributes["retries"]),
            error_message=attributes.get("errorMessage"),
        )

    def _transition(
        self,
        task_id: str,
        transition: Transition,
        *,
        set_clauses: list[str],
        values: dict[str, Any],
        remove: list[str] | None = None,
        extra_condition: str | None = None,
    ) -> dict[str, Any]:
        """One conditional UpdateItem applying `transition`: the condition is its source status
        (plus `extra_condition`); status, updatedAt and version are always written.
        Raises ConditionFailedError (with the current item) if refused; returns the new item."""
        expression = "SET " + ", ".join(
            ["#status = :target", "#updatedAt = :now", "#version = #version + :one", *set_clauses]
        )
        if remove:
            expression += " REMOVE " + ", ".join(remove)
        condition = "#status = :source"
        if extra_condition:
            condition += f" AND {extra_condition}"
        used = " ".join([expression, condition])
        with translated_errors():
            response = self.client.update_item(
                TableName=self.table_name,
                Key=serialize({table_schema.TASK_PK: task_id}),
                UpdateExpression=expression,
                ConditionExpression=condition,
                ExpressionAttributeNames={name: attr for name, attr in _NAMES.items() if name in used},
                ExpressionAttributeValues=serialize(
                    {
                        ":source": transition.source.value,
                        ":target": transition.target.value,
                        ":now": utc_timestamp(self._clock()),
                        ":one": 1,
                        **values,
                    }
                ),
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        return deserialize(response["Attributes"])


def _names(*placeholders: str) -> dict[str, str]:
    return {placeholder: _NAMES[placeholder] for placeholder in placeholders}


def _index_for(status: TaskStatus | None) -> tuple[str, str, str]:
    """(index name, partition attribute, partition value) of the listing."""
    if status is None:
        return (
            table_schema.TASKS_BY_CREATED_INDEX,
            table_schema.TASKS_BY_CREATED_PK,
            table_schema.LIST_PARTITION_VALUE,
        )
    return table_schema.TASKS_BY_STATUS_INDEX, table_schema.TASKS_BY_STATUS_PK, status.value


def _plain_key(key: dict[str, Any]) -> dict[str, str]:
    """A LastEvaluatedKey (AttributeValues of strings) as {"name": "value"}."""
    return {name: str(value) for name, value in deserialize(key).items()}


def _checked_owner_start_key(start_key: dict[str, str], owner: str) -> dict[str, str]:
    """Reject a start key that is not a key of `owner`'s listing: another owner's (a cursor passed
    on, or forged), another listing's, or damaged. DynamoDB would answer a foreign shape with a
    ValidationException, and another owner's key would position the Query outside the caller's
    partition (it cannot: the key condition names the caller; still, it is not a key we issued)."""
    expected = {table_schema.TASK_PK, table_schema.TASKS_BY_OWNER_PK, table_schema.TASKS_BY_OWNER_SK}
    if set(start_key) != expected:
        raise InvalidCursorError("the cursor belongs to another listing")
    if start_key[table_schema.TASKS_BY_OWNER_PK] != owner:
        raise InvalidCursorError("the cursor belongs to another caller")
    if not _TASK_ID.fullmatch(start_key[table_schema.TASK_PK]) or not _TIMESTAMP_PATTERN.fullmatch(
        start_key[table_schema.TASKS_BY_OWNER_SK]
    ):
        raise InvalidCursorError("the cursor is damaged")
    return start_key


def _checked_start_key(start_key: dict[str, str], status: TaskStatus | None) -> dict[str, str]:
    """Reject a start key that is not a page_key() of this listing (DynamoDB would 400 on it)."""
    _, partition_name, partition_value = _index_for(status)
    expected = {table_schema.TASK_PK, partition_name, table_schema.TASKS_BY_CREATED_SK}
    if set(start_key) != expected or start_key.get(partition_name) != partition_value:
        raise InvalidCursorError("the cursor belongs to another listing (a different status filter?)")
    if not _TASK_ID.fullmatch(start_key[table_schema.TASK_PK]) or not _TIMESTAMP_PATTERN.fullmatch(
        start_key[table_schema.TASKS_BY_CREATED_SK]
    ):
        raise InvalidCursorError("the cursor is damaged")
    return start_key
