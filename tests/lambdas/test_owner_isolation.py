"""Per-owner isolation on a stage with `auth: jwt`: the HTTP API handler with the verified claims
API Gateway's JWT authorizer passes on, over owner-scoped tables on moto; plus the repository and
service rules underneath. (The `auth: none` behaviour is what the other HTTP tests cover.)"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from typing import Any

import pytest
from lambda_support import Aws, FakeLambdaContext, get_item, http_event, json_post, signed_in
from lambda_support import call_http_api as call

from taskflow import table_schema
from taskflow.api.pagination import decode_cursor, encode_cursor
from taskflow.domain.clock import utc_timestamp
from taskflow.domain.status import TaskStatus
from taskflow.domain.submission import TaskSubmission
from taskflow.domain.task import new_task
from taskflow.errors import InvalidCursorError, UnauthenticatedError
from taskflow.handlers import http_api
from taskflow.repositories.task_repository import TaskRepository
from taskflow.services.task_service import TaskService

ALICE = "alice-sub-0001"
BOB = "bob-sub-0002"
T0 = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)


def as_owner(owner: str | None, event: dict[str, Any]) -> dict[str, Any]:
    return signed_in(event, owner)


def seed(aws: Aws, owner: str | None, task_ids: list[str], *, start: int = 0) -> None:
    """Tasks of `owner`, one second apart in the order given (the last is the newest)."""
    repository = TaskRepository(aws.task_table, client=aws.dynamodb)
    for offset, task_id in enumerate(task_ids):
        when = T0 + timedelta(seconds=start + offset)
        repository.create(new_task(TaskSubmission(answer=f"answer {task_id}"), task_id, when, owner=owner))


def set_status(aws: Aws, task_id: str, status: str) -> None:
    aws.dynamodb.update_item(
        TableName=aws.task_table,
        Key={table_schema.TASK_PK: {"S": task_id}},
        UpdateExpression="SET #s = :s",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":s": {"S": status}},
    )


def listed_ids(body: list[dict[str, Any]]) -> list[str]:
    return [task["taskId"] for task in body]


def next_query(headers: dict[str, str]) -> dict[str, str] | None:
    link = headers.get("Link")
    if not link:
        return None
    target = link[1 : link.index(">")]
    _, _, query = target.partition("?")
    return dict(part.split("=", 1) for part in query.split("&"))


def follow_pages(
    context: FakeLambdaContext, owner: str, first_query: dict[str, str]
) -> list[list[dict[str, Any]]]:
    pages = []
    query: dict[str, str] | None = first_query
    while query is not None:
        status, body, headers = call(as_owner(owner, http_event("GET", "/tasks", query=query)), context)
        assert status == HTTPStatus.OK, body
        pages.append(body)
        query = next_query(headers)
    return pages


def use_repository(**options: Any) -> TaskRepository:
    """The HTTP function's service over a repository built with `options` (jwt stage)."""
    repository = TaskRepository("TaskTable", **options)
    http_api.service.override(
        TaskService(repository, stage="test", allow_fault_injection=True, owner_scoped=True)
    )
    return repository


# --------------------------------------------------------------------------- who may call


ROUTES = [
    pytest.param(lambda: json_post("/tasks", {"answer": "x"}), id="POST /tasks"),
    pytest.param(lambda: http_event("GET", "/tasks"), id="GET /tasks"),
    pytest.param(lambda: http_event("GET", "/tasks/t1"), id="GET /tasks/{taskId}"),
    pytest.param(lambda: http_event("POST", "/tasks/t1/retry"), id="POST /tasks/{taskId}/retry"),
]


@pytest.mark.parametrize("event", ROUTES)
def test_request_without_verified_claims_is_401_on_every_task_route(
    jwt_env: dict[str, str], owner_scoped_aws: Aws, lambda_context: FakeLambdaContext, event: Any
) -> None:
    # Given a jwt stage with a task in the table, and a request that no authorizer vouched for
    seed(owner_scoped_aws, ALICE, ["t1"])
    set_status(owner_scoped_aws, "t1", "error")

    # When it reaches the function
    status, body, headers = call(event(), lambda_context)

    # Then it is refused, with a JSON message, and nothing was read or changed
    assert status == HTTPStatus.UNAUTHORIZED
    assert set(body) == {"message"}
    assert "Bearer" in body["message"]
    assert headers["WWW-Authenticate"] == "Bearer"
    assert get_item(owner_scoped_aws, "t1")["run"] == 1


def test_the_openapi_document_needs_no_claims_in_the_function(
    jwt_env: dict[str, str], lambda_context: FakeLambdaContext
) -> None:
    # API Gateway's authorizer guards the route; the function serves the document to whoever gets there
    status, body, _ = call(http_event("GET", "/openapi.json"), lambda_context)

    assert status == HTTPStatus.OK
    assert "bearerAuth" in body["components"]["securitySchemes"]


@pytest.mark.parametrize("owner", [None, ""], ids=["no sub claim", "empty sub claim"])
def test_token_without_a_usable_sub_is_401(
    jwt_env: dict[str, str], lambda_context: FakeLambdaContext, owner: str | None
) -> None:
    status, body, _ = call(as_owner(owner, http_event("GET", "/tasks")), lambda_context)

    assert status == HTTPStatus.UNAUTHORIZED
    assert body["message"]


def test_401_carries_cors_headers_for_an_allowed_origin(
    jwt_env: dict[str, str], lambda_context: FakeLambdaContext
) -> None:
    # A browser must be able to read the 401 to send the user to sign in.
    event = http_event("GET", "/tasks", headers={"origin": "http://localhost:4200"})

    status, _, headers = call(event, lambda_context)

    assert status == HTTPStatus.UNAUTHORIZED
    assert headers["Access-Control-Allow-Origin"] == "http://localhost:4200"


# --------------------------------------------------------------------------- reading and listing


def test_each_owner_lists_only_their_own_tasks_newest_first(
    jwt_env: dict[str, str], owner_scoped_aws: Aws, lambda_context: FakeLambdaContext
) -> None:
    # Given tasks of Alice and Bob, interleaved in time
    seed(owner_scoped_aws, ALICE, ["a1"], start=0)
    seed(owner_scoped_aws, BOB, ["b1"], start=1)
    seed(owner_scoped_aws, ALICE, ["a2"], start=2)

    # When each lists
    alice_status, alice_tasks, _ = call(as_owner(ALICE, http_event("GET", "/tasks")), lambda_context)
    bob_status, bob_tasks, _ = call(as_owner(BOB, http_event("GET", "/tasks")), lambda_context)

    # Then each sees their own, newest first, and nobody else's
    assert (alice_status, bob_status) == (HTTPStatus.OK, HTTPStatus.OK)
    assert listed_ids(alice_tasks) == ["a2", "a1"]
    assert listed_ids(bob_tasks) == ["b1"]


def test_owner_with_no_tasks_gets_an_empty_list(
    jwt_env: dict[str, str], owner_scoped_aws: Aws, lambda_context: FakeLambdaContext
) -> None:
    seed(owner_scoped_aws, ALICE, ["a1", "a2"])

    status, tasks, headers = call(as_owner(BOB, http_event("GET", "/tasks")), lambda_context)

    assert (status, tasks) == (HTTPStatus.OK, [])
    assert "Link" not in headers


def test_another_owners_task_reads_exactly_like_an_unknown_id(
    jwt_env: dict[str, str], owner_scoped_aws: Aws, lambda_context: FakeLambdaContext
) -> None:
    # Given Bob's answer for an id nobody holds yet
    before = call(as_owner(BOB, http_event("GET", "/tasks/a1")), lambda_context)
    # ... and then Alice creates a task with that id
    seed(owner_scoped_aws, ALICE, ["a1"])

    # When Bob reads it again, and Alice reads it
    after = call(as_owner(BOB, http_event("GET", "/tasks/a1")), lambda_context)
    alice_status, alice_task, _ = call(as_owner(ALICE, http_event("GET", "/tasks/a1")), lambda_context)

    # Then Bob's answer has not changed at all, and Alice gets her task
    assert before[0] == HTTPStatus.NOT_FOUND
    assert after[:2] == before[:2]
    assert (alice_status, alice_task["taskId"]) == (HTTPStatus.OK, "a1")


def test_owner_is_never_part_of_the_wire_json(
    jwt_env: dict[str, str], owner_scoped_aws: Aws, lambda_context: FakeLambdaContext
) -> None:
    # Given a task Alice submitted (stored with its owner)
    status, submitted, _ = call(
        as_owner(ALICE, json_post("/tasks", {"taskId": "a1", "answer": "x"})), lambda_context
    )
    assert status == HTTPStatus.ACCEPTED
    assert get_item(owner_scoped_aws, "a1")[table_schema.TASK_OWNER] == ALICE

    # When she reads and lists it
    _, read, _ = call(as_owner(ALICE, http_event("GET", "/tasks/a1")), lambda_context)
    _, listed, _ = call(as_owner(ALICE, http_event("GET", "/tasks")), lambda_context)

    # Then no answer names an owner
    assert all("owner" not in task for task in [submitted, read, *listed])
    assert ALICE not in json.dumps([submitted, read, listed])


# --------------------------------------------------------------------------- retry


def test_another_owners_task_cannot_be_retried_and_answers_like_an_unknown_id(
    jwt_env: dict[str, str], owner_scoped_aws: Aws, lambda_context: FakeLambdaContext
) -> None:
    # Given Bob's answer for retrying an id nobody holds, then Alice's task with that id in error
    before = call(as_owner(BOB, http_event("POST", "/tasks/a1/retry")), lambda_context)
    seed(owner_scoped_aws, ALICE, ["a1"])
    set_status(owner_scoped_aws, "a1", "error")

    # When Bob retries it
    after = call(as_owner(BOB, http_event("POST", "/tasks/a1/retry")), lambda_context)

    # Then he gets the same 404 as before, and the task is untouched
    assert before[0] == HTTPStatus.NOT_FOUND
    assert after[:2] == before[:2]
    item = get_item(owner_scoped_aws, "a1")
    assert (item["status"], item["run"]) == ("error", 1)


def test_owner_retries_their_own_task(
    jwt_env: dict[str, str], owner_scoped_aws: Aws, lambda_context: FakeLambdaContext
) -> None:
    seed(owner_scoped_aws, ALICE, ["a1"])
    set_status(owner_scoped_aws, "a1", "error")

    status, task, _ = call(as_owner(ALICE, http_event("POST", "/tasks/a1/retry")), lambda_context)

    assert status == HTTPStatus.ACCEPTED
    assert (task["status"], task["run"]) == ("pending", 2)


def test_retry_of_own_task_not_in_error_is_still_409(
    jwt_env: dict[str, str], owner_scoped_aws: Aws, lambda_context: FakeLambdaContext
) -> None:
    seed(owner_scoped_aws, ALICE, ["a1"])

    status, error, _ = call(as_owner(ALICE, http_event("POST", "/tasks/a1/retry")), lambda_context)

    assert status == HTTPStatus.CONFLICT
    assert error["status"] == "pending"


# --------------------------------------------------------------------------- submit


def test_submitting_an_id_another_owner_holds_is_409_without_revealing_the_task(
    jwt_env: dict[str, str], owner_scoped_aws: Aws, lambda_context: FakeLambdaContext
) -> None:
    # Given Alice's task, and Bob's answer for a different-body conflict on his own task
    body = {"taskId": "shared-id", "answer": "alice private answer"}
    assert call(as_owner(ALICE, json_post("/tasks", body)), lambda_context)[0] == HTTPStatus.ACCEPTED
    call(as_owner(BOB, json_post("/tasks", {"taskId": "bobs", "answer": "one"})), lambda_context)
    own_conflict = call(
        as_owner(BOB, json_post("/tasks", {"taskId": "bobs", "answer": "two"})), lambda_context
    )

    # When Bob submits Alice's id, even with the identical body
    status, error, headers = call(as_owner(BOB, json_post("/tasks", body)), lambda_context)

    # Then it is a 409 shaped exactly like any conflict, with nothing of Alice's task in it
    assert status == HTTPStatus.CONFLICT
    assert set(error) == set(own_conflict[1]) == {"message", "taskId"}
    assert error["message"] == own_conflict[1]["message"].replace("bobs", "shared-id")
    assert "Location" not in headers
    assert "alice private answer" not in json.dumps(error)
    # ... and Alice's task is hers, unchanged, and not in Bob's list
    assert get_item(owner_scoped_aws, "shared-id")[table_schema.TASK_OWNER] == ALICE
    assert listed_ids(call(as_owner(BOB, http_event("GET", "/tasks")), lambda_context)[1]) == ["bobs"]


def test_same_owner_resubmitting_the_same_body_gets_the_existing_task(
    jwt_env: dict[str, str], lambda_context: FakeLambdaContext
) -> None:
    body = {"taskId": "a1", "answer": "x"}
    first = call(as_owner(ALICE, json_post("/tasks", body)), lambda_context)

    second = call(as_owner(ALICE, json_post("/tasks", body)), lambda_context)

    assert (first[0], second[0]) == (HTTPStatus.ACCEPTED, HTTPStatus.ACCEPTED)
    assert second[1] == first[1]


def test_created_task_carries_its_owner_and_no_list_partition(
    jwt_env: dict[str, str], owner_scoped_aws: Aws, lambda_context: FakeLambdaContext
) -> None:
    call(as_owner(ALICE, json_post("/tasks", {"taskId": "a1", "answer": "x"})), lambda_context)

    item = get_item(owner_scoped_aws, "a1")

    assert item[table_schema.TASK_OWNER] == ALICE
    assert table_schema.TASKS_BY_CREATED_PK not in item


# --------------------------------------------------------------------------- status filter


def test_status_filter_lists_only_the_callers_tasks_of_that_status(
    jwt_env: dict[str, str], owner_scoped_aws: Aws, lambda_context: FakeLambdaContext
) -> None:
    # Given tasks in error for both owners
    seed(owner_scoped_aws, ALICE, ["a1", "a2", "a3"], start=0)
    seed(owner_scoped_aws, BOB, ["b1"], start=10)
    for task_id in ("a1", "a3", "b1"):
        set_status(owner_scoped_aws, task_id, "error")

    # When Alice lists her tasks in error
    status, tasks, _ = call(
        as_owner(ALICE, http_event("GET", "/tasks", query={"status": "error"})), lambda_context
    )

    # Then she gets hers only, newest first
    assert status == HTTPStatus.OK
    assert listed_ids(tasks) == ["a3", "a1"]


def test_sparse_status_filter_pages_may_be_short_or_empty_but_link_to_the_rest(
    jwt_env: dict[str, str], owner_scoped_aws: Aws, lambda_context: FakeLambdaContext
) -> None:
    # Given 12 tasks of Alice, 3 of them in error, and a read bound of 4 items per request
    ids = [f"a{index:02d}" for index in range(12)]
    seed(owner_scoped_aws, ALICE, ids)
    in_error = ["a00", "a01", "a09"]
    for task_id in in_error:
        set_status(owner_scoped_aws, task_id, "error")
    use_repository(max_filter_evaluated=4)

    # When she follows the pages of her tasks in error
    pages = follow_pages(lambda_context, ALICE, {"status": "error", "limit": "2"})

    # Then some page came back short (even empty) with a next link, and none was lost or repeated
    assert [task_id for page in pages for task_id in listed_ids(page)] == list(reversed(in_error))
    assert any(len(page) < 2 for page in pages[:-1])
    assert [] in pages[:-1]
    assert all(task["status"] == "error" for page in pages for task in page)


def test_status_filter_reads_a_bounded_number_of_items_per_request(
    jwt_env: dict[str, str], owner_scoped_aws: Aws, lambda_context: FakeLambdaContext
) -> None:
    # Given 40 tasks of Alice, none in error, and a read bound of 10 items
    seed(owner_scoped_aws, ALICE, [f"a{index:02d}" for index in range(40)])
    counting = QueryRecorder(owner_scoped_aws.dynamodb)
    use_repository(client=counting, max_filter_evaluated=10)

    # When she asks for her tasks in error
    status, tasks, headers = call(
        as_owner(ALICE, http_event("GET", "/tasks", query={"status": "error", "limit": "5"})), lambda_context
    )

    # Then the request evaluated at most 10 items, answered an empty page, and links onwards
    assert (status, tasks) == (HTTPStatus.OK, [])
    assert sum(counting.scanned) <= 10
    assert next_query(headers) is not None


def test_status_filter_stops_where_dynamodb_cuts_a_query_at_1_mb(
    jwt_env: dict[str, str], owner_scoped_aws: Aws, lambda_context: FakeLambdaContext
) -> None:
    # Given Alice's tasks of ~300 KB each (a Query returns at most 1 MB: 3 of them), none in error
    for index in range(8):
        owner_scoped_aws.dynamodb.put_item(
            TableName=owner_scoped_aws.task_table, Item=big_item(f"big-{index}", ALICE, index)
        )
    counting = QueryRecorder(owner_scoped_aws.dynamodb)
    use_repository(client=counting)

    # When she asks for her tasks in error
    first = call(as_owner(ALICE, http_event("GET", "/tasks", query={"status": "error"})), lambda_context)
    queries_for_first = len(counting.scanned)
    pages = follow_pages(lambda_context, ALICE, {"status": "error"})

    # Then a request stops after the Query DynamoDB cut, and links onwards until the end
    assert (first[0], first[1], queries_for_first) == (HTTPStatus.OK, [], 1)
    assert next_query(first[2]) is not None
    assert pages[-1] == []
    assert len(pages) >= 3


def test_unfiltered_owner_listing_still_fills_a_page_past_1_mb(
    jwt_env: dict[str, str], owner_scoped_aws: Aws, lambda_context: FakeLambdaContext
) -> None:
    for index in range(8):
        owner_scoped_aws.dynamodb.put_item(
            TableName=owner_scoped_aws.task_table, Item=big_item(f"big-{index}", ALICE, index)
        )

    status, tasks, _ = call(
        as_owner(ALICE, http_event("GET", "/tasks", query={"limit": "8"})), lambda_context
    )

    assert status == HTTPStatus.OK
    assert listed_ids(tasks) == [f"big-{index}" for index in reversed(range(8))]


# --------------------------------------------------------------------------- cursors


def test_cursor_passed_to_another_owner_is_422(
    jwt_env: dict[str, str], owner_scoped_aws: Aws, lambda_context: FakeLambdaContext
) -> None:
    # Given a next-page cursor issued to Alice
    seed(owner_scoped_aws, ALICE, ["a1", "a2"])
    _, _, headers = call(as_owner(ALICE, http_event("GET", "/tasks", query={"limit": "1"})), lambda_context)
    query = next_query(headers)
    assert query is not None

    # When Bob uses it
    status, error, _ = call(as_owner(BOB, http_event("GET", "/tasks", query=query)), lambda_context)

    # Then it is refused as a cursor, not served and not a 500
    assert status == HTTPStatus.UNPROCESSABLE_ENTITY
    assert [e["field"] for e in error["errors"]] == ["cursor"]


def test_own_cursor_resumes_the_listing(
    jwt_env: dict[str, str], owner_scoped_aws: Aws, lambda_context: FakeLambdaContext
) -> None:
    seed(owner_scoped_aws, ALICE, ["a1", "a2", "a3"])

    pages = follow_pages(lambda_context, ALICE, {"limit": "2"})

    assert [listed_ids(page) for page in pages] == [["a3", "a2"], ["a1"]]


CREATED = "2026-11-25T12:00:00.000000Z"


@pytest.mark.parametrize(
    "key",
    [
        {"taskId": "a1", "listPartition": "TASK", "createdAt": CREATED},
        {"taskId": "a1", "status": "error", "createdAt": CREATED},
        {"taskId": "a1", "owner": BOB, "createdAt": CREATED},
        {"taskId": "a1", "owner": ALICE, "createdAt": "yesterday"},
        {"taskId": "a/1", "owner": ALICE, "createdAt": CREATED},
        {"taskId": "a1", "owner": ALICE, "createdAt": CREATED, "extra": "x"},
        {"taskId": "a1", "owner": ALICE},
    ],
    ids=["none-stage", "by-status", "other-owner", "bad-time", "bad-id", "extra-key", "missing-key"],
)
def test_forged_or_foreign_cursor_is_422_never_a_dynamodb_error(
    jwt_env: dict[str, str], owner_scoped_aws: Aws, lambda_context: FakeLambdaContext, key: dict[str, str]
) -> None:
    seed(owner_scoped_aws, ALICE, ["a1"])

    for query in ({"cursor": encode_cursor(key)}, {"cursor": encode_cursor(key), "status": "error"}):
        status, error, _ = call(as_owner(ALICE, http_event("GET", "/tasks", query=query)), lambda_context)

        assert status == HTTPStatus.UNPROCESSABLE_ENTITY, error
        assert [e["field"] for e in error["errors"]] == ["cursor"]


def test_cursor_of_an_owner_listing_carries_the_index_key_of_the_callers_partition(
    jwt_env: dict[str, str], owner_scoped_aws: Aws, lambda_context: FakeLambdaContext
) -> None:
    seed(owner_scoped_aws, ALICE, ["a1", "a2"])

    _, _, headers = call(as_owner(ALICE, http_event("GET", "/tasks", query={"limit": "1"})), lambda_context)
    query = next_query(headers)

    assert query is not None
    assert decode_cursor(query["cursor"]) == {
        "taskId": "a2",
        "owner": ALICE,
        "createdAt": utc_timestamp(T0 + timedelta(seconds=1)),
    }


# --------------------------------------------------------------------------- layers underneath


def test_repository_reads_are_scoped_to_the_owner_given(owner_scoped_aws: Aws) -> None:
    seed(owner_scoped_aws, ALICE, ["a1"])
    repository = TaskRepository(owner_scoped_aws.task_table, client=owner_scoped_aws.dynamodb)

    assert repository.get("a1", owner=BOB) is None
    assert repository.get("a1", owner=ALICE) is not None
    assert repository.list_page(limit=10, owner=BOB).tasks == []
    with pytest.raises(InvalidCursorError):
        repository.list_page(
            limit=10, owner=BOB, start_key={"taskId": "a1", "owner": ALICE, "createdAt": CREATED}
        )


def test_repository_retry_without_owner_still_works_across_owners(owner_scoped_aws: Aws) -> None:
    # ops/redrive.py re-runs stuck tasks of every owner: no owner, no owner condition.
    seed(owner_scoped_aws, ALICE, ["a1"])
    set_status(owner_scoped_aws, "a1", "error")
    repository = TaskRepository(owner_scoped_aws.task_table, client=owner_scoped_aws.dynamodb)

    assert repository.retry("a1").run == 2
    assert [task.task_id for task in repository.list_page(limit=5, status=TaskStatus.PENDING).tasks] == ["a1"]


@pytest.mark.parametrize("owner", [None, "", "x" * 1025])
def test_owner_scoped_service_without_a_usable_owner_fails_closed(owner_scoped_aws: Aws, owner: Any) -> None:
    service = TaskService(
        TaskRepository(owner_scoped_aws.task_table, client=owner_scoped_aws.dynamodb),
        stage="test",
        allow_fault_injection=True,
        owner_scoped=True,
    )

    with pytest.raises(UnauthenticatedError):
        service.list(limit=10, status=None, start_key=None, owner=owner)
    with pytest.raises(UnauthenticatedError):
        service.get("a1", owner=owner)
    with pytest.raises(UnauthenticatedError):
        service.retry("a1", owner=owner)
    with pytest.raises(UnauthenticatedError):
        service.submit(TaskSubmission(answer="x"), owner=owner)


def test_none_stage_ignores_claims_and_shows_every_task(
    function_env: dict[str, str], moto_aws: Aws, lambda_context: FakeLambdaContext
) -> None:
    # Given an `auth: none` stage (no AUTH_MODE), and requests that happen to carry claims
    call(as_owner(ALICE, json_post("/tasks", {"taskId": "a1", "answer": "x"})), lambda_context)
    call(as_owner(BOB, json_post("/tasks", {"taskId": "b1", "answer": "x"})), lambda_context)

    # When Bob lists and reads Alice's task
    _, tasks, _ = call(as_owner(BOB, http_event("GET", "/tasks")), lambda_context)
    status, _, _ = call(as_owner(BOB, http_event("GET", "/tasks/a1")), lambda_context)

    # Then everything is shared, as before authentication existed, and nothing stored an owner
    assert set(listed_ids(tasks)) == {"a1", "b1"}
    assert status == HTTPStatus.OK
    assert table_schema.TASK_OWNER not in get_item(moto_aws, "a1")
    assert get_item(moto_aws, "a1")[table_schema.TASKS_BY_CREATED_PK] == table_schema.LIST_PARTITION_VALUE


# --------------------------------------------------------------------------- helpers


class QueryRecorder:
    """Delegates to a real DynamoDB client and records each Query's ScannedCount."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.scanned: list[int] = []

    def query(self, **kwargs: Any) -> Any:
        response = self._client.query(**kwargs)
        self.scanned.append(int(response.get("ScannedCount", 0)))
        return response

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def big_item(task_id: str, owner: str, index: int) -> dict[str, Any]:
    return {
        "taskId": {"S": task_id},
        "answer": {"S": "x"},
        "payload": {"M": {"blob": {"S": "b" * 300_000}}},
        "status": {"S": "pending"},
        "retries": {"N": "0"},
        "createdAt": {"S": utc_timestamp(T0 + timedelta(seconds=index))},
        "updatedAt": {"S": "2026-11-25T12:00:00.000000Z"},
        "version": {"N": "1"},
        "run": {"N": "1"},
        "requestHash": {"S": "h"},
        "owner": {"S": owner},
    }
