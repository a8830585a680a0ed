"""The notifier with real TaskTable stream records from moto and a fake @connections endpoint."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from lambda_support import (
    CALLBACK_URL,
    REGION,
    Aws,
    FakeConnections,
    FakeLambdaContext,
    connection_ids,
    put_connection,
)
from moto.apigatewaymanagementapi.models import apigatewaymanagementapi_backends
from moto.core import DEFAULT_ACCOUNT_ID as ACCOUNT_ID

from taskflow.clients.connections_client import ConnectionGoneError, ConnectionsClient
from taskflow.domain.resume import ResumeCursor
from taskflow.domain.submission import TaskSubmission
from taskflow.domain.task import new_task
from taskflow.handlers import notifier
from taskflow.repositories.connection_repository import ConnectionRepository
from taskflow.repositories.task_repository import TaskRepository
from taskflow.services.task_notifier import TaskNotifier

NOW = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)


class ScanCountingDynamoDB:
    def __init__(self, client: Any) -> None:
        self._client = client
        self.scans = 0

    def scan(self, **kwargs: Any) -> Any:
        self.scans += 1
        return self._client.scan(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


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
    repository.claim("t1", 1, "m1", lease_seconds=30)
    repository.record_failure("t1", 1, "m1", retries=1, error_message="boom", hold_seconds=0)
    repository.claim("t1", 1, "m1", lease_seconds=30)
    repository.record_success("t1", 1, "m1", retries=1)

    event = stream.read()
    notifier.handler(event, lambda_context)

    assert len(event["Records"]) == 5
    frames = [(f["status"], f["retries"], f["errorMessage"]) for f in connections.frames["c1"]]
    assert frames == [("pending", 0, None), ("pending", 1, "boom"), ("success", 1, None)]


def test_gone_connection_is_deleted_and_not_a_failure(
    connections: FakeConnections,
    moto_aws: Aws,
    lambda_context: FakeLambdaContext,
    capsys: pytest.CaptureFixture[str],
) -> None:
    put_connection(moto_aws, "alive")
    put_connection(moto_aws, "gone")
    connections.gone.add("gone")
    stream = moto_aws.stream_reader()
    create_task(moto_aws, "t1")

    response = notifier.handler(stream.read(), lambda_context)

    assert response == {"batchItemFailures": []}
    assert connection_ids(moto_aws) == {"alive"}
    assert len(connections.frames["alive"]) == 1
    assert '"ConnectionsGone":[1.0]' in capsys.readouterr().out


def test_failing_connection_fails_the_record_but_not_the_other_connections(
    connections: FakeConnections, moto_aws: Aws, lambda_context: FakeLambdaContext
) -> None:
    for connection_id in ("c1", "broken", "c3"):
        put_connection(moto_aws, connection_id)
    connections.failing.add("broken")
    stream = moto_aws.stream_reader()
    create_task(moto_aws, "t1")
    create_task(moto_aws, "t2")
    event = stream.read()

    response = notifier.handler(event, lambda_context)

    sequence_numbers = [record["dynamodb"]["SequenceNumber"] for record in event["Records"]]
    assert failed_sequence_numbers(response) == sequence_numbers  # "broken" got neither frame
    assert [f["taskId"] for f in connections.frames["c1"]] == ["t1", "t2"]
    assert [f["taskId"] for f in connections.frames["c3"]] == ["t1", "t2"]
    assert connection_ids(moto_aws) == {"c1", "broken", "c3"}


def test_connection_list_is_scanned_once_per_batch(
    function_env: dict[str, str], moto_aws: Aws, lambda_context: FakeLambdaContext
) -> None:
    put_connection(moto_aws, "c1")
    counting = ScanCountingDynamoDB(moto_aws.dynamodb)
    fake = FakeConnections()
    notifier.notifier.override(
        TaskNotifier(ConnectionRepository(moto_aws.connection_table, client=counting), fake)
    )
    stream = moto_aws.stream_reader()
    for task_id in ("a", "b", "c"):
        create_task(moto_aws, task_id)

    notifier.handler(stream.read(), lambda_context)

    assert counting.scans == 1
    assert [f["taskId"] for f in fake.frames["c1"]] == ["a", "b", "c"]


def test_connection_list_is_read_across_scan_pages(function_env: dict[str, str], moto_aws: Aws) -> None:
    for index in range(30):
        put_connection(moto_aws, f"c{index:02d}")

    class SmallPages(ScanCountingDynamoDB):
        def scan(self, **kwargs: Any) -> Any:
            return super().scan(Limit=7, **kwargs)

    counting = SmallPages(moto_aws.dynamodb)
    ids = ConnectionRepository(moto_aws.connection_table, client=counting).list_ids()

    assert len(ids) == 30
    assert counting.scans >= 5


def test_batch_without_visible_changes_reads_no_connections(
    function_env: dict[str, str], moto_aws: Aws, lambda_context: FakeLambdaContext
) -> None:
    repository = create_task(moto_aws, "t1")
    stream = moto_aws.stream_reader()
    stream.read()
    repository.claim("t1", 1, "m1", lease_seconds=30)
    counting = ScanCountingDynamoDB(moto_aws.dynamodb)
    notifier.notifier.override(
        TaskNotifier(ConnectionRepository(moto_aws.connection_table, client=counting), FakeConnections())
    )

    assert notifier.handler(stream.read(), lambda_context) == {"batchItemFailures": []}
    assert counting.scans == 0


def test_no_connections_is_not_a_failure(
    connections: FakeConnections, moto_aws: Aws, lambda_context: FakeLambdaContext
) -> None:
    stream = moto_aws.stream_reader()
    create_task(moto_aws, "t1")
    assert notifier.handler(stream.read(), lambda_context) == {"batchItemFailures": []}


# --------------------------------------------------------------------------- the real client


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


def test_handler_built_from_the_environment_posts_through_the_management_api(
    function_env: dict[str, str], moto_aws: Aws, lambda_context: FakeLambdaContext
) -> None:
    # No fake here: the real ConnectionsClient posts to WEBSOCKET_CALLBACK_URL, which moto serves.
    put_connection(moto_aws, "c1")
    stream = moto_aws.stream_reader()
    create_task(moto_aws, "t1")

    response = notifier.handler(stream.read(), lambda_context)

    received = json.loads(apigatewaymanagementapi_backends[ACCOUNT_ID][REGION].connections["c1"].data)
    assert response == {"batchItemFailures": []}
    assert received == {
        "type": "task",
        "taskId": "t1",
        "status": "pending",
        "retries": 0,
        "errorMessage": None,
        "updatedAt": received["updatedAt"],
        "version": 1,
        "answer": "42",
        "cursor": ResumeCursor(received["updatedAt"], "*").encode(),
    }


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
