"""The local stack's own part of the durable state (local/state/store.py): what the Lambda service
and API Gateway would keep on AWS, the stream mappings' checkpoints and the open WebSocket
connections; and the lock and checks that turn a damaged, foreign or incompatible state into a
clear StateError before anything starts (docs/local-stack.md, "State, restarts and supervision").
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
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
# The stack's writes run on its event loop: they wait this long at most for the embedded AWS to let
# go of the file (a slow or frozen disk; a timed save then tries again a second later), rather than
# freeze every gateway for the 30 s busy timeout the embedded AWS keeps.
SAVE_WAIT_SECONDS = 0.2


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
    warn: Callable[[str], None] = print  # the stack's console
    _save_failing: bool = False

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
            store = StateStore.open(
                paths.database, model.stack_name, durable=False, busy_timeout_seconds=SAVE_WAIT_SECONDS
            )
        except BaseException:
            lock.release()
            raise
        return cls(paths, store, lock, restored=stored_tables is not None, _checkpoints=store.checkpoints())

    def close(self) -> None:
        try:
            self.flush()
        except sqlite3.Error as error:
            self.warn(
                f"the stream checkpoints could not be saved ({error}): the next start delivers the "
                "records of the last seconds again, which the functions absorb"
            )
        self.store.close()
        self.lock.release()

    # --- the WebSocket gateway's connections (local.gateways.websocket_api.ConnectionLog) ----

    def add_connection(self, connection_id: str, state: dict[str, Any]) -> None:
        self._log_connection(connection_id, lambda: self.store.add_connection(connection_id, state))

    def remove_connection(self, connection_id: str) -> None:
        self._log_connection(connection_id, lambda: self.store.remove_connection(connection_id))

    def _log_connection(self, connection_id: str, write: Callable[[], None]) -> None:
        """Open connections are kept so that a stack that dies owes them their $disconnect at the
        next start. A busy or full file costs that bookkeeping only: a warning, not a stalled loop."""
        try:
            write()
        except sqlite3.Error as error:
            self.warn(
                f"WebSocket {connection_id}: not recorded in the state ({error}); after a crash its "
                "$disconnect is not run again, and its connection row goes when a push finds it gone"
            )

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
            self._timer = asyncio.get_running_loop().call_later(SAVE_INTERVAL_SECONDS, self._timed_flush)

    def _timed_flush(self) -> None:
        """The periodic save: a file that is busy or full is tried again later, with one warning."""
        self._timer = None
        try:
            self.flush()
        except sqlite3.Error as error:
            if not self._save_failing:
                self.warn(
                    f"stream checkpoints not saved ({error}): trying again every "
                    f"{SAVE_INTERVAL_SECONDS:g} s (a slow or full disk under {self.paths.database.parent}?)"
                )
            self._save_failing = True
            self._timer = asyncio.get_running_loop().call_later(SAVE_INTERVAL_SECONDS, self._timed_flush)
            return
        if self._save_failing:
            self.warn("stream checkpoints saved again")
            self._save_failing = False

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
