"""The notifier on a stage with `auth: jwt`: each task change goes to its owner's connections only,
found with one Query of the ConnectionTable's ByOwner index per owner (never a Scan). What it shares
with the broadcast of `auth: none` stages (gone and failing connections, one read per batch and owner,
paging, the handler built from the environment) is tested on both in test_notifier_handler.py."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from lambda_support import (
    Aws,
    FakeConnections,
    FakeLambdaContext,
    put_connection,
)

from taskflow.domain.submission import TaskSubmission
from taskflow.domain.task import new_task
from taskflow.handlers import notifier
from taskflow.repositories.connection_repository import ConnectionRepository
from taskflow.repositories.task_repository import TaskRepository
from taskflow.services.task_notifier import TaskNotifier

ALICE = "alice-sub-0001"
BOB = "bob-sub-0002"
NOW = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)


@pytest.fixture
def pushed(jwt_env: dict[str, str], owner_scoped_aws: Aws) -> FakeConnections:
    """The notifier of a jwt stage over the moto ConnectionTable, posting to an in-memory endpoint."""
    fake = FakeConnections()
    repository = ConnectionRepository(owner_scoped_aws.connection_table, client=owner_scoped_aws.dynamodb)
    notifier.notifier.override(TaskNotifier(repository, fake, owner_scoped=True))
    return fake


def create_tasks(aws_resources: Aws, *tasks: tuple[str, str | None]) -> TaskRepository:
    """(task id, owner) pairs, created in that order."""
    repository = TaskRepository(aws_resources.task_table, client=aws_resources.dynamodb)
    for offset, (task_id, owner) in enumerate(tasks):
        submission = TaskSubmission(answer=f"answer of {task_id}")
        repository.create(new_task(submission, task_id, NOW + timedelta(seconds=offset), owner=owner))
    return repository


def frames_of(pushed: FakeConnections, connection_id: str) -> list[str]:
    return [frame["taskId"] for frame in pushed.frames.get(connection_id, [])]


def sequence_numbers(event: dict[str, Any]) -> list[str]:
    return [record["dynamodb"]["SequenceNumber"] for record in event["Records"]]


def failed(response: dict[str, Any]) -> list[str]:
    return [failure["itemIdentifier"] for failure in response["batchItemFailures"]]


def test_each_owners_connections_get_only_that_owners_frames_in_stream_order(
    pushed: FakeConnections, owner_scoped_aws: Aws, lambda_context: FakeLambdaContext
) -> None:
    # Given two connections of Alice, one of Bob, one without an owner, and interleaved changes
    put_connection(owner_scoped_aws, "alice-1", ALICE)
    put_connection(owner_scoped_aws, "alice-2", ALICE)
    put_connection(owner_scoped_aws, "bob-1", BOB)
    put_connection(owner_scoped_aws, "nobody", None)
    stream = owner_scoped_aws.stream_reader()
    create_tasks(owner_scoped_aws, ("a1", ALICE), ("b1", BOB), ("a2", ALICE))

    # When the notifier gets the batch
    response = notifier.handler(stream.read(), lambda_context)

    # Then each owner's connections got that owner's frames, in order, and nobody else's
    assert response == {"batchItemFailures": []}
    assert frames_of(pushed, "alice-1") == frames_of(pushed, "alice-2") == ["a1", "a2"]
    assert frames_of(pushed, "bob-1") == ["b1"]
    assert "nobody" not in pushed.frames


def test_frames_never_carry_the_owner(
    pushed: FakeConnections, owner_scoped_aws: Aws, lambda_context: FakeLambdaContext
) -> None:
    put_connection(owner_scoped_aws, "alice-1", ALICE)
    stream = owner_scoped_aws.stream_reader()
    create_tasks(owner_scoped_aws, ("a1", ALICE))

    notifier.handler(stream.read(), lambda_context)

    [frame] = pushed.frames["alice-1"]
    assert "owner" not in frame
    assert ALICE not in json.dumps(frame)


def test_change_without_an_owner_is_pushed_to_nobody_and_logged(
    pushed: FakeConnections,
    owner_scoped_aws: Aws,
    lambda_context: FakeLambdaContext,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Given connections of Alice and one without an owner, and a task row without an owner
    put_connection(owner_scoped_aws, "alice-1", ALICE)
    put_connection(owner_scoped_aws, "nobody", None)
    stream = owner_scoped_aws.stream_reader()
    create_tasks(owner_scoped_aws, ("orphan", None), ("a1", ALICE))

    # When the notifier gets both changes
    response = notifier.handler(stream.read(), lambda_context)

    # Then the ownerless one reached nobody (and is not retried), the other its owner
    assert response == {"batchItemFailures": []}
    assert frames_of(pushed, "alice-1") == ["a1"]
    assert "nobody" not in pushed.frames
    assert "task change without an owner pushed to nobody" in caplog.messages


def test_lowest_failed_record_across_owners_decides_the_partial_batch_response(
    pushed: FakeConnections, owner_scoped_aws: Aws, lambda_context: FakeLambdaContext
) -> None:
    # Given Bob's connection that fails on his 2nd frame (record 3) and Alice's broken one (record 2)
    put_connection(owner_scoped_aws, "alice-broken", ALICE)
    put_connection(owner_scoped_aws, "bob-flaky", BOB)
    pushed.failing.add("alice-broken")
    stream = owner_scoped_aws.stream_reader()
    create_tasks(owner_scoped_aws, ("b1", BOB), ("b2", BOB), ("a1", ALICE), ("b3", BOB))
    event = stream.read()
    original_post = pushed.post

    def post(connection_id: str, data: bytes) -> None:
        if connection_id == "bob-flaky" and json.loads(data)["taskId"] == "b3":
            raise RuntimeError("endpoint error")
        original_post(connection_id, data)

    pushed.post = post  # type: ignore[method-assign]

    # When the notifier pushes the batch
    response = notifier.handler(event, lambda_context)

    # Then the response starts at the lowest failed record (Alice's, index 2), not Bob's (3)
    assert frames_of(pushed, "bob-flaky") == ["b1", "b2"]
    assert failed(response) == sequence_numbers(event)[2:]


def test_an_owner_whose_connections_cannot_be_read_fails_from_their_first_record(
    jwt_env: dict[str, str], owner_scoped_aws: Aws, lambda_context: FakeLambdaContext
) -> None:
    # Given Bob's connection list unreadable (DynamoDB refuses that Query), Alice's fine
    put_connection(owner_scoped_aws, "alice-1", ALICE)
    put_connection(owner_scoped_aws, "bob-1", BOB)

    class BobUnreadable:
        def __init__(self, client: Any) -> None:
            self._client = client

        def query(self, **kwargs: Any) -> Any:
            if kwargs["ExpressionAttributeValues"][":owner"] == {"S": BOB}:
                raise RuntimeError("throttled")
            return self._client.query(**kwargs)

        def __getattr__(self, name: str) -> Any:
            return getattr(self._client, name)

    fake = FakeConnections()
    repository = ConnectionRepository(
        owner_scoped_aws.connection_table, client=BobUnreadable(owner_scoped_aws.dynamodb)
    )
    notifier.notifier.override(TaskNotifier(repository, fake, owner_scoped=True))
    stream = owner_scoped_aws.stream_reader()
    create_tasks(owner_scoped_aws, ("a1", ALICE), ("b1", BOB), ("a2", ALICE))
    event = stream.read()

    # When the notifier pushes the batch
    response = notifier.handler(event, lambda_context)

    # Then Alice got hers, and the batch is retried from Bob's first record
    assert frames_of(fake, "alice-1") == ["a1", "a2"]
    assert failed(response) == sequence_numbers(event)[1:]


def test_logs_say_how_many_owners_and_connections_were_targeted(
    pushed: FakeConnections,
    owner_scoped_aws: Aws,
    lambda_context: FakeLambdaContext,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="taskflow")
    for connection_id, owner in (
        ("alice-1", ALICE),
        ("alice-2", ALICE),
        ("bob-1", BOB),
        ("carol-1", "carol"),
    ):
        put_connection(owner_scoped_aws, connection_id, owner)
    stream = owner_scoped_aws.stream_reader()
    create_tasks(owner_scoped_aws, ("a1", ALICE), ("b1", BOB))

    notifier.handler(stream.read(), lambda_context)

    [summary] = [record.__dict__ for record in caplog.records if record.getMessage() == "notifications sent"]
    assert (summary["owners"], summary["connections"], summary["frames"]) == (2, 3, 2)
