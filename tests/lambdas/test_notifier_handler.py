"""The notifier with real TaskTable stream records from moto and a fake @connections endpoint.

What holds on both kinds of stage is tested on both (the `stage` fixture): on `auth: none` every
change goes to every connection (one Scan of the ConnectionTable per batch); on `auth: jwt` to its
owner's connections only (one Query per owner, test_notifier_owner_fanout.py has the rest).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from lambda_support import (
    CALLBACK_URL,
    REGION,
    Aws,
    DynamoDBCalls,
    FakeConnections,
    FakeLambdaContext,
    connection_ids,
    put_connection,
)
from moto.apigatewaymanagementapi.models import apigatewaymanagementapi_backends
from moto.core import DEFAULT_ACCOUNT_ID as ACCOUNT_ID

from taskflow.clients import aws
from taskflow.clients.connections_client import ConnectionGoneError, ConnectionsClient
from taskflow.domain.resume import ResumeCursor
from taskflow.domain.submission import TaskSubmission
from taskflow.domain.task import new_task
from taskflow.handlers import notifier
from taskflow.repositories.connection_repository import ConnectionRepository
from taskflow.repositories.task_repository import TaskRepository
from taskflow.services.task_notifier import TaskNotifier

NOW = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)
ALICE = "alice-sub-0001"
BOB = "bob-sub-0002"


@pytest.fixture
def connections(function_env: dict[str, str], moto_aws: Aws) -> FakeConnections:
    fake = FakeConnections()
    notifier.notifier.override(TaskNotifier(ConnectionRepository(moto_aws.connection_table), fake))
    return fake


def create_task(moto_aws: Aws, task_id: str) -> TaskRepository:
    repository = TaskRepository(moto_aws.task_table, client=moto_aws.dynamodb)
    repository.create(new_task(TaskSubmission(answer="42", payload={"secret": "s"}), task_id, NOW))
    return repository


def failed_sequence_numbers(response: dict[str, Any]) -> list[str]:
    return [failure["itemIdentifier"] for failure in response["batchItemFailures"]]


def test_new_task_is_pushed_to_every_connection(
    connections: FakeConnections, moto_aws: Aws, lambda_context: FakeLambdaContext
) -> None:
    put_connection(moto_aws, "c1")
    put_connection(moto_aws, "c2")
    stream = moto_aws.stream_reader()
    create_task(moto_aws, "t1")

    response = notifier.handler(stream.read(), lambda_context)

    assert response == {"batchItemFailures": []}
    assert set(connections.frames) == {"c1", "c2"}
    [frame] = connections.frames["c1"]
    assert frame["type"] == "task"
    assert (frame["taskId"], frame["status"], frame["retries"], frame["errorMessage"]) == (
        "t1",
        "pending",
        0,
        None,
    )
    assert frame["version"] == 1
    assert frame["answer"] == "42"
    assert frame["updatedAt"].endswith("Z")
    assert "payload" not in frame


def test_every_visible_change_is_one_frame_and_lease_claims_are_skipped(
    connections: FakeConnections, moto_aws: Aws, lambda_context: FakeLambdaContext
) -> None:
    put_connection(moto_aws, "c1")
    stream = moto_aws.stream_reader()
    repository = create_task(moto_aws, "t1")
    repository.claim("t1", 1, "m1", lease_seconds=30, delivery="d1")
    repository.record_failure("t1", 1, "m1", retries=1, error_message="boom", hold_seconds=0, delivery="d1")
    repository.claim("t1", 1, "m1", lease_seconds=30, delivery="d1")
    repository.record_success("t1", 1, "m1", retries=1, delivery="d1")

    event = stream.read()
    notifier.handler(event, lambda_context)

    assert len(event["Records"]) == 5
    frames = [(f["status"], f["retries"], f["errorMessage"]) for f in connections.frames["c1"]]
    assert frames == [("pending", 0, None), ("pending", 1, "boom"), ("success", 1, None)]


def test_a_final_attempt_that_fails_as_the_one_before_is_still_a_frame(
    connections: FakeConnections, moto_aws: Aws, lambda_context: FakeLambdaContext
) -> None:
    # The contract: a frame for each failed attempt. The final one keeps `retries` (no attempt
    # follows it), so with the same error it changes no field a client shows but updatedAt.
    put_connection(moto_aws, "c1")
    stream = moto_aws.stream_reader()
    repository = create_task(moto_aws, "t1")
    for retries in (1, 2, 2):  # as TaskRunner writes them with a budget of 3 receives
        repository.claim("t1", 1, "m1", lease_seconds=30, delivery="d1")
        repository.record_failure(
            "t1", 1, "m1", retries=retries, error_message="upstream down", hold_seconds=0, delivery="d1"
        )

    notifier.handler(stream.read(), lambda_context)

    frames = [(f["status"], f["retries"], f["errorMessage"]) for f in connections.frames["c1"]]
    assert frames == [("pending", 0, None), *[("pending", n, "upstream down") for n in (1, 2, 2)]]
    assert len({f["version"] for f in connections.frames["c1"]}) == 4


def test_connections_client_posts_to_the_callback_endpoint_and_maps_410() -> None:
    client = boto3.client("apigatewaymanagementapi", region_name=REGION, endpoint_url=CALLBACK_URL)
    stubber = Stubber(client)
    stubber.add_response("post_to_connection", {}, {"ConnectionId": "c1", "Data": b"{}"})
    stubber.add_client_error("post_to_connection", service_error_code="GoneException", http_status_code=410)
    stubber.add_client_error("post_to_connection", service_error_code="410", http_status_code=410)
    stubber.add_client_error(
        "post_to_connection", service_error_code="LimitExceededException", http_status_code=429
    )
    stubber.activate()
    connections = ConnectionsClient(CALLBACK_URL, client=client)

    connections.post("c1", b"{}")
    with pytest.raises(ConnectionGoneError):
        connections.post("c2", b"{}")
    with pytest.raises(ConnectionGoneError):  # a bare 410, as a local @connections endpoint may send
        connections.post("c2", b"{}")
    with pytest.raises(Exception, match="LimitExceeded"):
        connections.post("c3", b"{}")
    stubber.assert_no_pending_responses()


def test_unreadable_stream_record_is_skipped_and_the_rest_is_pushed(
    connections: FakeConnections, moto_aws: Aws, lambda_context: FakeLambdaContext
) -> None:
    # Given a connection and a batch whose first record has an attribute type nobody can read
    put_connection(moto_aws, "c1")
    stream = moto_aws.stream_reader()
    create_task(moto_aws, "t1")
    event = stream.read()
    unreadable = json.loads(json.dumps(event["Records"][0]))
    unreadable["dynamodb"]["NewImage"]["status"] = {"Q": "?"}

    # When the notifier gets it
    response = notifier.handler({"Records": [unreadable, *event["Records"]]}, lambda_context)

    # Then it is not retried, and the readable record still becomes a frame
    assert response == {"batchItemFailures": []}
    assert [frame["taskId"] for frame in connections.frames["c1"]] == ["t1"]


# --------------------------------------------------------------------------- both kinds of stage


@dataclass
class Stage:
    """The moto tables of a stage with `auth: none` or `auth: jwt`, and its notifier posting to an
    in-memory @connections endpoint (`pushed`)."""

    auth: str
    aws: Aws
    pushed: FakeConnections

    @property
    def owner_scoped(self) -> bool:
        return self.auth == "jwt"

    @property
    def connection_reads(self) -> str:
        """How the notifier finds a change's connections: all of them, or its owner's."""
        return "Query" if self.owner_scoped else "Scan"

    def connect(self, connection_id: str, owner: str) -> None:
        """A connection of `owner`'s (on `auth: none` connections have no owner: each gets every frame)."""
        put_connection(self.aws, connection_id, owner if self.owner_scoped else None)

    def create_tasks(self, *tasks: tuple[str, str]) -> None:
        """(task id, owner) pairs, created in that order (on `auth: none` tasks have no owner)."""
        repository = TaskRepository(self.aws.task_table, client=self.aws.dynamodb)
        for offset, (task_id, owner) in enumerate(tasks):
            task = new_task(
                TaskSubmission(answer="42"),
                task_id,
                NOW + timedelta(seconds=offset),
                owner=owner if self.owner_scoped else None,
            )
            repository.create(task)

    def notifier_reading_with(self, client: Any) -> None:
        """The handler's notifier, reading the ConnectionTable through `client`."""
        repository = ConnectionRepository(self.aws.connection_table, client=client)
        notifier.notifier.override(TaskNotifier(repository, self.pushed, owner_scoped=self.owner_scoped))

    def frames_of(self, connection_id: str) -> list[str]:
        return [frame["taskId"] for frame in self.pushed.frames.get(connection_id, [])]


@pytest.fixture(params=["none", "jwt"])
def stage(request: pytest.FixtureRequest) -> Stage:
    auth = request.param
    aws_resources = request.getfixturevalue("moto_aws" if auth == "none" else "owner_scoped_aws")
    request.getfixturevalue("function_env" if auth == "none" else "jwt_env")
    stage = Stage(auth, aws_resources, FakeConnections())
    stage.notifier_reading_with(aws_resources.dynamodb)
    return stage


def sequence_numbers(event: dict[str, Any]) -> list[str]:
    return [record["dynamodb"]["SequenceNumber"] for record in event["Records"]]


def test_gone_connection_is_deleted_and_not_a_failure(
    stage: Stage, lambda_context: FakeLambdaContext, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given two connections of Alice, one of them gone (410), and one of Bob
    stage.connect("alive", ALICE)
    stage.connect("gone", ALICE)
    stage.connect("bob-1", BOB)
    stage.pushed.gone.add("gone")
    stream = stage.aws.stream_reader()
    stage.create_tasks(("a1", ALICE))

    # When the notifier pushes Alice's new task
    response = notifier.handler(stream.read(), lambda_context)

    # Then the gone connection's row is deleted, the others kept, and nothing is retried
    assert response == {"batchItemFailures": []}
    assert connection_ids(stage.aws) == {"alive", "bob-1"}
    assert stage.frames_of("alive") == ["a1"]
    assert '"ConnectionsGone":[1.0]' in capsys.readouterr().out


@pytest.mark.parametrize(
    ("stage", "first_failed", "frames_of_alice"),
    [
        # every change is for every connection: the broken one fails the batch from the first record
        ("none", 0, ["a1", "b1", "a2", "b2"]),
        # only Bob's changes are for Bob's broken connection: the batch fails from his first (index 1)
        ("jwt", 1, ["a1", "a2"]),
    ],
    indirect=["stage"],
    ids=["none", "jwt"],
)
def test_failing_connection_fails_the_batch_from_its_first_frame_without_holding_up_the_others(
    stage: Stage, lambda_context: FakeLambdaContext, first_failed: int, frames_of_alice: list[str]
) -> None:
    # Given a working connection of Alice and a broken one of Bob
    stage.connect("alice-1", ALICE)
    stage.connect("bob-broken", BOB)
    stage.pushed.failing.add("bob-broken")
    stream = stage.aws.stream_reader()
    stage.create_tasks(("a1", ALICE), ("b1", BOB), ("a2", ALICE), ("b2", BOB))
    event = stream.read()

    # When the notifier pushes the batch
    response = notifier.handler(event, lambda_context)

    # Then Alice got every frame for her, the batch is retried from the broken connection's first
    # record on, and the broken connection is kept (it is not gone)
    assert stage.frames_of("alice-1") == frames_of_alice
    assert failed_sequence_numbers(response) == sequence_numbers(event)[first_failed:]
    assert "bob-broken" not in stage.pushed.frames
    assert connection_ids(stage.aws) == {"alice-1", "bob-broken"}


@pytest.mark.parametrize(
    ("stage", "reads", "frames_of_alice"),
    [
        ("none", {"Scan": 1, "Query": 0}, ["a1", "a2", "b1", "a3"]),  # the connection list, once
        ("jwt", {"Scan": 0, "Query": 2}, ["a1", "a2", "a3"]),  # once per distinct owner, never a Scan
    ],
    indirect=["stage"],
    ids=["none", "jwt"],
)
def test_connections_are_read_once_per_batch_and_owner(
    stage: Stage, lambda_context: FakeLambdaContext, reads: dict[str, int], frames_of_alice: list[str]
) -> None:
    # Given three changes of Alice and one of Bob in one batch
    stage.connect("alice-1", ALICE)
    stage.connect("bob-1", BOB)
    stream = stage.aws.stream_reader()
    stage.create_tasks(("a1", ALICE), ("a2", ALICE), ("b1", BOB), ("a3", ALICE))
    event = stream.read()
    calls = DynamoDBCalls(stage.aws.dynamodb)

    # When the notifier pushes them
    notifier.handler(event, lambda_context)

    # Then it read the ConnectionTable as few times as it can
    assert {operation: calls.count(operation) for operation in reads} == reads
    assert stage.frames_of("alice-1") == frames_of_alice


@pytest.mark.parametrize(
    ("stage", "others"),
    [("none", []), ("jwt", [("bob-1", BOB)])],  # on jwt, another owner's connection does not count
    indirect=["stage"],
    ids=["none", "jwt"],
)
def test_change_with_no_connection_to_push_to_costs_one_read_and_is_not_a_failure(
    stage: Stage, lambda_context: FakeLambdaContext, others: list[tuple[str, str]]
) -> None:
    # Given no connection Alice's change is for
    for connection_id, owner in others:
        stage.connect(connection_id, owner)
    stream = stage.aws.stream_reader()
    stage.create_tasks(("a1", ALICE))
    event = stream.read()
    calls = DynamoDBCalls(stage.aws.dynamodb)

    # When the notifier gets it
    response = notifier.handler(event, lambda_context)

    # Then one read found nobody, nothing was pushed, and nothing is retried
    assert response == {"batchItemFailures": []}
    assert calls.operations == [stage.connection_reads]
    assert stage.pushed.frames == {}


def test_batch_without_visible_changes_reads_no_connections(
    stage: Stage, lambda_context: FakeLambdaContext
) -> None:
    # Given a batch holding only a lease claim (no client sees it)
    stage.connect("alice-1", ALICE)
    stage.create_tasks(("a1", ALICE))
    stream = stage.aws.stream_reader()
    stream.read()
    owner = ALICE if stage.owner_scoped else None
    TaskRepository(stage.aws.task_table, client=stage.aws.dynamodb).claim(
        "a1", 1, "m1", lease_seconds=30, owner=owner, delivery="d1"
    )
    event = stream.read()
    calls = DynamoDBCalls(stage.aws.dynamodb)

    # When the notifier gets it, Then it reads no connection and pushes nothing
    assert notifier.handler(event, lambda_context) == {"batchItemFailures": []}
    assert calls.operations == []
    assert stage.pushed.frames == {}


class SmallPages:
    """A DynamoDB client whose Scan and Query pages hold 7 items at most; counts the pages read."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.pages = 0
        self.consistent_scans = 0

    def scan(self, **kwargs: Any) -> Any:
        self.pages += 1
        self.consistent_scans += kwargs.get("ConsistentRead") is True
        return self._client.scan(Limit=7, **kwargs)

    def query(self, **kwargs: Any) -> Any:
        self.pages += 1
        return self._client.query(Limit=7, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


@pytest.mark.parametrize(
    ("stage", "receivers"),
    [("none", 35), ("jwt", 30)],  # everybody's connections, or Alice's only
    indirect=["stage"],
    ids=["none", "jwt"],
)
def test_connections_are_read_across_pages(
    stage: Stage, lambda_context: FakeLambdaContext, receivers: int
) -> None:
    # Given 30 connections of Alice and 5 of Bob, read 7 a page
    for index in range(30):
        stage.connect(f"alice-{index:02d}", ALICE)
    for index in range(5):
        stage.connect(f"bob-{index}", BOB)
    client = SmallPages(stage.aws.dynamodb)
    stage.notifier_reading_with(client)
    stream = stage.aws.stream_reader()
    stage.create_tasks(("a1", ALICE))

    # When the notifier pushes Alice's new task
    notifier.handler(stream.read(), lambda_context)

    # Then every connection it is for got it, found over several pages
    assert len(stage.pushed.frames) == receivers
    assert {f"alice-{index:02d}" for index in range(30)} <= set(stage.pushed.frames)
    assert client.pages >= 5
    # (on auth: none every Scan page is strongly consistent: a connection stored a moment ago counts)
    if not stage.owner_scoped:
        assert client.consistent_scans == client.pages


@pytest.mark.parametrize(
    ("stage", "receivers", "reads", "cursor_scope"),
    [
        ("none", {"alice-1", "bob-1"}, {"Scan": 1, "Query": 0}, "*"),
        # Alice's frame only, with a resume cursor of her tasks
        ("jwt", {"alice-1"}, {"Scan": 0, "Query": 1}, ALICE),
    ],
    indirect=["stage"],
    ids=["none", "jwt"],
)
def test_handler_built_from_the_environment_posts_through_the_management_api(
    stage: Stage,
    lambda_context: FakeLambdaContext,
    receivers: set[str],
    reads: dict[str, int],
    cursor_scope: str,
) -> None:
    # No fake: the notifier is built from the stage's environment (AUTH_MODE on jwt) and posts to
    # WEBSOCKET_CALLBACK_URL, which moto serves.
    notifier.notifier.reset()
    stage.connect("alice-1", ALICE)
    stage.connect("bob-1", BOB)
    stream = stage.aws.stream_reader()
    stage.create_tasks(("a1", ALICE))
    calls = DynamoDBCalls(aws.client("dynamodb"))  # the client the handler's repository uses

    response = notifier.handler(stream.read(), lambda_context)

    received = apigatewaymanagementapi_backends[ACCOUNT_ID][REGION].connections
    frame = json.loads(received["alice-1"].data)
    assert response == {"batchItemFailures": []}
    assert set(received) == receivers
    assert {operation: calls.count(operation) for operation in reads} == reads
    assert frame == {
        "type": "task",
        "taskId": "a1",
        "status": "pending",
        "retries": 0,
        "errorMessage": None,
        "updatedAt": frame["updatedAt"],
        "version": 1,
        "answer": "42",
        "cursor": ResumeCursor(frame["updatedAt"], cursor_scope).encode(),
    }


@dataclass
class SlowConnections(FakeConnections):
    """Each post takes a second of the invocation's time (`context`)."""

    context: FakeLambdaContext | None = None

    def post(self, connection_id: str, data: bytes) -> None:
        super().post(connection_id, data)
        assert self.context is not None
        self.context.remaining_millis -= 1000


def test_posting_stops_before_the_timeout_and_the_stream_redelivers_only_the_rest(
    function_env: dict[str, str], moto_aws: Aws, lambda_context: FakeLambdaContext
) -> None:
    # Given one connection, five new tasks, and 5.5 s left with each post taking 1 s
    slow = SlowConnections(context=lambda_context)
    notifier.notifier.override(TaskNotifier(ConnectionRepository(moto_aws.connection_table), slow))
    put_connection(moto_aws, "c1")
    stream = moto_aws.stream_reader()
    for task_id in ("t1", "t2", "t3", "t4", "t5"):
        create_task(moto_aws, task_id)
    event = stream.read()
    lambda_context.remaining_millis = 5500

    # When the notifier pushes the batch
    response = notifier.handler(event, lambda_context)

    # Then it posts while at least 3 s are left, and reports the records not sent as failures
    assert [frame["taskId"] for frame in slow.frames["c1"]] == ["t1", "t2", "t3"]
    assert failed_sequence_numbers(response) == sequence_numbers(event)[3:]

    # and the stream's redelivery of those records, with time again, sends the rest
    lambda_context.remaining_millis = 30_000
    again = {"Records": event["Records"][3:]}
    assert notifier.handler(again, lambda_context) == {"batchItemFailures": []}
    assert [frame["taskId"] for frame in slow.frames["c1"]] == ["t1", "t2", "t3", "t4", "t5"]
