"""TaskRepository: every read and write of the TaskTable (keys: taskflow.table_schema).

Every status write is a conditional UpdateItem whose condition is the source status of an allowed
transition (taskflow.domain.task), plus the run and the processing lease where it matters. So a
late or duplicate delivery cannot move a task backwards, and a second delivery of the same message
cannot apply the processing step's outcome twice. A claim or a release changes no index key, so
it writes no index entry.

Owners (stages with `auth: jwt`): every method takes the task's `owner=`, part of its key
(`<owner>#<taskId>`), so a call can only ever reach that owner's tasks, and two owners may use the
same taskId. `owner=None` is the `auth: none` key (the taskId alone).

Listing (`list_page`), always O(page), never a Scan:
* every task, or `status=pending`: one Query per listing shard of the ByCreated index (keys only,
  run in parallel), merged newest first by (createdAt, taskId), then one BatchGetItem for the page.
  `pending` filters the fetched items: one request evaluates at most `max_filter_evaluated` of them,
  so a sparse status can give a short, even empty, page that still says where to resume
  (`TaskPage.resume_key`).
* `status=success|error`: one Query per shard of the sparse ByFinished index (projection ALL),
  merged most recently finished first by (finishedAt, taskId).
A listing resumes at a position (a sort value and a taskId, `page_key`), checked on the way in.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any, Final, NamedTuple

from taskflow import table_schema
from taskflow.clients import aws
from taskflow.domain.clock import Clock, utc_now, utc_timestamp
from taskflow.domain.errors import InvalidTransitionError, TaskLeasedError, TaskNotFoundError
from taskflow.domain.status import (
    ATTEMPT_FAILED,
    DEAD_LETTERED,
    RETRIED,
    SUCCEEDED,
    TaskStatus,
    Transition,
)
from taskflow.domain.task import InvalidTaskItemError, Task
from taskflow.observability import logger
from taskflow.repositories import index_pages
from taskflow.repositories.dynamodb import (
    ConditionFailedError,
    deserialize,
    serialize,
    translated_errors,
)

# A `pending` listing evaluates (reads with BatchGetItem) at most this many tasks per request.
MAX_FILTER_EVALUATED: Final = 500
# BatchGetItem takes at most 100 keys; unprocessed keys (throttling) are asked again this often.
_BATCH_GET_KEYS: Final = 100
_BATCH_GET_ROUNDS: Final = 5
# The listings a cursor can belong to: "all" or a status; finished statuses list from ByFinished.
_ALL: Final = "all"
_FINISHED: Final = (TaskStatus.SUCCESS, TaskStatus.ERROR)

# Attribute names used in expressions (status and run are DynamoDB reserved words).
_NAMES: Final = {
    "#pk": table_schema.TASK_PK,
    "#status": "status",
    "#run": "run",
    "#retries": "retries",
    "#errorMessage": "errorMessage",
    "#updatedAt": "updatedAt",
    "#version": "version",
    "#leaseOwner": "leaseOwner",
    "#leaseExpiresAt": "leaseExpiresAt",
    "#leaseState": "leaseState",
    "#leaseDelivery": "leaseDelivery",
    "#finishedKey": table_schema.TASKS_BY_FINISHED_PK,
    "#finishedAt": table_schema.TASKS_BY_FINISHED_SK,
}
_LEASE: Final = ["#leaseOwner", "#leaseExpiresAt", "#leaseState", "#leaseDelivery"]
# The caller holds the lease: its message (`holder`), in this very delivery (`delivery`, a token of
# one receive: SQS can deliver one message twice at once, and only the delivery that claimed may
# commit or release).
_HELD: Final = "#leaseOwner = :holder AND #leaseDelivery = :delivery"


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
    created: bool  # False: a task with this key already existed (it is returned unchanged)
    task: Task


@dataclass(frozen=True)
class TaskPage:
    tasks: list[Task]
    has_more: bool  # the listing may hold more tasks after the last one returned
    # Where the listing resumes when that is not right after the last task: a `pending` listing
    # cut by its read bound stops past the last match (its page may even be empty). None: resume
    # after the last task (`page_key`).
    resume_key: dict[str, str] | None = None


@dataclass(frozen=True)
class DeadLettered:
    """What mark_dead_lettered wrote: all the DLQ consumer needs, so it builds no Task."""

    task_id: str
    retries: int
    error_message: str | None


class _Write(NamedTuple):
    """What `_update` did: applied, with the new item; or refused, with the current item (None:
    no such task). A NamedTuple: about a tenth of a dataclass's cost at import (cold start)."""

    applied: bool
    item: dict[str, Any] | None


class TaskRepository(aws.ClientUser):
    service_name = "dynamodb"

    def __init__(
        self,
        table_name: str,
        client: Any | None = None,
        clock: Clock = utc_now,
        *,
        list_shards: int = table_schema.DEFAULT_LIST_SHARDS,
        max_filter_evaluated: int = MAX_FILTER_EVALUATED,
    ) -> None:
        if list_shards < 1 or max_filter_evaluated < 1:
            raise ValueError("list_shards and max_filter_evaluated must be at least 1")
        super().__init__(client)
        self.table_name = table_name
        self._clock = clock
        self._shards = list_shards
        self._max_filter_evaluated = max_filter_evaluated

    def now(self) -> datetime:
        """The repository's clock (lease times are in its epoch seconds)."""
        return self._clock()

    # ----------------------------------------------------------------------------- reads

    def get(self, task_id: str, *, owner: str | None = None) -> Task | None:
        """The task, or None if `owner` has no task with this id."""
        with translated_errors():
            response = self.client.get_item(
                TableName=self.table_name, Key=_key(task_id, owner), ConsistentRead=True
            )
        item = response.get("Item")
        return Task.from_item(deserialize(item)) if item else None

    def list_page(
        self,
        *,
        limit: int,
        status: TaskStatus | None = None,
        start_key: dict[str, str] | None = None,
        owner: str | None = None,
    ) -> TaskPage:
        """Up to `limit` of `owner`'s tasks (see the module docstring), after `start_key` (a
        `page_key()` of the last task of the previous page, or a page's `resume_key`). A start key
        of another listing or owner, or a damaged one, raises InvalidCursorError."""
        scope, listing = table_schema.scope_of(owner), _listing(status)
        before = None
        if start_key is not None:
            before = index_pages.checked_position(start_key, listing=listing, scope=scope)
        finished = status in _FINISHED
        index = index_pages.BY_FINISHED if finished else index_pages.BY_CREATED
        readers = index_pages.open_readers(
            self.client,
            self.table_name,
            index,
            self._partitions(scope, status),
            wanted=limit if status is None or finished else max(limit, self._max_filter_evaluated),
            before=before,
        )
        entries = index_pages.merged(readers)
        if status is None or finished:
            taken = index_pages.take(entries, limit)
            tasks = _readable(taken) if finished else self._batch_get(taken)
            has_more, resume = index_pages.any_left(readers), None
            if has_more and len(tasks) < len(taken):  # an unreadable item skipped: go on after it
                resume = index_pages.position_after(taken[-1], index, listing=listing, scope=scope)
            return TaskPage(tasks=tasks, has_more=has_more, resume_key=resume)
        found: list[Task] = []
        evaluated = 0
        while len(found) < limit:
            # Ask for what is missing, at least 10 (a sparse status), within the read bound.
            chunk = index_pages.take(
                entries, min(max(limit - len(found), 10), self._max_filter_evaluated - evaluated)
            )
            if not chunk:
                return TaskPage(tasks=found, has_more=False)
            evaluated += len(chunk)
            found.extend(task for task in self._batch_get(chunk) if task.status == status)
            if evaluated >= self._max_filter_evaluated and len(found) < limit:
                if not index_pages.any_left(readers):
                    return TaskPage(tasks=found, has_more=False)
                resume = index_pages.position_after(chunk[-1], index, listing=listing, scope=scope)
                return TaskPage(tasks=found, has_more=True, resume_key=resume)
        return TaskPage(tasks=found[:limit], has_more=True)

    def _partitions(self, scope: str, status: TaskStatus | None) -> list[str]:
        """The index partitions of `scope`'s listing: ByFinished's shards for a final status,
        ByCreated's otherwise."""
        if status in _FINISHED:
            return [table_schema.finished_key(scope, status.value, s) for s in range(self._shards)]
        return [table_schema.list_key(scope, s) for s in range(self._shards)]

    def changes_since(self, after: str, *, owner: str | None = None, limit: int) -> list[Task] | None:
        """`owner`'s tasks created or finished after `after` (a stored timestamp), as they are now,
        oldest change first; None when more than `limit` changed (the caller lists again instead).
        Bounded: one Query per shard of ByCreated and of ByFinished's two statuses, each for at most
        limit + 1 entries, then one BatchGetItem for the created ones not among the finished."""
        scope = table_schema.scope_of(owner)
        read = functools.partial(
            index_pages.entries_after, self.client, self.table_name, after=after, limit=limit
        )
        created = read(index_pages.BY_CREATED, self._partitions(scope, None))
        finished = read(index_pages.BY_FINISHED, [p for s in _FINISHED for p in self._partitions(scope, s)])
        if created is None or finished is None:
            return None
        tasks = {task.task_id: task for task in _readable(finished)}
        fetch = [entry for entry in created if index_pages.task_id_of(entry) not in tasks]
        if len(tasks) + len(fetch) > limit:
            return None
        tasks.update((task.task_id, task) for task in self._batch_get(fetch))
        return sorted(tasks.values(), key=lambda task: (task.updated_at, task.task_id))

    def _batch_get(self, entries: list[dict[str, Any]]) -> list[Task]:
        """The tasks of index entries, in their order (an entry whose item is gone is skipped)."""
        keys = [entry[table_schema.TASK_PK] for entry in entries]
        found: dict[str, dict[str, Any]] = {}
        for first in range(0, len(keys), _BATCH_GET_KEYS):
            request: dict[str, Any] = {
                self.table_name: {
                    "Keys": [
                        serialize({table_schema.TASK_PK: key})
                        for key in keys[first : first + _BATCH_GET_KEYS]
                    ]
                }
            }
            for _ in range(_BATCH_GET_ROUNDS):
                with translated_errors():
                    response = self.client.batch_get_item(RequestItems=request)
                for item in response.get("Responses", {}).get(self.table_name, []):
                    plain = deserialize(item)
                    found[plain[table_schema.TASK_PK]] = plain
                request = response.get("UnprocessedKeys") or {}
                if not request:
                    break
        return _readable(found[key] for key in keys if key in found)

    def page_key(
        self, task: Task, status: TaskStatus | None = None, *, owner: str | None = None
    ) -> dict[str, str]:
        """The position to resume a listing after `task` (what `list_page` takes as `start_key`)."""
        at = task.finished_at if status in _FINISHED else task.created_at
        return index_pages.position(
            at or "", task.task_id, listing=_listing(status), scope=table_schema.scope_of(owner)
        )

    # ----------------------------------------------------------------------------- writes

    def stored_item(self, task: Task) -> dict[str, Any]:
        """The table item of `task` with its keys: the table key, its ByCreated listing key, and,
        when it is finished, its ByFinished key (finished at `finished_at`, else `updated_at`)."""
        item = task.to_item()
        scope, shard = table_schema.scope_of(task.owner), self._shard(task.task_id)
        item[table_schema.TASK_PK] = table_schema.task_key(task.task_id, task.owner)
        item[table_schema.TASKS_BY_CREATED_PK] = table_schema.list_key(scope, shard)
        if task.status in _FINISHED:
            item[table_schema.TASKS_BY_FINISHED_PK] = table_schema.finished_key(
                scope, task.status.value, shard
            )
            item[table_schema.TASKS_BY_FINISHED_SK] = task.finished_at or task.updated_at
        return item

    def create(self, task: Task) -> CreateResult:
        """Insert `task` (as `stored_item`) unless its owner already has a task with this id; then
        return that task unchanged."""
        item = self.stored_item(task)
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
            existing = (
                Task.from_item(refused.item) if refused.item else self.get(task.task_id, owner=task.owner)
            )
            if existing is None:  # pragma: no cover - deleted in between; tasks are never deleted
                raise
            return CreateResult(created=False, task=existing)
        return CreateResult(created=True, task=task)

    def retry(self, task_id: str, *, owner: str | None = None) -> Task:
        """error -> pending for a new run (run + 1, retries 0, errorMessage removed); the task
        leaves ByFinished. Raises TaskNotFoundError or InvalidTransitionError."""
        write = self._update(
            task_id,
            owner,
            transition=RETRIED,
            set_clauses=["#run = #run + :one", "#retries = :zero"],
            remove=["#errorMessage"],
            values={":zero": 0},
        )
        if write.item is None:
            raise TaskNotFoundError(task_id)
        if not write.applied:
            raise InvalidTransitionError(
                task_id, str(write.item.get("status")), "retry", RETRIED.source.value
            )
        return Task.from_item(write.item)

    def claim(
        self,
        task_id: str,
        run: int,
        holder: str,
        lease_seconds: int,
        *,
        delivery: str,
        owner: str | None = None,
    ) -> Claim:
        """Take the processing lease of (task, run) for `holder` (the SQS message id) in `delivery`
        (this receive of it: the token its commit or release must show).

        Granted when the task is pending in this run and the lease is free, expired, or `holder`'s
        while it backs off or after it gave it back (the same message returning after a failed
        attempt or an invocation that could not complete). A live lease that is running is never
        shared, not even with another delivery of the same message: SQS can deliver one message
        twice at once (same MessageId), and both must not run the step."""
        now = self._epoch()
        write = self._update(
            task_id,
            owner,
            run=run,
            set_clauses=[
                "#leaseOwner = :holder",
                "#leaseExpiresAt = :until",
                "#leaseState = :running",
                "#leaseDelivery = :delivery",
            ],
            condition=(
                "(attribute_not_exists(#leaseOwner) OR #leaseExpiresAt < :now"
                " OR (#leaseOwner = :holder AND #leaseState <> :running))"
            ),
            values={
                ":holder": holder,
                ":delivery": delivery,
                ":until": now + lease_seconds,
                ":now": now,
                ":running": table_schema.LEASE_RUNNING,
            },
        )
        if write.item is None:
            return Claim(ClaimOutcome.NOT_FOUND, None)
        found = Task.from_item(write.item)
        if write.applied:
            return Claim(ClaimOutcome.CLAIMED, found)
        if found.status != TaskStatus.PENDING or found.run != run:
            return Claim(ClaimOutcome.STALE, found)
        return Claim(ClaimOutcome.LEASED, found)

    def record_success(
        self, task_id: str, run: int, holder: str, retries: int, *, delivery: str, owner: str | None = None
    ) -> bool:
        """pending -> success, if `holder` still holds the lease from `delivery`'s claim (the task
        enters ByFinished). False: the lease was lost."""
        return self._update(
            task_id,
            owner,
            transition=SUCCEEDED,
            run=run,
            condition=_HELD,
            set_clauses=["#retries = :retries"],
            remove=["#errorMessage"],
            values={":retries": retries, ":holder": holder, ":delivery": delivery},
        ).applied

    def release(
        self,
        task_id: str,
        run: int,
        holder: str,
        hold_seconds: int,
        *,
        delivery: str,
        owner: str | None = None,
    ) -> bool:
        """`holder`'s running lease from `delivery`'s claim becomes released for `hold_seconds`, so
        its own redelivery can reclaim it at once (after an invocation that could not complete,
        e.g. a claim whose response was lost). False if this delivery holds no running lease on
        this run: another delivery of the same message that is running keeps its lease."""
        return self._update(
            task_id,
            owner,
            run=run,
            condition=f"{_HELD} AND #leaseState = :running",
            set_clauses=["#leaseState = :released", "#leaseExpiresAt = :hold"],
            values={
                ":released": table_schema.LEASE_RELEASED,
                ":running": table_schema.LEASE_RUNNING,
                ":hold": self._epoch() + hold_seconds,
                ":holder": holder,
                ":delivery": delivery,
            },
        ).applied

    def record_failure(
        self,
        task_id: str,
        run: int,
        holder: str,
        *,
        retries: int,
        error_message: str,
        hold_seconds: int,
        delivery: str,
        owner: str | None = None,
    ) -> bool:
        """A failed attempt: set retries and errorMessage (status stays pending), if `holder` still
        holds the lease. The lease is kept for `hold_seconds` more (the backoff plus one
        invocation), so a duplicate message cannot run the step while this one backs off.
        False: the lease was lost."""
        return self._update(
            task_id,
            owner,
            transition=ATTEMPT_FAILED,
            run=run,
            condition=_HELD,
            set_clauses=[
                "#retries = :retries",
                "#errorMessage = :message",
                "#leaseExpiresAt = :hold",
                "#leaseState = :backingOff",
            ],
            values={
                ":retries": retries,
                ":message": error_message,
                ":hold": self._epoch() + hold_seconds,
                ":backingOff": table_schema.LEASE_BACKING_OFF,
                ":holder": holder,
                ":delivery": delivery,
            },
        ).applied

    def mark_dead_lettered(
        self, task_id: str, run: int, default_error: str, *, holder: str, owner: str | None = None
    ) -> DeadLettered | None:
        """pending -> error for `holder`, a message SQS dead-lettered, keeping the last attempt's
        error (the task enters ByFinished). None if the task is absent, finished, or in another
        run. Raises TaskLeasedError while another message holds a live lease on this run: that
        delivery may still succeed, or fail and dead-letter itself (a duplicate message used up
        its receives while the lease holder was running or backing off)."""
        write = self._update(
            task_id,
            owner,
            transition=DEAD_LETTERED,
            run=run,
            condition=(
                "(attribute_not_exists(#leaseOwner) OR #leaseExpiresAt < :epoch OR #leaseOwner = :holder)"
            ),
            set_clauses=["#errorMessage = if_not_exists(#errorMessage, :default)"],
            values={":default": default_error, ":holder": holder, ":epoch": self._epoch()},
        )
        if not write.applied or write.item is None:
            found = write.item
            if found and found.get("status") == TaskStatus.PENDING.value and found.get("run") == run:
                raise TaskLeasedError(task_id, found.get("leaseOwner"), found.get("leaseExpiresAt"))
            return None
        return DeadLettered(
            task_id=task_id, retries=int(write.item["retries"]), error_message=write.item.get("errorMessage")
        )

    def _shard(self, task_id: str) -> int:
        return table_schema.shard_of(task_id, self._shards)

    def _epoch(self) -> int:
        """Now in whole epoch seconds: the unit of leaseExpiresAt."""
        return int(self._clock().timestamp())

    def _update(
        self,
        task_id: str,
        owner: str | None,
        *,
        set_clauses: list[str],
        values: dict[str, Any],
        transition: Transition | None = None,
        run: int | None = None,
        condition: str | None = None,
        remove: list[str] | None = None,
    ) -> _Write:
        """The one UpdateItem builder: a conditional update of one task that bumps its version.

        The condition: the task is in the transition's source status (pending without one), in
        `run` when given, and `condition`. A transition also writes status and updatedAt (:now);
        one that changes the status ends the processing lease; one into a final status enters
        ByFinished (finishedAt = updatedAt), one out of it leaves ByFinished."""
        source = transition.source if transition else TaskStatus.PENDING
        conditions = ["#status = :source"]
        sets = ["#version = #version + :one", *set_clauses]
        removes = remove or []
        values = {**values, ":source": source.value, ":one": 1}
        if run is not None:
            conditions.append("#run = :run")
            values[":run"] = run
        if condition:
            conditions.append(condition)
        if transition is not None:
            sets = ["#status = :target", "#updatedAt = :now", *sets]
            values.update({":target": transition.target.value, ":now": utc_timestamp(self._clock())})
            if transition.target != source:
                removes = [*removes, *_LEASE]
            if transition.target in _FINISHED:
                sets += ["#finishedKey = :finishedKey", "#finishedAt = :now"]
                values[":finishedKey"] = table_schema.finished_key(
                    table_schema.scope_of(owner), transition.target.value, self._shard(task_id)
                )
            if source in _FINISHED:
                removes = [*removes, "#finishedKey", "#finishedAt"]
        expression = "SET " + ", ".join(sets) + (" REMOVE " + ", ".join(removes) if removes else "")
        condition_expression = " AND ".join(conditions)
        used = f"{expression} {condition_expression}"
        try:
            with translated_errors():
                response = self.client.update_item(
                    TableName=self.table_name,
                    Key=_key(task_id, owner),
                    UpdateExpression=expression,
                    ConditionExpression=condition_expression,
                    ExpressionAttributeNames={name: attr for name, attr in _NAMES.items() if name in used},
                    ExpressionAttributeValues=serialize(values),
                    ReturnValues="ALL_NEW",
                    ReturnValuesOnConditionCheckFailure="ALL_OLD",
                )
        except ConditionFailedError as refused:
            return _Write(applied=False, item=refused.item)
        return _Write(applied=True, item=deserialize(response["Attributes"]))


def _listing(status: TaskStatus | None) -> str:
    """The listing a position belongs to: "all", or the status filtered on."""
    return status.value if status is not None else _ALL


def _key(task_id: str, owner: str | None) -> dict[str, Any]:
    return serialize({table_schema.TASK_PK: table_schema.task_key(task_id, owner)})


def _readable(items: Iterable[dict[str, Any]]) -> list[Task]:
    """The tasks of items read for a listing or a resume. An item that is not a task (edited by
    hand) is skipped and logged, so it cannot take every listing that reaches it down with it;
    reading it by id still fails (a 500 naming the request)."""
    tasks = []
    for item in items:
        try:
            tasks.append(Task.from_item(item))
        except InvalidTaskItemError as error:
            logger.error(
                "unreadable task item skipped",
                extra={"key": str(item.get(table_schema.TASK_PK))[:200], "error": str(error)},
            )
    return tasks
