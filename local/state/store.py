"""The local stack's durable state: one SQLite file per stack, `<state-dir>/stacks/<stack>/state.sqlite`.

Two processes write it, each its own tables (SQLite's WAL mode lets them share the file): the
embedded AWS (local/state/moto_state.py: items, stream records, messages, each table's key schema
and stream label; `synchronous=FULL`, what got a 202 is on disk) and the stack (local/stack.py:
checkpoints and connections; `synchronous=NORMAL`, a power loss can only redeliver records).
`check_state_file` reads a file without changing a byte of it or of its write-ahead log (the
header first, then a read-only SQLite open that reads through the log, as the stack will), so a
damaged or foreign file is reported, never "repaired".
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Final

FORMAT_VERSION: Final = 1
APPLICATION_ID: Final = 0x4C4F4341  # "LOCA": a state file of this project, not just any SQLite file
BUSY_TIMEOUT_SECONDS: Final = 30  # how long a write waits for the other process to let go of the file
_MAGIC: Final = b"SQLite format 3\x00"
_SEQUENCE_WIDTH: Final = 30  # stream sequence numbers (22 digits in moto) as fixed-width text: ordered

_SCHEMA: Final = """
CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE tables (name TEXT PRIMARY KEY, key_schema TEXT NOT NULL, stream_label TEXT) WITHOUT ROWID;
CREATE TABLE items (tbl TEXT NOT NULL, key TEXT NOT NULL, item TEXT NOT NULL, PRIMARY KEY (tbl, key))
    WITHOUT ROWID;
CREATE TABLE stream_records (tbl TEXT NOT NULL, seq TEXT NOT NULL, record TEXT NOT NULL,
    PRIMARY KEY (tbl, seq)) WITHOUT ROWID;
CREATE TABLE messages (id TEXT PRIMARY KEY, version INTEGER NOT NULL, queue TEXT, state TEXT);
CREATE TABLE checkpoints (mapping TEXT PRIMARY KEY, tbl TEXT NOT NULL, seq TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE connections (id TEXT PRIMARY KEY, state TEXT NOT NULL) WITHOUT ROWID;
"""


class StateError(Exception):
    """The state cannot be used; the message is one paragraph naming the file and the way out."""


@dataclass(frozen=True)
class StatePaths:
    folder: Path

    @property
    def database(self) -> Path:
        return self.folder / "state.sqlite"

    @property
    def lock(self) -> Path:
        return self.folder / "lock"


def state_paths(state_dir: Path, stack_name: str) -> StatePaths:
    return StatePaths(Path(state_dir) / "stacks" / stack_name)


def sequence_key(sequence_number: str | int) -> str:
    """A stream SequenceNumber as text that sorts like the number."""
    return f"{int(sequence_number):0{_SEQUENCE_WIDTH}d}"


def refused(path: Path, reason: str) -> StateError:
    """The state at `path` cannot be used: why, and the way out."""
    return StateError(
        f"{reason}. Nothing was changed or deleted. To keep the data, move {path.parent} aside (or start "
        "with --state-dir pointing elsewhere); to start empty and discard it, run `make dev FRESH=1` "
        "(`.venv/bin/python -m local --fresh`)."
    )


def check_state_file(path: Path, stack_name: str) -> dict[str, Any] | None:
    """The key schemas of the tables (name -> key schema) in this stack's state at `path`, or None
    if there is none; StateError if it is damaged, of another format version, not ours, or another
    stack's. Changes nothing on disk (the tables rows are in the main file: local/state/moto_state.py
    checkpoints the WAL after writing them)."""
    if not path.exists():
        return None
    try:
        with path.open("rb") as file:
            header = file.read(100)
    except OSError as error:
        raise refused(path, f"Cannot read the local stack's state file {path}: {error.strerror}") from None
    if len(header) < 100 or not header.startswith(_MAGIC):
        what = f"truncated to {len(header)} bytes" if len(header) < 100 else "not an SQLite database"
        raise refused(path, f"The local stack's state file {path} is damaged or not a state file ({what})")
    user_version, application_id = int.from_bytes(header[60:64], "big"), int.from_bytes(header[68:72], "big")
    if application_id != APPLICATION_ID:
        raise refused(
            path,
            f"{path} is an SQLite database but not a state file of this local stack (application id "
            f"{application_id:#x})",
        )
    if user_version != FORMAT_VERSION:
        raise refused(
            path,
            f"The state file {path} has format version {user_version}; this version of the local stack "
            f"reads format {FORMAT_VERSION} only (it was written by "
            f"{'a newer' if user_version > FORMAT_VERSION else 'an older'} checkout)",
        )
    try:
        # Not `immutable=1`, which ignores the WAL: a kill -9 in the middle of a checkpoint leaves a
        # main file that is consistent only with its WAL, and was refused as damaged. Read-only, the
        # open writes neither file (SQLite may rebuild the -shm index beside them).
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as connection:
            problems = [row[0] for row in connection.execute("PRAGMA quick_check(3)")]
            row = connection.execute("SELECT value FROM meta WHERE name = 'stack'").fetchone()
            tables = {
                name: json.loads(schema)
                for name, schema in connection.execute("SELECT name, key_schema FROM tables")
            }
    except sqlite3.DatabaseError as error:
        raise refused(path, f"The local stack's state file {path} is damaged ({error})") from None
    if problems != ["ok"]:
        raise refused(path, f"The local stack's state file {path} is damaged ({'; '.join(problems)})")
    owner = json.loads(row[0]) if row else None
    if owner != stack_name:
        raise refused(path, f"The state file {path} belongs to the stack {owner!r}, not {stack_name!r}")
    return tables


class StateLock:
    """One running stack per state: an exclusive lock on `<stack>/lock`, released when the holder dies."""

    def __init__(self, paths: StatePaths) -> None:
        self._paths = paths
        self._file: IO[str] | None = None

    def acquire(self) -> None:
        self._paths.folder.mkdir(parents=True, exist_ok=True)
        file = self._paths.lock.open("a+")
        try:
            fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            file.seek(0)
            holder = file.read().strip() or "another process"
            file.close()
            raise StateError(
                f"Another local stack (pid {holder}) is running on the state in {self._paths.folder}. "
                "Stop it first, or give this one its own --state-dir."
            ) from None
        file.seek(0)
        file.truncate()
        file.write(str(os.getpid()))
        file.flush()
        self._file = file

    def release(self) -> None:
        if self._file is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None


def _identity(path: Path) -> tuple[int, int] | None:
    """Which file `path` names now (device, inode), None if none."""
    try:
        status = path.stat()
    except FileNotFoundError:
        return None
    return status.st_dev, status.st_ino


class StateStore:
    """An open state file. Not thread-safe: one thread at a time (the caller serialises)."""

    def __init__(self, connection: sqlite3.Connection, path: Path) -> None:
        self._db = connection
        self.path = path
        self._identity = _identity(path)

    @classmethod
    def open(
        cls, path: Path, stack_name: str, *, durable: bool, busy_timeout_seconds: float = BUSY_TIMEOUT_SECONDS
    ) -> StateStore:
        """Open (creating it if needed) `path`; `durable`: fsync every commit (synchronous=FULL);
        `busy_timeout_seconds`: how long a write waits for the other process to let go of the file,
        then raises OperationalError ("database is locked")."""
        path.parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(
            path, isolation_level=None, check_same_thread=False, timeout=busy_timeout_seconds
        )
        try:
            if connection.execute("PRAGMA application_id").fetchone()[0] != APPLICATION_ID:
                if connection.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
                    raise sqlite3.DatabaseError("an SQLite database of something else")
                # A new file: header fields first, in rollback-journal mode, so they are in the main
                # file (check_state_file reads them there) before WAL mode takes the writes.
                connection.executescript(
                    f"PRAGMA application_id = {APPLICATION_ID}; PRAGMA user_version = {FORMAT_VERSION};"
                    f"BEGIN; {_SCHEMA} COMMIT;"
                )
                connection.execute("INSERT INTO meta VALUES ('stack', ?)", (json.dumps(stack_name),))
            version = connection.execute("PRAGMA user_version").fetchone()[0]
            if version != FORMAT_VERSION:  # changed in the WAL since the header was checked
                raise sqlite3.DatabaseError(f"format version {version}, this checkout reads {FORMAT_VERSION}")
            connection.execute("PRAGMA journal_mode = WAL")
            connection.execute(f"PRAGMA synchronous = {'FULL' if durable else 'NORMAL'}")
        except sqlite3.DatabaseError as error:
            connection.close()
            raise refused(path, f"Cannot open the local stack's state file {path}: {error}") from None
        return cls(connection, path)

    def close(self) -> None:
        self._db.close()

    def checkpoint_wal(self) -> None:
        """Fold the WAL into the main file (what check_state_file reads)."""
        self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    # --- the embedded AWS's tables ---------------------------------------------------------

    def write(
        self,
        *,
        items: Sequence[tuple[str, str, str | None]] = (),
        records: Sequence[tuple[str, str, str]] = (),
        messages: Sequence[tuple[str, int, str | None, str | None]] = (),
    ) -> None:
        """One atomic commit: item images (None: deleted), stream records, message states (queue and
        state None: deleted; a state only replaces an older version of the same message).
        StateError if the file was deleted or replaced since it was opened: a commit into a file
        nobody can open again would acknowledge what is already lost."""
        if _identity(self.path) != self._identity:
            raise StateError(
                f"the state file {self.path} was deleted or replaced while the stack ran; "
                "nothing more is acknowledged"
            )
        with self.transaction() as db:
            db.executemany(
                "INSERT OR REPLACE INTO items VALUES (?, ?, ?)", [i for i in items if i[2] is not None]
            )
            db.executemany(
                "DELETE FROM items WHERE tbl = ? AND key = ?", [i[:2] for i in items if i[2] is None]
            )
            db.executemany("INSERT OR REPLACE INTO stream_records VALUES (?, ?, ?)", records)
            db.executemany(
                "INSERT INTO messages VALUES (?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET"
                " version = excluded.version, queue = excluded.queue, state = excluded.state"
                " WHERE excluded.version > messages.version",
                messages,
            )

    def tables(self) -> dict[str, tuple[Any, str | None]]:
        """Table name -> (key schema, stream label) as first provisioned."""
        return {
            name: (json.loads(schema), label)
            for name, schema, label in self._db.execute("SELECT name, key_schema, stream_label FROM tables")
        }

    def set_table(self, name: str, key_schema: Any, stream_label: str | None) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO tables VALUES (?, ?, ?)", (name, json.dumps(key_schema), stream_label)
        )

    def items(self, table: str) -> Iterator[str]:
        for (item,) in self._db.execute("SELECT item FROM items WHERE tbl = ?", (table,)):
            yield item

    def item_counts(self) -> dict[str, int]:
        return dict(self._db.execute("SELECT tbl, count(*) FROM items GROUP BY tbl").fetchall())

    def stream_records(self, table: str, after: str | None) -> list[str]:
        """The table's stream records after sequence key `after` (all with None), in order."""
        rows = self._db.execute(
            "SELECT record FROM stream_records WHERE tbl = ? AND seq > ? ORDER BY seq", (table, after or "")
        )
        return [record for (record,) in rows]

    def last_sequence(self, table: str) -> str | None:
        row = self._db.execute("SELECT max(seq) FROM stream_records WHERE tbl = ?", (table,)).fetchone()
        return row[0] if row else None

    def trim_stream(self, table: str, upto: str) -> None:
        """Forget the records every mapping of `table` has processed (sequence keys <= `upto`)."""
        self._db.execute("DELETE FROM stream_records WHERE tbl = ? AND seq <= ?", (table, upto))

    def messages(self) -> list[tuple[str, int, str, str]]:
        """(id, version, queue, state) of every live message, oldest version first."""
        return self._db.execute(
            "SELECT id, version, queue, state FROM messages WHERE queue IS NOT NULL ORDER BY version"
        ).fetchall()

    def max_message_version(self) -> int:
        return int(self._db.execute("SELECT coalesce(max(version), 0) FROM messages").fetchone()[0])

    def forget_deleted_messages(self) -> None:
        """Drop the tombstones of deleted messages (only while nothing else writes messages)."""
        self._db.execute("DELETE FROM messages WHERE queue IS NULL")

    # --- the stack's tables ----------------------------------------------------------------

    def checkpoints(self) -> dict[str, tuple[str, str]]:
        """Mapping id -> (table, sequence key of the last record it finished)."""
        return {
            mapping: (table, seq) for mapping, table, seq in self._db.execute("SELECT * FROM checkpoints")
        }

    def set_checkpoint(self, mapping: str, table: str, sequence: str) -> None:
        self._db.execute("INSERT OR REPLACE INTO checkpoints VALUES (?, ?, ?)", (mapping, table, sequence))

    def connections(self) -> list[dict[str, Any]]:
        return [json.loads(state) for (state,) in self._db.execute("SELECT state FROM connections")]

    def add_connection(self, connection_id: str, state: dict[str, Any]) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO connections VALUES (?, ?)", (connection_id, json.dumps(state))
        )

    def remove_connection(self, connection_id: str) -> None:
        self._db.execute("DELETE FROM connections WHERE id = ?", (connection_id,))
