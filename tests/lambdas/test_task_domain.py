"""The domain package on its own: statuses and transitions, submissions, the processing step,
backoff, queue messages and notification frames. No AWS here."""

from __future__ import annotations

import json
import random
import sys
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from taskflow.domain import processing
from taskflow.domain.backoff import SQS_MAX_VISIBILITY_SECONDS, retry_delay_seconds
from taskflow.domain.client_frames import request_of
from taskflow.domain.clock import utc_timestamp
from taskflow.domain.errors import MalformedMessageError
from taskflow.domain.limits import MAX_ANSWER_LENGTH, MAX_PAYLOAD_BYTES, MAX_PAYLOAD_DEPTH
from taskflow.domain.messages import TaskMessage
from taskflow.domain.notifications import encode_frame, is_visible_change, task_frame
from taskflow.domain.resume import ResumeCursor
from taskflow.domain.status import ALLOWED_TRANSITIONS, TaskStatus, is_allowed
from taskflow.domain.submission import TaskSubmission
from taskflow.domain.task import InvalidTaskItemError, Task, new_task, truncate_error

NOW = datetime(2026, 11, 25, 23, 0, 0, 123456, tzinfo=UTC)


def _task(**fields: object) -> Task:
    """A new task with some stored fields (camelCase, as in the table) replaced."""
    item = new_task(TaskSubmission(answer="42"), "t-1", NOW).to_item()
    return Task.from_item({**item, **fields})


# --------------------------------------------------------------------------- transitions


def test_success_is_terminal() -> None:
    assert not any(is_allowed(TaskStatus.SUCCESS, target) for target in TaskStatus)


def test_error_can_only_go_back_to_pending_by_retry() -> None:
    assert {t.target for t in ALLOWED_TRANSITIONS if t.source == TaskStatus.ERROR} == {TaskStatus.PENDING}


def test_pending_can_fail_an_attempt_succeed_or_be_dead_lettered() -> None:
    targets = {t.target for t in ALLOWED_TRANSITIONS if t.source == TaskStatus.PENDING}
    assert targets == {TaskStatus.PENDING, TaskStatus.SUCCESS, TaskStatus.ERROR}


def test_timestamps_are_utc_with_microseconds_and_z() -> None:
    assert utc_timestamp(NOW) == "2026-11-25T23:00:00.123456Z"


# --------------------------------------------------------------------------- submissions


def test_frontend_body_is_accepted_and_server_owned_fields_are_ignored() -> None:
    body = {
        "taskId": "7c9e6679-7425-40de-944b-e07fc1f90ae7",
        "answer": "42",
        "status": "success",
        "retries": 9,
    }
    submission = TaskSubmission.model_validate(body)
    task = new_task(submission, submission.task_id or "", NOW)
    assert (task.status, task.retries, task.run, task.version) == (TaskStatus.PENDING, 0, 1, 1)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "answer"),
        ({"answer": ""}, "answer"),
        ({"answer": "x" * (MAX_ANSWER_LENGTH + 1)}, "answer"),
        ({"answer": 42}, "answer"),
        ({"answer": "ok", "taskId": "has space"}, "taskId"),
        ({"answer": "ok", "taskId": "x" * 65}, "taskId"),
        ({"answer": "ok", "payload": [1, 2]}, "payload"),
        ({"answer": "ok", "simulate": {"failAttempts": -1}}, "simulate.failAttempts"),
        ({"answer": "ok", "simulate": {"failAttempts": True}}, "simulate.failAttempts"),
        ({"answer": "ok", "simulate": {"failattempts": 1}}, "simulate.failattempts"),
        ({"answer": "ok", "simulate": {"fail_attempts": 1}}, "simulate"),
    ],
)
def test_invalid_submission_names_the_field(body: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as raised:
        TaskSubmission.model_validate(body)
    fields = {".".join(str(p) for p in e["loc"]) for e in raised.value.errors()}
    assert field in fields


def test_a_python_field_name_is_refused_naming_the_wire_name() -> None:
    # Ignored like other unknown fields, `task_id` would make every replay a new task.
    with pytest.raises(ValidationError, match="task_id is not a field: this API spells it taskId"):
        TaskSubmission.model_validate({"answer": "ok", "task_id": "snake"})


def test_answer_of_exactly_the_limit_is_accepted() -> None:
    assert len(TaskSubmission(answer="x" * MAX_ANSWER_LENGTH).answer) == MAX_ANSWER_LENGTH


def test_payload_over_16_kib_is_rejected() -> None:
    with pytest.raises(ValidationError, match=f"limit is {MAX_PAYLOAD_BYTES}"):
        TaskSubmission.model_validate({"answer": "a", "payload": {"blob": "x" * MAX_PAYLOAD_BYTES}})


def test_payload_nested_deeper_than_8_is_rejected() -> None:
    deep: dict[str, object] = {"leaf": 1}
    for _ in range(MAX_PAYLOAD_DEPTH):
        deep = {"n": deep}
    with pytest.raises(ValidationError, match="nested deeper"):
        TaskSubmission.model_validate({"answer": "a", "payload": deep})


def test_payload_at_depth_8_is_accepted() -> None:
    deep: dict[str, object] = {"leaf": [1]}
    for _ in range(MAX_PAYLOAD_DEPTH - 2):
        deep = {"n": deep}
    assert TaskSubmission.model_validate({"answer": "a", "payload": deep}).payload == deep


@pytest.mark.parametrize(
    "payload",
    [{"n": 10**38}, {"n": 1e200}, {"n": 1e-200}, {"": 1}, {"s": "\ud800"}],
    ids=["int-too-long", "float-too-big", "float-too-small", "empty-key", "lone-surrogate"],
)
def test_payload_values_dynamodb_cannot_store_are_rejected(payload: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        TaskSubmission.model_validate({"answer": "a", "payload": payload})


def test_request_hash_ignores_key_order_and_server_owned_fields() -> None:
    first = TaskSubmission.model_validate({"answer": "a", "payload": {"x": 1, "y": 2}, "status": "pending"})
    second = TaskSubmission.model_validate({"payload": {"y": 2, "x": 1}, "answer": "a", "retries": 3})
    assert first.request_hash() == second.request_hash()


def test_request_hash_changes_with_the_answer() -> None:
    assert TaskSubmission(answer="a").request_hash() != TaskSubmission(answer="b").request_hash()


def test_public_json_hides_internal_fields() -> None:
    public = _task(leaseOwner="m-1", leaseExpiresAt=5).to_public()
    assert set(public) == {
        "taskId",
        "answer",
        "payload",
        "status",
        "retries",
        "errorMessage",
        "createdAt",
        "updatedAt",
        "version",
        "run",
    }


def test_long_error_messages_are_truncated() -> None:
    assert len(truncate_error("x" * 5000)) == 1000


# --------------------------------------------------------------------------- processing step


def test_fail_attempts_fails_exactly_the_first_k_attempts() -> None:
    processing.configure(failure_rate=0.0, seed=1, allow_fault_injection=True)
    task = _task(simulate={"failAttempts": 2})
    for attempt in (1, 2):
        with pytest.raises(processing.ProcessingError, match=f"attempt {attempt}"):
            processing.process_task(task, attempt)
    processing.process_task(task, 3)


def test_fail_attempts_wins_over_the_failure_rate() -> None:
    processing.configure(failure_rate=1.0, seed=1, allow_fault_injection=True)
    task = _task(simulate={"failAttempts": 0})
    assert processing.process_task(task, 1) is None  # succeeds although every random attempt fails


def test_fail_attempts_is_ignored_where_fault_injection_is_off() -> None:
    processing.configure(failure_rate=0.0, seed=1, allow_fault_injection=False)
    task = _task(simulate={"failAttempts": 5})
    assert processing.process_task(task, 1) is None  # the switch is not honoured: no failure


def test_failure_rate_is_reproducible_with_a_seed() -> None:
    def outcomes() -> list[bool]:
        processing.configure(failure_rate=0.5, seed=42, allow_fault_injection=False)
        results = []
        for attempt in range(1, 41):
            try:
                processing.process_task(_task(), attempt)
                results.append(True)
            except processing.ProcessingError:
                results.append(False)
        return results

    first, second = outcomes(), outcomes()
    assert first == second
    assert 5 < first.count(False) < 35


def test_failure_rate_zero_never_fails_and_one_always_fails() -> None:
    processing.configure(failure_rate=0.0, seed=None, allow_fault_injection=False)
    for attempt in range(1, 50):
        processing.process_task(_task(), attempt)
    processing.configure(failure_rate=1.0, seed=None, allow_fault_injection=False)
    with pytest.raises(processing.ProcessingError):
        processing.process_task(_task(), 1)


# --------------------------------------------------------------------------- backoff


@pytest.mark.parametrize(("receive_count", "low", "high"), [(1, 2, 4), (2, 4, 6), (3, 8, 10), (4, 16, 18)])
def test_backoff_doubles_with_jitter_up_to_base(receive_count: int, low: int, high: int) -> None:
    rng = random.Random(3)
    delays = {
        retry_delay_seconds(receive_count, base_seconds=2, cap_seconds=300, max_receive_count=10, rng=rng)
        for _ in range(200)
    }
    assert min(delays) == low
    assert max(delays) == high


def test_backoff_is_capped() -> None:
    rng = random.Random(3)
    delay = retry_delay_seconds(9, base_seconds=2, cap_seconds=60, max_receive_count=10, rng=rng)
    assert delay == 60


def test_backoff_never_exceeds_the_sqs_maximum() -> None:
    rng = random.Random(3)
    delay = retry_delay_seconds(999, base_seconds=900, cap_seconds=10**9, max_receive_count=1000, rng=rng)
    assert delay == SQS_MAX_VISIBILITY_SECONDS


def test_backoff_is_zero_on_the_final_receive() -> None:
    rng = random.Random(3)
    assert retry_delay_seconds(3, base_seconds=2, cap_seconds=60, max_receive_count=3, rng=rng) == 0
    assert retry_delay_seconds(4, base_seconds=2, cap_seconds=60, max_receive_count=3, rng=rng) == 0


def test_backoff_with_seeded_jitter_is_reproducible() -> None:
    def delays() -> list[int]:
        rng = random.Random(11)
        return [
            retry_delay_seconds(n, base_seconds=5, cap_seconds=900, max_receive_count=6, rng=rng)
            for n in range(1, 6)
        ]

    assert delays() == delays()


# --------------------------------------------------------------------------- queue messages


def test_task_message_round_trips() -> None:
    message = TaskMessage(task_id="t-1", run=2, correlation_id="c")
    assert TaskMessage.parse(message.to_body()) == message
    assert json.loads(message.to_body()) == {"taskId": "t-1", "run": 2, "correlationId": "c"}


@pytest.mark.parametrize(
    "body",
    [
        None,
        "",
        "not json",
        "[1]",
        '{"run": 1}',
        '{"taskId": "t", "run": "1"}',
        '{"taskId": "t", "run": true}',
        '{"taskId": "t", "run": 1.0}',
        '{"taskId": "t", "run": 0}',
        '{"taskId": "t", "run": 1%s}' % ("0" * 38),  # 39 digits: DynamoDB holds 38
        '{"taskId": 7, "run": 1}',
        '{"taskId": "bad id", "run": 1}',
        '{"taskId": "t\\n", "run": 1}',
        '{"taskId": "t", "run": 1, "correlationId": 5}',
        '{"taskId": "t", "run": 1, "correlationId": "%s"}' % ("c" * 257),
    ],
)
def test_malformed_task_messages_are_reported(body: str | None) -> None:
    with pytest.raises(MalformedMessageError):
        TaskMessage.parse(body)


# --------------------------------------------------------------------------- notification frames

T0, T1 = "2026-11-25T12:00:08.000000Z", "2026-11-25T12:00:09.000000Z"


def test_insert_is_a_visible_change() -> None:
    assert is_visible_change(None, {"taskId": "t", "status": "pending"})


def test_lease_claim_is_not_a_visible_change() -> None:
    old = {"taskId": "t", "status": "pending", "retries": 0, "version": 1, "updatedAt": T0}
    new = {**old, "leaseOwner": "m", "leaseExpiresAt": 9, "version": 2}
    assert not is_visible_change(old, new)


def test_failed_attempt_is_a_visible_change() -> None:
    old = {"taskId": "t", "status": "pending", "retries": 0, "updatedAt": T0}
    assert is_visible_change(old, {**old, "retries": 1, "errorMessage": "boom", "updatedAt": T1})


def test_a_failed_attempt_that_repeats_the_one_before_is_still_a_visible_change() -> None:
    # The final attempt keeps `retries` (no attempt follows it) and may fail the same way.
    old = {
        "taskId": "t",
        "status": "pending",
        "retries": 2,
        "errorMessage": "boom",
        "version": 6,
        "updatedAt": T0,
    }
    new = {**old, "version": 7, "updatedAt": T1}
    assert is_visible_change(old, new)
    # (the claim of the next attempt, which writes no updatedAt, is not)
    assert not is_visible_change(new, {**new, "leaseState": "running", "version": 8})


def test_frame_carries_what_the_frontend_merges_and_never_the_payload() -> None:
    image = {
        "taskId": "t",
        "status": "pending",
        "retries": 1,
        "errorMessage": "boom",
        "updatedAt": "2026-11-25T12:00:00.000000Z",
        "version": 3,
        "answer": "42",
        "payload": {"secret": 1},
    }
    frame = task_frame(image, "alice")
    assert frame == {
        "type": "task",
        "taskId": "t",
        "status": "pending",
        "retries": 1,
        "errorMessage": "boom",
        "updatedAt": "2026-11-25T12:00:00.000000Z",
        "version": 3,
        "answer": "42",
        "cursor": ResumeCursor("2026-11-25T12:00:00.000000Z", "alice").encode(),
    }


def test_largest_possible_frame_is_far_below_32_kb() -> None:
    image = {
        "taskId": "x" * 64,
        "status": "pending",
        "retries": 100,
        "errorMessage": "\U0001f600" * 1000,
        "updatedAt": utc_timestamp(NOW),
        "version": sys.maxsize,
        "answer": "\U0001f600" * MAX_ANSWER_LENGTH,
    }
    assert len(encode_frame(task_frame(image, "x" * 1024))) < 10 * 1024


def test_a_text_longer_than_the_api_allows_is_cut_in_the_frame() -> None:
    # An item edited by hand: @connections refuses a post over 128 KB (413), and a refused post
    # holds up the stream's later frames too.
    image = {"taskId": "big", "status": "error", "answer": "a" * 200_000, "errorMessage": "e" * 50_000}

    frame = task_frame(image, "*")

    assert frame["answer"] == "a" * MAX_ANSWER_LENGTH
    assert frame["errorMessage"] == "e" * 1000
    assert len(encode_frame(frame)) < 10 * 1024


def test_a_text_field_that_is_no_text_is_left_out_of_the_frame() -> None:
    frame = task_frame({"taskId": "odd", "answer": {"blob": "x" * 200_000}, "errorMessage": ["e"]}, "*")

    assert (frame["answer"], frame["errorMessage"]) == (None, None)


# --------------------------------------------------------------------------- client frames


@pytest.mark.parametrize("frame", [b'{"action": "ping"}', b'{"action": "resume", "since": "c"}'])
def test_a_supported_action_is_the_request_itself(frame: bytes) -> None:
    assert request_of(frame) == json.loads(frame)


@pytest.mark.parametrize(
    "frame",
    [b"", b"nope", b"[]", b'"ping"', b'{"action": "dance"}', b"{}", b"\xff\xfe", b"{" * 100_000],
)
def test_anything_but_a_supported_action_gets_an_error_frame(frame: bytes) -> None:
    reply = request_of(frame)
    assert reply["type"] == "error"
    assert reply["message"]


# --------------------------------------------------------------------------- stored items


def test_a_task_goes_to_an_item_and_back_unchanged() -> None:
    submission = TaskSubmission.model_validate(
        {"answer": "42", "payload": {"n": 1}, "simulate": {"failAttempts": 2}}
    )
    task = new_task(submission, "t-1", NOW, correlation_id="req-1", owner="alice")

    item = task.to_item()

    assert Task.from_item(item) == task
    assert item["simulate"] == {"failAttempts": 2}
    assert "errorMessage" not in item  # None fields are left out, as DynamoDB stores them
    assert Task.from_item({**item, "listPartition": "TASK"}) == task  # index keys are ignored


@pytest.mark.parametrize(
    "damage",
    [
        {"status": "archived"},
        {"retries": -1},
        {"version": "3"},
        {"run": True},
        {"answer": None},
        {"payload": ["not", "an", "object"]},
        {"simulate": {"failAttempts": "2"}},
    ],
)
def test_an_item_that_is_not_a_task_is_refused_with_what_is_wrong(damage: dict) -> None:
    item = new_task(TaskSubmission(answer="42"), "t-1", NOW).to_item()

    with pytest.raises(InvalidTaskItemError, match="not a stored task"):
        Task.from_item({**item, **damage})
