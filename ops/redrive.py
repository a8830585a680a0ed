"""Redrive a stage: put dead-lettered work back in the pipeline.

    make redrive STAGE=dev                 # the deployed stage (AWS credentials)
    make redrive STAGE=dev TARGET=local    # the local stack started by `make dev`
    python -m ops.redrive --stage dev --dry-run
    python -m ops.redrive --stage prod --task-id 6f1c --owner <sub>   # one task of one owner

Two steps (three with --pending-older-than), all safe to repeat:

1. Messages still in the DLQ (the DLQ consumer normally empties it within seconds, so these
   exist only while that consumer is failing) are moved back to the main queue: received,
   sent to the queue with the same body, then deleted from the DLQ. Their tasks are still
   `pending` in the same run, so the processor picks them up again. The copy is a new message
   (a new id): while the task still holds the lease of its last attempt (up to the processor's
   timeout + 5 s after it was dead-lettered), the copy is sent with a delay until the lease
   ends, or the processor would take it for a duplicate of a live message and drop it.
2. Tasks in `error`, of every owner, are re-run with the same conditional transition as
   `POST /tasks/{taskId}/retry` (error -> pending, run + 1, retries 0): the task table's
   stream enqueues them again, and a late message of the old run cannot touch the new run.
   `--task-id` (repeatable) re-runs just those tasks; on an `auth: jwt` stage a task's key
   includes its owner, so give it with `--owner SUB` (the token's sub). `--limit N` re-runs
   the N most recently failed.
3. With `--pending-older-than MINUTES`: tasks `pending` and unchanged for that long (their
   enqueue stream record expired, 24 h after it was written, while SQS was unreachable) get
   their message `{"taskId", "run", "owner"}` sent again. A task that was merely slow is not
   harmed: the processor's lease and conditional writes make an extra message a no-op.

Steps 2 and 3 find their tasks with a DynamoDB Scan of the task table filtered on status: the
API's listings are per owner (TaskRepository.list_page), and this tool works across all owners.
A Scan reads (and is billed for) the whole table, however few tasks match: this is an operator's
tool, run rarely, and no request path scans the task table. Every task is collected before any
is changed, since re-running one changes what the filter matches.

SQS's StartMessageMoveTask would do step 1 server-side on AWS, but it reports no per-message
result and moto does not implement it; receive/send/delete works on both and counts what moved.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from ops.stack_outputs import StackOutputs, StackOutputsError, add_stack_arguments, resolve_outputs
from taskflow import table_schema
from taskflow.domain.clock import utc_now, utc_timestamp
from taskflow.domain.errors import InvalidTransitionError, MalformedMessageError, TaskNotFoundError
from taskflow.domain.messages import TaskMessage
from taskflow.domain.owners import owner_or_none
from taskflow.domain.status import TaskStatus
from taskflow.domain.task import InvalidTaskItemError, Task
from taskflow.repositories.dynamodb import deserialize
from taskflow.repositories.task_repository import TaskRepository

PAGE_SIZE = 100
MAX_DELAY_SECONDS = 900  # SQS's DelaySeconds limit
CLOCK_MARGIN_SECONDS = 5
# Items a Scan request evaluates (its Limit; a page also stops at 1 MB): progress is printed per page.
SCAN_PAGE_ITEMS = 1000


@dataclass
class RedriveResult:
    messages_moved: int = 0
    messages_failed: int = 0
    messages_dropped: int = 0  # malformed: no task can ever run from them
    messages_left: int = 0  # left in the DLQ, each with its reason said
    tasks_found: int = 0
    tasks_rerun: int = 0
    tasks_skipped: int = 0  # retried or changed by someone else meanwhile
    pending_requeued: int = 0


class _Leave(Exception):
    """A dead letter step 1 leaves in the DLQ, and why."""


def move_dead_letters(
    sqs: Any, dlq_url: str, queue_url: str, tasks: TaskRepository, *, dry_run: bool, say: Any
) -> RedriveResult:
    """Step 1: move every message in the DLQ back to the main queue (each delayed until its
    task's lease has ended, see `_delay_seconds`). A malformed message is deleted, as the DLQ
    consumer would (no task can run from it). A message whose task item cannot be read, or the copy
    of one moved in this run (it failed again while the step ran), is left in the DLQ and said; the
    step stops after a batch that brings back a copy or a message it left."""
    result = RedriveResult()
    if dry_run:
        attributes = sqs.get_queue_attributes(
            QueueUrl=dlq_url, AttributeNames=["ApproximateNumberOfMessages"]
        )["Attributes"]
        say(f"DLQ holds about {attributes['ApproximateNumberOfMessages']} message(s); not moved (dry run)")
        return result
    copies: set[str] = set()  # the ids of the copies sent (SQS keeps a message's id when it dead-letters it)
    left: set[str] = set()
    while True:
        received = sqs.receive_message(
            QueueUrl=dlq_url, MaxNumberOfMessages=10, WaitTimeSeconds=1, VisibilityTimeout=60
        ).get("Messages", [])
        if not received:
            return result
        entries, dropped, again = [], [], False
        for index, message in enumerate(received):
            body, message_id = message["Body"], message["MessageId"]
            try:
                if message_id in left:
                    again = True  # its visibility timeout ran out: every message has been seen
                    continue
                if message_id in copies:
                    again = True
                    raise _Leave("moved once in this run already, and dead-lettered again since")
                delay = _delay_seconds(tasks, message)
            except _Leave as reason:
                left.add(message_id)
                result.messages_left += 1
                say(f"left in the DLQ: {body[:120]!r}: {reason}")
                continue
            if delay is None:
                dropped.append(message)
                say(f"deleted a malformed message (not a task message): {body[:120]!r}")
                continue
            entries.append({"Id": str(index), "MessageBody": body, "DelaySeconds": delay})
        moved = []
        if entries:
            sent = sqs.send_message_batch(QueueUrl=queue_url, Entries=entries)
            moved = [received[int(entry["Id"])] for entry in sent.get("Successful", [])]
            copies.update(entry["MessageId"] for entry in sent.get("Successful", []))
            result.messages_failed += len(sent.get("Failed", []))
        done = moved + dropped
        if done:
            sqs.delete_message_batch(
                QueueUrl=dlq_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)],
            )
        result.messages_moved += len(moved)
        result.messages_dropped += len(dropped)
        say(f"moved {result.messages_moved} message(s) from the DLQ back to the queue")
        if result.messages_failed or again:
            # Left in the DLQ; they become visible again and the next run retries them.
            return result


def _delay_seconds(tasks: TaskRepository, message: dict[str, Any]) -> int | None:
    """How long the copy of a dead-lettered message must wait: until the lease its task still holds
    (the last attempt's, kept until the processor's timeout + 5 s) has ended, at most SQS's 15
    minutes (a longer lease is another message backing off, which will run the task itself).
    None for a malformed message; raises _Leave when the task item cannot be read."""
    try:
        task_message = TaskMessage.parse(message["Body"])
    except MalformedMessageError:
        return None
    try:
        task = tasks.get(task_message.task_id, owner=task_message.owner)
    except InvalidTaskItemError as error:
        raise _Leave(f"its task item cannot be read ({error}); repair the item, then run again") from None
    if task is None or task.status is not TaskStatus.PENDING or task.run != task_message.run:
        return 0
    left = (task.lease_expires_at or 0) - int(tasks.now().timestamp())
    # The lease was stamped by Lambda's clock, this by the operator's: a few seconds more.
    return min(MAX_DELAY_SECONDS, left + CLOCK_MARGIN_SECONDS) if left >= 0 else 0


def scan_tasks(
    dynamodb: Any,
    table_name: str,
    status: TaskStatus,
    *,
    updated_before: str | None = None,
    say: Any,
    page_items: int | None = None,
) -> list[Task]:
    """Every task of the table in `status` (and, with `updated_before`, last changed before that
    timestamp), of every owner: a Scan, paged on LastEvaluatedKey, that reads the whole table."""
    condition = "#status = :status"
    names = {"#status": "status"}
    values: dict[str, Any] = {":status": {"S": status.value}}
    if updated_before is not None:
        # Timestamps are fixed-width ISO-8601 UTC (taskflow.domain.clock): they compare as text.
        condition += " AND #updatedAt < :before"
        names["#updatedAt"] = "updatedAt"
        values[":before"] = {"S": updated_before}
    request: dict[str, Any] = {
        "TableName": table_name,
        "FilterExpression": condition,
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": values,
        "Limit": page_items or SCAN_PAGE_ITEMS,
    }
    what = status.value if status is not TaskStatus.ERROR else "in error"
    found: list[Task] = []
    scanned = 0
    while True:
        page = dynamodb.scan(**request)
        scanned += page.get("ScannedCount", 0)
        for item in page.get("Items", []):
            plain = deserialize(item)
            try:
                found.append(Task.from_item(plain))
            except InvalidTaskItemError as error:
                say(f"  skipped item {plain.get(table_schema.TASK_PK)!r}: {error}")
        say(f"  scanned {scanned} item(s), {len(found)} {what}")
        if "LastEvaluatedKey" not in page:
            return found
        request["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def rerun_failed_tasks(
    tasks: TaskRepository,
    *,
    task_ids: Sequence[str],
    owner: str | None = None,
    limit: int | None,
    dry_run: bool,
    say: Any,
) -> RedriveResult:
    """Step 2: error -> pending (a new run) for the given tasks of `owner`, or for every task in
    error of every owner (the `limit` most recently failed, with a limit)."""
    result = RedriveResult()
    targets = [(task_id, owner) for task_id in task_ids] or _error_tasks(tasks, limit, say)
    result.tasks_found = len(targets)
    say(f"{len(targets)} task(s) in error" + (" (dry run: not re-run)" if dry_run else ""))
    for task_id, task_owner in targets:
        name = _name(task_id, task_owner)
        if dry_run:
            say(f"  would re-run {name}")
            continue
        try:
            tasks.retry(task_id, owner=task_owner)
        except (InvalidTransitionError, TaskNotFoundError) as error:
            result.tasks_skipped += 1
            say(f"  skipped {name}: {error}")
            continue
        result.tasks_rerun += 1
        if result.tasks_rerun % PAGE_SIZE == 0:
            say(f"  re-ran {result.tasks_rerun}/{len(targets)}")
    return result


def _error_tasks(tasks: TaskRepository, limit: int | None, say: Any) -> list[tuple[str, str | None]]:
    """(taskId, owner) of every task in error, most recently failed first, all collected before
    any is re-run (re-running one takes it out of what the scan matches)."""
    say(f"scanning {tasks.table_name} for tasks in error (reads the whole table)")
    found = scan_tasks(tasks.client, tasks.table_name, TaskStatus.ERROR, say=say)
    found.sort(key=lambda task: (task.finished_at or task.updated_at, task.task_id), reverse=True)
    return [(task.task_id, task.owner) for task in found[:limit]]


def _name(task_id: str, owner: str | None) -> str:
    return task_id if owner is None else f"{task_id} (owner {owner})"


def requeue_stale_pending(
    tasks: TaskRepository, sqs: Any, queue_url: str, *, older_than_minutes: float, dry_run: bool, say: Any
) -> tuple[int, int]:
    """Step 3: send the queue message again for pending tasks unchanged for that long. Returns
    how many were sent, and how many SQS refused (each said)."""
    cutoff = utc_timestamp(utc_now() - timedelta(minutes=older_than_minutes))
    say(f"scanning {tasks.table_name} for tasks pending since before {cutoff} (reads the whole table)")
    stale = [
        TaskMessage(task.task_id, task.run, correlation_id=task.correlation_id, owner=task.owner)
        for task in scan_tasks(
            tasks.client, tasks.table_name, TaskStatus.PENDING, updated_before=cutoff, say=say
        )
    ]
    say(
        f"{len(stale)} task(s) pending for over {older_than_minutes:g} min"
        + (" (dry run)" if dry_run else "")
    )
    if dry_run:
        return 0, 0
    sent = 0
    for first in range(0, len(stale), 10):
        chunk = stale[first : first + 10]
        answer = sqs.send_message_batch(
            QueueUrl=queue_url,
            Entries=[{"Id": str(i), "MessageBody": message.to_body()} for i, message in enumerate(chunk)],
        )
        sent += len(answer.get("Successful", []))
        for failed in answer.get("Failed", []):
            task = chunk[int(failed["Id"])]
            why = failed.get("Message") or failed["Code"]
            say(f"could not re-enqueue {task.task_id!r} (run {task.run}): {why}")
    return sent, len(stale) - sent


def redrive(outputs: StackOutputs, args: argparse.Namespace, say: Any) -> RedriveResult:
    sqs = outputs.client("sqs")
    tasks = TaskRepository(outputs.value("TaskTableName"), client=outputs.client("dynamodb"))
    moved = move_dead_letters(
        sqs, outputs.value("TaskDlqUrl"), outputs.value("TaskQueueUrl"), tasks, dry_run=args.dry_run, say=say
    )
    rerun = rerun_failed_tasks(
        tasks,
        task_ids=args.task_id,
        owner=args.owner,
        limit=args.limit,
        dry_run=args.dry_run,
        say=say,
    )
    rerun.messages_moved, rerun.messages_failed = moved.messages_moved, moved.messages_failed
    rerun.messages_dropped, rerun.messages_left = moved.messages_dropped, moved.messages_left
    if args.pending_older_than is not None:
        rerun.pending_requeued, not_sent = requeue_stale_pending(
            tasks,
            sqs,
            outputs.value("TaskQueueUrl"),
            older_than_minutes=args.pending_older_than,
            dry_run=args.dry_run,
            say=say,
        )
        rerun.messages_failed += not_sent
    return rerun


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ops.redrive", description=__doc__.split("\n\n")[0])
    add_stack_arguments(parser, "redrive")
    parser.add_argument("--task-id", action="append", default=[], help="re-run only this task (repeatable)")
    parser.add_argument(
        "--owner",
        metavar="SUB",
        help="the owner (token sub) of the --task-id tasks, on an auth: jwt stage; absent: auth: none",
    )
    parser.add_argument("--limit", type=int, default=None, help="re-run at most this many error tasks")
    parser.add_argument(
        "--pending-older-than",
        type=float,
        metavar="MINUTES",
        help="also re-enqueue tasks pending and unchanged this long (e.g. 1440 after a day-long SQS outage)",
    )
    parser.add_argument("--dry-run", action="store_true", help="show what would move, change nothing")
    args = parser.parse_args(argv)
    if args.limit is not None and args.limit < 1:
        parser.error("--limit must be at least 1 (leave it out to re-run every task in error)")
    if args.pending_older_than is not None and args.pending_older_than <= 0:
        parser.error("--pending-older-than takes minutes above 0 (1440: a day)")
    if args.owner is not None and not args.task_id:
        parser.error("--owner names the owner of --task-id tasks; give --task-id too")
    if args.owner is not None and owner_or_none(args.owner) != args.owner:
        parser.error("--owner must be a non-empty owner id (a token's sub)")

    def say(line: str) -> None:
        print(line, flush=True)

    try:
        outputs = resolve_outputs(args.stage, args.target, args.state_dir)
    except StackOutputsError as error:
        print(f"redrive: {error}", file=sys.stderr)
        return 2
    say(f"redriving {outputs.stack_name} ({outputs.where})")
    result = redrive(outputs, args, say)
    say(
        f"done: {result.messages_moved} DLQ message(s) moved back"
        + (f", {result.messages_dropped} malformed deleted" if result.messages_dropped else "")
        + (f", {result.messages_left} left in the DLQ (why: above)" if result.messages_left else "")
        + (f" ({result.messages_failed} could not be sent; run again)" if result.messages_failed else "")
        + f", {result.tasks_rerun} task(s) re-run, {result.tasks_skipped} skipped"
        + (f", {result.pending_requeued} pending task(s) re-enqueued" if result.pending_requeued else "")
    )
    return 1 if result.messages_failed or result.messages_left else 0


if __name__ == "__main__":
    sys.exit(main())
