"""The task table's keys through a task's life (taskflow.table_schema): which writes enter or leave
which index, sharded listings merged in order, and the owner carried from the table to the queue
message and back to the key. On moto, through the real repository and handlers."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from lambda_support import Aws, FakeLambdaContext, get_item, sqs_event, sqs_record

from taskflow import table_schema
from taskflow.domain import processing
from taskflow.domain.errors import MalformedMessageError
from taskflow.domain.messages import TaskMessage
from taskflow.domain.status import TaskStatus
from taskflow.domain.submission import TaskSubmission
from taskflow.domain.task import new_task
from taskflow.handlers import processor
from taskflow.repositories.task_repository import ClaimOutcome, TaskRepository
from taskflow.services.stream_changes import StreamChange
from taskflow.services.task_enqueuer import message_for

T0 = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)
ALICE = "alice-sub"
INDEX_KEYS = (
    table_schema.TASKS_BY_CREATED_PK,
    table_schema.TASKS_BY_CREATED_SK,
    table_schema.TASKS_BY_FINISHED_PK,
    table_schema.TASKS_BY_FINISHED_SK,
)


class UpdateRecorder:
    """Delegates to a real DynamoDB client and keeps every UpdateItem's expressions."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.updates: list[dict[str, Any]] = []

    def update_item(self, **kwargs: Any) -> Any:
        self.updates.append(kwargs)
        return self._client.update_item(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def written_attributes(update: dict[str, Any]) -> set[str]:
    """The attributes an UpdateItem's SET and REMOVE clauses write."""
    names = update["ExpressionAttributeNames"]
    clauses = update["UpdateExpression"].replace("SET ", "").replace(" REMOVE ", ", ").split(", ")
    return {names[clause.split(" = ")[0].strip()] for clause in clauses}


def index_entries(aws: Aws, index: str, partition_name: str, partition: str) -> list[dict[str, Any]]:
    return aws.dynamodb.query(
        TableName=aws.task_table,
        IndexName=index,
        KeyConditionExpression="#p = :p",
        ExpressionAttributeNames={"#p": partition_name},
        ExpressionAttributeValues={":p": {"S": partition}},
    )["Items"]


def create(repository: TaskRepository, task_id: str, *, seconds: float = 0, owner: str | None = None) -> None:
    when = T0 + timedelta(seconds=seconds)
    assert repository.create(new_task(TaskSubmission(answer="42"), task_id, when, owner=owner)).created


def test_lease_writes_touch_no_index_key_and_only_final_transitions_enter_by_finished(moto_aws: Aws) -> None:
    # Given a new task, on a repository that records its updates
    recorder = UpdateRecorder(moto_aws.dynamodb)
    repository = TaskRepository(moto_aws.task_table, client=recorder)
    create(repository, "t1")
    shard = table_schema.shard_of("t1", table_schema.DEFAULT_LIST_SHARDS)
    listed = table_schema.list_key(table_schema.SCOPE_ALL, shard)
    finished = table_schema.finished_key(table_schema.SCOPE_ALL, "success", shard)

    # When it is claimed, fails an attempt, is released and claimed again
    assert repository.claim("t1", 1, "m1", 60, delivery="d1").outcome is ClaimOutcome.CLAIMED
    assert repository.record_failure(
        "t1", 1, "m1", retries=1, error_message="boom", hold_seconds=0, delivery="d1"
    )
    assert repository.claim("t1", 1, "m1", 60, delivery="d1").outcome is ClaimOutcome.CLAIMED
    assert repository.release("t1", 1, "m1", 0, delivery="d1")
    assert repository.claim("t1", 1, "m1", 60, delivery="d1").outcome is ClaimOutcome.CLAIMED
    lease_writes = list(recorder.updates)

    # Then none of those writes touched an index key: no index entry was written
    assert all(not written_attributes(update) & set(INDEX_KEYS) for update in lease_writes)
    assert len(index_entries(moto_aws, table_schema.TASKS_BY_CREATED_INDEX, "listKey", listed)) == 1
    assert index_entries(moto_aws, table_schema.TASKS_BY_FINISHED_INDEX, "finishedKey", finished) == []

    # When it succeeds, it enters ByFinished, finished when it was last updated
    assert repository.record_success("t1", 1, "m1", 1, delivery="d1")
    item = get_item(moto_aws, "t1")
    assert (item["finishedKey"], item["finishedAt"]) == (finished, item["updatedAt"])
    assert len(index_entries(moto_aws, table_schema.TASKS_BY_FINISHED_INDEX, "finishedKey", finished)) == 1


def test_a_retry_takes_the_task_out_of_by_finished_and_dead_lettering_puts_it_back(moto_aws: Aws) -> None:
    repository = TaskRepository(moto_aws.task_table, client=moto_aws.dynamodb)
    create(repository, "t1")
    shard = table_schema.shard_of("t1", table_schema.DEFAULT_LIST_SHARDS)
    in_error = table_schema.finished_key(table_schema.SCOPE_ALL, "error", shard)

    assert repository.mark_dead_lettered("t1", 1, "gave up", holder="m1") is not None
    assert len(index_entries(moto_aws, table_schema.TASKS_BY_FINISHED_INDEX, "finishedKey", in_error)) == 1
    assert repository.retry("t1").run == 2
    assert index_entries(moto_aws, table_schema.TASKS_BY_FINISHED_INDEX, "finishedKey", in_error) == []
    assert not {"finishedKey", "finishedAt"} & set(get_item(moto_aws, "t1"))
    assert repository.mark_dead_lettered("t1", 2, "gave up", holder="m1") is not None
    assert [task.task_id for task in repository.list_page(limit=5, status=TaskStatus.ERROR).tasks] == ["t1"]


@pytest.mark.parametrize("shards", [1, 4, 16])
def test_pages_over_sharded_partitions_come_newest_first_with_ties_neither_lost_nor_repeated(
    moto_aws: Aws, shards: int
) -> None:
    # Given 30 tasks, in groups of three created at the same microsecond
    repository = TaskRepository(moto_aws.task_table, client=moto_aws.dynamodb, list_shards=shards)
    for index in range(30):
        create(repository, f"t{index:02d}", seconds=index // 3)
    expected = sorted(
        (f"t{index:02d}" for index in range(30)), key=lambda t: (int(t[1:]) // 3, t), reverse=True
    )

    # When the whole listing is paged, 4 at a time
    seen: list[str] = []
    start_key = None
    while True:
        page = repository.list_page(limit=4, start_key=start_key)
        seen += [task.task_id for task in page.tasks]
        if not page.has_more:
            break
        start_key = repository.page_key(page.tasks[-1])

    # Then it is every task once, newest first (ties by taskId, descending)
    assert seen == expected


def test_the_owner_travels_from_the_stream_to_the_message_and_back_to_the_key(
    jwt_env: dict[str, str], owner_scoped_aws: Aws, lambda_context: FakeLambdaContext
) -> None:
    # Given Alice's task, and the enqueue message its INSERT calls for
    repository = TaskRepository(owner_scoped_aws.task_table, client=owner_scoped_aws.dynamodb)
    create(repository, "t1", owner=ALICE)
    image = get_item(owner_scoped_aws, "t1", owner=ALICE)
    message = message_for(
        StreamChange(sequence_number="1", event_id="e1", event_name="INSERT", old_image=None, new_image=image)
    )
    assert message == TaskMessage("t1", 1, correlation_id="e1", owner=ALICE)
    processing.configure(failure_rate=0.0, seed=1, allow_fault_injection=False)

    # When the processor gets that message, and one without the owner
    body = message.to_body()
    ownerless = json.dumps({"taskId": "t1", "run": 1})
    records = [sqs_record(body, message_id="m1"), sqs_record(ownerless, message_id="m2")]
    failures = processor.handler(sqs_event(records), lambda_context)

    # Then Alice's task ran once; the message without an owner reached no task (acknowledged)
    assert failures == {"batchItemFailures": []}
    assert get_item(owner_scoped_aws, "t1", owner=ALICE)["status"] == "success"
    assert get_item(owner_scoped_aws, "t1") is None


@pytest.mark.parametrize("owner", ["", 7, "x" * 1025], ids=["empty", "number", "too long"])
def test_a_message_with_an_unusable_owner_is_malformed(owner: Any) -> None:
    with pytest.raises(MalformedMessageError, match="owner"):
        TaskMessage.parse(json.dumps({"taskId": "t1", "run": 1, "owner": owner}))
