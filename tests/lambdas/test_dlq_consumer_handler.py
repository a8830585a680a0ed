"""The DLQ consumer with SQS events from the TaskDLQ, on moto."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from botocore.exceptions import EndpointConnectionError
from lambda_support import (
    MAX_RECEIVE_COUNT,
    Aws,
    FakeLambdaContext,
    get_item,
    sqs_event,
    sqs_record,
    task_body,
)

from taskflow.domain.submission import TaskSubmission
from taskflow.domain.task import new_task
from taskflow.handlers import dlq_consumer, processor
from taskflow.repositories.task_repository import TaskRepository
from taskflow.services.dead_letter_handler import DeadLetterHandler

NOW = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)


def create_task(moto_aws: Aws, task_id: str, **simulate: int) -> None:
    submission = TaskSubmission.model_validate({"answer": "42", "simulate": simulate or None})
    TaskRepository(moto_aws.task_table, client=moto_aws.dynamodb).create(new_task(submission, task_id, NOW))


def run(records: list[dict[str, Any]], context: FakeLambdaContext) -> list[str]:
    response = dlq_consumer.handler(sqs_event(records), context)
    return [failure["itemIdentifier"] for failure in response["batchItemFailures"]]


def test_dead_lettered_task_is_marked_error_with_its_last_error(
    function_env: dict[str, str],
    moto_aws: Aws,
    lambda_context: FakeLambdaContext,
    capsys: pytest.CaptureFixture[str],
) -> None:
    create_task(moto_aws, "t1")
    repository = TaskRepository(moto_aws.task_table)
    repository.claim("t1", 1, "m1", lease_seconds=30, delivery="d1")
    repository.record_failure(
        "t1", 1, "m1", retries=2, error_message="step exploded", hold_seconds=30, delivery="d1"
    )

    # (SQS keeps a message's id when it dead-letters it: the lease's own message)
    failed = run([sqs_record(task_body("t1"), message_id="m1")], lambda_context)

    item = get_item(moto_aws, "t1")
    assert failed == []
    assert item is not None
    assert (item["status"], item["errorMessage"], item["retries"]) == ("error", "step exploded", 2)
    assert "leaseOwner" not in item
    assert '"TaskDeadLettered":[1.0]' in capsys.readouterr().out


def test_task_no_attempt_of_which_completed_gets_an_error_message_saying_so(
    function_env: dict[str, str], moto_aws: Aws, lambda_context: FakeLambdaContext
) -> None:
    create_task(moto_aws, "t2")

    run([sqs_record(task_body("t2"), message_id="d1")], lambda_context)

    assert (get_item(moto_aws, "t2") or {})["errorMessage"] == (
        f"gave up after {MAX_RECEIVE_COUNT} deliveries, none of which completed an attempt "
        "(the processor crashed or timed out)"
    )


def test_redelivered_dlq_message_changes_nothing(
    function_env: dict[str, str], moto_aws: Aws, lambda_context: FakeLambdaContext
) -> None:
    create_task(moto_aws, "t3")
    run([sqs_record(task_body("t3"), message_id="d1")], lambda_context)
    first = get_item(moto_aws, "t3")

    failed = run([sqs_record(task_body("t3"), message_id="d1", receive_count=2)], lambda_context)

    assert failed == []
    assert get_item(moto_aws, "t3") == first


def test_dlq_message_for_a_succeeded_or_retried_task_changes_nothing(
    function_env: dict[str, str], moto_aws: Aws, lambda_context: FakeLambdaContext
) -> None:
    create_task(moto_aws, "won")
    repository = TaskRepository(moto_aws.task_table)
    repository.claim("won", 1, "m1", lease_seconds=30, delivery="d1")
    repository.record_success("won", 1, "m1", retries=1, delivery="d1")
    create_task(moto_aws, "rerun")
    before_won, before_rerun = get_item(moto_aws, "won"), get_item(moto_aws, "rerun")

    failed = run(
        [
            sqs_record(task_body("won"), message_id="d1"),
            sqs_record(task_body("rerun", run=7), message_id="d2"),
        ],
        lambda_context,
    )

    assert failed == []
    assert get_item(moto_aws, "won") == before_won
    assert get_item(moto_aws, "rerun") == before_rerun


@pytest.mark.parametrize("lease_state", ["running", "backing-off"])
def test_a_dead_lettered_duplicate_waits_while_the_runs_own_message_holds_a_live_lease(
    function_env: dict[str, str], moto_aws: Aws, lambda_context: FakeLambdaContext, lease_state: str
) -> None:
    # Given m1 running the step (or backing off before its next attempt), and m2, a duplicate
    # message of the same run, dead-lettered meanwhile (its claims failed until its receives ran out)
    create_task(moto_aws, "dup")
    repository = TaskRepository(moto_aws.task_table)
    repository.claim("dup", 1, "m1", lease_seconds=600, delivery="d1")
    if lease_state == "backing-off":
        repository.record_failure(
            "dup", 1, "m1", retries=1, error_message="boom", hold_seconds=600, delivery="d1"
        )
    assert (get_item(moto_aws, "dup") or {})["leaseState"] == lease_state

    # When the DLQ consumer gets m2, it leaves the task alone and asks for m2 again later
    assert run([sqs_record(task_body("dup"), message_id="m2")], lambda_context) == ["m2"]
    assert (get_item(moto_aws, "dup") or {})["status"] == "pending"
    if lease_state == "backing-off":  # m1 comes back for its next attempt
        assert repository.claim("dup", 1, "m1", lease_seconds=600, delivery="d2").task is not None
        delivery = "d2"
    else:
        delivery = "d1"

    # Then m1's attempt commits, and m2's return changes nothing
    assert repository.record_success("dup", 1, "m1", retries=1, delivery=delivery)
    assert run([sqs_record(task_body("dup"), message_id="m2", receive_count=2)], lambda_context) == []
    assert (get_item(moto_aws, "dup") or {})["status"] == "success"


def test_a_dead_lettered_duplicate_ends_the_run_once_the_other_lease_has_expired(
    function_env: dict[str, str], moto_aws: Aws, lambda_context: FakeLambdaContext
) -> None:
    create_task(moto_aws, "gone")
    TaskRepository(moto_aws.task_table).claim("gone", 1, "m1", lease_seconds=-10, delivery="d1")

    assert run([sqs_record(task_body("gone"), message_id="m2")], lambda_context) == []
    assert (get_item(moto_aws, "gone") or {})["status"] == "error"


@pytest.mark.parametrize(
    "body", ["", "garbage", "[]", "{}", '{"taskId": 5, "run": 1}', '{"taskId": "x"}', "{" * 10_000]
)
def test_malformed_dlq_messages_are_acknowledged(
    function_env: dict[str, str], moto_aws: Aws, lambda_context: FakeLambdaContext, body: str
) -> None:
    assert run([sqs_record(body, message_id="bad")], lambda_context) == []


class _DownDynamoDB:
    def update_item(self, **_: Any) -> Any:
        raise EndpointConnectionError(endpoint_url="http://127.0.0.1:9")


def test_unreachable_table_reports_the_message_failed(
    function_env: dict[str, str], lambda_context: FakeLambdaContext
) -> None:
    dlq_consumer.dead_letters.override(
        DeadLetterHandler(TaskRepository("TaskTable", client=_DownDynamoDB()), 3)
    )

    assert run([sqs_record(task_body("t"), message_id="d1")], lambda_context) == ["d1"]


def test_a_task_item_that_is_not_a_task_is_retried_with_its_traceback_logged(
    function_env: dict[str, str],
    moto_aws: Aws,
    lambda_context: FakeLambdaContext,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Given a pending task whose item was edited by hand into something that is not a task
    create_task(moto_aws, "edited")
    moto_aws.dynamodb.update_item(
        TableName=moto_aws.task_table,
        Key={"pk": {"S": "edited"}},
        UpdateExpression="REMOVE retries",
    )

    # When its dead-lettered message is handled
    failed = run([sqs_record(task_body("edited"), message_id="m1")], lambda_context)

    # Then the message comes back later, and the log says why, with the traceback
    assert failed == ["m1"]
    [record] = [r for r in caplog.records if r.getMessage().startswith("could not mark the task failed")]
    assert record.levelname == "ERROR"
    assert record.exc_info is not None


def test_message_redriven_by_sqs_after_the_last_attempt_marks_the_task_error(
    function_env: dict[str, str],
    moto_aws: Aws,
    lambda_context: FakeLambdaContext,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BACKOFF_BASE_SECONDS", "0")
    create_task(moto_aws, "hopeless", failAttempts=MAX_RECEIVE_COUNT)
    moto_aws.sqs.send_message(QueueUrl=moto_aws.queue_url, MessageBody=task_body("hopeless"))

    receives = 0
    while messages := moto_aws.receive():
        receives += 1
        processor.handler(sqs_event(messages), lambda_context)
    dead = moto_aws.receive(moto_aws.dlq_url)
    failed = dlq_consumer.handler(sqs_event(dead), lambda_context)["batchItemFailures"]

    item = get_item(moto_aws, "hopeless")
    assert receives == MAX_RECEIVE_COUNT
    assert failed == []
    assert item is not None
    assert (item["status"], item["retries"]) == ("error", MAX_RECEIVE_COUNT - 1)
    assert f"attempt {MAX_RECEIVE_COUNT}" in item["errorMessage"]
