"""WebSocket resume ($default, {"action": "resume", "since": cursor}): the real handler and
repository on moto, frames posted to an in-memory @connections endpoint."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.config import Config
from lambda_support import REGION, Aws, DynamoDBCalls, FakeConnections, FakeLambdaContext, ws_event

from taskflow import table_schema
from taskflow.domain import opaque
from taskflow.domain.clock import utc_timestamp
from taskflow.domain.resume import InvalidResumeCursorError, ResumeCursor
from taskflow.domain.submission import TaskSubmission
from taskflow.domain.task import new_task
from taskflow.handlers import ws_default
from taskflow.repositories.task_repository import ClaimOutcome, TaskRepository
from taskflow.services.resume import ResumeLimits, ResumeService

ALICE, BOB = "alice-sub", "bob-sub"


@pytest.fixture
def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def use(
    aws: Aws, now: datetime, *, client: Any = None, max_changes: int = 50, window: int = 3600
) -> FakeConnections:
    """The handler's resume over the moto table, a fixed clock, and an in-memory endpoint."""
    fake = FakeConnections()
    repository = TaskRepository(aws.task_table, client=client or aws.dynamodb)
    ws_default.resume.override(
        ResumeService(repository, fake, ResumeLimits(max_changes, window), clock=lambda: now)
    )
    return fake


def create(
    aws: Aws, task_id: str, at: datetime, *, owner: str | None = None, finish_at: datetime | None = None
) -> None:
    created_clock = TaskRepository(aws.task_table, client=aws.dynamodb, clock=lambda: at)
    created_clock.create(new_task(TaskSubmission(answer=f"answer {task_id}"), task_id, at, owner=owner))
    if finish_at is not None:
        finisher = TaskRepository(aws.task_table, client=aws.dynamodb, clock=lambda: finish_at)
        assert finisher.claim(task_id, 1, "m", 60, owner=owner, delivery="d1").outcome is ClaimOutcome.CLAIMED
        assert finisher.record_success(task_id, 1, "m", 0, owner=owner, delivery="d1")


def resume(
    since: Any, *, connection: str = "c1", owner: str | None = None, context: FakeLambdaContext
) -> dict[str, Any] | None:
    body = json.dumps({"action": "resume", "since": since})
    authorizer = {"owner": owner, "principalId": owner} if owner else None
    response = ws_default.handler(
        ws_event("MESSAGE", connection_id=connection, body=body, authorizer=authorizer), context
    )
    assert response["statusCode"] == 200
    return json.loads(response["body"]) if "body" in response else None


def cursor(at: datetime, scope: str = "*") -> str:
    return ResumeCursor(utc_timestamp(at), scope).encode()


def test_a_resume_replays_every_task_created_or_finished_after_the_cursor_then_says_where_it_stands(
    function_env: dict[str, str], moto_aws: Aws, lambda_context: FakeLambdaContext, now: datetime
) -> None:
    # Given a client whose last frame was at T, and tasks that changed before and after T
    t = now - timedelta(minutes=10)
    create(moto_aws, "old", t - timedelta(minutes=5))  # before T, untouched since
    create(moto_aws, "finished-after", t - timedelta(minutes=5), finish_at=t + timedelta(minutes=1))
    create(moto_aws, "created-after", t + timedelta(minutes=2))
    create(
        moto_aws, "created-and-finished-after", t + timedelta(minutes=3), finish_at=t + timedelta(minutes=4)
    )
    frames = use(moto_aws, now)

    # When it reconnects and resumes from T
    reply = resume(cursor(t), context=lambda_context)

    # Then it gets those three tasks as they are now (posted in parallel: in any order), each with
    # its cursor, and a `resumed` answer whose cursor is the newest change it has now seen
    sent = sorted(frames.frames["c1"], key=lambda frame: frame["updatedAt"])
    assert [(f["taskId"], f["status"]) for f in sent] == [
        ("finished-after", "success"),
        ("created-after", "pending"),
        ("created-and-finished-after", "success"),
    ]
    assert all(ResumeCursor.decode(f["cursor"]) == ResumeCursor(f["updatedAt"], "*") for f in sent)
    assert reply == {"type": "resumed", "count": 3, "cursor": sent[-1]["cursor"]}


def test_a_resume_with_nothing_missed_replays_nothing_and_keeps_the_cursor(
    function_env: dict[str, str], moto_aws: Aws, lambda_context: FakeLambdaContext, now: datetime
) -> None:
    create(moto_aws, "old", now - timedelta(hours=1))
    frames = use(moto_aws, now)
    since = cursor(now - timedelta(minutes=1))

    reply = resume(since, context=lambda_context)

    assert frames.frames == {}
    assert reply == {"type": "resumed", "count": 0, "cursor": since}


def test_more_changes_than_the_limit_is_a_resync_not_an_unbounded_read(
    function_env: dict[str, str], moto_aws: Aws, lambda_context: FakeLambdaContext, now: datetime
) -> None:
    for index in range(6):
        create(moto_aws, f"t{index}", now - timedelta(seconds=30 - index))
    frames = use(moto_aws, now, max_changes=5)

    reply = resume(cursor(now - timedelta(minutes=1)), context=lambda_context)

    assert reply is not None
    assert reply["type"] == "resync"
    assert "more than 5" in reply["reason"]
    assert "GET /tasks" in reply["reason"]
    assert frames.frames == {}
    # where to resume after listing again: the moment of the answer, in the connection's scope
    assert ResumeCursor.decode(reply["cursor"]) == ResumeCursor(
        utc_timestamp(now), table_schema.scope_of(None)
    )


@pytest.mark.parametrize(
    ("since", "kind", "words"),
    [
        (None, "error", "cursor string"),
        (12, "error", "cursor string"),
        ("not a cursor!", "error", "not a cursor"),
        ("eyJ2IjoyfQ", "error", "not a cursor"),  # {"v":2}
        ("x" * 5000, "error", "cursor string"),
    ],
    ids=["missing", "number", "garbage", "other version", "too long"],
)
def test_a_malformed_cursor_gets_an_error_frame_and_the_connection_stays(
    function_env: dict[str, str],
    moto_aws: Aws,
    lambda_context: FakeLambdaContext,
    now: datetime,
    since: Any,
    kind: str,
    words: str,
) -> None:
    frames = use(moto_aws, now)

    reply = resume(since, context=lambda_context)

    assert reply is not None
    assert reply["type"] == kind
    assert words in reply["message"]
    assert frames.frames == {}


def test_a_future_cursor_is_an_error_and_an_old_one_a_resync(
    function_env: dict[str, str], moto_aws: Aws, lambda_context: FakeLambdaContext, now: datetime
) -> None:
    use(moto_aws, now, window=3600)

    future = resume(cursor(now + timedelta(minutes=5)), context=lambda_context)
    old = resume(cursor(now - timedelta(hours=2)), context=lambda_context)

    assert future == {"type": "error", "message": "the cursor is in the future"}
    assert old is not None
    assert old["type"] == "resync"
    assert "older than 3600 s" in old["reason"]
    assert ResumeCursor.decode(old["cursor"]).when == now
    assert resume(old["cursor"], context=lambda_context) == {
        "type": "resumed",
        "count": 0,
        "cursor": old["cursor"],
    }


def test_on_a_jwt_stage_a_resume_replays_the_callers_tasks_only_and_refuses_another_callers_cursor(
    jwt_env: dict[str, str], owner_scoped_aws: Aws, lambda_context: FakeLambdaContext, now: datetime
) -> None:
    # Given tasks of Alice and Bob since T, one id used by both
    t = now - timedelta(minutes=10)
    create(
        owner_scoped_aws, "shared", t + timedelta(minutes=1), owner=ALICE, finish_at=t + timedelta(minutes=2)
    )
    create(owner_scoped_aws, "shared", t + timedelta(minutes=1), owner=BOB)
    create(owner_scoped_aws, "bobs", t + timedelta(minutes=3), owner=BOB)
    frames = use(owner_scoped_aws, now)

    # When Bob resumes with his cursor, and then with one naming Alice
    own = resume(cursor(t, BOB), connection="bob-1", owner=BOB, context=lambda_context)
    foreign = resume(cursor(t, ALICE), connection="bob-2", owner=BOB, context=lambda_context)

    # Then he gets his own two tasks (his "shared" is pending: Alice's finish is not his)
    assert [
        (f["taskId"], f["status"]) for f in sorted(frames.frames["bob-1"], key=lambda f: f["updatedAt"])
    ] == [
        ("shared", "pending"),
        ("bobs", "pending"),
    ]
    assert own is not None
    assert own["count"] == 2
    assert foreign == {"type": "error", "message": "the cursor belongs to another caller"}
    assert "bob-2" not in frames.frames


def test_on_a_jwt_stage_a_connection_without_a_verified_caller_cannot_resume(
    jwt_env: dict[str, str], owner_scoped_aws: Aws, lambda_context: FakeLambdaContext, now: datetime
) -> None:
    frames = use(owner_scoped_aws, now)

    reply = resume(cursor(now), owner=None, context=lambda_context)

    assert reply == {"type": "error", "message": "this connection carries no verified caller"}
    assert frames.frames == {}


def test_a_connection_gone_during_the_replay_gets_no_answer(
    function_env: dict[str, str], moto_aws: Aws, lambda_context: FakeLambdaContext, now: datetime
) -> None:
    create(moto_aws, "t1", now - timedelta(seconds=10))
    frames = use(moto_aws, now)
    frames.gone.add("c1")

    assert resume(cursor(now - timedelta(minutes=1)), context=lambda_context) is None


def test_unreachable_dynamodb_is_an_error_frame_asking_to_resume_again(
    function_env: dict[str, str], moto_aws: Aws, lambda_context: FakeLambdaContext, now: datetime
) -> None:
    unreachable = boto3.client(
        "dynamodb",
        region_name=REGION,
        endpoint_url="http://127.0.0.1:9",
        config=Config(retries={"max_attempts": 1}, connect_timeout=0.2, read_timeout=0.2),
    )
    use(moto_aws, now, client=unreachable)

    reply = resume(cursor(now - timedelta(minutes=1)), context=lambda_context)

    assert reply is not None
    assert reply["type"] == "error"
    assert "send the same resume again" in reply["message"]
    assert reply["retry"] is True


def test_ping_still_gets_pong_without_building_the_resume(
    function_env: dict[str, str], lambda_context: FakeLambdaContext
) -> None:
    response = ws_default.handler(ws_event("MESSAGE", body='{"action": "ping"}'), lambda_context)

    assert json.loads(response["body"]) == {"type": "pong"}


def test_one_resume_is_a_bounded_read_one_query_per_shard_and_index_and_one_batch_get(
    function_env: dict[str, str], moto_aws: Aws, lambda_context: FakeLambdaContext, now: datetime
) -> None:
    # Given 20 tasks changed since the cursor (10 of them finished)
    for index in range(20):
        finish = now - timedelta(seconds=20 - index) if index % 2 else None
        create(moto_aws, f"t{index:02d}", now - timedelta(seconds=40 - index), finish_at=finish)
    calls = DynamoDBCalls(moto_aws.dynamodb)
    frames = use(moto_aws, now)

    # When a client resumes
    reply = resume(cursor(now - timedelta(minutes=1)), context=lambda_context)

    # Then it read each listing shard once (ByCreated) and each finished shard once per status
    # (ByFinished), plus one BatchGetItem for the pending ones: 3 x 16 Queries, whatever the table holds
    assert reply is not None
    assert reply["count"] == len(frames.frames["c1"]) == 20
    assert calls.count("Query") == 3 * table_schema.DEFAULT_LIST_SHARDS
    assert calls.count("BatchGetItem") == 1
    assert calls.count("Scan") == 0


def test_a_replay_the_endpoint_cuts_short_is_an_error_frame_asking_to_resume_again(
    function_env: dict[str, str], moto_aws: Aws, lambda_context: FakeLambdaContext, now: datetime
) -> None:
    create(moto_aws, "t1", now - timedelta(seconds=10))
    frames = use(moto_aws, now)
    frames.failing.add("c1")

    reply = resume(cursor(now - timedelta(minutes=1)), context=lambda_context)

    assert reply == {
        "type": "error",
        "message": (
            "the replay stopped (a frame could not be posted: RuntimeError); send the same resume again"
        ),
        "retry": True,
    }


def test_a_replay_that_runs_out_of_time_stops_posting_and_answers_an_error_frame_not_a_timeout(
    function_env: dict[str, str], moto_aws: Aws, lambda_context: FakeLambdaContext, now: datetime
) -> None:
    # Given 40 tasks to replay, and an endpoint so slow that after 5 posts the invocation has only
    # 1.5 s left (less than the replay keeps for its answer)
    for index in range(40):
        create(moto_aws, f"t{index:02d}", now - timedelta(seconds=50 - index))
    frames = use(moto_aws, now)
    real_post = frames.post

    def slow_post(connection_id: str, data: bytes) -> None:
        real_post(connection_id, data)
        if len(frames.frames[connection_id]) >= 5:
            lambda_context.remaining_millis = 1_500

    frames.post = slow_post  # type: ignore[method-assign]

    # When the client resumes
    reply = resume(cursor(now - timedelta(minutes=1)), context=lambda_context)

    # Then the function stops posting and answers before its timeout with an error frame asking
    # for the same resume again, not a timeout's bare "Internal server error"
    assert reply == {
        "type": "error",
        "message": "the replay of 40 tasks could not all be sent in time; send the same resume again",
        "retry": True,
    }
    assert 5 <= len(frames.frames["c1"]) < 40


@pytest.mark.parametrize("version", [True, 1.0, "1"], ids=["true", "1.0", "text"])
def test_a_cursor_version_that_only_equals_1_loosely_is_not_a_cursor_this_server_issued(
    version: object,
) -> None:
    forged = opaque.encode({"v": version, "at": "2026-12-03T10:00:00.000000Z", "scope": "*"})

    with pytest.raises(InvalidResumeCursorError, match="not a cursor this server issued"):
        ResumeCursor.decode(forged)
    assert (
        ResumeCursor.decode(cursor(datetime(2026, 12, 3, 10, tzinfo=UTC))).at == "2026-12-03T10:00:00.000000Z"
    )
