"""The enqueue handler with real DynamoDB stream records read from moto."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from lambda_support import Aws, FakeLambdaContext, FakeQueue

from taskflow import table_schema
from taskflow.clients.queue_client import QueueClient
from taskflow.domain.submission import TaskSubmission
from taskflow.domain.task import new_task
from taskflow.handlers import enqueue
from taskflow.repositories.task_repository import TaskRepository
from taskflow.services.task_enqueuer import TaskEnqueuer

NOW = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)


def create_tasks(moto_aws: Aws, count: int) -> list[str]:
    repository = TaskRepository(moto_aws.task_table, client=moto_aws.dynamodb)
    ids = [f"t-{index:03d}" for index in range(count)]
    for index, task_id in enumerate(ids):
        repository.create(new_task(TaskSubmission(answer="42"), task_id, NOW + timedelta(seconds=index)))
    return ids


def queued_bodies(moto_aws: Aws) -> list[dict[str, Any]]:
    bodies = []
    while messages := moto_aws.receive():
        for message in messages:
            bodies.append(json.loads(message["Body"]))
            moto_aws.sqs.delete_message(QueueUrl=moto_aws.queue_url, ReceiptHandle=message["ReceiptHandle"])
    return bodies


class CountingSqs:
    """Delegates to moto's SQS client and records SendMessageBatch sizes."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.batches: list[int] = []

    def send_message_batch(self, **kwargs: Any) -> Any:
        self.batches.append(len(kwargs["Entries"]))
        return self._client.send_message_batch(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


class BrokenSqs:
    def send_message_batch(self, **_: Any) -> Any:
        raise ConnectionError("SQS is down")


def test_new_task_is_enqueued_with_its_run(
    function_env: dict[str, str], moto_aws: Aws, lambda_context: FakeLambdaContext
) -> None:
    stream = moto_aws.stream_reader()
    create_tasks(moto_aws, 1)

    response = enqueue.handler(stream.read(), lambda_context)

    assert response == {"batchItemFailures": []}
    [body] = queued_bodies(moto_aws)
    assert (body["taskId"], body["run"]) == ("t-000", 1)
    assert body["correlationId"]


def test_retried_task_is_enqueued_for_its_new_run(
    function_env: dict[str, str], moto_aws: Aws, lambda_context: FakeLambdaContext
) -> None:
    create_tasks(moto_aws, 1)
    moto_aws.dynamodb.update_item(
        TableName=moto_aws.task_table,
        Key={table_schema.TASK_PK: {"S": "t-000"}},
        UpdateExpression="SET #s = :e",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":e": {"S": "error"}},
    )
    stream = moto_aws.stream_reader()
    stream.read()  # skip the creation and the failure
    TaskRepository(moto_aws.task_table).retry("t-000")

    enqueue.handler(stream.read(), lambda_context)

    assert [(b["taskId"], b["run"]) for b in queued_bodies(moto_aws)] == [("t-000", 2)]


def test_changes_that_start_no_run_send_nothing(
    function_env: dict[str, str], moto_aws: Aws, lambda_context: FakeLambdaContext
) -> None:
    create_tasks(moto_aws, 1)
    stream = moto_aws.stream_reader()
    stream.read()
    repository = TaskRepository(moto_aws.task_table)
    repository.claim("t-000", 1, "m1", lease_seconds=30, delivery="d1")
    repository.record_success("t-000", 1, "m1", retries=0, delivery="d1")

    event = stream.read()
    response = enqueue.handler(event, lambda_context)

    assert len(event["Records"]) == 2
    assert response == {"batchItemFailures": []}
    assert queued_bodies(moto_aws) == []


def test_records_are_sent_in_batches_of_ten(
    function_env: dict[str, str], moto_aws: Aws, lambda_context: FakeLambdaContext
) -> None:
    stream = moto_aws.stream_reader()
    ids = create_tasks(moto_aws, 25)
    sqs = CountingSqs(moto_aws.sqs)
    enqueue.enqueuer.override(TaskEnqueuer(QueueClient(moto_aws.queue_url, client=sqs)))

    response = enqueue.handler(stream.read(), lambda_context)

    assert response == {"batchItemFailures": []}
    assert sqs.batches == [10, 10, 5]
    assert sorted(b["taskId"] for b in queued_bodies(moto_aws)) == ids


def test_only_records_whose_message_failed_are_reported(
    function_env: dict[str, str], moto_aws: Aws, lambda_context: FakeLambdaContext
) -> None:
    stream = moto_aws.stream_reader()
    create_tasks(moto_aws, 4)
    event = stream.read()
    queue = FakeQueue(refuse={1, 3})
    enqueue.enqueuer.override(TaskEnqueuer(queue))

    response = enqueue.handler(event, lambda_context)

    sequence_numbers = [record["dynamodb"]["SequenceNumber"] for record in event["Records"]]
    assert response == {
        "batchItemFailures": [
            {"itemIdentifier": sequence_numbers[1]},
            {"itemIdentifier": sequence_numbers[3]},
        ]
    }
    assert [json.loads(body)["taskId"] for body in queue.sent] == ["t-000", "t-002"]


def test_unreachable_queue_fails_every_record_of_the_batch(
    function_env: dict[str, str], moto_aws: Aws, lambda_context: FakeLambdaContext
) -> None:
    stream = moto_aws.stream_reader()
    create_tasks(moto_aws, 3)
    event = stream.read()
    enqueue.enqueuer.override(TaskEnqueuer(QueueClient(moto_aws.queue_url, client=BrokenSqs())))

    response = enqueue.handler(event, lambda_context)

    assert [f["itemIdentifier"] for f in response["batchItemFailures"]] == [
        record["dynamodb"]["SequenceNumber"] for record in event["Records"]
    ]


def test_record_without_a_task_id_is_skipped_not_retried(
    function_env: dict[str, str], moto_aws: Aws, lambda_context: FakeLambdaContext
) -> None:
    stream = moto_aws.stream_reader()
    create_tasks(moto_aws, 1)
    event = stream.read()
    broken = json.loads(json.dumps(event))
    broken["Records"][0]["dynamodb"]["NewImage"].pop("taskId")
    broken["Records"][0]["dynamodb"]["SequenceNumber"] = "1"
    queue = FakeQueue()
    enqueue.enqueuer.override(TaskEnqueuer(queue))

    response = enqueue.handler({"Records": broken["Records"] + event["Records"]}, lambda_context)

    assert response == {"batchItemFailures": []}
    assert [json.loads(body)["taskId"] for body in queue.sent] == ["t-000"]


def test_unreadable_stream_record_is_skipped_not_retried(
    function_env: dict[str, str], moto_aws: Aws, lambda_context: FakeLambdaContext
) -> None:
    # Given a batch whose first record cannot be deserialized (an unknown type, a bad number)
    stream = moto_aws.stream_reader()
    create_tasks(moto_aws, 1)
    event = stream.read()
    unknown_type = json.loads(json.dumps(event["Records"][0]))
    unknown_type["dynamodb"]["NewImage"]["answer"] = {"Q": "?"}
    bad_number = json.loads(json.dumps(event["Records"][0]))
    bad_number["dynamodb"]["NewImage"]["run"] = {"N": "abc"}
    queue = FakeQueue()
    enqueue.enqueuer.override(TaskEnqueuer(queue))

    # When the enqueuer gets them before a good record
    response = enqueue.handler({"Records": [unknown_type, bad_number, *event["Records"]]}, lambda_context)

    # Then they are dropped (retrying can never read them) and the good record is sent
    assert response == {"batchItemFailures": []}
    assert [json.loads(body)["taskId"] for body in queue.sent] == ["t-000"]
