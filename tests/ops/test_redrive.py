"""ops.redrive on moto: the task table built from taskflow.table_schema, the real TaskRepository,
and the task queue with its DLQ.

Tasks are keyed by owner on `auth: jwt` stages (`<owner>#<taskId>`), so the same taskId can be
two tasks; redrive finds error and stale pending tasks of every owner with a Scan."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import boto3
import pytest
from moto import mock_aws

from ops import redrive
from ops.redrive import move_dead_letters, requeue_stale_pending, rerun_failed_tasks, scan_tasks
from ops.stack_outputs import StackOutputs
from taskflow.domain.clock import utc_now
from taskflow.domain.status import TaskStatus
from taskflow.domain.submission import TaskSubmission
from taskflow.domain.task import Task, new_task
from taskflow.repositories.task_repository import ClaimOutcome, TaskRepository
from taskflow.table_schema import task_table_request

REGION = "us-east-1"
TABLE = "TaskTable"
LEASE_SECONDS = 60


class TickingClock:
    """A clock two days in the past that moves one second per reading: every write is older than
    any cutoff of minutes, and tasks finish in the order the test fails them."""

    def __init__(self) -> None:
        self.now = utc_now() - timedelta(days=2)

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


@dataclass
class Stage:
    dynamodb: Any
    sqs: Any
    queue_url: str
    dlq_url: str
    tasks: TaskRepository  # with a TickingClock

    def task(self, task_id: str, owner: str | None = None) -> Task:
        task = self.tasks.get(task_id, owner=owner)
        assert task is not None
        return task

    def bodies(self, url: str) -> list[dict[str, Any]]:
        """Every message in the queue (received, so invisible afterwards)."""
        found: list[dict[str, Any]] = []
        while messages := self.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages"):
            found.extend(json.loads(message["Body"]) for message in messages)
        return found

    def outputs(self) -> StackOutputs:
        """What ops.stack_outputs would resolve for this stage."""
        return StackOutputs(
            "TaskBackend-test",
            {"TaskTableName": TABLE, "TaskQueueUrl": self.queue_url, "TaskDlqUrl": self.dlq_url},
            where="moto",
            client_options={"region_name": REGION},
        )


@pytest.fixture
def stage(monkeypatch: pytest.MonkeyPatch) -> Iterator[Stage]:
    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        sqs = boto3.client("sqs", region_name=REGION)
        dynamodb.create_table(**task_table_request(TABLE))
        yield Stage(
            dynamodb=dynamodb,
            sqs=sqs,
            queue_url=sqs.create_queue(QueueName="TaskQueue")["QueueUrl"],
            dlq_url=sqs.create_queue(QueueName="TaskDLQ")["QueueUrl"],
            tasks=TaskRepository(TABLE, client=dynamodb, clock=TickingClock()),
        )


def submit(
    stage: Stage,
    task_id: str,
    owner: str | None = None,
    *,
    at: datetime | None = None,
    correlation_id: str | None = None,
) -> Task:
    task = new_task(
        TaskSubmission(answer="42"), task_id, at or stage.tasks.now(), correlation_id, owner=owner
    )
    assert stage.tasks.create(task).created
    return task


def dead_letter(stage: Stage, task_id: str, owner: str | None = None) -> None:
    """A task whose every attempt failed: claimed, failed, then dead-lettered (now in error)."""
    submit(stage, task_id, owner)
    holder = f"message-{owner}-{task_id}"
    assert (
        stage.tasks.claim(task_id, 1, holder, LEASE_SECONDS, owner=owner, delivery="d1").outcome
        is ClaimOutcome.CLAIMED
    )
    assert stage.tasks.record_failure(
        task_id,
        1,
        holder,
        retries=2,
        error_message="boom",
        hold_seconds=LEASE_SECONDS,
        owner=owner,
        delivery="d1",
    )
    assert (
        stage.tasks.mark_dead_lettered(task_id, 1, "retries exhausted", holder=holder, owner=owner)
        is not None
    )


def run_cli(stage: Stage, monkeypatch: pytest.MonkeyPatch, *args: str) -> int:
    """`python -m ops.redrive --stage test ARGS` against the moto stage."""
    monkeypatch.setattr(redrive, "resolve_outputs", lambda *_: stage.outputs())
    return redrive.main(["--stage", "test", *args])


def quiet(_: str) -> None:
    pass


# --------------------------------------------------------------------------- step 1: the DLQ


def test_dead_letters_move_back_to_the_queue_with_their_bodies(stage: Stage) -> None:
    # Given more dead letters than one receive batch, of two owners
    for n in range(13):
        body = {"taskId": f"t{n}", "run": 1, "owner": "alice" if n % 2 else "bob"}
        stage.sqs.send_message(QueueUrl=stage.dlq_url, MessageBody=json.dumps(body))

    # When they are moved back
    result = move_dead_letters(
        stage.sqs, stage.dlq_url, stage.queue_url, stage.tasks, dry_run=False, say=quiet
    )

    # Then the queue holds every body unchanged (owner included) and the DLQ is empty
    assert (result.messages_moved, result.messages_failed) == (13, 0)
    moved = stage.bodies(stage.queue_url)
    assert sorted((body["taskId"], body["owner"]) for body in moved) == sorted(
        (f"t{n}", "alice" if n % 2 else "bob") for n in range(13)
    )
    assert stage.bodies(stage.dlq_url) == []


def test_a_dead_letter_whose_task_still_holds_its_lease_moves_back_delayed_until_the_lease_ends(
    stage: Stage,
) -> None:
    # Given a task whose final attempt just failed: its message dead-lettered, the attempt's lease
    # kept (backing off) for LEASE_SECONDS, the DLQ consumer not run
    submit(stage, "held")
    stage.tasks.claim("held", 1, "m1", LEASE_SECONDS, delivery="d1")
    stage.tasks.record_failure(
        "held", 1, "m1", retries=2, error_message="boom", hold_seconds=LEASE_SECONDS, delivery="d1"
    )
    stage.sqs.send_message(QueueUrl=stage.dlq_url, MessageBody='{"taskId": "held", "run": 1}')
    sent: list[dict[str, Any]] = []
    send_message_batch = stage.sqs.send_message_batch

    def recording(**request: Any) -> Any:
        sent.extend(request["Entries"])
        return send_message_batch(**request)

    stage.sqs.send_message_batch = recording

    # When the operator moves it back at once
    result = move_dead_letters(
        stage.sqs, stage.dlq_url, stage.queue_url, stage.tasks, dry_run=False, say=quiet
    )

    # Then its copy (a new message id, which the lease would refuse) waits until the lease ends
    assert result.messages_moved == 1
    [entry] = sent
    assert LEASE_SECONDS - 5 <= entry["DelaySeconds"] <= LEASE_SECONDS + redrive.CLOCK_MARGIN_SECONDS
    assert stage.bodies(stage.queue_url) == []  # not visible yet


def test_a_malformed_dead_letter_is_deleted_and_an_unreadable_tasks_one_left_saying_why(
    stage: Stage,
) -> None:
    # Given a dead letter that is no task message, one whose task item was damaged by hand, and a good one
    submit(stage, "damaged")
    stage.dynamodb.update_item(
        TableName=TABLE,
        Key={"pk": {"S": "damaged"}},
        UpdateExpression="SET #status = :five",
        ExpressionAttributeNames={"#status": "status"},
        ExpressionAttributeValues={":five": {"N": "5"}},
    )
    for body in ("junk", '{"taskId": "damaged", "run": 1}', '{"taskId": "fine", "run": 1}'):
        stage.sqs.send_message(QueueUrl=stage.dlq_url, MessageBody=body)
    said: list[str] = []

    # When they are moved back
    result = move_dead_letters(
        stage.sqs, stage.dlq_url, stage.queue_url, stage.tasks, dry_run=False, say=said.append
    )

    # Then the good one moves, the malformed one is gone, and the damaged task's stays, with why
    assert (result.messages_moved, result.messages_dropped, result.messages_left) == (1, 1, 1)
    assert stage.bodies(stage.queue_url) == [{"taskId": "fine", "run": 1}]
    assert any("deleted a malformed message" in line and "'junk'" in line for line in said)
    assert any("left in the DLQ" in line and "cannot be read" in line for line in said)


def test_a_dead_letter_that_comes_back_while_the_step_runs_is_moved_once(stage: Stage) -> None:
    # Given a queue whose every message dead-letters again at once (a consumer that always fails)
    stage.sqs.send_message(QueueUrl=stage.dlq_url, MessageBody='{"taskId": "loops", "run": 1}')
    send_message_batch = stage.sqs.send_message_batch

    def straight_back(**request: Any) -> Any:
        return send_message_batch(**{**request, "QueueUrl": stage.dlq_url})

    stage.sqs.send_message_batch = straight_back
    said: list[str] = []

    # When the step runs
    result = move_dead_letters(
        stage.sqs, stage.dlq_url, stage.queue_url, stage.tasks, dry_run=False, say=said.append
    )

    # Then it ends, having moved the message once and left its second coming in the DLQ
    assert (result.messages_moved, result.messages_left) == (1, 1)
    assert any("moved once in this run already" in line for line in said)


def test_two_dead_letters_with_the_same_body_both_move(stage: Stage) -> None:
    # Given a message delivered twice (at least once: the same body, two message ids) among others
    for body in ['{"taskId": "twice", "run": 1}'] * 2 + [
        f'{{"taskId": "t{n}", "run": 1}}' for n in range(12)
    ]:
        stage.sqs.send_message(QueueUrl=stage.dlq_url, MessageBody=body)

    result = move_dead_letters(
        stage.sqs, stage.dlq_url, stage.queue_url, stage.tasks, dry_run=False, say=quiet
    )

    assert (result.messages_moved, result.messages_left) == (14, 0)
    assert stage.bodies(stage.dlq_url) == []


def test_dry_run_moves_no_dead_letter(stage: Stage) -> None:
    # Given one dead letter
    stage.sqs.send_message(QueueUrl=stage.dlq_url, MessageBody='{"taskId": "t1", "run": 1}')
    said: list[str] = []

    # When a dry run looks at the DLQ
    result = move_dead_letters(
        stage.sqs, stage.dlq_url, stage.queue_url, stage.tasks, dry_run=True, say=said.append
    )

    # Then it reports it and leaves it where it is
    assert result.messages_moved == 0
    assert "about 1 message(s)" in said[0]
    assert stage.bodies(stage.queue_url) == []
    assert len(stage.bodies(stage.dlq_url)) == 1


# --------------------------------------------------------------------------- the scan


def test_the_scan_pages_through_the_whole_table_and_reports_progress(stage: Stage) -> None:
    # Given 3 tasks in error among 7 items
    for n in range(3):
        dead_letter(stage, f"failed{n}", "alice")
    for n in range(4):
        submit(stage, f"waiting{n}", "alice")
    said: list[str] = []

    # When the table is scanned 2 items a page
    found = scan_tasks(stage.dynamodb, TABLE, TaskStatus.ERROR, say=said.append, page_items=2)

    # Then every task in error is found, with its owner, and every page said how far it got
    assert sorted((task.task_id, task.owner, task.status) for task in found) == [
        (f"failed{n}", "alice", TaskStatus.ERROR) for n in range(3)
    ]
    assert len(said) == 4
    assert said[-1] == "  scanned 7 item(s), 3 in error"


# --------------------------------------------------------------------------- step 2: error tasks


def test_every_task_in_error_of_every_owner_is_rerun_in_a_new_run(
    stage: Stage, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given tasks in error of two owners, one taskId used by both, and tasks not in error
    failed = [("t1", "alice"), ("t1", "bob"), ("t2", "alice"), ("t3", "bob")]
    for task_id, owner in failed:
        dead_letter(stage, task_id, owner)
    submit(stage, "t4", "alice")
    monkeypatch.setattr(redrive, "SCAN_PAGE_ITEMS", 2)  # several scan pages
    said: list[str] = []

    # When they are re-run
    result = rerun_failed_tasks(stage.tasks, task_ids=[], limit=None, dry_run=False, say=said.append)

    # Then each one is pending again in run 2, under its own owner, and out of the error listing
    assert (result.tasks_found, result.tasks_rerun, result.tasks_skipped) == (4, 4, 0)
    for task_id, owner in failed:
        task = stage.task(task_id, owner)
        assert (task.status, task.run, task.retries, task.owner) == (TaskStatus.PENDING, 2, 0, owner)
        assert (task.error_message, task.finished_at) == (None, None)
    assert stage.task("t4", "alice").run == 1
    assert "  scanned 5 item(s), 4 in error" in said
    assert stage.tasks.list_page(limit=10, status=TaskStatus.ERROR, owner="alice").tasks == []


def test_tasks_without_an_owner_are_rerun_on_an_auth_none_stage(stage: Stage) -> None:
    # Given tasks in error keyed by their taskId alone
    dead_letter(stage, "t1")
    dead_letter(stage, "t2")

    # When they are re-run
    result = rerun_failed_tasks(stage.tasks, task_ids=[], limit=None, dry_run=False, say=quiet)

    # Then both are in run 2
    assert result.tasks_rerun == 2
    assert [(stage.task(t).status, stage.task(t).run) for t in ("t1", "t2")] == [(TaskStatus.PENDING, 2)] * 2


def test_a_task_someone_else_retried_meanwhile_is_skipped_not_an_error(stage: Stage) -> None:
    # Given three tasks in error, one of which its owner retries while redrive is running
    for task_id in ("t1", "taken", "t2"):
        dead_letter(stage, task_id, "alice")

    class RacedRepository(TaskRepository):
        def retry(self, task_id: str, *, owner: str | None = None) -> Task:
            if stage.task("taken", "alice").status is TaskStatus.ERROR:
                stage.tasks.retry("taken", owner="alice")  # POST /tasks/taken/retry, meanwhile
            return super().retry(task_id, owner=owner)

    raced = RacedRepository(TABLE, client=stage.dynamodb)
    said: list[str] = []

    # When redrive re-runs what it found in error
    result = rerun_failed_tasks(raced, task_ids=[], limit=None, dry_run=False, say=said.append)

    # Then the other two are re-run, "taken" is skipped (and stays in the run its owner started)
    assert (result.tasks_found, result.tasks_rerun, result.tasks_skipped) == (3, 2, 1)
    assert [stage.task(t, "alice").run for t in ("t1", "taken", "t2")] == [2, 2, 2]
    assert any(line.startswith("  skipped taken (owner alice)") for line in said)


def test_limit_reruns_only_the_most_recently_failed(stage: Stage) -> None:
    # Given five tasks that failed one after another
    for n in range(5):
        dead_letter(stage, f"t{n}", "alice" if n % 2 else "bob")

    # When at most two are re-run
    result = rerun_failed_tasks(stage.tasks, task_ids=[], limit=2, dry_run=False, say=quiet)

    # Then the last two to fail are in run 2, the others still in error
    assert (result.tasks_found, result.tasks_rerun) == (2, 2)
    statuses = [stage.task(f"t{n}", "alice" if n % 2 else "bob").status for n in range(5)]
    assert statuses == [TaskStatus.ERROR] * 3 + [TaskStatus.PENDING] * 2


def test_task_id_with_owner_reruns_just_that_owners_task(
    stage: Stage, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given two owners' tasks in error under the same taskId, and another task in error
    dead_letter(stage, "t1", "alice")
    dead_letter(stage, "t1", "bob")
    dead_letter(stage, "t2", "alice")

    # When only alice's t1 is redriven
    exit_code = run_cli(stage, monkeypatch, "--task-id", "t1", "--owner", "alice")

    # Then that task alone is in run 2
    assert exit_code == 0
    assert "1 task(s) re-run, 0 skipped" in capsys.readouterr().out
    assert (stage.task("t1", "alice").status, stage.task("t1", "alice").run) == (TaskStatus.PENDING, 2)
    assert (stage.task("t1", "bob").status, stage.task("t1", "bob").run) == (TaskStatus.ERROR, 1)
    assert stage.task("t2", "alice").status is TaskStatus.ERROR


def test_task_id_without_its_owner_finds_nothing_on_an_owner_keyed_table(
    stage: Stage, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given alice's task in error
    dead_letter(stage, "t1", "alice")

    # When it is named without its owner (the auth: none key)
    exit_code = run_cli(stage, monkeypatch, "--task-id", "t1")

    # Then there is no such task: it is skipped and unchanged
    assert exit_code == 0
    assert "0 task(s) re-run, 1 skipped" in capsys.readouterr().out
    assert stage.task("t1", "alice").status is TaskStatus.ERROR


def test_owner_without_task_id_is_refused(stage: Stage, monkeypatch: pytest.MonkeyPatch) -> None:
    # When --owner is given alone, Then the command line is refused before anything is read
    with pytest.raises(SystemExit) as refused:
        run_cli(stage, monkeypatch, "--owner", "alice")
    assert refused.value.code == 2


@pytest.mark.parametrize(
    ("arguments", "said"),
    [(["--limit", "-1"], "--limit must be at least 1"), (["--pending-older-than", "-5"], "minutes above 0")],
)
def test_a_limit_or_age_below_its_range_is_refused(
    stage: Stage,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    arguments: list[str],
    said: str,
) -> None:
    with pytest.raises(SystemExit) as refused:
        run_cli(stage, monkeypatch, *arguments)

    assert refused.value.code == 2
    assert said in capsys.readouterr().err


# --------------------------------------------------------------------------- step 3: stale pending


def test_only_pending_tasks_unchanged_for_long_enough_are_enqueued_again(stage: Stage) -> None:
    # Given two owners' pending tasks unchanged for two days (one in run 2, one with a request id)
    submit(stage, "stuck", "alice", correlation_id="req-1")
    dead_letter(stage, "stuck", "bob")
    stage.tasks.retry("stuck", owner="bob")
    # And a task pending since just now, and old tasks that are finished
    submit(stage, "fresh", "alice", at=utc_now())
    dead_letter(stage, "failed", "alice")

    # When pending tasks older than an hour are enqueued again
    requeued, refused = requeue_stale_pending(
        stage.tasks, stage.sqs, stage.queue_url, older_than_minutes=60, dry_run=False, say=quiet
    )

    # Then the two stuck tasks get their message, with the owner that is part of their key
    assert (requeued, refused) == (2, 0)
    assert sorted(stage.bodies(stage.queue_url), key=lambda body: body["owner"]) == [
        {"taskId": "stuck", "run": 1, "owner": "alice", "correlationId": "req-1"},
        {"taskId": "stuck", "run": 2, "owner": "bob"},
    ]


def test_a_stale_pending_task_sqs_refuses_is_said_and_not_counted(stage: Stage) -> None:
    # Given two stuck tasks, and an SQS that refuses the second entry of a batch
    submit(stage, "stuck1")
    submit(stage, "stuck2")

    def refusing(**request: Any) -> Any:
        first, second = request["Entries"]
        stage.sqs.send_message(QueueUrl=request["QueueUrl"], MessageBody=first["MessageBody"])
        return {
            "Successful": [{"Id": first["Id"]}],
            "Failed": [{"Id": second["Id"], "Code": "InternalError", "SenderFault": False}],
        }

    stage.sqs.send_message_batch = refusing
    said: list[str] = []

    # When they are enqueued again
    requeued, refused = requeue_stale_pending(
        stage.tasks, stage.sqs, stage.queue_url, older_than_minutes=60, dry_run=False, say=said.append
    )

    # Then one was sent, and the refused one is counted and named
    assert (requeued, refused) == (1, 1)
    assert len(stage.bodies(stage.queue_url)) == 1
    assert any(line.startswith("could not re-enqueue") and "InternalError" in line for line in said)


# --------------------------------------------------------------------------- the whole command


def needing_every_step(stage: Stage) -> None:
    """A dead letter (carol's "late"), alice's and bob's task "t1" in error, carol's "stuck" pending."""
    stage.sqs.send_message(QueueUrl=stage.dlq_url, MessageBody='{"taskId":"late","run":1,"owner":"carol"}')
    dead_letter(stage, "t1", "alice")
    dead_letter(stage, "t1", "bob")
    submit(stage, "stuck", "carol")


def test_redrive_moves_dead_letters_reruns_errors_and_requeues_stale_tasks(
    stage: Stage, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a dead letter, tasks in error of two owners and a stale pending task
    needing_every_step(stage)

    # When the stage is redriven
    exit_code = run_cli(stage, monkeypatch, "--pending-older-than", "60")

    # Then every step did its part and the summary counts it
    out = capsys.readouterr().out
    assert exit_code == 0
    assert (
        "done: 1 DLQ message(s) moved back, 2 task(s) re-run, 0 skipped, 1 pending task(s) re-enqueued"
    ) in out
    assert stage.bodies(stage.dlq_url) == []
    assert sorted(body["taskId"] for body in stage.bodies(stage.queue_url)) == ["late", "stuck"]
    assert {stage.task("t1", owner).run for owner in ("alice", "bob")} == {2}


def test_dry_run_changes_nothing(
    stage: Stage, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a dead letter, tasks in error of two owners and a stale pending task
    needing_every_step(stage)
    before = {(t, o): stage.task(t, o) for t, o in (("t1", "alice"), ("t1", "bob"), ("stuck", "carol"))}

    # When a dry run looks at everything
    exit_code = run_cli(stage, monkeypatch, "--dry-run", "--pending-older-than", "60")

    # Then it says what it would do, and no task, queue or DLQ changed
    out = capsys.readouterr().out
    assert exit_code == 0
    assert "would re-run t1 (owner alice)" in out
    assert "would re-run t1 (owner bob)" in out
    assert "1 task(s) pending for over 60 min (dry run)" in out
    assert {key: stage.task(*key) for key in before} == before
    assert stage.bodies(stage.queue_url) == []
    assert len(stage.bodies(stage.dlq_url)) == 1
