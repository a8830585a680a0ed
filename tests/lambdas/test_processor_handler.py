"""The processor handler with SQS events, on moto: leases, commits, backoff, duplicates."""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from botocore.exceptions import EndpointConnectionError
from lambda_support import (
    MAX_RECEIVE_COUNT,
    Aws,
    FakeLambdaContext,
    FakeQueue,
    get_item,
    sqs_event,
    sqs_record,
    task_body,
)

from taskflow import table_schema
from taskflow.domain import processing
from taskflow.domain.submission import TaskSubmission
from taskflow.domain.task import new_task
from taskflow.handlers import processor
from taskflow.repositories.task_repository import TaskRepository
from taskflow.services.task_runner import BackoffPolicy, TaskRunner

NOW = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)


def create_task(moto_aws: Aws, task_id: str, *, fail_attempts: int | None = None) -> None:
    simulate = {"failAttempts": fail_attempts} if fail_attempts is not None else None
    submission = TaskSubmission.model_validate({"answer": "42", "simulate": simulate})
    TaskRepository(moto_aws.task_table, client=moto_aws.dynamodb).create(new_task(submission, task_id, NOW))


@pytest.fixture
def queue() -> FakeQueue:
    return FakeQueue()


@pytest.fixture
def use_fake_queue(function_env: dict[str, str], moto_aws: Aws, queue: FakeQueue) -> FakeQueue:
    """The processor with the real table (moto) and an in-memory queue recording visibility changes."""
    processing.configure(failure_rate=0.0, seed=1, allow_fault_injection=True)
    processor.runner.override(
        TaskRunner(
            TaskRepository(moto_aws.task_table),
            queue,
            BackoffPolicy(max_receive_count=MAX_RECEIVE_COUNT, base_seconds=2, cap_seconds=60),
            jitter_rng=random.Random(5),
        )
    )
    return queue


def run(records: list[dict[str, Any]], context: FakeLambdaContext) -> list[str]:
    response = processor.handler(sqs_event(records), context)
    return [failure["itemIdentifier"] for failure in response["batchItemFailures"]]


# --------------------------------------------------------------------------- outcomes


def test_successful_step_marks_the_task_success(
    use_fake_queue: FakeQueue, moto_aws: Aws, lambda_context: FakeLambdaContext
) -> None:
    create_task(moto_aws, "ok")

    failed = run([sqs_record(task_body("ok"), message_id="m1")], lambda_context)

    item = get_item(moto_aws, "ok")
    assert failed == []
    assert item is not None
    assert (item["status"], item["retries"]) == ("success", 0)
    assert "leaseOwner" not in item
    assert use_fake_queue.visibility == []


def test_failed_attempt_records_the_error_and_backs_off(
    use_fake_queue: FakeQueue, moto_aws: Aws, lambda_context: FakeLambdaContext
) -> None:
    create_task(moto_aws, "flaky", fail_attempts=1)

    failed = run([sqs_record(task_body("flaky"), message_id="m1", receipt_handle="rh-1")], lambda_context)

    item = get_item(moto_aws, "flaky")
    assert failed == ["m1"]
    assert item is not None
    assert (item["status"], item["retries"]) == ("pending", 1)
    assert "attempt 1" in item["errorMessage"]
    [(receipt_handle, delay)] = use_fake_queue.visibility
    assert receipt_handle == "rh-1"
    assert 2 <= delay <= 4


def test_backoff_grows_with_the_receive_count(
    use_fake_queue: FakeQueue, moto_aws: Aws, lambda_context: FakeLambdaContext
) -> None:
    processor.runner.get()  # built with MAX_RECEIVE_COUNT 3; use a longer budget here
    processor.runner.override(
        TaskRunner(
            TaskRepository(moto_aws.task_table),
            use_fake_queue,
            BackoffPolicy(max_receive_count=10, base_seconds=2, cap_seconds=9),
            jitter_rng=random.Random(5),
        )
    )
    create_task(moto_aws, "slow", fail_attempts=5)

    for receive_count in range(1, 5):
        run([sqs_record(task_body("slow"), message_id="m1", receive_count=receive_count)], lambda_context)

    delays = [delay for _, delay in use_fake_queue.visibility]
    assert 2 <= delays[0] <= 4
    assert 4 <= delays[1] <= 6
    assert 8 <= delays[2] <= 9  # 8..10, capped at 9
    assert delays[3] == 9


def test_final_attempt_fails_with_visibility_zero_and_keeps_retries(
    use_fake_queue: FakeQueue, moto_aws: Aws, lambda_context: FakeLambdaContext
) -> None:
    create_task(moto_aws, "doomed", fail_attempts=MAX_RECEIVE_COUNT)

    for receive_count in range(1, MAX_RECEIVE_COUNT + 1):
        failed = run(
            [sqs_record(task_body("doomed"), message_id="m1", receive_count=receive_count)], lambda_context
        )
        assert failed == ["m1"]

    item = get_item(moto_aws, "doomed")
    assert item is not None
    assert (item["status"], item["retries"]) == ("pending", MAX_RECEIVE_COUNT - 1)
    assert use_fake_queue.visibility[-1][1] == 0


def test_only_the_failing_record_is_reported(
    use_fake_queue: FakeQueue, moto_aws: Aws, lambda_context: FakeLambdaContext
) -> None:
    create_task(moto_aws, "a")
    create_task(moto_aws, "b", fail_attempts=1)
    create_task(moto_aws, "c")

    failed = run(
        [
            sqs_record(task_body("a"), message_id="ma"),
            sqs_record(task_body("b"), message_id="mb"),
            sqs_record(task_body("c"), message_id="mc"),
        ],
        lambda_context,
    )

    assert failed == ["mb"]
    statuses = {task_id: (get_item(moto_aws, task_id) or {})["status"] for task_id in "abc"}
    assert statuses == {"a": "success", "b": "pending", "c": "success"}


@pytest.mark.parametrize("body", ["not json", "{}", '{"taskId": "x"}', '{"run": 1}', "[]", ""])
def test_malformed_message_goes_towards_the_dlq_without_processing(
    use_fake_queue: FakeQueue, moto_aws: Aws, lambda_context: FakeLambdaContext, body: str
) -> None:
    create_task(moto_aws, "fine")

    failed = run(
        [
            sqs_record(body, message_id="bad", receipt_handle="rh-bad"),
            sqs_record(task_body("fine"), message_id="good"),
        ],
        lambda_context,
    )

    assert failed == ["bad"]
    assert use_fake_queue.visibility == [("rh-bad", 0)]
    assert (get_item(moto_aws, "fine") or {})["status"] == "success"


def test_message_for_an_absent_task_is_acknowledged(
    use_fake_queue: FakeQueue, lambda_context: FakeLambdaContext
) -> None:
    assert run([sqs_record(task_body("ghost"), message_id="m1")], lambda_context) == []


# --------------------------------------------------------------------------- duplicates and late deliveries


def test_two_messages_for_the_same_task_have_one_effect(
    use_fake_queue: FakeQueue, moto_aws: Aws, lambda_context: FakeLambdaContext
) -> None:
    create_task(moto_aws, "twice")

    failed = run(
        [sqs_record(task_body("twice"), message_id="m1"), sqs_record(task_body("twice"), message_id="m2")],
        lambda_context,
    )

    item = get_item(moto_aws, "twice")
    assert failed == []
    assert item is not None
    assert (item["status"], item["retries"]) == ("success", 0)
    assert item["version"] == 3  # created, claimed, succeeded: the duplicate wrote nothing


def test_duplicate_message_while_the_owner_backs_off_is_acknowledged_without_an_attempt(
    use_fake_queue: FakeQueue, moto_aws: Aws, lambda_context: FakeLambdaContext
) -> None:
    create_task(moto_aws, "owned", fail_attempts=1)
    run([sqs_record(task_body("owned"), message_id="owner")], lambda_context)
    before = get_item(moto_aws, "owned")

    failed = run([sqs_record(task_body("owned"), message_id="duplicate")], lambda_context)

    assert failed == []
    assert get_item(moto_aws, "owned") == before


def test_owner_message_returning_after_backoff_succeeds(
    use_fake_queue: FakeQueue, moto_aws: Aws, lambda_context: FakeLambdaContext
) -> None:
    create_task(moto_aws, "back", fail_attempts=1)
    run([sqs_record(task_body("back"), message_id="owner", receive_count=1)], lambda_context)

    failed = run([sqs_record(task_body("back"), message_id="owner", receive_count=2)], lambda_context)

    item = get_item(moto_aws, "back")
    assert failed == []
    assert item is not None
    assert (item["status"], item["retries"], item.get("errorMessage")) == ("success", 1, None)


def test_late_delivery_after_success_cannot_regress_the_task(
    use_fake_queue: FakeQueue, moto_aws: Aws, lambda_context: FakeLambdaContext
) -> None:
    create_task(moto_aws, "done")
    run([sqs_record(task_body("done"), message_id="m1")], lambda_context)
    finished = get_item(moto_aws, "done")
    processing.configure(failure_rate=1.0, seed=1, allow_fault_injection=True)  # any step would now fail

    failed = run(
        [
            sqs_record(task_body("done"), message_id="m1", receive_count=2),
            sqs_record(task_body("done"), message_id="m-late", receive_count=1),
        ],
        lambda_context,
    )

    assert failed == []
    assert get_item(moto_aws, "done") == finished
    assert use_fake_queue.visibility == []


def test_message_of_an_earlier_run_is_acknowledged_without_effect(
    use_fake_queue: FakeQueue, moto_aws: Aws, lambda_context: FakeLambdaContext
) -> None:
    create_task(moto_aws, "rerun")
    moto_aws.dynamodb.update_item(
        TableName=moto_aws.task_table,
        Key={table_schema.TASK_PK: {"S": "rerun"}},
        UpdateExpression="SET #r = :two",
        ExpressionAttributeNames={"#r": "run"},
        ExpressionAttributeValues={":two": {"N": "2"}},
    )

    failed = run([sqs_record(task_body("rerun", run=1), message_id="old")], lambda_context)

    item = get_item(moto_aws, "rerun")
    assert failed == []
    assert item is not None
    assert (item["status"], item["version"]) == ("pending", 1)


def test_second_delivery_of_a_message_while_its_lease_runs_is_deferred_not_run_or_acked(
    use_fake_queue: FakeQueue, moto_aws: Aws, lambda_context: FakeLambdaContext
) -> None:
    # Given a delivery of m1 that holds a running lease (SQS may deliver one message twice at
    # once, same MessageId; or m1's earlier invocation died a moment ago)
    create_task(moto_aws, "busy")
    TaskRepository(moto_aws.task_table).claim("busy", 1, "m1", lease_seconds=600, delivery="d1")
    before = get_item(moto_aws, "busy")

    # When another delivery of m1 arrives
    failed = run([sqs_record(task_body("busy"), message_id="m1", receive_count=2)], lambda_context)

    # Then it neither runs the step nor deletes the message: it comes back when the lease ends
    assert failed == ["m1"]
    assert get_item(moto_aws, "busy") == before
    [(_, seconds)] = use_fake_queue.visibility
    assert 590 <= seconds <= 602


def test_redelivery_of_a_message_whose_invocation_died_takes_over_its_expired_lease(
    use_fake_queue: FakeQueue, moto_aws: Aws, lambda_context: FakeLambdaContext
) -> None:
    create_task(moto_aws, "crashed")
    # The first invocation claimed the lease and died before committing; the lease has ended.
    TaskRepository(moto_aws.task_table).claim("crashed", 1, "m1", lease_seconds=-10, delivery="d1")

    failed = run([sqs_record(task_body("crashed"), message_id="m1", receive_count=2)], lambda_context)

    assert failed == []
    assert (get_item(moto_aws, "crashed") or {})["status"] == "success"


def test_expired_lease_of_another_message_can_be_taken_over(
    use_fake_queue: FakeQueue, moto_aws: Aws, lambda_context: FakeLambdaContext
) -> None:
    create_task(moto_aws, "abandoned")
    TaskRepository(moto_aws.task_table).claim(
        "abandoned", 1, "dead-message", lease_seconds=-10, delivery="d1"
    )

    failed = run([sqs_record(task_body("abandoned"), message_id="m2")], lambda_context)

    assert failed == []
    assert (get_item(moto_aws, "abandoned") or {})["status"] == "success"


# --------------------------------------------------------------------------- operations


def test_processor_never_sleeps(
    use_fake_queue: FakeQueue,
    moto_aws: Aws,
    lambda_context: FakeLambdaContext,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_sleep(seconds: float) -> None:
        raise AssertionError(f"slept {seconds}s inside a Lambda")

    monkeypatch.setattr(time, "sleep", no_sleep)
    create_task(moto_aws, "fast", fail_attempts=1)

    assert run([sqs_record(task_body("fast"), message_id="m1")], lambda_context) == ["m1"]


class _FailingDynamoDB:
    def __getattr__(self, name: str) -> Any:
        def fail(**_: Any) -> Any:
            raise EndpointConnectionError(endpoint_url="http://127.0.0.1:9")

        return fail


def test_unreachable_table_reports_the_record_failed_and_backs_off(
    function_env: dict[str, str], queue: FakeQueue, lambda_context: FakeLambdaContext
) -> None:
    processor.runner.override(
        TaskRunner(
            TaskRepository("TaskTable", client=_FailingDynamoDB()),
            queue,
            BackoffPolicy(max_receive_count=MAX_RECEIVE_COUNT, base_seconds=2, cap_seconds=60),
        )
    )

    failed = run([sqs_record(task_body("t"), message_id="m1")], lambda_context)

    assert failed == ["m1"]
    assert 2 <= queue.visibility[0][1] <= 4


def test_failed_message_reappears_on_moto_after_its_backoff(
    function_env: dict[str, str],
    moto_aws: Aws,
    lambda_context: FakeLambdaContext,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Base 0: the backoff is 0 s, so the message is visible again at once (the queue's own
    # visibility timeout is 180 s: seeing it again proves ChangeMessageVisibility ran).
    monkeypatch.setenv("BACKOFF_BASE_SECONDS", "0")
    create_task(moto_aws, "env", fail_attempts=1)
    moto_aws.sqs.send_message(QueueUrl=moto_aws.queue_url, MessageBody=task_body("env"))
    first = moto_aws.receive()

    response = processor.handler(sqs_event(first), lambda_context)
    again = moto_aws.receive()

    assert response["batchItemFailures"] == [{"itemIdentifier": first[0]["MessageId"]}]
    assert [m["MessageId"] for m in again] == [first[0]["MessageId"]]
    assert again[0]["Attributes"]["ApproximateReceiveCount"] == "2"
    assert processor.handler(sqs_event(again), lambda_context)["batchItemFailures"] == []
    assert (get_item(moto_aws, "env") or {})["status"] == "success"


class _FirstClaimFails:
    """Delegates to moto, but the first UpdateItem (the claim) raises: after it was applied (its
    answer lost), or before it reached the table."""

    def __init__(self, client: Any, *, applied: bool) -> None:
        self._client = client
        self._applied = applied
        self.failed = False

    def update_item(self, **kwargs: Any) -> Any:
        if self.failed:
            return self._client.update_item(**kwargs)
        self.failed = True
        if self._applied:
            self._client.update_item(**kwargs)
        raise EndpointConnectionError(endpoint_url="http://127.0.0.1:9")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def use_runner_whose_first_claim_fails(moto_aws: Aws, queue: FakeQueue, *, applied: bool) -> None:
    processing.configure(failure_rate=0.0, seed=1, allow_fault_injection=True)
    processor.runner.override(
        TaskRunner(
            TaskRepository(moto_aws.task_table, client=_FirstClaimFails(moto_aws.dynamodb, applied=applied)),
            queue,
            BackoffPolicy(max_receive_count=MAX_RECEIVE_COUNT, base_seconds=2, cap_seconds=60),
        )
    )


def test_redelivery_after_a_claim_whose_answer_was_lost_runs_at_once(
    function_env: dict[str, str], moto_aws: Aws, queue: FakeQueue, lambda_context: FakeLambdaContext
) -> None:
    # Given a claim that was applied but whose response never arrived (an ambiguous failure)
    create_task(moto_aws, "ambiguous")
    use_runner_whose_first_claim_fails(moto_aws, queue, applied=True)
    assert run([sqs_record(task_body("ambiguous"), message_id="m1")], lambda_context) == ["m1"]
    # (handed back as "released", which the notifier's stream filter skips: nothing visible changed)
    assert (get_item(moto_aws, "ambiguous") or {})["leaseState"] == "released"

    # When the message comes back after its backoff (long before the lease would have ended)
    failed = run([sqs_record(task_body("ambiguous"), message_id="m1", receive_count=2)], lambda_context)

    # Then it reclaims the lease it handed back and runs, instead of waiting for the lease
    assert failed == []
    assert (get_item(moto_aws, "ambiguous") or {})["status"] == "success"


def test_a_delivery_whose_claim_failed_leaves_the_running_lease_of_another_delivery_alone(
    function_env: dict[str, str],
    moto_aws: Aws,
    queue: FakeQueue,
    lambda_context: FakeLambdaContext,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given one delivery of m1 running the step (SQS delivered m1 twice at once)
    create_task(moto_aws, "twice")
    TaskRepository(moto_aws.task_table).claim("twice", 1, "m1", lease_seconds=600, delivery="first")
    use_runner_whose_first_claim_fails(moto_aws, queue, applied=False)
    steps: list[int] = []
    monkeypatch.setattr(processing, "process_task", lambda task, attempt: steps.append(attempt))

    # When the other delivery's claim fails (its release must not hand back the first one's lease)
    assert run([sqs_record(task_body("twice"), message_id="m1")], lambda_context) == ["m1"]
    # and it comes back after its backoff, while the first delivery still runs
    failed = run([sqs_record(task_body("twice"), message_id="m1", receive_count=2)], lambda_context)

    # Then the step never ran a second time: the message waits for the running lease to end
    assert steps == []
    assert failed == ["m1"]
    item = get_item(moto_aws, "twice") or {}
    assert (item["leaseState"], item["leaseDelivery"]) == ("running", "first")
