"""ops.migrate_keys on moto: an old-layout task table (hash key `taskId`, the ByCreatedAt/ByOwner/
ByStatus indexes, items with `listPartition` or `owner`) built by hand, copied into a task table
built from taskflow.table_schema, then read back through the real TaskRepository."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from ops import migrate_keys
from ops.migrate_keys import MigrationResult, migrate
from ops.stack_outputs import StackOutputs
from taskflow.domain.status import TaskStatus
from taskflow.domain.submission import TaskSubmission
from taskflow.domain.task import Task, new_task
from taskflow.repositories.dynamodb import deserialize, serialize
from taskflow.repositories.task_repository import ClaimOutcome, TaskRepository
from taskflow.table_schema import shard_of, task_table_request

REGION = "us-east-1"
OLD_TABLE = "TaskTable-old"
NEW_TABLE = "TaskTable"
SHARDS = 4
CREATED = datetime(2025, 1, 1, 10, 0, tzinfo=UTC)


@dataclass
class Tables:
    dynamodb: Any
    tasks: TaskRepository  # the new table, SHARDS list shards

    def put_old(self, task: Task, **extra: Any) -> None:
        """An item as the old code stored it: the task's attributes, plus `listPartition` on an
        auth: none stage (the ByCreatedAt partition); jwt items carry `owner` (in the task)."""
        item = task.to_item()
        if task.owner is None:
            item["listPartition"] = "TASK"
        self.dynamodb.put_item(TableName=OLD_TABLE, Item=serialize({**item, **extra}))

    def stored(self, pk: str) -> dict[str, Any]:
        item = self.dynamodb.get_item(TableName=NEW_TABLE, Key={"pk": {"S": pk}}).get("Item")
        assert item is not None, f"no item {pk} in the new table"
        return deserialize(item)

    def new_items(self) -> list[dict[str, Any]]:
        return [deserialize(item) for item in self.dynamodb.scan(TableName=NEW_TABLE)["Items"]]

    def outputs(self) -> StackOutputs:
        """What ops.stack_outputs would resolve for the stage."""
        return StackOutputs(
            "TaskBackend-test",
            {"TaskTableName": NEW_TABLE},
            where="moto",
            client_options={"region_name": REGION},
        )


def _old_table_request(*, owner_scoped: bool) -> dict[str, Any]:
    """CreateTable of the task table before the key change."""

    def index(name: str, partition: str) -> dict[str, Any]:
        return {
            "IndexName": name,
            "KeySchema": [
                {"AttributeName": partition, "KeyType": "HASH"},
                {"AttributeName": "createdAt", "KeyType": "RANGE"},
            ],
            "Projection": {"ProjectionType": "ALL"},
        }

    listing = index("ByOwner", "owner") if owner_scoped else index("ByCreatedAt", "listPartition")
    partition = "owner" if owner_scoped else "listPartition"
    return {
        "TableName": OLD_TABLE,
        "BillingMode": "PAY_PER_REQUEST",
        "KeySchema": [{"AttributeName": "taskId", "KeyType": "HASH"}],
        "AttributeDefinitions": [
            {"AttributeName": name, "AttributeType": "S"}
            for name in ("taskId", partition, "status", "createdAt")
        ],
        "GlobalSecondaryIndexes": [listing, index("ByStatus", "status")],
    }


def _tables(*, owner_scoped: bool, monkeypatch: pytest.MonkeyPatch) -> Iterator[Tables]:
    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        dynamodb.create_table(**_old_table_request(owner_scoped=owner_scoped))
        dynamodb.create_table(**task_table_request(NEW_TABLE))
        yield Tables(dynamodb, TaskRepository(NEW_TABLE, client=dynamodb, list_shards=SHARDS))


@pytest.fixture
def none_tables(monkeypatch: pytest.MonkeyPatch) -> Iterator[Tables]:
    """The old table of an `auth: none` stage, and the new task table."""
    yield from _tables(owner_scoped=False, monkeypatch=monkeypatch)


@pytest.fixture
def jwt_tables(monkeypatch: pytest.MonkeyPatch) -> Iterator[Tables]:
    """The old table of an `auth: jwt` stage, and the new task table."""
    yield from _tables(owner_scoped=True, monkeypatch=monkeypatch)


def old_task(
    task_id: str,
    status: TaskStatus = TaskStatus.PENDING,
    *,
    minute: int = 0,
    owner: str | None = None,
    finished_at: str | None = None,
    answer: str = "42",
) -> Task:
    """A task as the old table held it: created at 10:<minute>, last changed a minute later."""
    task = new_task(TaskSubmission(answer=answer, payload={"n": minute}), task_id, CREATED, owner=owner)
    return replace(
        task,
        status=status,
        created_at=f"2025-01-01T10:{minute:02d}:00.000000Z",
        updated_at=f"2025-01-01T10:{minute + 1:02d}:00.000000Z",
        version=3 if status is not TaskStatus.PENDING else 1,
        retries=2 if status is TaskStatus.ERROR else 0,
        error_message="boom" if status is TaskStatus.ERROR else None,
        finished_at=finished_at,
    )


def run(tables: Tables, *, dry_run: bool = False, page_items: int | None = None) -> MigrationResult:
    return migrate(
        tables.dynamodb, OLD_TABLE, tables.tasks, dry_run=dry_run, say=lambda _: None, page_items=page_items
    )


def run_cli(tables: Tables, monkeypatch: pytest.MonkeyPatch, *args: str) -> int:
    """`python -m ops.migrate_keys --stage test --from-table OLD ARGS` against the moto tables."""
    monkeypatch.setattr(migrate_keys, "resolve_outputs", lambda *_: tables.outputs())
    return migrate_keys.main(["--stage", "test", "--from-table", OLD_TABLE, *args])


# --------------------------------------------------------------------------- the new keys


def test_auth_none_tasks_of_every_status_get_their_new_keys(none_tables: Tables) -> None:
    # Given an auth: none table with a pending, a succeeded and a failed task (the failed one with
    # a finishedAt of its own, the succeeded one without: old items had none)
    pending = old_task("p1", minute=1)
    succeeded = old_task("s1", TaskStatus.SUCCESS, minute=2)
    failed = old_task("e1", TaskStatus.ERROR, minute=3, finished_at="2025-01-01T10:30:00.000000Z")
    for task in (pending, succeeded, failed):
        none_tables.put_old(task)

    # When they are copied
    result = run(none_tables)

    # Then each is keyed by its taskId, listed in its shard of the `*` scope, and the finished
    # ones are in ByFinished under their status, finished at finishedAt or else updatedAt
    assert (result.scanned, result.copied, result.present, result.invalid, result.failed) == (3, 3, 0, 0, 0)
    p1, s1, e1 = (none_tables.stored(task_id) for task_id in ("p1", "s1", "e1"))
    assert p1["listKey"] == f"*#{shard_of('p1', SHARDS)}"
    assert "finishedKey" not in p1
    assert "finishedAt" not in p1
    assert (s1["listKey"], s1["finishedKey"], s1["finishedAt"]) == (
        f"*#{shard_of('s1', SHARDS)}",
        f"*#success#{shard_of('s1', SHARDS)}",
        succeeded.updated_at,
    )
    assert (e1["finishedKey"], e1["finishedAt"]) == (
        f"*#error#{shard_of('e1', SHARDS)}",
        "2025-01-01T10:30:00.000000Z",
    )
    # And the task itself is unchanged, without the old index attribute
    assert Task.from_item(p1) == pending
    assert Task.from_item(s1) == replace(succeeded, finished_at=succeeded.updated_at)
    assert Task.from_item(e1) == failed
    assert all("listPartition" not in item for item in none_tables.new_items())


def test_auth_jwt_tasks_are_keyed_and_listed_under_their_owner(jwt_tables: Tables) -> None:
    # Given an auth: jwt table with tasks of two owners, of each status
    tasks = [
        old_task("a1", minute=1, owner="alice"),
        old_task("a2", TaskStatus.SUCCESS, minute=2, owner="alice"),
        old_task("b1", TaskStatus.ERROR, minute=3, owner="bob"),
    ]
    for task in tasks:
        jwt_tables.put_old(task)

    # When they are copied
    result = run(jwt_tables)

    # Then each key holds its owner: the table key, its listing partition and its ByFinished one
    assert (result.copied, result.invalid, result.failed) == (3, 0, 0)
    a1, a2, b1 = (jwt_tables.stored(pk) for pk in ("alice#a1", "alice#a2", "bob#b1"))
    assert (a1["listKey"], a1["owner"]) == (f"alice#{shard_of('a1', SHARDS)}", "alice")
    assert "finishedKey" not in a1
    assert a2["finishedKey"] == f"alice#success#{shard_of('a2', SHARDS)}"
    assert (b1["listKey"], b1["finishedKey"]) == (
        f"bob#{shard_of('b1', SHARDS)}",
        f"bob#error#{shard_of('b1', SHARDS)}",
    )
    # And the repository finds them by owner
    assert jwt_tables.tasks.get("a1", owner="alice") == tasks[0]
    assert jwt_tables.tasks.get("b1", owner="alice") is None


# --------------------------------------------------------------------------- listing after the copy


def test_copied_auth_none_tasks_list_newest_first_and_by_status(none_tables: Tables) -> None:
    # Given twelve tasks over every status, created a minute apart, spread over the shards
    statuses = [TaskStatus.PENDING, TaskStatus.SUCCESS, TaskStatus.ERROR]
    for n in range(12):
        none_tables.put_old(old_task(f"t{n:02d}", statuses[n % 3], minute=n))

    # When they are copied (three Scan pages)
    run(none_tables, page_items=5)

    # Then the listing gives them newest first, in pages that resume where they stopped
    first = none_tables.tasks.list_page(limit=7)
    assert first.has_more
    rest = none_tables.tasks.list_page(limit=7, start_key=none_tables.tasks.page_key(first.tasks[-1]))
    listed = [task.task_id for task in first.tasks + rest.tasks]
    assert listed == [f"t{n:02d}" for n in reversed(range(12))]
    # And the error listing finds exactly the failed ones, most recently finished first
    errors = none_tables.tasks.list_page(limit=10, status=TaskStatus.ERROR)
    assert [task.task_id for task in errors.tasks] == ["t11", "t08", "t05", "t02"]
    succeeded = none_tables.tasks.list_page(limit=10, status=TaskStatus.SUCCESS)
    assert [task.task_id for task in succeeded.tasks] == ["t10", "t07", "t04", "t01"]
    pending = none_tables.tasks.list_page(limit=10, status=TaskStatus.PENDING)
    assert [task.task_id for task in pending.tasks] == ["t09", "t06", "t03", "t00"]


def test_copied_auth_jwt_tasks_list_per_owner(jwt_tables: Tables) -> None:
    # Given two owners' tasks, interleaved in time, some failed
    for n in range(8):
        owner = "alice" if n % 2 else "bob"
        status = TaskStatus.ERROR if n % 4 in (0, 1) else TaskStatus.SUCCESS
        jwt_tables.put_old(old_task(f"t{n}", status, minute=n, owner=owner))

    # When they are copied
    run(jwt_tables)

    # Then each owner lists only their own tasks, newest first, and finds their failed ones
    def ids(owner: str, status: TaskStatus | None = None) -> list[str]:
        page = jwt_tables.tasks.list_page(limit=10, owner=owner, status=status)
        return [task.task_id for task in page.tasks]

    assert ids("alice") == ["t7", "t5", "t3", "t1"]
    assert ids("bob") == ["t6", "t4", "t2", "t0"]
    assert ids("alice", TaskStatus.ERROR) == ["t5", "t1"]
    assert ids("bob", TaskStatus.ERROR) == ["t4", "t0"]
    assert ids("carol") == []


# --------------------------------------------------------------------------- idempotence and safety


def test_running_it_again_copies_nothing_twice(none_tables: Tables) -> None:
    # Given a table that was copied once
    for n in range(5):
        none_tables.put_old(old_task(f"t{n}", TaskStatus.SUCCESS, minute=n))
    assert run(none_tables).copied == 5
    before = sorted(none_tables.new_items(), key=lambda item: item["pk"])

    # When the copy runs again
    again = run(none_tables)

    # Then every task is counted as already present, and the new table is unchanged
    assert (again.scanned, again.copied, again.present, again.failed) == (5, 0, 5, 0)
    assert again.complete
    assert sorted(none_tables.new_items(), key=lambda item: item["pk"]) == before


def test_a_task_created_in_the_new_table_meanwhile_is_not_overwritten(jwt_tables: Tables) -> None:
    # Given an old task of alice, and a task alice created with the same id in the new table
    # (e.g. POST /tasks with that id after the deploy) that has since finished
    jwt_tables.put_old(old_task("t1", TaskStatus.ERROR, minute=1, owner="alice", answer="old"))
    jwt_tables.put_old(old_task("t2", minute=2, owner="alice"))
    newer = old_task("t1", TaskStatus.SUCCESS, minute=30, owner="alice", answer="new")
    assert jwt_tables.tasks.create(newer).created

    # When the old table is copied
    result = run(jwt_tables)

    # Then the newer task is kept as it is and counted as already present; the other is copied
    assert (result.copied, result.present, result.failed) == (1, 1, 0)
    kept = jwt_tables.tasks.get("t1", owner="alice")
    assert kept is not None
    assert (kept.answer, kept.status) == ("new", TaskStatus.SUCCESS)
    assert jwt_tables.tasks.get("t2", owner="alice") is not None


def test_an_invalid_item_is_counted_and_named_and_the_rest_is_copied(
    none_tables: Tables, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given valid tasks and three items that are not tasks (no answer, an unknown status, and a
    # taskId the API never creates)
    for n in range(4):
        none_tables.put_old(old_task(f"t{n}", minute=n))
    broken = old_task("no-answer").to_item()
    del broken["answer"]
    none_tables.dynamodb.put_item(TableName=OLD_TABLE, Item=serialize(broken))
    none_tables.put_old(old_task("odd-status"), status="archived")
    none_tables.put_old(old_task("has#hash"))

    # When the copy runs
    exit_code = run_cli(none_tables, monkeypatch, "--list-shards", str(SHARDS))

    # Then the valid tasks are copied, the others counted and named by their key, and the run
    # counts as complete (every valid task is in the new table)
    out = capsys.readouterr().out
    assert exit_code == 0
    assert out.splitlines()[-1] == "done: scanned 7, copied 4, already present 0, invalid 3"
    for key in ("no-answer", "odd-status", "has#hash"):
        assert f'invalid item {{"taskId": "{key}"}}' in out
    assert sorted(item["pk"] for item in none_tables.new_items()) == ["t0", "t1", "t2", "t3"]


def test_a_copied_pending_task_can_be_claimed_by_its_new_message(none_tables: Tables) -> None:
    # Given a pending task whose old message still held a running lease far in the future
    leased = replace(
        old_task("t1"), lease_owner="old-message", lease_expires_at=4_102_444_800, lease_state="running"
    )
    none_tables.put_old(leased)

    # When it is copied
    run(none_tables)

    # Then the copy has no lease, and the message its INSERT enqueues can claim it at once
    copy = none_tables.tasks.get("t1")
    assert copy == replace(leased, lease_owner=None, lease_expires_at=None, lease_state=None)
    claim = none_tables.tasks.claim("t1", 1, "new-message", 60, delivery="d1")
    assert claim.outcome is ClaimOutcome.CLAIMED


def test_dry_run_writes_nothing_and_counts_what_it_would_copy(
    none_tables: Tables, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given three old tasks, one of which is already in the new table
    for n in range(3):
        none_tables.put_old(old_task(f"t{n}", minute=n))
    assert none_tables.tasks.create(old_task("t0", minute=0)).created

    # When a dry run looks at them
    exit_code = run_cli(none_tables, monkeypatch, "--list-shards", str(SHARDS), "--dry-run")

    # Then it reports what would be copied and the new table still holds only the one task
    assert exit_code == 0
    assert capsys.readouterr().out.splitlines()[-1] == (
        "done (dry run): scanned 3, would copy 2, already present 1, invalid 0"
    )
    assert [item["pk"] for item in none_tables.new_items()] == ["t0"]


# --------------------------------------------------------------------------- the command line


def test_progress_is_printed_for_every_page_and_a_failed_write_exits_1(
    jwt_tables: Tables, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given five tasks, one of whose new key DynamoDB refuses: owner#taskId is over 2048 bytes
    # (the owner alone, its old index key, was not)
    for n in range(4):
        jwt_tables.put_old(old_task(f"t{n}", minute=n, owner="alice"))
    jwt_tables.put_old(old_task("t9", minute=9, owner="x" * 2047))
    monkeypatch.setattr(migrate_keys, "SCAN_PAGE_ITEMS", 2)

    # When the copy runs, two items a Scan page
    exit_code = run_cli(jwt_tables, monkeypatch, "--list-shards", str(SHARDS))

    # Then every page said how far it got, the failed task is named, and the run exits 1
    lines = capsys.readouterr().out.splitlines()
    progress = [line for line in lines if line.startswith("scanned ")]
    assert [line.split(",")[0] for line in progress] == ["scanned 2", "scanned 4", "scanned 5"]
    assert any(line.startswith("  not copied t9 (owner xxx") for line in lines)
    assert lines[-1] == (
        "done: scanned 5, copied 4, already present 0, invalid 0, failed 1"
        " (run again to copy the failed ones)"
    )
    assert exit_code == 1


def test_list_shards_defaults_to_the_stage_value_in_cdk_json(
    none_tables: Tables, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Given a cdk.json whose stage `test` lists tasks over 3 shards
    cdk_json = tmp_path / "cdk.json"
    cdk_json.write_text(json.dumps({"context": {"stages": {"test": {"task_list_shards": 3}}}}))
    monkeypatch.setattr(migrate_keys, "CDK_JSON", cdk_json)
    none_tables.put_old(old_task("t1", TaskStatus.SUCCESS))

    # When the copy runs without --list-shards
    exit_code = run_cli(none_tables, monkeypatch)

    # Then the keys hold the task's shard among 3
    assert exit_code == 0
    stored = none_tables.stored("t1")
    assert (stored["listKey"], stored["finishedKey"]) == (
        f"*#{shard_of('t1', 3)}",
        f"*#success#{shard_of('t1', 3)}",
    )


def test_a_stage_missing_from_cdk_json_needs_list_shards(
    none_tables: Tables, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a cdk.json without the stage
    cdk_json = tmp_path / "cdk.json"
    cdk_json.write_text(json.dumps({"context": {"stages": {"dev": {}}}}))
    monkeypatch.setattr(migrate_keys, "CDK_JSON", cdk_json)
    none_tables.put_old(old_task("t1"))

    # When the copy runs without --list-shards, Then it stops before writing, asking for it
    assert run_cli(none_tables, monkeypatch) == 2
    assert "give --list-shards" in capsys.readouterr().err
    assert none_tables.new_items() == []


def test_the_stage_table_cannot_be_its_own_source(
    none_tables: Tables, monkeypatch: pytest.MonkeyPatch
) -> None:
    # When the stage's own table is named as the old one, Then nothing runs
    monkeypatch.setattr(migrate_keys, "resolve_outputs", lambda *_: none_tables.outputs())
    assert migrate_keys.main(["--stage", "test", "--from-table", NEW_TABLE, "--list-shards", "4"]) == 2
