"""The embedded AWS's durable state, inside the moto process: restore it, then journal every change.

`restore(store, region)` loads what local/state/store.py holds (docs/local-stack.md, "What is
kept") into moto's freshly provisioned tables and queues, stream records with their sequence
numbers so checkpoints stay valid.

`Journal` then records each change in the request's unit of work:

* DynamoDB: local/metering/meter.py's middleware names the items a write touches and reads them
  after the write, under the DynamoDB lock; `items_written` adds those images, and a hook on
  moto's StreamShard.add adds each new stream record, to the request's unit, which is handed to
  the writer while the lock is still held (so in the order the writes happened).
* SQS: local/emulator/patches.py tells the journal about every message it adds, receives, moves,
  re-times or deletes (`changed` / `removed`), under the queue's lock, where it gets a version
  number: units of concurrent requests may reach the writer in any order, a message's row only
  takes a newer version, and a deleted message leaves a tombstone until the next restore.

A commit that fails (disk full, I/O error) stops the process: memory would no longer match the
disk, and the stack restarts the emulator from what is on disk.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import os
import sys
import threading
from collections import defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from moto.core.models import DEFAULT_ACCOUNT_ID
from moto.core.utils import unix_time_millis
from moto.dynamodb.models import dynamodb_backends
from moto.dynamodb.models.dynamo_type import DynamoType, Item
from moto.dynamodb.models.table import StreamShard
from moto.sqs import models as sqs_models

from local.emulator import patches
from local.metering.dynamodb_cost import Key
from local.state.store import StateStore, refused, sequence_key


def _encode(value: Any) -> Any:
    if isinstance(value, bytes):
        return {"$base64": base64.b64encode(value).decode()}
    if isinstance(value, set):
        return sorted(value)
    return patches.json_default(value)


def _decode(value: dict[str, Any]) -> Any:
    return base64.b64decode(value["$base64"]) if set(value) == {"$base64"} else value


def _dumps(value: Any) -> str:
    return json.dumps(value, default=_encode, separators=(",", ":"))


def _loads(text: str) -> Any:
    return json.loads(text, object_hook=_decode)


@dataclass
class _Unit:
    items: list[tuple[str, str, str | None]] = field(default_factory=list)
    records: list[tuple[str, str, str]] = field(default_factory=list)
    messages: list[tuple[str, int, str | None, str | None]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.items or self.records or self.messages)

    def extend(self, other: _Unit) -> None:
        self.items += other.items
        self.records += other.records
        self.messages += other.messages


class Journal(patches.MessageObserver):
    """Collects each request's changes (per thread); a writer thread commits every unit handed over
    at once, in one transaction and one fsync, while requests go on. Before a response leaves,
    `settle()` waits until every unit handed over so far is on disk: nothing a response shows,
    written or read, can be lost by a crash after it."""

    def __init__(self, store: StateStore) -> None:
        self._store = store
        self._local = threading.local()
        self._versions = itertools.count(store.max_message_version() + 1)
        self._changed = threading.Condition()
        self._waiting = _Unit()  # handed over, not yet written
        self._handed = 0  # units handed over so far
        self._written = 0  # of them, on disk
        self.commits = 0
        threading.Thread(target=self._write_forever, name="journal-writer", daemon=True).start()

    @contextlib.contextmanager
    def unit(self) -> Iterator[None]:
        """Everything recorded inside (on this thread) is handed over once, when the outermost
        unit ends, also if the request failed halfway (what moto changed before that is real)."""
        if getattr(self._local, "unit", None) is not None:
            yield
            return
        unit = self._local.unit = _Unit()
        try:
            yield
        finally:
            self._local.unit = None
            if unit:
                with self._changed:
                    self._waiting.extend(unit)
                    self._handed += 1
                    self._changed.notify_all()

    def settle(self) -> None:
        """Return once everything handed over until now is on disk."""
        with self._changed:
            target = self._handed
            while self._written < target:
                self._changed.wait()

    def _write_forever(self) -> None:
        while True:
            with self._changed:
                while not self._waiting:
                    self._changed.wait()
                batch, self._waiting, last = self._waiting, _Unit(), self._handed
            try:
                self._store.write(items=batch.items, records=batch.records, messages=batch.messages)
            except Exception as error:  # the disk no longer matches memory: stop, be restarted from disk
                print(
                    f"MOTO_STATE_FAILED cannot write {self._store.path}: {error!r}",
                    file=sys.stderr,
                    flush=True,
                )
                os._exit(70)
            with self._changed:
                self._written = last
                self.commits += 1
                self._changed.notify_all()

    @contextlib.contextmanager
    def _current(self) -> Iterator[_Unit]:
        """This request's unit (a change outside a request gets a unit of its own, handed over)."""
        unit: _Unit | None = getattr(self._local, "unit", None)
        if unit is not None:
            yield unit
            return
        with self.unit():
            yield self._local.unit

    # --- DynamoDB ----------------------------------------------------------------------------

    def items_written(self, after: Mapping[Key, dict[str, Any] | None]) -> None:
        """The images, after a successful write, of the items it named (None: no such item)."""
        with self._current() as unit:
            unit.items += [
                (table, key, None if item is None else _dumps(item)) for (table, key), item in after.items()
            ]

    def stream_record(self, table: str, record: dict[str, Any]) -> None:
        record_key = sequence_key(record["dynamodb"]["SequenceNumber"])
        with self._current() as unit:
            unit.records.append((table, record_key, _dumps(record)))

    # --- SQS (the message observer of local/emulator/patches.py) ---------------------------

    def changed(self, queue: Any, message: Any) -> None:
        state = {name: value for name, value in vars(message).items() if not name.startswith("_local")}
        self._message(message.id, queue.name, _dumps(state))

    def removed(self, queue: Any, message: Any) -> None:
        self._message(message.id, None, None)

    def _message(self, message_id: str, queue: str | None, state: str | None) -> None:
        with self._current() as unit:
            unit.messages.append((message_id, next(self._versions), queue, state))


class _RestoredRecord:
    """A stream record read back from the state (what moto's StreamShard.get needs of one)."""

    def __init__(self, record: dict[str, Any]) -> None:
        self.record = record

    def to_json(self) -> dict[str, Any]:
        return self.record


@dataclass
class RestoreReport:
    items: dict[str, int] = field(default_factory=dict)  # table -> items
    stream_records: dict[str, int] = field(default_factory=dict)  # table -> records not yet finished
    messages: dict[str, dict[str, int]] = field(default_factory=dict)  # queue -> {"messages", "inFlight"}
    notes: list[str] = field(default_factory=list)


def restore(store: StateStore, region: str) -> RestoreReport:
    """Load the state into moto's provisioned tables and queues (before the server serves); a row
    it cannot read (a damaged file that SQLite's own checks pass) is a StateError, the way out
    included."""
    try:
        return _restore(store, region)
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        reason = f"The local stack's state file {store.path} has a row it cannot read"
        raise refused(store.path, f"{reason} ({type(error).__name__}: {error})") from None


def _restore(store: StateStore, region: str) -> RestoreReport:
    report = RestoreReport()
    trims: dict[str, str | None] = {}
    tables = dynamodb_backends[DEFAULT_ACCOUNT_ID][region].tables
    stored_tables = store.tables()
    checkpoints: dict[str, list[str]] = defaultdict(list)
    for table_name, sequence in store.checkpoints().values():
        checkpoints[table_name].append(sequence)
    for name, table in tables.items():
        label = stored_tables.get(name, (None, None))[1]
        if name not in stored_tables or (table.stream_shard is not None and label is None):
            store.set_table(name, table.schema, table.latest_stream_label)
        elif table.stream_shard is not None:
            table.latest_stream_label = label  # the same stream ARN as before the restart
        report.items[name] = _restore_items(store, table)
        if table.stream_shard is not None:
            restored, trims[name] = _restore_stream(store, table, checkpoints.get(name, []))
            report.stream_records[name] = restored
    report.notes += [
        f"table {name}: {count} stored items kept on disk, not loaded (the template has no such table)"
        for name, count in store.item_counts().items()
        if name not in tables
    ]
    report.messages = _restore_messages(store, region, report.notes)
    for name, after in trims.items():  # every row read: now the state may change
        if after is not None:
            store.trim_stream(name, after)
    store.forget_deleted_messages()
    store.checkpoint_wal()  # the tables rows in the main file, where the stack checks them
    return report


def _restore_items(store: StateStore, table: Any) -> int:
    count = 0
    for text in store.items(table.name):
        attributes = _loads(text)
        if (
            table.hash_key_attr not in attributes
            or (table.range_key_attr or table.hash_key_attr) not in attributes
        ):
            raise ValueError(f"the items of {table.name} in {store.path} lack its key attributes")
        hash_key = DynamoType(attributes[table.hash_key_attr])
        if table.range_key_attr is not None:
            range_key = DynamoType(attributes[table.range_key_attr])
            table.items[hash_key][range_key] = Item(hash_key, range_key, attributes)
        else:
            table.items[hash_key] = Item(hash_key, None, attributes)
        count += 1
    return count


def _restore_stream(store: StateStore, table: Any, checkpoints: list[str]) -> tuple[int, str | None]:
    """The records after the lowest checkpoint of the table's mappings, and that checkpoint: the
    older records are to be trimmed (with no mapping at all, none are kept: nothing would read
    them)."""
    shard = table.stream_shard
    last = store.last_sequence(table.name)
    after = min(checkpoints) if checkpoints else last
    records = [_loads(text) for text in store.stream_records(table.name, after)]
    if records:
        first = int(records[0]["dynamodb"]["SequenceNumber"])
        shard.starting_sequence_number = first
        shard.items = [_RestoredRecord(record) for record in records]
        expected = list(range(first, first + len(records)))
        if [int(r["dynamodb"]["SequenceNumber"]) for r in records] != expected:
            raise ValueError(f"the stream records of {table.name} in {store.path} have gaps")
    else:
        known = [int(value) for value in [*checkpoints, last] if value and int(value) > 0]
        if known:
            shard.starting_sequence_number = max(known) + 1  # new records continue the numbering
    return len(records), after


def _restore_messages(store: StateStore, region: str, notes: list[str]) -> dict[str, dict[str, int]]:
    queues = sqs_models.sqs_backends[DEFAULT_ACCOUNT_ID][region].queues
    restored: dict[str, list[Any]] = defaultdict(list)
    skipped: dict[str, int] = defaultdict(int)
    for _, _, queue_name, state in store.messages():
        if queue_name not in queues:
            skipped[queue_name] += 1
            continue
        message = sqs_models.Message.__new__(sqs_models.Message)
        vars(message).update(_loads(state))
        restored[queue_name].append(message)
    notes += [
        f"queue {name}: {count} stored messages kept on disk, not loaded (the template has no such queue)"
        for name, count in skipped.items()
    ]
    now = unix_time_millis()
    counts = {}
    for name, queue in queues.items():
        messages = sorted(restored.get(name, []), key=lambda m: m.sent_timestamp or 0)
        in_flight = {m for m in messages if m.visible_at > now}
        with queue._messages_lock:
            queue._messages = messages
            queue.pending_messages.clear()
            queue.pending_messages.update(in_flight)
            patches.index_receipt_handles(queue)
        counts[name] = {"messages": len(messages), "inFlight": len(in_flight)}
    return counts


def install(journal: Journal) -> None:
    """Journal every change from now on (after restore: what was loaded is on disk already)."""
    original_add = StreamShard.add

    def add(self: Any, old: Any, new: Any) -> None:
        before = len(self.items)
        original_add(self, old, new)
        for record in self.items[before:]:
            journal.stream_record(self.table.name, record.to_json())

    StreamShard.add = add  # type: ignore[method-assign]
    patches.observe_messages(journal)
