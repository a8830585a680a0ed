"""ops.redrive's two steps, on moto's SQS and an in-memory task repository."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from moto import mock_aws

from ops.redrive import move_dead_letters, requeue_stale_pending, rerun_failed_tasks
from taskflow.domain.errors import InvalidTransitionError
from taskflow.domain.task import TaskStatus


@pytest.fixture
def sqs() -> Iterator[Any]:
    with mock_aws():
        yield boto3.client("sqs", region_name="us-east-1")


def bodies(sqs: Any, url: str) -> list[dict[str, Any]]:
    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
    return [json.loads(m["Body"]) for m in messages]


def test_dead_letters_move_back_to_the_queue_with_their_bodies(sqs: Any) -> None:
    queue = sqs.create_queue(QueueName="tasks")["QueueUrl"]
    dlq = sqs.create_queue(QueueName="tasks-dlq")["QueueUrl"]
    for n in range(13):  # more than one receive batch
        sqs.send_message(QueueUrl=dlq, MessageBody=json.dumps({"taskId": f"t{n}", "run": 1}))

    result = move_dead_letters(sqs, dlq, queue, dry_run=False, say=lambda _: None)

    assert (result.messages_moved, result.messages_failed) == (13, 0)
    moved = [body for _ in range(3) for body in bodies(sqs, queue)]
    assert sorted(body["taskId"] for body in moved) == sorted(f"t{n}" for n in range(13))
    assert bodies(sqs, dlq) == []


def test_dry_run_moves_nothing(sqs: Any) -> None:
    queue = sqs.create_queue(QueueName="tasks")["QueueUrl"]
    dlq = sqs.create_queue(QueueName="tasks-dlq")["QueueUrl"]
    sqs.send_message(QueueUrl=dlq, MessageBody='{"taskId": "t1", "run": 1}')
    said: list[str] = []

    result = move_dead_letters(sqs, dlq, queue, dry_run=True, say=said.append)

    assert result.messages_moved == 0
    assert "about 1 message(s)" in said[0]
    assert bodies(sqs, queue) == []


@dataclass
class FakeTask:
    task_id: str
    created_at: str
    run: int = 1
    updated_at: str = "2026-01-01T00:00:00.000000Z"


@dataclass
class FakePage:
    tasks: list[FakeTask]
    has_more: bool


class FakeTasks:
    """The TaskRepository methods redrive uses, over a list of task ids in error."""

    def __init__(self, in_error: list[str]) -> None:
        self.in_error = list(in_error)
        self.retried: list[str] = []
        self.pending: list[FakeTask] = []

    def list_page(self, *, limit: int, status: TaskStatus, start_key: dict[str, str] | None) -> FakePage:
        if status is TaskStatus.PENDING:
            return FakePage(self.pending, has_more=False)
        assert status is TaskStatus.ERROR
        start = 0 if start_key is None else self.in_error.index(start_key["taskId"]) + 1
        ids = self.in_error[start : start + limit]
        return FakePage([FakeTask(i, "t") for i in ids], has_more=start + limit < len(self.in_error))

    @staticmethod
    def page_key(task: FakeTask, status: TaskStatus) -> dict[str, str]:
        return {"taskId": task.task_id}

    def retry(self, task_id: str) -> None:
        if task_id == "taken":
            raise InvalidTransitionError(task_id, "pending", "retry", "error")
        self.retried.append(task_id)


def test_every_task_in_error_is_rerun_across_pages() -> None:
    tasks = FakeTasks([f"t{n}" for n in range(250)])

    result = rerun_failed_tasks(tasks, task_ids=[], limit=None, dry_run=False, say=lambda _: None)  # type: ignore[arg-type]

    assert (result.tasks_found, result.tasks_rerun, result.tasks_skipped) == (250, 250, 0)
    assert tasks.retried == [f"t{n}" for n in range(250)]


def test_a_task_someone_else_retried_meanwhile_is_skipped_not_an_error() -> None:
    tasks = FakeTasks(["t1", "taken", "t2"])

    result = rerun_failed_tasks(tasks, task_ids=[], limit=None, dry_run=False, say=lambda _: None)  # type: ignore[arg-type]

    assert (result.tasks_rerun, result.tasks_skipped) == (2, 1)


def test_limit_and_dry_run_change_nothing_beyond_what_was_asked() -> None:
    tasks = FakeTasks([f"t{n}" for n in range(10)])

    result = rerun_failed_tasks(tasks, task_ids=[], limit=4, dry_run=True, say=lambda _: None)  # type: ignore[arg-type]

    assert result.tasks_found == 4
    assert tasks.retried == []


def test_only_pending_tasks_unchanged_for_long_enough_are_enqueued_again(sqs: Any) -> None:
    queue = sqs.create_queue(QueueName="tasks")["QueueUrl"]
    tasks = FakeTasks([])
    tasks.pending = [
        FakeTask("stuck", "t", run=2, updated_at="2026-01-01T00:00:00.000000Z"),
        FakeTask("fresh", "t", run=1, updated_at="2999-01-01T00:00:00.000000Z"),
    ]

    requeued = requeue_stale_pending(
        tasks,  # type: ignore[arg-type]
        sqs,
        queue,
        older_than_minutes=60,
        dry_run=False,
        say=lambda _: None,
    )

    assert requeued == 1
    assert [(body["taskId"], body["run"]) for body in bodies(sqs, queue)] == [("stuck", 2)]
