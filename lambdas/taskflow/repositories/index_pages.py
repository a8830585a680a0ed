"""Pages of a write-sharded index: one Query per shard, merged newest first.

A listing index partition is `<scope>#<shard>` (taskflow.table_schema), so one scope's entries are
spread over `listShards` partitions. A page reads each partition newest first (the first reads in
parallel), merges them by (sort value, taskId), and stops once it has what it needs: O(page),
whatever the table holds. A listing resumes at a *position*, the (sort value, taskId) of the last
entry taken: each partition is queried with `sort <= value` and the entries not strictly before
the position are dropped, so ties on the sort value are neither skipped nor repeated.
"""

from __future__ import annotations

import math
import re
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Final

from taskflow import table_schema
from taskflow.domain.limits import TASK_ID_PATTERN
from taskflow.errors import InvalidCursorError
from taskflow.repositories.dynamodb import deserialize, serialize, translated_errors

_TIMESTAMP_PATTERN: Final = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")
_TASK_ID: Final = re.compile(TASK_ID_PATTERN)
_POSITION_FIELDS: Final = frozenset({"at", "taskId", "listing", "scope"})


@dataclass(frozen=True)
class ShardedIndex:
    name: str
    partition: str  # attribute of the partition key
    sort: str  # attribute of the sort key


BY_CREATED: Final = ShardedIndex(
    table_schema.TASKS_BY_CREATED_INDEX, table_schema.TASKS_BY_CREATED_PK, table_schema.TASKS_BY_CREATED_SK
)
BY_FINISHED: Final = ShardedIndex(
    table_schema.TASKS_BY_FINISHED_INDEX, table_schema.TASKS_BY_FINISHED_PK, table_schema.TASKS_BY_FINISHED_SK
)


class ShardReader:
    """One index partition, read a page at a time: newest first strictly before a position, or
    (with `after`) oldest first after a sort value. The one place that Queries an index."""

    def __init__(
        self,
        client: Any,
        table_name: str,
        index: ShardedIndex,
        partition: str,
        *,
        page_size: int,
        before: tuple[str, str] | None = None,
        after: str | None = None,
    ) -> None:
        self._client = client
        self._sort = index.sort
        self._before = before
        names = {"#p": index.partition}
        values = {":p": partition}
        condition = "#p = :p"
        if before is not None:
            names["#s"], values[":at"] = index.sort, before[0]
            condition += " AND #s <= :at"
        if after is not None:
            names["#s"], values[":after"] = index.sort, after
            condition += " AND #s > :after"
        self._query: dict[str, Any] = {
            "TableName": table_name,
            "IndexName": index.name,
            "KeyConditionExpression": condition,
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": serialize(values),
            "Limit": page_size,
        }
        if after is None:
            self._query["ScanIndexForward"] = False
        self._buffer: deque[dict[str, Any]] = deque()
        self.more = True  # the partition may hold entries after those read

    def fetch(self) -> None:
        """Read the partition's next page into the buffer."""
        with translated_errors():
            response = self._client.query(**self._query)
        for item in response.get("Items", []):
            entry = deserialize(item)
            # The key condition is `sort <= at`: drop the position's own entry and its ties before it.
            if self._before is None or (entry[self._sort], task_id_of(entry)) < self._before:
                self._buffer.append(entry)
        self.more = bool(response.get("LastEvaluatedKey"))
        if self.more:
            self._query["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def peek(self) -> tuple[str, str] | None:
        """(sort value, taskId) of the next entry, reading on as needed; None when done."""
        while not self._buffer and self.more:
            self.fetch()
        return (self._buffer[0][self._sort], task_id_of(self._buffer[0])) if self._buffer else None

    def pop(self) -> dict[str, Any]:
        return self._buffer.popleft()

    @property
    def buffered(self) -> list[dict[str, Any]]:
        """The entries read and not taken yet."""
        return list(self._buffer)

    @property
    def left(self) -> bool:
        """The partition may hold entries not taken yet."""
        return bool(self._buffer) or self.more


def open_readers(
    client: Any,
    table_name: str,
    index: ShardedIndex,
    partitions: list[str],
    *,
    wanted: int,
    before: tuple[str, str] | None,
) -> list[ShardReader]:
    """A reader per partition, each with its first page read (in parallel) for `wanted` entries."""
    size = page_size(wanted, len(partitions))
    return _first_pages(
        [
            ShardReader(client, table_name, index, partition, page_size=size, before=before)
            for partition in partitions
        ]
    )


def _first_pages(readers: list[ShardReader]) -> list[ShardReader]:
    """The readers, each with its first page read: one Query per partition, in parallel."""
    if len(readers) == 1:
        readers[0].fetch()
        return readers
    from concurrent.futures import ThreadPoolExecutor  # noqa: PLC0415 - only listings use threads

    pool = ThreadPoolExecutor(max_workers=len(readers))
    try:
        list(pool.map(ShardReader.fetch, readers))
    finally:
        # Never wait here for reads still running: when the invocation's deadline interrupts the
        # wait (taskflow.deadline), the 503 must go out now, not after a read's 5 s timeout, which
        # would let Lambda kill the function first (a bare 500). Such reads end on their own.
        pool.shutdown(wait=False, cancel_futures=True)
    return readers


def merged(readers: list[ShardReader]) -> Iterator[dict[str, Any]]:
    """The readers' entries merged newest first by (sort value, taskId), read lazily."""
    while True:
        heads = [(head, reader) for reader in readers if (head := reader.peek()) is not None]
        if not heads:
            return
        yield max(heads, key=lambda pair: pair[0])[1].pop()


def take(entries: Iterator[dict[str, Any]], count: int) -> list[dict[str, Any]]:
    """The next `count` entries (fewer at the end); reads no further than needed."""
    return [entry for _, entry in zip(range(count), entries, strict=False)]


def any_left(readers: list[ShardReader]) -> bool:
    return any(reader.left for reader in readers)


def page_size(wanted: int, shards: int) -> int:
    """Entries asked of each shard for `wanted` merged: twice a fair share plus a margin, so one
    Query per shard nearly always serves the page (a shard that runs short is read again)."""
    return max(1, min(wanted, 2 * math.ceil(wanted / shards) + 2))


def task_id_of(entry: dict[str, Any]) -> str:
    """The taskId of an item, or of a keys-only entry (the taskId ends the table key)."""
    task_id = entry.get(table_schema.TASK_ID)
    if isinstance(task_id, str):
        return task_id
    return str(entry[table_schema.TASK_PK]).rsplit(table_schema.KEY_SEPARATOR, 1)[-1]


def position(at: str, task_id: str, *, listing: str, scope: str) -> dict[str, str]:
    """Where a listing resumes: after (at, taskId) of `listing` ("all" or a status) in `scope`."""
    return {"at": at, "taskId": task_id, "listing": listing, "scope": scope}


def position_after(entry: dict[str, Any], index: ShardedIndex, *, listing: str, scope: str) -> dict[str, str]:
    """The `position` right after an entry (or item) read from `index`."""
    return position(entry[index.sort], task_id_of(entry), listing=listing, scope=scope)


def checked_position(start_key: dict[str, str], *, listing: str, scope: str) -> tuple[str, str]:
    """(at, taskId) of a `position` made for this listing and scope. Another listing's (a
    different status filter), another owner's, or a damaged one raises InvalidCursorError."""
    if set(start_key) != _POSITION_FIELDS:
        raise InvalidCursorError("the cursor is not valid")
    if start_key["listing"] != listing:
        raise InvalidCursorError("the cursor belongs to another listing (a different status filter?)")
    if start_key["scope"] != scope:
        raise InvalidCursorError("the cursor belongs to another caller")
    if not _TASK_ID.fullmatch(start_key["taskId"]) or not _TIMESTAMP_PATTERN.fullmatch(start_key["at"]):
        raise InvalidCursorError("the cursor is damaged")
    return start_key["at"], start_key["taskId"]


def entries_after(
    client: Any, table_name: str, index: ShardedIndex, partitions: list[str], *, after: str, limit: int
) -> list[dict[str, Any]] | None:
    """Every entry of the partitions whose sort value is after `after`, oldest first; None when
    there are more than `limit` of them (one Query per partition, in parallel, each asked for
    limit + 1: the read is bounded whatever the gap holds)."""
    readers = _first_pages(
        [
            ShardReader(client, table_name, index, partition, page_size=limit + 1, after=after)
            for partition in partitions
        ]
    )
    entries = [entry for reader in readers for entry in reader.buffered]
    # A partition with more to read held more than fit in its page (Limit, or 1 MB): too many either way.
    if any(reader.more for reader in readers) or len(entries) > limit:
        return None
    return sorted(entries, key=lambda entry: (entry[index.sort], task_id_of(entry)))
