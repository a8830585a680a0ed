"""The durable state (local/state/store.py, local/state/moto_state.py): the embedded AWS started on a
state file keeps, across kill -9, every item, stream record and message it acknowledged, with
receive counts, visibility, receipt handles and sequence numbers; damaged or foreign state files
are refused with a clear message and left untouched."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from local_support import FIXTURE_ASSEMBLY, REPO_ROOT

from local.emulator.supervisor import restart_advice
from local.state import stack_state
from local.state.stack_state import START_OF_STREAM, StackState
from local.state.store import (
    FORMAT_VERSION,
    StateError,
    StateStore,
    check_state_file,
    sequence_key,
    state_paths,
)
from local.template.cdk_out import find_stack
from local.template.reader import build_stack_model

STACK = "Durable-test"
TABLE, QUEUE, DLQ = "Durable-test-Items", "Durable-test-Work", "Durable-test-Dead"
DLQ_ARN = f"arn:aws:sqs:us-east-1:123456789012:{DLQ}"
SETUP = [
    {
        "service": "dynamodb",
        "action": "CreateTable",
        "payload": {
            "TableName": TABLE,
            "KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}],
            "AttributeDefinitions": [{"AttributeName": "id", "AttributeType": "S"}],
            "BillingMode": "PAY_PER_REQUEST",
            "StreamSpecification": {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
        },
    },
    {"service": "sqs", "action": "CreateQueue", "payload": {"QueueName": DLQ}},
    {
        "service": "sqs",
        "action": "CreateQueue",
        "payload": {
            "QueueName": QUEUE,
            "Attributes": {
                "VisibilityTimeout": "30",
                "RedrivePolicy": json.dumps({"deadLetterTargetArn": DLQ_ARN, "maxReceiveCount": 2}),
            },
        },
    },
]


class Emulator:
    """local.emulator.server on a state file, as the local stack starts it."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.state = folder / "state.sqlite"
        setup = folder / "setup.json"
        setup.write_text(json.dumps(SETUP))
        self.process = subprocess.Popen(
            [
                *(sys.executable, "-m", "local.emulator.server", "--port", "0", "--setup", str(setup)),
                *("--state", str(self.state), "--stack", STACK, "--parent-pid", str(os.getpid())),
            ],
            cwd=REPO_ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        assert line.startswith("MOTO_READY "), line
        _, port, ready = line.split(" ", 2)
        self.endpoint = f"http://127.0.0.1:{port}"
        self.ready: dict[str, Any] = json.loads(ready)

    def client(self, service: str) -> Any:
        return boto3.client(
            service,
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id="x",
            aws_secret_access_key="x",
            config=Config(retries={"max_attempts": 1}),
        )

    def queue_url(self, name: str) -> str:
        return f"{self.endpoint}/123456789012/{name}"

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)


def depth(emulator: Emulator, queue: str) -> tuple[int, int]:
    attributes = emulator.client("sqs").get_queue_attributes(
        QueueUrl=emulator.queue_url(queue), AttributeNames=["All"]
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]), int(
        attributes["ApproximateNumberOfMessagesNotVisible"]
    )


def items(emulator: Emulator) -> dict[str, dict[str, Any]]:
    scanned = emulator.client("dynamodb").scan(TableName=TABLE)["Items"]
    return {item["id"]["S"]: item for item in scanned}


# --- the embedded AWS killed -----------------------------------------------------------------


def test_items_and_messages_survive_kill_9_with_their_receive_counts_and_handles(tmp_path):
    # Given items written, updated and deleted, and messages sent, received and deleted
    first = Emulator(tmp_path)
    dynamodb, sqs = first.client("dynamodb"), first.client("sqs")
    for key in ("a", "b", "c"):
        dynamodb.put_item(TableName=TABLE, Item={"id": {"S": key}, "n": {"N": "1"}})
    dynamodb.update_item(
        TableName=TABLE,
        Key={"id": {"S": "b"}},
        UpdateExpression="SET n = n + :one, tags = :tags",
        ExpressionAttributeValues={":one": {"N": "1"}, ":tags": {"SS": ["x", "y"]}},
    )
    dynamodb.delete_item(TableName=TABLE, Key={"id": {"S": "c"}})
    url = first.queue_url(QUEUE)
    for body in ("m1", "m2", "m3"):
        sqs.send_message(
            QueueUrl=url,
            MessageBody=body,
            MessageAttributes={"k": {"DataType": "String", "StringValue": body}},
        )
    received = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=2, AttributeNames=["All"])["Messages"]
    kept, deleted = received
    sqs.delete_message(QueueUrl=url, ReceiptHandle=deleted["ReceiptHandle"])
    expected_items = items(first)

    # When the process is killed and started again on the same state
    first.kill()
    second = Emulator(tmp_path)

    # Then every item is as it was
    assert items(second) == expected_items
    assert expected_items["b"]["n"] == {"N": "2"}
    assert second.ready["restored"]["items"] == {TABLE: 2}
    # and the queue holds one visible message and one in flight (invisible for its 30 s)
    assert depth(second, QUEUE) == (1, 1)
    assert second.ready["restored"]["messages"][QUEUE] == {"messages": 2, "inFlight": 1}
    sqs = second.client("sqs")
    url = second.queue_url(QUEUE)
    again = sqs.receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"], MessageAttributeNames=["All"]
    )["Messages"]
    assert [m["Body"] for m in again] == ["m3"]
    assert again[0]["Attributes"]["ApproximateReceiveCount"] == "1"
    assert again[0]["MessageAttributes"]["k"]["StringValue"] == "m3"
    # and the in-flight message's receipt handle from before the kill still deletes it
    sqs.delete_message(QueueUrl=url, ReceiptHandle=kept["ReceiptHandle"])
    assert depth(second, QUEUE) == (0, 1)
    second.kill()


def test_a_message_moved_to_the_dead_letter_queue_stays_there(tmp_path):
    first = Emulator(tmp_path)
    sqs = first.client("sqs")
    url = first.queue_url(QUEUE)
    sqs.send_message(QueueUrl=url, MessageBody="poison")
    for _ in range(2):  # maxReceiveCount 2: the next receive moves it
        assert sqs.receive_message(QueueUrl=url, VisibilityTimeout=0)["Messages"]
    assert "Messages" not in sqs.receive_message(QueueUrl=url, VisibilityTimeout=0)
    first.kill()

    second = Emulator(tmp_path)

    assert depth(second, QUEUE) == (0, 0)
    moved = second.client("sqs").receive_message(QueueUrl=second.queue_url(DLQ), AttributeNames=["All"])
    assert [m["Body"] for m in moved["Messages"]] == ["poison"]
    assert moved["Messages"][0]["Attributes"]["ApproximateReceiveCount"] == "3"
    second.kill()


def test_stream_records_after_the_checkpoint_keep_their_arn_and_sequence_numbers(tmp_path):
    # Given three writes and their stream records
    first = Emulator(tmp_path)
    dynamodb, streams = first.client("dynamodb"), first.client("dynamodbstreams")
    for key in ("a", "b", "c"):
        dynamodb.put_item(TableName=TABLE, Item={"id": {"S": key}})
    arn = first.ready["streams"][TABLE]
    shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
    iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON")
    before = streams.get_records(ShardIterator=iterator["ShardIterator"])["Records"]
    sequences = [record["dynamodb"]["SequenceNumber"] for record in before]
    # and a mapping that finished the first record (what the stack saves)
    store = StateStore.open(first.state, STACK, durable=False)
    store.set_checkpoint("Mapping", TABLE, sequence_key(sequences[0]))
    store.close()

    # When the emulator is killed and started again
    first.kill()
    second = Emulator(tmp_path)
    streams = second.client("dynamodbstreams")

    # Then the stream has the same ARN and the two records after the checkpoint, as they were
    assert second.ready["streams"][TABLE] == arn
    assert second.ready["restored"]["streamRecords"] == {TABLE: 2}
    iterator = streams.get_shard_iterator(
        StreamArn=arn, ShardId=shard, ShardIteratorType="AFTER_SEQUENCE_NUMBER", SequenceNumber=sequences[0]
    )
    after = streams.get_records(ShardIterator=iterator["ShardIterator"])["Records"]
    assert [r["dynamodb"]["SequenceNumber"] for r in after] == sequences[1:]
    assert [r["dynamodb"]["NewImage"] for r in after] == [r["dynamodb"]["NewImage"] for r in before[1:]]
    # and a new write continues the numbering
    second.client("dynamodb").put_item(TableName=TABLE, Item={"id": {"S": "d"}})
    iterator = streams.get_shard_iterator(
        StreamArn=arn, ShardId=shard, ShardIteratorType="AFTER_SEQUENCE_NUMBER", SequenceNumber=sequences[-1]
    )
    newest = streams.get_records(ShardIterator=iterator["ShardIterator"])["Records"]
    assert [int(r["dynamodb"]["SequenceNumber"]) for r in newest] == [int(sequences[-1]) + 1]
    # and an iterator from before the restart is an expired iterator, not a server error
    with pytest.raises(streams.exceptions.ExpiredIteratorException):
        streams.get_records(ShardIterator="arn:stale|1|iterator")
    second.kill()


def test_nothing_acknowledged_is_lost_when_the_process_is_killed_mid_burst(tmp_path):
    # Given four writers, each recording what the emulator acknowledged
    first = Emulator(tmp_path)
    acknowledged_items: list[str] = []
    acknowledged_messages: list[str] = []
    stop = threading.Event()

    def write(writer: int) -> None:
        dynamodb, sqs = first.client("dynamodb"), first.client("sqs")
        url = first.queue_url(QUEUE)
        for index in range(10_000):
            if stop.is_set():
                return
            key = f"{writer}-{index}"
            try:
                dynamodb.put_item(TableName=TABLE, Item={"id": {"S": key}})
                acknowledged_items.append(key)
                sqs.send_message(QueueUrl=url, MessageBody=key)
                acknowledged_messages.append(key)
            except Exception:  # the process died under this request: not acknowledged
                return

    writers = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for thread in writers:
        thread.start()
    deadline = time.monotonic() + 20
    while len(acknowledged_messages) < 100:
        assert time.monotonic() < deadline, "the writers made no progress"
        time.sleep(0.02)

    # When the process is killed in the middle of it
    first.kill()
    stop.set()
    for thread in writers:
        thread.join(10)
    second = Emulator(tmp_path)

    # Then every acknowledged item and message is there
    assert set(acknowledged_items) <= set(items(second))
    sqs, url = second.client("sqs"), second.queue_url(QUEUE)
    bodies: set[str] = set()
    while True:
        batch = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        if not batch:
            break
        bodies.update(message["Body"] for message in batch)
    assert set(acknowledged_messages) <= bodies
    second.kill()


# --- the store's rules ---------------------------------------------------------------------------


def test_an_older_message_state_never_replaces_a_newer_one_nor_revives_a_deleted_one(tmp_path):
    store = StateStore.open(tmp_path / "state.sqlite", STACK, durable=False)
    store.write(messages=[("m1", 5, "q", '{"v": 5}'), ("m2", 7, None, None)])  # m2 deleted at version 7
    store.write(
        messages=[("m1", 4, "q", '{"v": 4}'), ("m2", 6, "q", '{"v": 6}')]
    )  # late commits of older states

    assert store.messages() == [("m1", 5, "q", '{"v": 5}')]
    assert store.max_message_version() == 7
    store.close()


# --- damaged, foreign and incompatible state -------------------------------------------------


def snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    """Every file's bytes and time, but SQLite's own bookkeeping that any reader may create or
    rebuild: the -shm index, and a WAL while it is empty."""
    return {
        path.name: (path.read_bytes(), path.stat().st_mtime_ns)
        for path in sorted(folder.iterdir())
        if not path.name.endswith("-shm") and not (path.name.endswith("-wal") and path.stat().st_size == 0)
    }


def real_state(tmp_path: Path) -> Path:
    emulator = Emulator(tmp_path)
    emulator.client("dynamodb").put_item(
        TableName=TABLE, Item={"id": {"S": "a"}, "payload": {"S": "x" * 5000}}
    )
    emulator.process.stdin.close()  # a clean stop: the WAL is folded into the file
    emulator.process.wait(10)
    return emulator.state


@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        pytest.param(
            lambda path: path.write_bytes(b"garbage " * 100), "not an SQLite database", id="garbage"
        ),
        pytest.param(lambda path: path.write_bytes(b"SQLite"), "truncated to 6 bytes", id="truncated-header"),
        pytest.param(
            lambda path: path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2]),
            "is damaged",
            id="truncated",
        ),
    ],
)
def test_a_damaged_state_file_is_refused_with_the_way_out_and_left_as_it_is(tmp_path, damage, expected):
    path = real_state(tmp_path)
    damage(path)
    before = snapshot(tmp_path)

    with pytest.raises(StateError) as refused:
        check_state_file(path, STACK)

    message = str(refused.value)
    assert expected in message
    assert str(path) in message
    assert "make dev FRESH=1" in message
    assert "Nothing was changed or deleted" in message
    assert snapshot(tmp_path) == before


def test_a_row_that_cannot_be_read_stops_the_start_with_the_way_out_and_changes_nothing(tmp_path):
    # Given a state file whose SQLite structure is sound but one item's JSON is damaged
    path = real_state(tmp_path)
    with contextlib.closing(sqlite3.connect(path)) as connection:
        with connection:
            connection.execute("UPDATE items SET item = replace(item, '{', '#')")
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    before = snapshot(tmp_path)

    # When the embedded AWS starts on it
    started = subprocess.run(
        [
            *(sys.executable, "-m", "local.emulator.server", "--port", "0"),
            *("--setup", str(tmp_path / "setup.json"), "--state", str(path), "--stack", STACK),
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    # Then it refuses with one paragraph naming the file and the way out, and leaves the file as it was
    assert started.returncode == 2
    assert started.stdout.startswith("MOTO_FAILED ")
    message = json.loads(started.stdout.split(" ", 1)[1])["message"]
    assert f"{path} has a row it cannot read" in message
    assert "make dev FRESH=1" in message
    assert snapshot(tmp_path) == before


def test_a_state_whose_newest_writes_are_only_in_its_write_ahead_log_is_read_with_them(tmp_path):
    # Given a state file killed before its WAL was folded in (kill -9 mid-burst or mid-checkpoint):
    # a table created since is only in the WAL, and the main file alone does not know it
    path = real_state(tmp_path)
    writer = StateStore.open(path, STACK, durable=True)
    writer._db.execute("PRAGMA wal_autocheckpoint = 0")
    with writer.transaction() as db:
        db.execute("INSERT INTO tables VALUES ('Later', ?, NULL)", (json.dumps([{"AttributeName": "k"}]),))
    killed = tmp_path / "killed"
    killed.mkdir()
    for name in ("state.sqlite", "state.sqlite-wal"):
        (killed / name).write_bytes((tmp_path / name).read_bytes())
    writer.close()
    main_alone = sqlite3.connect(f"file:{killed / 'state.sqlite'}?mode=ro&immutable=1", uri=True)
    assert "Later" not in {name for (name,) in main_alone.execute("SELECT name FROM tables")}
    main_alone.close()
    before = {name: (killed / name).read_bytes() for name in ("state.sqlite", "state.sqlite-wal")}

    # When the next start checks it, then the WAL's writes are there, and neither file changed
    assert set(check_state_file(killed / "state.sqlite", STACK) or {}) == {TABLE, "Later"}
    assert {name: (killed / name).read_bytes() for name in before} == before


def test_a_state_of_another_format_version_or_program_or_stack_is_refused(tmp_path):
    path = real_state(tmp_path)
    assert check_state_file(path, STACK) == {TABLE: [{"AttributeName": "id", "KeyType": "HASH"}]}
    assert check_state_file(tmp_path / "missing.sqlite", STACK) is None

    with pytest.raises(StateError, match="belongs to the stack 'Durable-test', not 'Other-stack'"):
        check_state_file(path, "Other-stack")

    newer = tmp_path / "newer.sqlite"
    newer.write_bytes(path.read_bytes())
    with sqlite3.connect(newer) as connection:  # as a newer checkout would have created it
        connection.execute("PRAGMA journal_mode = DELETE")
        connection.execute(f"PRAGMA user_version = {FORMAT_VERSION + 1}")
    with pytest.raises(StateError, match=f"format version {FORMAT_VERSION + 1}.*written by a newer checkout"):
        check_state_file(newer, STACK)

    foreign = tmp_path / "foreign.sqlite"
    with sqlite3.connect(foreign) as connection:
        connection.execute("CREATE TABLE notes (text TEXT)")
    with pytest.raises(StateError, match="not a state file of this local stack"):
        check_state_file(foreign, STACK)


@pytest.fixture(scope="module")
def model():
    stack = find_stack(FIXTURE_ASSEMBLY, "dev")
    return build_stack_model(stack.template, stack.stack_name, stack.cdk_out)


def test_a_table_whose_key_schema_changed_is_refused_before_anything_starts(tmp_path, model):
    table = model.tables["ItemsTable1A2B3C4D"]
    paths = state_paths(tmp_path, model.stack_name)
    store = StateStore.open(paths.database, model.stack_name, durable=False)
    store.set_table(table.name, [{"AttributeName": "owner", "KeyType": "HASH"}], None)
    store.close()
    before = snapshot(paths.folder)

    with pytest.raises(StateError) as refused:
        StackState.open(tmp_path, model, fresh=False)

    assert "keyed by owner (HASH)" in str(refused.value)
    assert "now keys it by id (HASH)" in str(refused.value)
    assert {k: v for k, v in snapshot(paths.folder).items() if k != "lock"} == {
        k: v for k, v in before.items() if k != "lock"
    }
    # --fresh starts empty instead
    state = StackState.open(tmp_path, model, fresh=True)
    assert state.restored is False
    state.close()


def test_one_stack_at_a_time_runs_on_a_state(tmp_path, model):
    running = StackState.open(tmp_path, model, fresh=False)
    try:
        with pytest.raises(StateError, match=f"Another local stack \\(pid {os.getpid()}\\) is running"):
            StackState.open(tmp_path, model, fresh=False)
    finally:
        running.close()
    StackState.open(tmp_path, model, fresh=False).close()  # free again


def test_a_new_mapping_starts_at_trim_horizon_or_after_the_newest_record_and_checkpoints_trim(
    tmp_path, model
):
    state = StackState.open(tmp_path, model, fresh=False)
    store = state.store
    store.write(records=[("T", sequence_key(n), "{}") for n in (10, 11, 12)])

    assert state.checkpoint("FromStart", "T", "TRIM_HORIZON") == START_OF_STREAM
    assert state.checkpoint("FromNow", "T", "LATEST") == sequence_key(12)
    assert store.checkpoints()["FromNow"] == ("T", sequence_key(12))  # a new mapping's, saved at once

    async def batch_done() -> None:
        state.save_checkpoint("FromStart", "T", sequence_key(11))  # both have finished 11
        assert store.checkpoints()["FromStart"] == ("T", START_OF_STREAM)  # not yet on disk

    asyncio.run(batch_done())
    state.close()  # (or a second later)

    assert store_checkpoints(tmp_path, model) == {
        "FromStart": ("T", sequence_key(11)),
        "FromNow": ("T", sequence_key(12)),
    }
    reopened = StackState.open(tmp_path, model, fresh=False)
    assert reopened.store.stream_records("T", None) == ["{}"]  # records 10 and 11 were dropped
    reopened.close()


def test_checkpoints_wait_for_a_busy_state_file_without_stalling_the_event_loop_and_save_later(
    tmp_path, model
):
    # Given the embedded AWS holding the state file's write lock (a slow or frozen disk)
    warnings: list[str] = []
    state = StackState.open(tmp_path, model, fresh=False)
    state.warn = warnings.append
    database = state_paths(tmp_path, model.stack_name).database
    other = sqlite3.connect(database, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")

    async def while_held() -> float:
        # When a batch's checkpoint falls due, the loop keeps serving (its ticks stay short)
        state.save_checkpoint("Mapping", "T", sequence_key(7))
        longest, last = 0.0, time.monotonic()
        deadline = last + 2 * stack_state.SAVE_INTERVAL_SECONDS + 1
        while time.monotonic() < deadline:
            await asyncio.sleep(0.02)
            now = time.monotonic()
            longest, last = max(longest, now - last), now
        other.execute("COMMIT")  # the disk comes back
        saved_by = time.monotonic() + 5
        while not warnings[-1].startswith("stream checkpoints saved again") and time.monotonic() < saved_by:
            await asyncio.sleep(0.05)
        return longest

    longest_tick = asyncio.run(while_held())
    other.close()
    state.close()

    # Then no tick waited for the file's 30 s, one warning said why, and the checkpoint was saved
    assert longest_tick < 1.0
    assert len(warnings) == 2
    assert warnings[0].startswith("stream checkpoints not saved (database is locked)")
    assert warnings[1] == "stream checkpoints saved again"
    assert store_checkpoints(tmp_path, model)["Mapping"] == ("T", sequence_key(7))


def test_a_websocket_connection_the_busy_state_file_cannot_take_is_a_warning_not_a_stall(tmp_path, model):
    warnings: list[str] = []
    state = StackState.open(tmp_path, model, fresh=False)
    state.warn = warnings.append
    other = sqlite3.connect(state_paths(tmp_path, model.stack_name).database, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # the embedded AWS holds the file

    started = time.monotonic()
    state.add_connection("c1", {"id": "c1"})
    took = time.monotonic() - started
    other.execute("COMMIT")
    state.add_connection("c2", {"id": "c2"})
    other.close()

    assert took < 1.0
    assert len(warnings) == 1
    assert warnings[0].startswith("WebSocket c1: not recorded in the state (database is locked)")
    assert [row["id"] for row in state.store.connections()] == ["c2"]
    state.close()


def test_a_restart_that_failed_is_advised_without_claiming_the_file_is_fine(tmp_path):
    state = tmp_path / "state.sqlite"

    full = restart_advice("the state file cannot be used right now: database or disk is full", state)
    damaged = restart_advice("database disk image is malformed", state)

    assert "Free some disk space" in full
    assert str(tmp_path) in full
    assert "intact" not in damaged
    assert "checks" in damaged
    assert str(state) in damaged


def store_checkpoints(state_dir: Path, model: Any) -> dict[str, tuple[str, str]]:
    store = StateStore.open(
        state_paths(state_dir, model.stack_name).database, model.stack_name, durable=False
    )
    try:
        return store.checkpoints()
    finally:
        store.close()


def test_a_state_that_cannot_be_restored_right_now_is_one_clear_line_from_the_embedded_aws(
    tmp_path, monkeypatch, capsys
):
    # Given a state file on a disk that fills up while the embedded AWS restores it
    path = real_state(tmp_path)
    from local.emulator import server  # noqa: PLC0415 - its import loads moto's backends
    from local.state import moto_state  # noqa: PLC0415

    def disk_full(store: StateStore, region: str) -> Any:
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(moto_state, "restore", disk_full)

    # When it starts, then it says why in its one failure line (no traceback, no "is moto installed")
    assert server.main(["--state", str(path), "--stack", STACK, "--no-patches"]) == 2
    output = capsys.readouterr()
    (line,) = output.out.splitlines()
    assert line.startswith("MOTO_FAILED ")
    message = json.loads(line.removeprefix("MOTO_FAILED "))["message"]
    assert message == f"the state file {path} cannot be used right now: database or disk is full"
    assert "Traceback" not in output.err


def test_a_commit_into_a_state_file_deleted_or_replaced_since_it_was_opened_is_refused(tmp_path):
    path = tmp_path / "state.sqlite"
    store = StateStore.open(path, STACK, durable=True)
    store.write(items=[(TABLE, "a", "{}")])
    for name in ("state.sqlite", "state.sqlite-wal", "state.sqlite-shm"):
        (tmp_path / name).unlink(missing_ok=True)

    with pytest.raises(StateError, match="was deleted or replaced while the stack ran"):
        store.write(items=[(TABLE, "b", "{}")])
    store.close()
