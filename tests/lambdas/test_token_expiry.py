"""A WebSocket connection ends with its token (stages with `auth: jwt`): the notifier pushes no task
frame to a connection past its token's expiry and closes it; $default answers such a connection
`expired` and closes it. (The end-to-end version: tests/e2e/test_token_expiry.py.)"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from lambda_support import (
    Aws,
    FakeConnections,
    FakeLambdaContext,
    connection_ids,
    put_connection,
    ws_event,
)

from taskflow.auth_contract import OWNER_CONTEXT_KEY, TOKEN_EXPIRY_CONTEXT_KEY
from taskflow.domain.submission import TaskSubmission
from taskflow.domain.task import new_task
from taskflow.handlers import notifier, ws_default
from taskflow.repositories.connection_repository import ConnectionRepository
from taskflow.repositories.task_repository import TaskRepository
from taskflow.services.task_notifier import TaskNotifier

ALICE = "alice-sub-0001"
NOW = 1_800_000_000.0  # the notifier's clock in these tests


@pytest.fixture
def pushed(jwt_env: dict[str, str], owner_scoped_aws: Aws) -> FakeConnections:
    fake = FakeConnections()
    repository = ConnectionRepository(owner_scoped_aws.connection_table, client=owner_scoped_aws.dynamodb)
    notifier.notifier.override(TaskNotifier(repository, fake, owner_scoped=True, clock=lambda: NOW))
    return fake


def submit(aws: Aws, task_id: str) -> None:
    repository = TaskRepository(aws.task_table, client=aws.dynamodb)
    when = datetime.fromtimestamp(NOW, UTC)
    repository.create(new_task(TaskSubmission(answer=f"answer of {task_id}"), task_id, when, owner=ALICE))


def test_a_connection_past_its_tokens_expiry_gets_no_task_frame_and_is_closed(
    pushed: FakeConnections, owner_scoped_aws: Aws, lambda_context: FakeLambdaContext
) -> None:
    # Given two connections of Alice: one whose token expired a second ago, one still valid
    put_connection(owner_scoped_aws, "expired", ALICE, token_expires_at=int(NOW) - 1)
    put_connection(owner_scoped_aws, "live", ALICE, token_expires_at=int(NOW) + 60)
    stream = owner_scoped_aws.stream_reader()
    submit(owner_scoped_aws, "t1")

    # When the notifier pushes the change
    response = notifier.handler(stream.read(), lambda_context)

    # Then the live connection got the task frame; the expired one only the `expired` frame (with
    # when and what to do), then it was closed and its row deleted; the record did not fail
    assert response == {"batchItemFailures": []}
    assert [frame["taskId"] for frame in pushed.frames["live"]] == ["t1"]
    assert [frame["type"] for frame in pushed.frames["expired"]] == ["expired"]
    assert pushed.frames["expired"][0]["expiredAt"] == "2027-01-15T07:59:59Z"  # NOW - 1 s
    assert "fresh token" in pushed.frames["expired"][0]["message"]
    assert pushed.closed == ["expired"]
    assert connection_ids(owner_scoped_aws) == {"live"}


def test_a_token_that_expires_exactly_now_is_expired(
    pushed: FakeConnections, owner_scoped_aws: Aws, lambda_context: FakeLambdaContext
) -> None:
    put_connection(owner_scoped_aws, "c1", ALICE, token_expires_at=int(NOW))
    stream = owner_scoped_aws.stream_reader()
    submit(owner_scoped_aws, "t1")

    notifier.handler(stream.read(), lambda_context)

    assert all(frame["type"] == "expired" for frame in pushed.frames["c1"])
    assert pushed.closed == ["c1"]


def test_a_close_that_fails_is_tried_again_at_the_next_change_and_still_no_task_frame_goes_out(
    pushed: FakeConnections, owner_scoped_aws: Aws, lambda_context: FakeLambdaContext
) -> None:
    # Given an expired connection whose @connections calls fail for now
    put_connection(owner_scoped_aws, "c1", ALICE, token_expires_at=int(NOW) - 1)
    pushed.failing.add("c1")
    stream = owner_scoped_aws.stream_reader()
    submit(owner_scoped_aws, "t1")

    # When the notifier pushes the change, the record does not fail (no task frame was owed)
    assert notifier.handler(stream.read(), lambda_context) == {"batchItemFailures": []}
    assert "c1" not in pushed.frames
    assert connection_ids(owner_scoped_aws) == {"c1"}

    # Then, once the endpoint answers again, the next change closes it
    pushed.failing.clear()
    submit(owner_scoped_aws, "t2")
    notifier.handler(stream.read(), lambda_context)
    assert [frame["type"] for frame in pushed.frames["c1"]] == ["expired"]
    assert pushed.closed == ["c1"]
    assert connection_ids(owner_scoped_aws) == set()


# --------------------------------------------------------------------------- $default


@pytest.fixture
def default_poster(jwt_env: dict[str, str]) -> FakeConnections:
    fake = FakeConnections()
    ws_default.poster.override(fake)
    return fake


def message(expires_at: Any, body: str = '{"action":"ping"}') -> dict[str, Any]:
    authorizer = {OWNER_CONTEXT_KEY: ALICE, TOKEN_EXPIRY_CONTEXT_KEY: expires_at}
    return ws_event("MESSAGE", body=body, connection_id="c1", authorizer=authorizer)


@pytest.mark.parametrize("action", ['{"action":"ping"}', '{"action":"resume","since":"x"}', "not json"])
def test_any_frame_on_a_connection_whose_token_expired_is_answered_expired_and_the_connection_closed(
    default_poster: FakeConnections, lambda_context: FakeLambdaContext, action: str
) -> None:
    expired_at = int(time.time()) - 1

    response = ws_default.handler(message(expired_at, action), lambda_context)

    assert response == {"statusCode": 200}  # no reply body: the connection is closed
    assert [frame["type"] for frame in default_poster.frames["c1"]] == ["expired"]
    assert default_poster.closed == ["c1"]


def test_a_connection_whose_token_is_valid_is_answered_as_usual(
    default_poster: FakeConnections, lambda_context: FakeLambdaContext
) -> None:
    response = ws_default.handler(message(str(int(time.time()) + 60)), lambda_context)

    assert json.loads(response["body"]) == {"type": "pong"}
    assert default_poster.frames == {}
    assert default_poster.closed == []
