"""The local stack's own part of the durable state (local/state/store.py): what the Lambda service
and API Gateway would keep on AWS, the stream mappings' checkpoints and the open WebSocket
connections; and the lock and checks that turn a damaged, foreign or incompatible state into a
clear StateError before anything starts (docs/local-stack.md, "State, restarts and supervision").
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from local.state.store import (
    StateError,
    StateLock,
    StatePaths,
    StateStore,
    check_state_file,
    sequence_key,
    state_paths,
)
from local.template.model import StackModel

START_OF_STREAM = sequence_key(0)  # a checkpoint before every record (TRIM_HORIZON)
SAVE_INTERVAL_SECONDS = 1.0


def _key_schema(schema: Any) -> list[tuple[str, str]]:
    return sorted((str(part["AttributeName"]), str(part["KeyType"])) for part in schema)


def _describe(schema: list[tuple[str, str]]) -> str:
    return ", ".join(f"{name} ({kind})" for name, kind in schema)


@dataclass
class StackState:
    paths: StatePaths
    store: StateStore
    lock: StateLock
    restored: bool  # False: a new, empty state
    _checkpoints: dict[str, tuple[str, str]] = field(default_factory=dict)  # mapping -> (table, sequence)
    _unsaved: set[str] = field(default_factory=set)
    _timer: asyncio.TimerHandle | None = None

    @classmethod
    def open(cls, state_dir: Path, model: StackModel, *, fresh: bool) -> StackState:
        """Lock the stack's state, check it against the template, open it. Raises StateError."""
        paths = state_paths(state_dir, model.stack_name)
        lock = StateLock(paths)
        lock.acquire()
        try:
            if fresh:  # the database and SQLite's companions
                for suffix in ("", "-wal", "-shm"):
                    Path(f"{paths.database}{suffix}").unlink(missing_ok=True)
            stored_tables = check_state_file(paths.database, model.stack_name)
            if stored_tables is not None:
                _check_tables(stored_tables, model, paths.database)
            store = StateStore.open(paths.database, model.stack_name, durable=False)
        except BaseException:
            lock.release()
            raise
        return cls(paths, store, lock, restored=stored_tables is not None, _checkpoints=store.checkpoints())

    def close(self) -> None:
        self.flush()
        self.store.close()
        self.lock.release()

    # --- stream mappings -------------------------------------------------------------------

    def checkpoint(self, mapping: str, table: str, starting_position: str) -> str:
        """Where `mapping` resumes: after this sequence key. A mapping seen for the first time
        starts at TRIM_HORIZON, or at the newest record kept for LATEST; saved at once, so the
        records it has not read yet are kept for it."""
        saved = self._checkpoints.get(mapping)
        if saved is not None:
            return saved[1]
        last = self.store.last_sequence(table) if starting_position == "LATEST" else None
        sequence = last or START_OF_STREAM
        self._checkpoints[mapping] = (table, sequence)
        self._unsaved.add(mapping)
        self.flush()
        return sequence

    def save_checkpoint(self, mapping: str, table: str, sequence: str) -> None:
        """After each batch; written at most every SAVE_INTERVAL_SECONDS (a checkpoint a crash
        loses only delivers a second's records again, which the consumers absorb), each time
        with the records every mapping of the table has finished dropped from the state."""
        self._checkpoints[mapping] = (table, sequence)
        self._unsaved.add(mapping)
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(SAVE_INTERVAL_SECONDS, self.flush)

    def flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._unsaved:
            return
        tables = {self._checkpoints[mapping][0] for mapping in self._unsaved}
        with self.store.transaction():
            for mapping in self._unsaved:
                self.store.set_checkpoint(mapping, *self._checkpoints[mapping])
            for table in tables:
                self.store.trim_stream(
                    table, min(seq for name, seq in self._checkpoints.values() if name == table)
                )
        self._unsaved.clear()


def _check_tables(stored: dict[str, Any], model: StackModel, path: Path) -> None:
    """A table whose key schema changed since the state was written cannot take its items."""
    for table in model.tables.values():
        if table.name not in stored:
            continue
        before, now = _key_schema(stored[table.name]), _key_schema(table.key_schema)
        if before != now:
            raise StateError(
                f"The state in {path} holds the items of table {table.display_name} keyed by "
                f"{_describe(before)}, but the template now keys it by {_describe(now)}: the local stack "
                "cannot move items to another key schema. Nothing was changed or deleted. To keep the "
                "data, start the checkout that wrote it (or move the state aside); to start empty, run "
                "`make dev FRESH=1` (`.venv/bin/python -m local --fresh`), which discards it."
            )
