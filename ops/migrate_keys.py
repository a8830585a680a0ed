"""Copy every task of an old-layout task table into a stage's current task table (new keys).

    make migrate-keys STAGE=prod FROM_TABLE=TaskTable-old                 # the deployed stage
    make migrate-keys STAGE=dev TARGET=local FROM_TABLE=OldTasks          # the `make dev` stack
    python -m ops.migrate_keys --stage prod --from-table TaskTable-old --dry-run

What it is for: the task table's key changed (taskflow.table_schema: hash key `pk`, the sharded
`listKey`, and `finishedKey`/`finishedAt` of finished tasks, instead of the hash key `taskId` and
the ByCreatedAt/ByOwner/ByStatus indexes). A key change makes CloudFormation *replace* the table
on `cdk deploy`: the functions switch to a new, empty table. This tool fills it from the old
tasks, restored from a backup (or, on a `removal_policy: retain` stage, the retained old table).

Safe order (docs/operations.md, "Move a deployed stage to the new task keys"):
1. pause intake and let the task queue drain (every task final, no message in flight);
2. `aws dynamodb create-backup` of the current task table (output TaskTableName);
3. `cdk deploy` (new table; the old one is retained on prod, deleted on dev);
4. `aws dynamodb restore-table-from-backup --target-table-name <name>-old`;
5. this tool, `--from-table <name>-old` (repeatable);
6. check the counts, restore intake, delete the restored (and the retained) old table.

Each item of the old table (a Scan, paged on LastEvaluatedKey) is read as a Task and written with
`TaskRepository.stored_item` (the new keys; a finished task without finishedAt is finished at its
updatedAt) in a PutItem conditional on `attribute_not_exists(pk)`: a task already in the new
table, copied by an earlier run or created there meanwhile, is never overwritten ("already
present"), so the copy can be re-run until it reports no failure. Items that are not tasks are
counted and named, and the run goes on. The copy keeps every task attribute (status, run,
retries, version, owner...), except that a pending task loses its processing lease: the lease
belonged to a message of the old table, and the copy's INSERT on the new table's stream enqueues
the task again, whose message must be able to claim it (a live lease of another message would
make the processor drop it). Every copy is one INSERT: the notifier pushes it to connected clients.

`--list-shards` must be the stage's `task_list_shards` (the keys hold the shard, and listings read
shards 0..N-1 only): by default it is read from cdk.json (infra/config.py, no CDK needed).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final

from botocore.exceptions import BotoCoreError, ClientError

from infra.config import StageConfigError, load_stages
from ops.stack_outputs import StackOutputsError, add_stack_arguments, resolve_outputs
from taskflow import table_schema
from taskflow.clients import aws
from taskflow.domain.limits import TASK_ID_PATTERN
from taskflow.domain.status import TaskStatus
from taskflow.domain.task import InvalidTaskItemError, Task
from taskflow.repositories.dynamodb import CONDITIONAL_CHECK_FAILED, deserialize, serialize
from taskflow.repositories.task_repository import TaskRepository

CDK_JSON: Final = Path(__file__).resolve().parent.parent / "cdk.json"
# Items a Scan request evaluates (its Limit; a page also stops at 1 MB): progress is printed per page.
SCAN_PAGE_ITEMS = 1000
WORKERS: Final = 8  # PutItem calls in flight
_TASK_ID: Final = re.compile(TASK_ID_PATTERN)

Say = Callable[[str], None]

# What happened to one valid task.
_COPIED: Final = "copied"
_PRESENT: Final = "present"
_FAILED: Final = "failed"


@dataclass
class MigrationResult:
    scanned: int = 0
    copied: int = 0  # written (a dry run: would be written)
    present: int = 0  # already in the new table (an earlier run, or created there meanwhile)
    invalid: int = 0  # items that are not tasks: not copied
    failed: int = 0  # valid tasks whose write failed: run again
    invalid_keys: list[dict[str, Any]] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """Every valid task is in the new table (copied now or before)."""
        return self.failed == 0

    def counts(self, *, dry_run: bool) -> str:
        return (
            f"scanned {self.scanned}, {'would copy' if dry_run else 'copied'} {self.copied}, "
            f"already present {self.present}, invalid {self.invalid}"
            + (f", failed {self.failed}" if self.failed else "")
        )


def migrate(
    client: Any,
    from_table: str,
    tasks: TaskRepository,
    *,
    dry_run: bool,
    say: Say,
    workers: int = WORKERS,
    page_items: int | None = None,
) -> MigrationResult:
    """Copy every task of `from_table` into `tasks`' table (see the module docstring)."""
    key_names = _key_names(client, from_table)
    result = MigrationResult()
    request: dict[str, Any] = {"TableName": from_table, "Limit": page_items or SCAN_PAGE_ITEMS}
    write = _exists if dry_run else _put
    with ThreadPoolExecutor(max_workers=workers) as pool:
        while True:
            page = client.scan(**request)
            result.scanned += page.get("ScannedCount", len(page.get("Items", [])))
            valid: list[Task] = []
            for item in page.get("Items", []):
                plain = deserialize(item)
                try:
                    valid.append(_task_of(plain))
                except InvalidTaskItemError as error:
                    key = {name: plain.get(name) for name in key_names}
                    result.invalid += 1
                    result.invalid_keys.append(key)
                    say(f"  invalid item {json.dumps(key, default=str)}: {error}")
            for task, (outcome, problem) in zip(
                valid, pool.map(lambda task: write(tasks, task), valid), strict=True
            ):
                if outcome == _COPIED:
                    result.copied += 1
                elif outcome == _PRESENT:
                    result.present += 1
                else:
                    result.failed += 1
                    say(f"  not copied {_name(task)}: {problem}")
            say(result.counts(dry_run=dry_run))
            if "LastEvaluatedKey" not in page:
                return result
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def _key_names(client: Any, table_name: str) -> list[str]:
    """The key attributes of a table (`taskId` on the old layout): how an invalid item is named."""
    schema = client.describe_table(TableName=table_name)["Table"]["KeySchema"]
    return [part["AttributeName"] for part in schema]


def _task_of(item: dict[str, Any]) -> Task:
    """The task to write for an old item; raises InvalidTaskItemError if it is not one."""
    task = Task.from_item(item)
    if not _TASK_ID.match(task.task_id):
        # Not an id the API creates: a `#` in it would make the new keys ambiguous.
        raise InvalidTaskItemError(f"not a stored task: taskId {task.task_id!r} is not a task id")
    if task.status is TaskStatus.PENDING:
        # The old lease is of a message of the old table; the copy is enqueued again (its INSERT).
        task = replace(task, lease_owner=None, lease_expires_at=None, lease_state=None)
    return task


def _put(tasks: TaskRepository, task: Task) -> tuple[str, str | None]:
    """Write the task unless its key is taken: (outcome, error message)."""
    try:
        tasks.client.put_item(
            TableName=tasks.table_name,
            Item=serialize(tasks.stored_item(task)),
            ConditionExpression="attribute_not_exists(#pk)",
            ExpressionAttributeNames={"#pk": table_schema.TASK_PK},
        )
    except (ClientError, BotoCoreError) as error:
        if aws.error_code(error) == CONDITIONAL_CHECK_FAILED:
            return _PRESENT, None
        return _FAILED, str(error)
    return _COPIED, None


def _exists(tasks: TaskRepository, task: Task) -> tuple[str, str | None]:
    """A dry run's `_put`: whether the task's key is taken, writing nothing."""
    key = table_schema.task_key(task.task_id, task.owner)
    try:
        found = tasks.client.get_item(
            TableName=tasks.table_name,
            Key=serialize({table_schema.TASK_PK: key}),
            ProjectionExpression="#pk",
            ExpressionAttributeNames={"#pk": table_schema.TASK_PK},
        )
    except (ClientError, BotoCoreError) as error:
        return _FAILED, str(error)
    return (_PRESENT if "Item" in found else _COPIED), None


def _name(task: Task) -> str:
    return task.task_id if task.owner is None else f"{task.task_id} (owner {task.owner})"


def stage_list_shards(stage: str, cdk_json: Path | None = None) -> int:
    """The stage's `task_list_shards` as cdk.json declares it (validated by infra/config.py)."""
    cdk_json = cdk_json or CDK_JSON
    try:
        context = json.loads(cdk_json.read_text())["context"]
        stages = load_stages(context["stages"])
    except (OSError, ValueError, KeyError) as error:  # StageConfigError is a ValueError
        detail = error if isinstance(error, StageConfigError) else repr(error)
        raise StageConfigError(f"cannot read the stages of {cdk_json}: {detail}") from None
    if stage not in stages:
        raise StageConfigError(f"{cdk_json} has no stage {stage!r}; give --list-shards")
    return stages[stage].task_list_shards


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ops.migrate_keys", description=__doc__.split("\n\n")[0])
    add_stack_arguments(parser, "fill")
    parser.add_argument(
        "--from-table", required=True, metavar="NAME", help="the old-layout table to copy from"
    )
    parser.add_argument(
        "--list-shards",
        type=int,
        metavar="N",
        help="the stage's task_list_shards (default: the stage's value in cdk.json)",
    )
    parser.add_argument("--workers", type=int, default=WORKERS, help="PutItem calls in flight")
    parser.add_argument("--dry-run", action="store_true", help="count what would be copied, write nothing")
    args = parser.parse_args(argv)
    if args.list_shards is not None and args.list_shards < 1:
        parser.error("--list-shards must be at least 1")
    if args.workers < 1:
        parser.error("--workers must be at least 1")

    def say(line: str) -> None:
        print(line, flush=True)

    try:
        shards = args.list_shards if args.list_shards is not None else stage_list_shards(args.stage)
        outputs = resolve_outputs(args.stage, args.target, args.state_dir)
        to_table = outputs.value("TaskTableName")
    except (StackOutputsError, StageConfigError) as error:
        print(f"migrate-keys: {error}", file=sys.stderr)
        return 2
    if to_table == args.from_table:
        print(f"migrate-keys: {to_table} is the stage's task table; copy from the old one", file=sys.stderr)
        return 2
    client = outputs.client("dynamodb")
    tasks = TaskRepository(to_table, client=client, list_shards=shards)
    say(
        f"copying {args.from_table} into {to_table} of {outputs.stack_name} ({outputs.where}), "
        f"{shards} list shard(s)" + (" (dry run: nothing is written)" if args.dry_run else "")
    )
    try:
        result = migrate(client, args.from_table, tasks, dry_run=args.dry_run, say=say, workers=args.workers)
    except (ClientError, BotoCoreError) as error:
        print(f"migrate-keys: {error} (what was copied stays; run again to go on)", file=sys.stderr)
        return 1
    say(
        f"done{' (dry run)' if args.dry_run else ''}: {result.counts(dry_run=args.dry_run)}"
        + (" (run again to copy the failed ones)" if not result.complete else "")
    )
    return 0 if result.complete else 1


if __name__ == "__main__":
    sys.exit(main())
