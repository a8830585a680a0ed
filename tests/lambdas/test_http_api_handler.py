"""The HTTP API handler with API Gateway HTTP API (payload v2) events, on moto."""

from __future__ import annotations

import base64
import gzip
import json
import random
import socket
import string
import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.event_handler import api_gateway
from botocore.config import Config
from botocore.stub import Stubber
from lambda_support import (
    ALLOWED_ORIGIN,
    OTHER_ALLOWED_ORIGIN,
    REGION,
    Aws,
    FakeLambdaContext,
    http_event,
    json_post,
    set_status,
)
from lambda_support import call_http_api as call

from taskflow import env_vars
from taskflow.api import errors as api_errors
from taskflow.api.pagination import encode_cursor
from taskflow.domain.submission import TaskSubmission
from taskflow.domain.task import new_task
from taskflow.errors import DependencyUnavailableError
from taskflow.handlers import http_api
from taskflow.repositories.task_repository import ClaimOutcome, TaskRepository
from taskflow.services.task_service import TaskService

FRONTEND_TASK_ID = "7c9e6679-7425-40de-944b-e07fc1f90ae7"
T0 = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)


def seed_tasks(moto_aws: Aws, count: int, *, payload: dict[str, Any] | None = None) -> list[str]:
    """Create `count` tasks one second apart (oldest first) straight through the repository."""
    repository = TaskRepository(moto_aws.task_table, client=moto_aws.dynamodb)
    ids = []
    for index in range(count):
        task_id = f"task-{index:04d}"
        submission = TaskSubmission(answer=f"answer {index}", payload=payload)
        repository.create(new_task(submission, task_id, T0 + timedelta(seconds=index)))
        ids.append(task_id)
    return ids


class QueryCountingClient:
    """Delegates to a real DynamoDB client and counts Query calls."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.queries = 0

    def query(self, **kwargs: Any) -> Any:
        self.queries += 1
        return self._client.query(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def follow_pages(context: FakeLambdaContext, first_query: dict[str, str]) -> list[list[dict[str, Any]]]:
    pages = []
    event = http_event("GET", "/tasks", query=first_query)
    while True:
        status, body, headers = call(event, context)
        assert status == HTTPStatus.OK
        pages.append(body)
        link = headers.get("Link")
        if not link:
            return pages
        assert link.endswith('>; rel="next"')
        target = link[1 : link.index(">")]
        path, _, query = target.partition("?")
        assert path == "/tasks"
        event = http_event("GET", path, query=dict(part.split("=", 1) for part in query.split("&")))


# --------------------------------------------------------------------------- POST /tasks


def test_frontend_body_is_accepted_with_202_and_location(
    function_env: dict[str, str], lambda_context: FakeLambdaContext
) -> None:
    body = {"taskId": FRONTEND_TASK_ID, "answer": "42", "status": "pending", "retries": 0}

    status, task, headers = call(json_post("/tasks", body), lambda_context)

    assert status == HTTPStatus.ACCEPTED
    assert headers["Location"] == f"/tasks/{FRONTEND_TASK_ID}"
    assert task["taskId"] == FRONTEND_TASK_ID
    assert task["answer"] == "42"
    assert (task["status"], task["retries"], task["errorMessage"], task["payload"]) == (
        "pending",
        0,
        None,
        None,
    )
    assert task["createdAt"] == task["updatedAt"]
    assert task["createdAt"].endswith("Z")


def test_server_owned_fields_in_the_body_are_ignored(
    function_env: dict[str, str], lambda_context: FakeLambdaContext
) -> None:
    status, task, _ = call(
        json_post("/tasks", {"answer": "x", "status": "success", "retries": 7, "foo": 1}), lambda_context
    )
    assert status == HTTPStatus.ACCEPTED
    assert (task["status"], task["retries"]) == ("pending", 0)


def test_task_id_is_generated_when_absent(
    function_env: dict[str, str], lambda_context: FakeLambdaContext
) -> None:
    status, task, headers = call(json_post("/tasks", {"answer": "x"}), lambda_context)
    assert status == HTTPStatus.ACCEPTED
    assert uuid.UUID(task["taskId"]).version == 4
    assert headers["Location"] == f"/tasks/{task['taskId']}"


def test_payload_is_stored_and_returned(
    function_env: dict[str, str], lambda_context: FakeLambdaContext
) -> None:
    payload = {
        "n": 1,
        "f": 0.5,
        "list": [True, None, "s", {"deep": [1.25]}],
        "unicode": "h\u00e9llo \U0001f600",
    }
    call(json_post("/tasks", {"taskId": "p1", "answer": "x", "payload": payload}), lambda_context)

    status, task, _ = call(http_event("GET", "/tasks/p1"), lambda_context)

    assert status == HTTPStatus.OK
    assert task["payload"] == payload


def test_same_body_twice_returns_the_existing_task(
    function_env: dict[str, str], lambda_context: FakeLambdaContext
) -> None:
    body = {"taskId": "same", "answer": "42", "payload": {"a": 1}}
    _, first, _ = call(json_post("/tasks", body), lambda_context)

    status, second, headers = call(
        json_post("/tasks", {**body, "status": "pending", "retries": 3}), lambda_context
    )

    assert status == HTTPStatus.ACCEPTED
    assert second == first
    assert headers["Location"] == "/tasks/same"


def test_a_number_is_the_same_body_however_it_is_written_and_the_202_shows_it_as_stored(
    function_env: dict[str, str], lambda_context: FakeLambdaContext
) -> None:
    payload = {"one": 1.0, "big": 1e20, "zero": -0.0, "half": 0.5, "list": [2.0, 1e40]}
    body = {"taskId": "num", "answer": "x", "payload": payload}
    _, created, _ = call(json_post("/tasks", body), lambda_context)
    _, stored, _ = call(http_event("GET", "/tasks/num"), lambda_context)

    # Resubmitting what a read gave back is the same body, not a conflict.
    status, again, _ = call(
        json_post("/tasks", {"taskId": "num", "answer": "x", "payload": stored["payload"]}), lambda_context
    )

    assert json.dumps(created["payload"]) == json.dumps(stored["payload"])
    assert stored["payload"] == {"one": 1, "big": 10**20, "zero": 0, "half": 0.5, "list": [2, 1e40]}
    assert status == HTTPStatus.ACCEPTED
    assert again == created


def test_same_task_id_with_a_different_body_is_a_conflict(
    function_env: dict[str, str], lambda_context: FakeLambdaContext
) -> None:
    call(json_post("/tasks", {"taskId": "dup", "answer": "42"}), lambda_context)

    status, error, _ = call(json_post("/tasks", {"taskId": "dup", "answer": "43"}), lambda_context)

    assert status == HTTPStatus.CONFLICT
    assert error["taskId"] == "dup"
    assert "different body" in error["message"]


def test_replay_after_success_does_not_reset_the_task(
    function_env: dict[str, str], moto_aws: Aws, lambda_context: FakeLambdaContext
) -> None:
    body = {"taskId": FRONTEND_TASK_ID, "answer": "42", "status": "pending", "retries": 0}
    call(json_post("/tasks", body), lambda_context)
    set_status(moto_aws, FRONTEND_TASK_ID, "success", retries=2)

    status, task, _ = call(json_post("/tasks", body), lambda_context)

    assert status == HTTPStatus.ACCEPTED
    assert (task["status"], task["retries"]) == ("success", 2)


def test_simulate_is_accepted_where_fault_injection_is_allowed(
    function_env: dict[str, str], lambda_context: FakeLambdaContext
) -> None:
    status, _, _ = call(json_post("/tasks", {"answer": "x", "simulate": {"failAttempts": 2}}), lambda_context)
    assert status == HTTPStatus.ACCEPTED


def test_simulate_is_refused_with_422_where_fault_injection_is_off(
    offline_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, lambda_context: FakeLambdaContext
) -> None:
    monkeypatch.setenv(env_vars.ALLOW_FAULT_INJECTION, "false")
    monkeypatch.setenv(env_vars.STAGE, "prod")

    status, error, _ = call(
        json_post("/tasks", {"answer": "x", "simulate": {"failAttempts": 2}}), lambda_context
    )

    assert status == HTTPStatus.UNPROCESSABLE_ENTITY
    assert error["errors"][0]["field"] == "simulate"
    assert "fault injection" in error["errors"][0]["reason"]
    assert "'prod'" in error["errors"][0]["reason"]


def test_missing_answer_is_422_with_field_and_reason(
    offline_env: dict[str, str], lambda_context: FakeLambdaContext
) -> None:
    status, error, _ = call(json_post("/tasks", {"taskId": "x"}), lambda_context)

    assert status == HTTPStatus.UNPROCESSABLE_ENTITY
    assert error["message"] == "request validation failed"
    assert error["errors"] == [{"field": "answer", "reason": "Field required"}]


def test_several_invalid_fields_are_all_reported(
    offline_env: dict[str, str], lambda_context: FakeLambdaContext
) -> None:
    body = {"taskId": "no spaces allowed", "answer": "", "payload": {"n": float("1e200")}}
    status, error, _ = call(json_post("/tasks", body), lambda_context)

    assert status == HTTPStatus.UNPROCESSABLE_ENTITY
    assert {e["field"] for e in error["errors"]} == {"taskId", "answer", "payload"}
    assert all(e["reason"] for e in error["errors"])


def test_body_that_is_not_an_object_is_422(
    offline_env: dict[str, str], lambda_context: FakeLambdaContext
) -> None:
    status, error, _ = call(json_post("/tasks", ["answer"]), lambda_context)
    assert status == HTTPStatus.UNPROCESSABLE_ENTITY
    assert error["errors"] == [{"field": "body", "reason": "must be a JSON object"}]


@pytest.mark.parametrize("body", ["{", "", "   ", '{"answer": NaN}', "[" * 5000, '{"answer": "x"} trailing'])
def test_malformed_json_is_400_with_a_message(
    offline_env: dict[str, str], lambda_context: FakeLambdaContext, body: str
) -> None:
    event = http_event("POST", "/tasks", body=body, headers={"content-type": "application/json"})

    status, error, _ = call(event, lambda_context)

    assert status == HTTPStatus.BAD_REQUEST
    assert "JSON" in error["message"] or "empty" in error["message"]


def test_json_nested_too_deeply_is_a_4xx_saying_so_whatever_the_python(
    offline_env: dict[str, str], lambda_context: FakeLambdaContext
) -> None:
    body = '{"answer": "x", "payload": ' + '{"a": ' * 3000 + "1" + "}" * 3001
    event = http_event("POST", "/tasks", body=body, headers={"content-type": "application/json"})

    status, error, _ = call(event, lambda_context)

    # Python 3.11/3.12's parser gives up (400); 3.13+ (Lambda's) parses it and the payload's depth
    # limit refuses it (422)
    if status == HTTPStatus.BAD_REQUEST:
        assert error["message"] == "the body's JSON is nested too deeply to parse (a payload allows 8 levels)"
    else:
        assert status == HTTPStatus.UNPROCESSABLE_ENTITY
        assert "nested deeper than 8 levels" in error["errors"][0]["reason"]


def test_an_integer_too_long_for_any_field_is_422_without_python_internals(
    offline_env: dict[str, str], lambda_context: FakeLambdaContext
) -> None:
    body = '{"answer": "x", "payload": {"n": ' + "9" * 5000 + "}}"
    event = http_event("POST", "/tasks", body=body, headers={"content-type": "application/json"})

    status, error, _ = call(event, lambda_context)

    assert status == HTTPStatus.UNPROCESSABLE_ENTITY
    assert error["errors"] == [
        {"field": "body", "reason": "holds an integer of 5000 digits; numbers have at most 38"}
    ]
    assert "sys." not in json.dumps(error)


def post_payload_number(key: str, number: str, context: FakeLambdaContext) -> tuple[int, Any, Any]:
    """POST /tasks with `number` in the payload written exactly as given (json.dumps would not)."""
    body = '{"answer": "x", "payload": {"' + key + '": ' + number + "}}"
    event = http_event("POST", "/tasks", body=body, headers={"content-type": "application/json"})
    return call(event, context)


@pytest.mark.parametrize("number", ["1e-400", "-2.5E-999", "0.1e-330"])
def test_a_number_that_would_underflow_to_zero_is_422_not_stored_as_zero(
    offline_env: dict[str, str], lambda_context: FakeLambdaContext, number: str
) -> None:
    status, error, _ = post_payload_number("tiny", number, lambda_context)

    assert status == HTTPStatus.UNPROCESSABLE_ENTITY
    assert error["errors"][0]["field"] == "body"
    assert f"holds the number {number}, too small to store" in error["errors"][0]["reason"]


@pytest.mark.parametrize(
    ("number", "stored_as"),
    [
        ("12345678901234567890.5", "1.2345678901234567e+19"),
        ("0.12345678901234567890123", "0.12345678901234568"),
        ("1.0000000000000000001e30", "1e+30"),
    ],
)
def test_a_number_a_json_float_cannot_keep_is_422_not_rounded(
    offline_env: dict[str, str], lambda_context: FakeLambdaContext, number: str, stored_as: str
) -> None:
    status, error, _ = post_payload_number("precise", number, lambda_context)

    assert status == HTTPStatus.UNPROCESSABLE_ENTITY
    reason = error["errors"][0]["reason"]
    assert f"holds the number {number[:40]}, which a JSON number" in reason
    assert f"it would be stored as {stored_as};" in reason


@pytest.mark.parametrize(
    ("number", "stored"),
    [("0.1", 0.1), ("123456789012345.6", 123456789012345.6), ("2.50", 2.5), ("1.5E30", 15 * 10**29)],
)
def test_a_number_a_json_float_keeps_is_stored_as_its_value(
    function_env: dict[str, str], lambda_context: FakeLambdaContext, number: str, stored: float | int
) -> None:
    status, task, _ = post_payload_number("kept", number, lambda_context)

    assert status == HTTPStatus.ACCEPTED
    assert task["payload"] == {"kept": stored}


@pytest.mark.parametrize(
    "body", ['{"answer": "a", "answer": "b"}', '{"answer": "a", "payload": {"k": 1, "k": 2}}']
)
def test_a_key_twice_in_one_object_is_400(
    offline_env: dict[str, str], lambda_context: FakeLambdaContext, body: str
) -> None:
    event = http_event("POST", "/tasks", body=body, headers={"content-type": "application/json"})

    status, error, _ = call(event, lambda_context)

    assert status == HTTPStatus.BAD_REQUEST
    assert "twice in one object" in error["message"]


@pytest.mark.parametrize("number", ["0.0", "-0e5", "0E-400"])
def test_zero_written_any_way_is_still_zero(
    function_env: dict[str, str], lambda_context: FakeLambdaContext, number: str
) -> None:
    status, task, _ = post_payload_number("zero", number, lambda_context)

    assert status == HTTPStatus.ACCEPTED
    assert task["payload"] == {"zero": 0}


def test_body_over_32_kib_is_413_before_parsing(
    offline_env: dict[str, str], lambda_context: FakeLambdaContext
) -> None:
    event = http_event(
        "POST", "/tasks", body="{" + "x" * 40_000, headers={"content-type": "application/json"}
    )

    status, error, _ = call(event, lambda_context)

    assert status == HTTPStatus.REQUEST_ENTITY_TOO_LARGE
    assert error["limitBytes"] == 32 * 1024


def test_base64_body_over_32_kib_is_413(
    offline_env: dict[str, str], lambda_context: FakeLambdaContext
) -> None:
    raw = json.dumps({"answer": "x", "pad": "y" * 40_000}).encode()
    event = http_event(
        "POST",
        "/tasks",
        body=base64.b64encode(raw).decode(),
        headers={"content-type": "application/json"},
        base64_encoded=True,
    )
    assert call(event, lambda_context)[0] == HTTPStatus.REQUEST_ENTITY_TOO_LARGE


@pytest.mark.parametrize(
    "content_type", [None, "text/plain", "application/x-www-form-urlencoded", "multipart/form-data"]
)
def test_body_that_is_not_declared_json_is_415(
    offline_env: dict[str, str], lambda_context: FakeLambdaContext, content_type: str | None
) -> None:
    headers = {"content-type": content_type} if content_type else {}
    event = http_event("POST", "/tasks", body='{"answer": "x"}', headers=headers)

    status, error, _ = call(event, lambda_context)

    assert status == HTTPStatus.UNSUPPORTED_MEDIA_TYPE
    assert "application/json" in error["message"]


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "br", "GZIP"])
def test_compressed_body_is_415_saying_so(
    offline_env: dict[str, str], lambda_context: FakeLambdaContext, encoding: str
) -> None:
    raw = gzip.compress(b'{"answer": "x"}')
    event = http_event(
        "POST",
        "/tasks",
        body=base64.b64encode(raw).decode(),
        headers={"content-type": "application/json", "content-encoding": encoding},
        base64_encoded=True,
    )

    status, error, _ = call(event, lambda_context)

    assert status == HTTPStatus.UNSUPPORTED_MEDIA_TYPE
    assert "uncompressed" in error["message"]


def test_identity_content_encoding_is_accepted(
    function_env: dict[str, str], lambda_context: FakeLambdaContext
) -> None:
    event = http_event(
        "POST",
        "/tasks",
        body='{"answer": "x"}',
        headers={"content-type": "application/json", "content-encoding": "identity"},
    )
    assert call(event, lambda_context)[0] == HTTPStatus.ACCEPTED


def test_json_content_type_with_charset_is_accepted(
    function_env: dict[str, str], lambda_context: FakeLambdaContext
) -> None:
    event = http_event(
        "POST", "/tasks", body='{"answer": "x"}', headers={"content-type": "application/json; charset=utf-8"}
    )
    assert call(event, lambda_context)[0] == HTTPStatus.ACCEPTED


def test_a_python_field_name_is_a_422_naming_the_wire_name(
    offline_env: dict[str, str], lambda_context: FakeLambdaContext
) -> None:
    status, error, _ = call(json_post("/tasks", {"task_id": "mine", "answer": "x"}), lambda_context)

    assert status == HTTPStatus.UNPROCESSABLE_ENTITY
    assert error["errors"] == [
        {"field": "body", "reason": "task_id is not a field: this API spells it taskId"}
    ]


@pytest.mark.parametrize("charset", ["latin-1", '"utf-16"', "ISO-8859-1"])
def test_a_charset_other_than_utf8_is_415(
    offline_env: dict[str, str], lambda_context: FakeLambdaContext, charset: str
) -> None:
    # `{"answer": "Ã©"}` is valid UTF-8 too: read as UTF-8 it would be stored as another string.
    event = http_event(
        "POST",
        "/tasks",
        body='{"answer": "\u00c3\u00a9"}',
        headers={"content-type": f"application/json; charset={charset}"},
    )

    status, error, _ = call(event, lambda_context)

    assert status == HTTPStatus.UNSUPPORTED_MEDIA_TYPE
    assert f"charset {charset.strip(chr(34)).lower()!r} is not supported" in error["message"]


def test_base64_encoded_body_is_decoded(
    function_env: dict[str, str], lambda_context: FakeLambdaContext
) -> None:
    raw = json.dumps({"taskId": "b64", "answer": "caf\u00e9"}).encode()
    event = http_event(
        "POST",
        "/tasks",
        body=base64.b64encode(raw).decode(),
        headers={"content-type": "application/json"},
        base64_encoded=True,
    )

    status, task, _ = call(event, lambda_context)

    assert status == HTTPStatus.ACCEPTED
    assert task["answer"] == "caf\u00e9"


@pytest.mark.parametrize("body", ["!!!not base64!!!", base64.b64encode(b"\xff\xfe\x00").decode()])
def test_broken_base64_or_non_utf8_body_is_400(
    offline_env: dict[str, str], lambda_context: FakeLambdaContext, body: str
) -> None:
    event = http_event(
        "POST", "/tasks", body=body, headers={"content-type": "application/json"}, base64_encoded=True
    )
    assert call(event, lambda_context)[0] == HTTPStatus.BAD_REQUEST


def test_a_task_item_edited_into_something_else_is_skipped_by_listings_not_a_500_for_everyone(
    function_env: dict[str, str], moto_aws: Aws, lambda_context: FakeLambdaContext
) -> None:
    # Given three tasks, two of them final, and one final item edited by hand (status a number)
    for task_id in ("ok1", "ok2", "edited"):
        call(json_post("/tasks", {"taskId": task_id, "answer": "x"}), lambda_context)
    set_status(moto_aws, "ok2", "error")
    set_status(moto_aws, "edited", "error")
    moto_aws.dynamodb.update_item(
        TableName=moto_aws.task_table,
        Key={"pk": {"S": "edited"}},
        UpdateExpression="SET #s = :n",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":n": {"N": "5"}},
    )

    # When the tasks are listed, all of them and those in error
    status, listed, _ = call(http_event("GET", "/tasks"), lambda_context)
    error_status, in_error, _ = call(http_event("GET", "/tasks", query={"status": "error"}), lambda_context)

    # Then both listings answer with the readable tasks
    assert (status, error_status) == (HTTPStatus.OK, HTTPStatus.OK)
    assert sorted(task["taskId"] for task in listed) == ["ok1", "ok2"]
    assert [task["taskId"] for task in in_error] == ["ok2"]


def test_a_page_of_only_unreadable_items_still_links_to_the_next(
    function_env: dict[str, str], moto_aws: Aws, lambda_context: FakeLambdaContext
) -> None:
    # Given four tasks, the newest edited by hand into something that is not a task
    ids = seed_tasks(moto_aws, 4)
    moto_aws.dynamodb.update_item(
        TableName=moto_aws.task_table, Key={"pk": {"S": ids[-1]}}, UpdateExpression="REMOVE answer"
    )

    # When the listing is read one task a page, following the links
    pages = follow_pages(lambda_context, {"limit": "1"})

    # Then the first page is empty but links on, and every readable task is reached, newest first
    assert pages[0] == []
    assert [task["taskId"] for page in pages for task in page] == list(reversed(ids[:-1]))


# --------------------------------------------------------------------------- GET /tasks/{id}


def test_get_unknown_task_is_404(function_env: dict[str, str], lambda_context: FakeLambdaContext) -> None:
    status, error, _ = call(http_event("GET", "/tasks/nope"), lambda_context)
    assert status == HTTPStatus.NOT_FOUND
    assert error == {"message": "task 'nope' not found", "taskId": "nope"}


@pytest.mark.parametrize("task_id", ["x" * 3000, "a%20b", "caf\u00e9"])
def test_get_with_an_impossible_task_id_is_404_not_an_error(
    offline_env: dict[str, str], lambda_context: FakeLambdaContext, task_id: str
) -> None:
    assert call(http_event("GET", f"/tasks/{task_id}"), lambda_context)[0] == HTTPStatus.NOT_FOUND


@pytest.mark.parametrize(
    ("method", "path"), [("GET", "/tasks/t1\n"), ("POST", "/tasks/t1/retry\n"), ("GET", "/tasks\n")]
)
def test_a_path_ending_in_a_newline_is_no_route(
    function_env: dict[str, str], moto_aws: Aws, lambda_context: FakeLambdaContext, method: str, path: str
) -> None:
    # API Gateway decodes `/tasks/t1%0A`; Powertools' `^...$` route patterns match before a final
    # newline, so the route would read (or retry) task t1.
    call(json_post("/tasks", {"taskId": "t1", "answer": "x"}), lambda_context)
    set_status(moto_aws, "t1", "error")

    status, error, _ = call(http_event(method, path), lambda_context)

    assert status == HTTPStatus.NOT_FOUND
    assert error["message"] == f"no route for {method} {path}"
    assert call(http_event("GET", "/tasks/t1"), lambda_context)[1]["status"] == "error"


# --------------------------------------------------------------------------- POST /tasks/{id}/retry


def test_retry_reruns_a_task_in_error(
    function_env: dict[str, str], moto_aws: Aws, lambda_context: FakeLambdaContext
) -> None:
    call(json_post("/tasks", {"taskId": "r1", "answer": "x"}), lambda_context)
    set_status(moto_aws, "r1", "error", retries=2, errorMessage="boom")

    status, task, headers = call(http_event("POST", "/tasks/r1/retry"), lambda_context)

    assert status == HTTPStatus.ACCEPTED
    assert headers["Location"] == "/tasks/r1"
    assert (task["status"], task["retries"], task["errorMessage"], task["run"]) == ("pending", 0, None, 2)


@pytest.mark.parametrize("current", ["pending", "success"])
def test_retry_of_a_task_not_in_error_is_409(
    function_env: dict[str, str], moto_aws: Aws, lambda_context: FakeLambdaContext, current: str
) -> None:
    call(json_post("/tasks", {"taskId": "r2", "answer": "x"}), lambda_context)
    set_status(moto_aws, "r2", current)

    status, error, _ = call(http_event("POST", "/tasks/r2/retry"), lambda_context)

    assert status == HTTPStatus.CONFLICT
    assert error["status"] == current
    assert "only 'error' tasks" in error["message"]


def test_retry_of_an_unknown_task_is_404(
    function_env: dict[str, str], lambda_context: FakeLambdaContext
) -> None:
    assert call(http_event("POST", "/tasks/ghost/retry"), lambda_context)[0] == HTTPStatus.NOT_FOUND


# --------------------------------------------------------------------------- routing


def test_unknown_route_is_404_json(offline_env: dict[str, str], lambda_context: FakeLambdaContext) -> None:
    status, error, _ = call(http_event("GET", "/nothing/here"), lambda_context)
    assert status == HTTPStatus.NOT_FOUND
    assert error["message"] == "no route for GET /nothing/here"


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/tasks/\u20ac"), ("GET", '/tasks/a"b'), ("GET", "/tasks/a#b"), ("POST", "/tasks/\u20ac/retry")],
)
def test_allowed_method_with_an_id_the_routes_cannot_carry_is_404_not_405(
    offline_env: dict[str, str], lambda_context: FakeLambdaContext, method: str, path: str
) -> None:
    # Powertools' route patterns take no '€', '"' or '#' in a path parameter; such an id cannot be
    # a task, and the method is the right one: 404, never "405 ... Allow: GET" for a GET.
    status, error, headers = call(http_event(method, path), lambda_context)

    assert status == HTTPStatus.NOT_FOUND
    assert error["message"]
    assert "Allow" not in headers


def test_wrong_method_on_a_known_path_is_405_with_allow(
    offline_env: dict[str, str], lambda_context: FakeLambdaContext
) -> None:
    status, error, headers = call(http_event("DELETE", "/tasks/abc"), lambda_context)
    assert status == HTTPStatus.METHOD_NOT_ALLOWED
    assert headers["Allow"] == "GET"
    assert error["allowed"] == ["GET"]


# --------------------------------------------------------------------------- GET /tasks


def test_list_is_a_bare_array_newest_first(
    function_env: dict[str, str], moto_aws: Aws, lambda_context: FakeLambdaContext
) -> None:
    ids = seed_tasks(moto_aws, 3)

    status, tasks, headers = call(http_event("GET", "/tasks"), lambda_context)

    assert status == HTTPStatus.OK
    assert [task["taskId"] for task in tasks] == list(reversed(ids))
    assert "Link" not in headers


def test_list_pages_follow_the_link_header_without_gaps_or_repeats(
    function_env: dict[str, str], moto_aws: Aws, lambda_context: FakeLambdaContext
) -> None:
    ids = seed_tasks(moto_aws, 7)

    pages = follow_pages(lambda_context, {"limit": "3"})

    assert [len(page) for page in pages][:3] == [3, 3, 1]
    assert [task["taskId"] for page in pages for task in page] == list(reversed(ids))


def test_list_filters_by_status_and_keeps_the_filter_in_the_link(
    function_env: dict[str, str], moto_aws: Aws, lambda_context: FakeLambdaContext
) -> None:
    ids = seed_tasks(moto_aws, 6)
    for task_id in ids[::2]:
        set_status(moto_aws, task_id, "success")

    _, first, headers = call(
        http_event("GET", "/tasks", query={"status": "success", "limit": "2"}), lambda_context
    )
    pages = follow_pages(lambda_context, {"status": "success", "limit": "2"})

    assert "status=success" in headers["Link"]
    assert [task["taskId"] for page in pages for task in page] == list(reversed(ids[::2]))
    assert all(task["status"] == "success" for task in first)


def test_finished_listing_fills_a_page_past_the_1_mb_query_limit(
    moto_aws: Aws, function_env: dict[str, str], lambda_context: FakeLambdaContext
) -> None:
    # Tasks of ~300 KB, finished: ByFinished projects every attribute, so one Query returns at
    # most 1 MB (3 items) and a page of 8 needs several Query calls.
    repository = TaskRepository(moto_aws.task_table, client=moto_aws.dynamodb, list_shards=1)
    for index in range(8):
        task = new_task(TaskSubmission(answer="x"), f"big-{index}", T0 + timedelta(seconds=index))
        repository.create(replace(task, payload={"blob": "b" * 300_000}))
        assert repository.claim(task.task_id, 1, "m", 60, delivery="d1").outcome is ClaimOutcome.CLAIMED
        assert repository.record_success(task.task_id, 1, "m", retries=0, delivery="d1")

    client = QueryCountingClient(moto_aws.dynamodb)
    http_api.service.override(
        TaskService(
            TaskRepository(moto_aws.task_table, client=client, list_shards=1),
            stage="test",
            allow_fault_injection=True,
        )
    )

    status, tasks, _ = call(
        http_event("GET", "/tasks", query={"limit": "8", "status": "success"}), lambda_context
    )

    assert status == HTTPStatus.OK
    assert [task["taskId"] for task in tasks] == [f"big-{i}" for i in reversed(range(8))]
    assert client.queries >= 3  # several 1 MB Query pages made one API page


def test_list_page_is_cut_to_the_response_size_budget_and_links_the_rest(
    moto_aws: Aws, function_env: dict[str, str], lambda_context: FakeLambdaContext
) -> None:
    ids = seed_tasks(moto_aws, 5, payload={"blob": "z" * 10_000})
    repository = TaskRepository(moto_aws.task_table)
    http_api.service.override(
        TaskService(repository, stage="test", allow_fault_injection=True, max_list_response_bytes=25_000)
    )

    pages = follow_pages(lambda_context, {"limit": "5"})

    assert [len(page) for page in pages] == [2, 2, 1]
    assert [task["taskId"] for page in pages for task in page] == list(reversed(ids))


# Lambda's limit on a synchronous function's result, and how a Python 3.12+ runtime serializes it.
LAMBDA_RESULT_LIMIT_BYTES = 6 * 1024 * 1024


def test_a_page_of_tasks_full_of_quotes_stays_under_lambdas_result_limit(
    moto_aws: Aws, function_env: dict[str, str], lambda_context: FakeLambdaContext
) -> None:
    # Within every documented limit: each payload is about 16 KB as JSON (a quote is 2 bytes there),
    # and 4 bytes in the result, where the body is itself a JSON string.
    seed_tasks(moto_aws, 200, payload={"q": '"' * 8_180})

    result = http_api.handler(http_event("GET", "/tasks", query={"limit": "200"}), lambda_context)

    assert result["statusCode"] == HTTPStatus.OK
    assert len(json.dumps(result, ensure_ascii=False).encode("utf-8")) <= LAMBDA_RESULT_LIMIT_BYTES
    assert 100 < len(json.loads(result["body"])) < 200
    assert result["headers"]["Link"].endswith('rel="next"')


@pytest.mark.parametrize(
    "query",
    [
        {"limit": "0"},
        {"limit": "501"},
        {"limit": "ten"},
        {"status": "done"},
        {"cursor": "%%%"},
        {"cursor": "e30"},
        {"cursor": "x" * 1025},
    ],
)
def test_invalid_list_parameters_are_422_naming_the_parameter(
    offline_env: dict[str, str], lambda_context: FakeLambdaContext, query: dict[str, str]
) -> None:
    status, error, _ = call(http_event("GET", "/tasks", query=query), lambda_context)

    assert status == HTTPStatus.UNPROCESSABLE_ENTITY
    assert [e["field"] for e in error["errors"]] == list(query)


def _nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"leaf": 1}
    for _ in range(depth - 1):
        value = {"n": value}
    return value


@pytest.mark.parametrize(
    ("body", "field", "reason"),
    [
        ({"answer": "x" * 1001}, "answer", "at most 1000 characters"),
        ({"answer": ""}, "answer", "at least 1 character"),
        ({"answer": "x", "taskId": "x" * 65}, "taskId", "pattern"),
        ({"answer": "x", "taskId": "a/b"}, "taskId", "pattern"),
        ({"answer": "x", "payload": {"blob": "y" * 16_400}}, "payload", "limit is 16384"),
        ({"answer": "x", "payload": _nested(9)}, "payload", "deeper than 8"),
        ({"answer": "x", "payload": "not an object"}, "payload", "dictionary"),
        ({"answer": "x", "simulate": {"failAttempts": 101}}, "simulate.failAttempts", "less than or equal"),
    ],
    ids=[
        "answer-too-long",
        "answer-empty",
        "task-id-too-long",
        "task-id-bad-character",
        "payload-over-16-kib",
        "payload-depth-9",
        "payload-not-object",
        "fail-attempts-over-100",
    ],
)
def test_each_input_limit_is_a_422_naming_the_field_and_the_limit(
    offline_env: dict[str, str],
    lambda_context: FakeLambdaContext,
    body: dict[str, Any],
    field: str,
    reason: str,
) -> None:
    status, error, _ = call(json_post("/tasks", body), lambda_context)

    assert status == HTTPStatus.UNPROCESSABLE_ENTITY
    assert [e["field"] for e in error["errors"]] == [field]
    assert reason in error["errors"][0]["reason"]


def test_cursor_of_another_listing_is_rejected(
    offline_env: dict[str, str], lambda_context: FakeLambdaContext
) -> None:
    cursor = encode_cursor({"taskId": "a", "status": "success", "createdAt": "2026-11-25T12:00:00.000000Z"})

    status, error, _ = call(
        http_event("GET", "/tasks", query={"status": "error", "cursor": cursor}), lambda_context
    )

    assert status == HTTPStatus.UNPROCESSABLE_ENTITY
    assert error["errors"][0]["field"] == "cursor"


@pytest.mark.parametrize(
    "damaged",
    [
        {"taskId": "a\n", "status": "success", "createdAt": "2026-11-25T12:00:00.000000Z"},
        {"taskId": "a", "status": "success", "createdAt": "2026-11-25T12:00:00.000000Z\n"},
    ],
    ids=["task-id-with-newline", "created-at-with-newline"],
)
def test_cursor_whose_key_only_looks_valid_is_422_without_a_dynamodb_call(
    offline_env: dict[str, str], lambda_context: FakeLambdaContext, damaged: dict[str, str]
) -> None:
    status, error, _ = call(
        http_event("GET", "/tasks", query={"status": "success", "cursor": encode_cursor(damaged)}),
        lambda_context,
    )

    assert status == HTTPStatus.UNPROCESSABLE_ENTITY
    assert error["errors"][0]["field"] == "cursor"


# --------------------------------------------------------------------------- CORS


@pytest.mark.parametrize("origin", [ALLOWED_ORIGIN, OTHER_ALLOWED_ORIGIN])
def test_allowed_origin_gets_cors_headers(
    function_env: dict[str, str], lambda_context: FakeLambdaContext, origin: str
) -> None:
    _, _, headers = call(http_event("GET", "/tasks", headers={"origin": origin}), lambda_context)

    assert headers["Access-Control-Allow-Origin"] == origin
    assert set(headers["Access-Control-Expose-Headers"].split(",")) == {"Location", "Link"}
    assert headers["Vary"] == "Origin"


def test_disallowed_origin_gets_no_cors_headers(
    function_env: dict[str, str], lambda_context: FakeLambdaContext
) -> None:
    status, _, headers = call(
        http_event("GET", "/tasks", headers={"origin": "https://evil.example"}), lambda_context
    )

    assert status == HTTPStatus.OK
    assert not [name for name in headers if name.lower().startswith("access-control-")]
    assert headers["Vary"] == "Origin"


@pytest.mark.parametrize("origin", [ALLOWED_ORIGIN, "https://evil.example", "null", "*"])
def test_cors_never_answers_a_wildcard_or_allows_credentials(
    offline_env: dict[str, str], lambda_context: FakeLambdaContext, origin: str
) -> None:
    for event in (
        http_event("GET", "/tasks/not%20an%20id", headers={"origin": origin}),  # 404, no AWS call
        http_event("OPTIONS", "/tasks", headers={"origin": origin, "access-control-request-method": "POST"}),
        http_event(
            "POST", "/tasks", body="{", headers={"origin": origin, "content-type": "application/json"}
        ),
    ):
        _, _, headers = call(event, lambda_context)
        lowered = {name.lower(): value for name, value in headers.items()}

        assert lowered.get("access-control-allow-origin") in (None, ALLOWED_ORIGIN)
        assert lowered.get("access-control-allow-origin") != "*"
        assert "access-control-allow-credentials" not in lowered


def test_error_responses_carry_cors_headers_for_allowed_origins(
    offline_env: dict[str, str], lambda_context: FakeLambdaContext
) -> None:
    event = http_event(
        "POST", "/tasks", body="{", headers={"content-type": "application/json", "origin": ALLOWED_ORIGIN}
    )
    status, _, headers = call(event, lambda_context)
    assert status == HTTPStatus.BAD_REQUEST
    assert headers["Access-Control-Allow-Origin"] == ALLOWED_ORIGIN


def test_preflight_for_an_allowed_origin_lists_the_configured_headers(
    offline_env: dict[str, str], lambda_context: FakeLambdaContext
) -> None:
    event = http_event(
        "OPTIONS", "/tasks", headers={"origin": ALLOWED_ORIGIN, "access-control-request-method": "POST"}
    )

    status, _, headers = call(event, lambda_context)

    assert status == HTTPStatus.NO_CONTENT
    assert headers["Access-Control-Allow-Origin"] == ALLOWED_ORIGIN
    assert "X-Api-Key" in headers["Access-Control-Allow-Headers"].split(",")


def test_preflight_for_a_disallowed_origin_allows_nothing(
    offline_env: dict[str, str], lambda_context: FakeLambdaContext
) -> None:
    event = http_event("OPTIONS", "/tasks", headers={"origin": "https://evil.example"})

    _, _, headers = call(event, lambda_context)

    assert "Access-Control-Allow-Origin" not in headers
    assert "Access-Control-Allow-Headers" not in headers


# --------------------------------------------------------------------------- dependency down


@pytest.fixture
def http_env_without_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        env_vars.STAGE: "test",
        env_vars.TASK_TABLE_NAME: "TaskTable",
        env_vars.TASK_LIST_SHARDS: "4",
        env_vars.CORS_ORIGINS: ALLOWED_ORIGIN,
        env_vars.CORS_HEADERS: "Content-Type",
        env_vars.ALLOW_FAULT_INJECTION: "false",
    }.items():
        monkeypatch.setenv(name, value)


def _use_dynamodb_client(client: Any) -> None:
    http_api.service.override(
        TaskService(TaskRepository("TaskTable", client=client), stage="test", allow_fault_injection=False)
    )


def test_unreachable_dynamodb_is_503_with_retry_after(
    http_env_without_aws: None, lambda_context: FakeLambdaContext
) -> None:
    unreachable = boto3.client(
        "dynamodb",
        region_name=REGION,
        endpoint_url="http://127.0.0.1:9",
        config=Config(connect_timeout=1, read_timeout=1, retries={"mode": "standard", "max_attempts": 1}),
    )
    _use_dynamodb_client(unreachable)

    status, error, headers = call(json_post("/tasks", {"answer": "x"}), lambda_context)

    assert status == HTTPStatus.SERVICE_UNAVAILABLE
    assert int(headers["Retry-After"]) > 0
    assert error["dependency"] == "DynamoDB"
    assert "retry" in error["message"]


@pytest.mark.timing
@pytest.mark.parametrize(
    "path", ["/tasks/t1", "/tasks"], ids=["one task", "a listing, shards read in threads"]
)
def test_dynamodb_too_slow_for_the_function_timeout_is_503_before_it(
    http_env_without_aws: None, monkeypatch: pytest.MonkeyPatch, lambda_context: FakeLambdaContext, path: str
) -> None:
    # Given a DynamoDB that accepts connections and never answers, and 2 s left to the timeout
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{silent.getsockname()[1]}")
        lambda_context.remaining_millis = 2_000
        started = time.monotonic()

        # When a request needs it (the function's own client: 5 s read timeout, 3 attempts)
        status, error, headers = call(http_event("GET", path), lambda_context)
        took = time.monotonic() - started

    # Then the client gets a 503 with Retry-After before Lambda would have killed the function
    assert took < 2.0  # the 2 s left: Lambda would have killed it there (the timer fires at 1 s)
    assert status == HTTPStatus.SERVICE_UNAVAILABLE
    assert int(headers["Retry-After"]) > 0
    assert error["dependency"] == "AWS"  # the log line says which wait ran out of time


@pytest.mark.timing
def test_a_response_still_being_built_at_the_deadline_is_not_interrupted(
    offline_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, lambda_context: FakeLambdaContext
) -> None:
    # Given a route that returns within its budget (0.3 s): the document already built once (the
    # first build alone can take longer than that on a loaded machine), and a response that takes
    # longer to build
    assert call(http_event("GET", "/openapi.json"), lambda_context)[0] == HTTPStatus.OK
    original = api_gateway.ResponseBuilder.build

    def slow_build(self: Any, *args: Any, **kwargs: Any) -> Any:
        time.sleep(0.5)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(api_gateway.ResponseBuilder, "build", slow_build)
    lambda_context.remaining_millis = 1_300

    # Then the timer, armed around the route only, leaves it alone
    assert call(http_event("GET", "/openapi.json"), lambda_context)[0] == HTTPStatus.OK


@pytest.mark.timing
def test_an_error_handler_still_running_at_the_deadline_is_not_interrupted(
    offline_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, lambda_context: FakeLambdaContext
) -> None:
    # Given a route that fails fast on DynamoDB, and an error handler slower than the budget
    def unavailable(*_: Any, **__: Any) -> Any:
        raise DependencyUnavailableError("DynamoDB", "ReadTimeoutError")

    monkeypatch.setattr(TaskService, "get", unavailable)
    original = api_errors.logger.warning

    def slow_warning(*args: Any, **kwargs: Any) -> None:
        time.sleep(0.5)
        original(*args, **kwargs)

    monkeypatch.setattr(api_errors.logger, "warning", slow_warning)
    lambda_context.remaining_millis = 1_300

    # Then its 503 goes out
    status, error, _ = call(http_event("GET", "/tasks/t1"), lambda_context)
    assert (status, error["dependency"]) == (HTTPStatus.SERVICE_UNAVAILABLE, "DynamoDB")


@pytest.mark.parametrize(
    "code",
    [
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "InternalServerError",
        "RequestLimitExceeded",
    ],
)
def test_throttled_or_failing_dynamodb_is_503(
    http_env_without_aws: None, lambda_context: FakeLambdaContext, code: str
) -> None:
    client = boto3.client("dynamodb", region_name=REGION)
    stubber = Stubber(client)
    stubber.add_client_error("get_item", service_error_code=code, http_status_code=400)
    stubber.activate()
    _use_dynamodb_client(client)

    status, _, headers = call(http_event("GET", "/tasks/t1"), lambda_context)

    assert status == HTTPStatus.SERVICE_UNAVAILABLE
    assert "Retry-After" in headers


# --------------------------------------------------------------------------- never a 500


def _random_json(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.choice(
        ["str", "int", "float", "bool", "null", "list", "dict"] if depth < 12 else ["str", "int"]
    )
    if kind == "str":
        alphabet = string.printable + "\u00e9\U0001f600\ud800\x00"
        return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 30)))
    if kind == "int":
        return rng.choice([0, -1, 2**63, 10**40, rng.randint(-1000, 1000)])
    if kind == "float":
        return rng.choice([0.1, -2.5e300, 1e-300, 3.14])
    if kind == "bool":
        return rng.random() < 0.5
    if kind == "null":
        return None
    if kind == "list":
        return [_random_json(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    return {
        _random_json(rng, 12)
        if rng.random() < 0.2
        else rng.choice(["answer", "taskId", "payload", "simulate", "failAttempts", "x"]): _random_json(
            rng, depth + 1
        )
        for _ in range(rng.randint(0, 5))
    }


def _random_body(rng: random.Random) -> tuple[str, bool]:
    choice = rng.random()
    if choice < 0.5:
        value = _random_json(rng)
        if isinstance(value, dict) and rng.random() < 0.6:
            value["answer"] = _random_json(rng, 11)
        return json.dumps(value, allow_nan=True), False
    if choice < 0.7:
        raw = bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 200)))
        return base64.b64encode(raw).decode(), True
    if choice < 0.85:
        return "".join(rng.choice(string.printable) for _ in range(rng.randint(0, 200))), rng.random() < 0.3
    return '{"answer": "' + "\\ud800" * rng.randint(1, 3) + '"}', False


def test_random_bodies_never_cause_a_500(
    function_env: dict[str, str], lambda_context: FakeLambdaContext
) -> None:
    rng = random.Random(20261125)
    content_types = ["application/json", "application/json; charset=utf-8", "text/plain", None]
    seen = set()
    for _ in range(400):
        body, encoded = _random_body(rng)
        content_type = rng.choice(content_types)
        headers = {"content-type": content_type} if content_type else {}
        event = http_event("POST", "/tasks", body=body, headers=headers, base64_encoded=encoded)

        status, payload, _ = call(event, lambda_context)

        seen.add(status)
        assert status < HTTPStatus.INTERNAL_SERVER_ERROR, (body, payload)
        if status != HTTPStatus.ACCEPTED:
            assert isinstance(payload["message"], str)
            assert payload["message"]
    assert {
        HTTPStatus.BAD_REQUEST,
        HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
        HTTPStatus.UNPROCESSABLE_ENTITY,
    } <= seen


def test_random_paths_and_queries_never_cause_a_500(
    function_env: dict[str, str], lambda_context: FakeLambdaContext
) -> None:
    rng = random.Random(7)
    alphabet = string.ascii_letters + string.digits + "-_.~%/?&=+\u00e9"
    for _ in range(200):
        method = rng.choice(["GET", "POST", "PUT", "DELETE", "PATCH"])
        path = "/tasks" + "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 20)))
        query = {
            rng.choice(["limit", "status", "cursor", "x"]): "".join(
                rng.choice(alphabet) for _ in range(rng.randint(0, 12))
            )
        }
        status, payload, _ = call(http_event(method, path, query=query), lambda_context)
        assert status < HTTPStatus.INTERNAL_SERVER_ERROR, (method, path, query, payload)
