"""Redrive a stage: put dead-lettered work back in the pipeline.

    make redrive STAGE=dev                 # the deployed stage (AWS credentials)
    make redrive STAGE=dev TARGET=local    # the local stack started by `make dev`
    python -m ops.redrive --stage dev --dry-run

Two steps (three with --pending-older-than), all safe to repeat:

1. Messages still in the DLQ (the DLQ consumer normally empties it within seconds, so these
   exist only while that consumer is failing) are moved back to the main queue: received,
   sent to the queue with the same body, then deleted from the DLQ. Their tasks are still
   `pending` in the same run, so the processor simply picks them up again.
2. Tasks in `error` are re-run with the same conditional transition as
   `POST /tasks/{taskId}/retry` (error -> pending, run + 1, retries 0): the task table's
   stream enqueues them again, and a late message of the old run cannot touch the new run.
3. With `--pending-older-than MINUTES`: tasks `pending` and unchanged for that long (their
   enqueue stream record expired, 24 h after it was written, while SQS was unreachable) get
   their message `{"taskId", "run"}` sent again. A task that was merely slow is not harmed:
   the processor's lease and conditional writes make an extra message a no-op.

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

from ops.stack_outputs import StackOutputs, StackOutputsError, resolve_outputs
from taskflow.domain.clock import utc_now, utc_timestamp
from taskflow.domain.errors import InvalidTransitionError, TaskNotFoundError
from taskflow.domain.messages import TaskMessage
from taskflow.domain.status import TaskStatus
from taskflow.repositories.task_repository import TaskRepository

PAGE_SIZE = 100


@dataclass
class RedriveResult:
    messages_moved: int = 0
    messages_failed: int = 0
    tasks_found: int = 0
    tasks_rerun: int = 0
    tasks_skipped: int = 0  # retried or changed by someone else meanwhile
    pending_requeued: int = 0


def move_dead_letters(sqs: Any, dlq_url: str, queue_url: str, *, dry_run: bool, say: Any) -> RedriveResult:
    """Step 1: move every message in the DLQ back to the main queue."""
    result = RedriveResult()
    if dry_run:
        attributes = sqs.get_queue_attributes(
            QueueUrl=dlq_url, AttributeNames=["ApproximateNumberOfMessages"]
        )["Attributes"]
        say(f"DLQ holds about {attributes['ApproximateNumberOfMessages']} message(s); not moved (dry run)")
        return result
    while True:
        received = sqs.receive_message(
            QueueUrl=dlq_url, MaxNumberOfMessages=10, WaitTimeSeconds=1, VisibilityTimeout=60
        ).get("Messages", [])
        if not received:
            return result
        sent = sqs.send_message_batch(
            QueueUrl=queue_url,
            Entries=[{"Id": str(i), "MessageBody": message["Body"]} for i, message in enumerate(received)],
        )
        moved = [received[int(entry["Id"])] for entry in sent.get("Successful", [])]
        result.messages_failed += len(sent.get("Failed", []))
        if moved:
            sqs.delete_message_batch(
                QueueUrl=dlq_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(moved)],
            )
        result.messages_moved += len(moved)
        say(f"moved {result.messages_moved} message(s) from the DLQ back to the queue")
        if result.messages_failed:
            # Left in the DLQ; they become visible again and the next run retries them.
            return result


def rerun_failed_tasks(
    tasks: TaskRepository, *, task_ids: Sequence[str], limit: int | None, dry_run: bool, say: Any
) -> RedriveResult:
    """Step 2: error -> pending (a new run) for the given tasks, or for every task in error."""
    result = RedriveResult()
    ids = list(task_ids) or _error_task_ids(tasks, limit)
    result.tasks_found = len(ids)
    say(f"{len(ids)} task(s) in error" + (" (dry run: not re-run)" if dry_run else ""))
    for task_id in ids:
        if dry_run:
            say(f"  would re-run {task_id}")
            continue
        try:
            tasks.retry(task_id)
        except (InvalidTransitionError, TaskNotFoundError) as error:
            result.tasks_skipped += 1
            say(f"  skipped {task_id}: {error}")
            continue
        result.tasks_rerun += 1
        if result.tasks_rerun % PAGE_SIZE == 0:
            say(f"  re-ran {result.tasks_rerun}/{len(ids)}")
    return result


def _error_task_ids(tasks: TaskRepository, limit: int | None) -> list[str]:
    """Every task in error, newest first (collected before any is re-run, since re-running
    moves them out of the listing being paged)."""
    ids: list[str] = []
    start_key = None
    while limit is None or len(ids) < limit:
        size = PAGE_SIZE if limit is None else min(PAGE_SIZE, limit - len(ids))
        page = tasks.list_page(limit=size, status=TaskStatus.ERROR, start_key=start_key)
        ids.extend(task.task_id for task in page.tasks)
        if not page.has_more or not page.tasks:
            break
        start_key = tasks.page_key(page.tasks[-1], TaskStatus.ERROR)
    return ids


def requeue_stale_pending(
    tasks: TaskRepository, sqs: Any, queue_url: str, *, older_than_minutes: float, dry_run: bool, say: Any
) -> int:
    """Step 3: send the queue message again for pending tasks unchanged for that long."""
    cutoff = utc_timestamp(utc_now() - timedelta(minutes=older_than_minutes))
    stale: list[TaskMessage] = []
    start_key = None
    while True:
        page = tasks.list_page(limit=PAGE_SIZE, status=TaskStatus.PENDING, start_key=start_key)
        stale.extend(TaskMessage(t.task_id, t.run) for t in page.tasks if t.updated_at < cutoff)
        if not page.has_more or not page.tasks:
            break
        start_key = tasks.page_key(page.tasks[-1], TaskStatus.PENDING)
    say(
        f"{len(stale)} task(s) pending for over {older_than_minutes:g} min"
        + (" (dry run)" if dry_run else "")
    )
    if dry_run:
        return 0
    for first in range(0, len(stale), 10):
        chunk = stale[first : first + 10]
        sqs.send_message_batch(
            QueueUrl=queue_url,
            Entries=[{"Id": str(i), "MessageBody": message.to_body()} for i, message in enumerate(chunk)],
        )
    return len(stale)


def redrive(outputs: StackOutputs, args: argparse.Namespace, say: Any) -> RedriveResult:
    sqs = outputs.client("sqs")
    moved = move_dead_letters(
        sqs, outputs.value("TaskDlqUrl"), outputs.value("TaskQueueUrl"), dry_run=args.dry_run, say=say
    )
    tasks = TaskRepository(outputs.value("TaskTableName"), client=outputs.client("dynamodb"))
    rerun = rerun_failed_tasks(
        tasks,
        task_ids=args.task_id,
        limit=args.limit,
        dry_run=args.dry_run,
        say=say,
    )
    rerun.messages_moved, rerun.messages_failed = moved.messages_moved, moved.messages_failed
    if args.pending_older_than is not None:
        rerun.pending_requeued = requeue_stale_pending(
            tasks,
            sqs,
            outputs.value("TaskQueueUrl"),
            older_than_minutes=args.pending_older_than,
            dry_run=args.dry_run,
            say=say,
        )
    return rerun


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ops.redrive", description=__doc__.split("\n\n")[0])
    parser.add_argument("--stage", default="dev", help="stage to redrive (stack TaskBackend-<stage>)")
    parser.add_argument(
        "--target",
        choices=["aws", "local"],
        default="aws",
        help="aws: the deployed stack (CloudFormation outputs); local: the running `make dev` stack",
    )
    parser.add_argument("--state-dir", default=".local-state", help="where the local stack writes its state")
    parser.add_argument("--task-id", action="append", default=[], help="re-run only this task (repeatable)")
    parser.add_argument("--limit", type=int, default=None, help="re-run at most this many error tasks")
    parser.add_argument(
        "--pending-older-than",
        type=float,
        metavar="MINUTES",
        help="also re-enqueue tasks pending and unchanged this long (e.g. 1440 after a day-long SQS outage)",
    )
    parser.add_argument("--dry-run", action="store_true", help="show what would move, change nothing")
    args = parser.parse_args(argv)

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
        + (f" ({result.messages_failed} could not be sent; run again)" if result.messages_failed else "")
        + f", {result.tasks_rerun} task(s) re-run, {result.tasks_skipped} skipped"
        + (f", {result.pending_requeued} pending task(s) re-enqueued" if result.pending_requeued else "")
    )
    return 1 if result.messages_failed else 0


if __name__ == "__main__":
    sys.exit(main())
