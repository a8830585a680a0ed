"""Per-owner isolation on a stage with `auth: jwt`: the HTTP API handler with the verified claims
API Gateway's JWT authorizer passes on, over owner-scoped tables on moto; plus the repository and
service rules underneath. (The `auth: none` behaviour is what the other HTTP tests cover.)"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from typing import Any

import pytest
from lambda_support import UNUSABLE_SUBS, Aws, FakeLambdaContext, get_item, http_event, json_post, signed_in
from lambda_support import call_http_api as call
from lambda_support import set_status as set_task_status

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


def set_status(aws: Aws, task_id: str, status: str, owner: str = ALICE) -> None:
    set_task_status(aws, task_id, status, owner=owner)


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
    assert get_item(owner_scoped_aws, "t1", owner=ALICE)["run"] == 1


def test_the_openapi_document_needs_no_claims_in_the_function(
    jwt_env: dict[str, str], lambda_context: FakeLambdaContext
) -> None:
    # API Gateway's authorizer guards the route; the function serves the document to whoever gets there
    status, body, _ = call(http_event("GET", "/openapi.json"), lambda_context)

    assert status == HTTPStatus.OK
    assert "bearerAuth" in body["components"]["securitySchemes"]


@pytest.mark.parametrize("owner", UNUSABLE_SUBS.values(), ids=UNUSABLE_SUBS.keys())
def test_token_without_a_usable_sub_is_401(
    jwt_env: dict[str, str], owner_scoped_aws: Aws, lambda_context: FakeLambdaContext, owner: object
) -> None:
    # Given a token API Gateway accepted, whose `sub` (flattened to a string in the claims the
    # function gets: 123 arrives as "123") is no owner under the one rule
    for event in (http_event("GET", "/tasks"), json_post("/tasks", {"taskId": "t1", "answer": "42"})):
        # When it lists or submits
        status, body, _ = call(signed_in(event, owner), lambda_context)

        # Then 401, and nothing was stored
        assert status == HTTPStatus.UNAUTHORIZED
        assert "white space" in body["message"]
    assert owner_scoped_aws.dynamodb.scan(TableName=owner_scoped_aws.task_table)["Items"] == []


def test_the_owner_is_the_sub_of_the_token_api_gateway_verified(
    jwt_env: dict[str, str], owner_scoped_aws: Aws, lambda_context: FakeLambdaContext
) -> None:
    # Given claims that do not match the token in the Authorization header (an integration that
    # forged the claims, or a header swapped after the authorizer ran)
    event = signed_in(http_event("GET", "/tasks"), ALICE)
    event["requestContext"]["authorizer"]["jwt"]["claims"]["sub"] = BOB

    # Then nobody is served
    assert call(event, lambda_context)[0] == HTTPStatus.UNAUTHORIZED


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
    assert get_item(owner_scoped_aws, "a1", owner=ALICE)[table_schema.TASK_OWNER] == ALICE

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
    item = get_item(owner_scoped_aws, "a1", owner=ALICE)
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


def test_two_owners_use_the_same_task_id_independently(
    jwt_env: dict[str, str], owner_scoped_aws: Aws, lambda_context: FakeLambdaContext
) -> None:
    # Given Alice's task "shared-id"
    alice_body = {"taskId": "shared-id", "answer": "alice private answer"}
    assert call(as_owner(ALICE, json_post("/tasks", alice_body)), lambda_context)[0] == HTTPStatus.ACCEPTED

    # When Bob submits the same id with his own body, reads it, lists, and retries it
    status, created, _ = call(
        as_owner(BOB, json_post("/tasks", {"taskId": "shared-id", "answer": "bob"})), lambda_context
    )
    _, read, _ = call(as_owner(BOB, http_event("GET", "/tasks/shared-id")), lambda_context)
    _, listed, _ = call(as_owner(BOB, http_event("GET", "/tasks")), lambda_context)
    set_status(owner_scoped_aws, "shared-id", "error", owner=BOB)
    retried = call(as_owner(BOB, http_event("POST", "/tasks/shared-id/retry")), lambda_context)

    # Then every answer is about his own task, and Alice's is untouched
    assert status == HTTPStatus.ACCEPTED
    assert created["answer"] == read["answer"] == "bob"
    assert [(task["taskId"], task["answer"]) for task in listed] == [("shared-id", "bob")]
    assert (retried[0], retried[1]["run"]) == (HTTPStatus.ACCEPTED, 2)
    alice = get_item(owner_scoped_aws, "shared-id", owner=ALICE)
    assert (alice["answer"], alice["status"], alice["run"]) == ("alice private answer", "pending", 1)
    assert "alice private answer" not in json.dumps([created, read, listed, retried[1]])


def test_an_id_taken_first_by_another_owner_is_still_free_for_its_owner(
    jwt_env: dict[str, str], owner_scoped_aws: Aws, lambda_context: FakeLambdaContext
) -> None:
    # Given Bob squatting an id Alice is known to use next
    squat = call(
        as_owner(BOB, json_post("/tasks", {"taskId": "alice-task-99", "answer": "bob"})), lambda_context
    )

    # When Alice submits it, with a different body, twice
    body = {"taskId": "alice-task-99", "answer": "alice"}
    first = call(as_owner(ALICE, json_post("/tasks", body)), lambda_context)
    again = call(as_owner(ALICE, json_post("/tasks", body)), lambda_context)

    # Then she gets her own task (and the idempotent answer the second time), never a 409
    assert squat[0] == first[0] == again[0] == HTTPStatus.ACCEPTED
    assert first[1]["answer"] == "alice"
    assert again[1] == first[1]
    assert get_item(owner_scoped_aws, "alice-task-99", owner=BOB)["answer"] == "bob"


def test_same_owner_resubmitting_the_same_body_gets_the_existing_task(
    jwt_env: dict[str, str], lambda_context: FakeLambdaContext
) -> None:
    body = {"taskId": "a1", "answer": "x"}
    first = call(as_owner(ALICE, json_post("/tasks", body)), lambda_context)

    second = call(as_owner(ALICE, json_post("/tasks", body)), lambda_context)

    assert (first[0], second[0]) == (HTTPStatus.ACCEPTED, HTTPStatus.ACCEPTED)
    assert second[1] == first[1]


def test_created_task_is_keyed_and_listed_under_its_owner(
    jwt_env: dict[str, str], owner_scoped_aws: Aws, lambda_context: FakeLambdaContext
) -> None:
    call(as_owner(ALICE, json_post("/tasks", {"taskId": "a1", "answer": "x"})), lambda_context)

    item = get_item(owner_scoped_aws, "a1", owner=ALICE)

    assert item[table_schema.TASK_PK] == f"{ALICE}#a1"
    assert item[table_schema.TASK_OWNER] == ALICE
    shard = table_schema.shard_of("a1", table_schema.DEFAULT_LIST_SHARDS)
    assert item[table_schema.TASKS_BY_CREATED_PK] == table_schema.list_key(ALICE, shard)
    assert table_schema.TASKS_BY_FINISHED_PK not in item  # pending: not in ByFinished
    assert get_item(owner_scoped_aws, "a1") is None  # no task of that id outside Alice's namespace


# --------------------------------------------------------------------------- status filter


def test_status_filter_lists_only_the_callers_tasks_of_that_status(
    jwt_env: dict[str, str], owner_scoped_aws: Aws, lambda_context: FakeLambdaContext
) -> None:
    # Given tasks in error for both owners
    seed(owner_scoped_aws, ALICE, ["a1", "a2", "a3"], start=0)
    seed(owner_scoped_aws, BOB, ["b1", "a2"], start=10)
    for owner, task_id in ((ALICE, "a1"), (ALICE, "a3"), (BOB, "b1"), (BOB, "a2")):
        set_status(owner_scoped_aws, task_id, "error", owner=owner)

    # When Alice lists her tasks in error
    status, tasks, _ = call(
        as_owner(ALICE, http_event("GET", "/tasks", query={"status": "error"})), lambda_context
    )

    # Then she gets hers only, newest first
    assert status == HTTPStatus.OK
    assert listed_ids(tasks) == ["a3", "a1"]


def test_sparse_pending_filter_pages_may_be_short_or_empty_but_link_to_the_rest(
    jwt_env: dict[str, str], owner_scoped_aws: Aws, lambda_context: FakeLambdaContext
) -> None:
    # Given 12 tasks of Alice, 3 of them still pending, and a read bound of 4 items per request
    ids = [f"a{index:02d}" for index in range(12)]
    seed(owner_scoped_aws, ALICE, ids)
    pending = ["a00", "a01", "a09"]
    for task_id in set(ids) - set(pending):
        set_status(owner_scoped_aws, task_id, "success")
    use_repository(max_filter_evaluated=4)

    # When she follows the pages of her pending tasks
    pages = follow_pages(lambda_context, ALICE, {"status": "pending", "limit": "2"})

    # Then some page came back short (even empty) with a next link, and none was lost or repeated
    assert [task_id for page in pages for task_id in listed_ids(page)] == list(reversed(pending))
    assert any(len(page) < 2 for page in pages[:-1])
    assert [] in pages[:-1]
    assert all(task["status"] == "pending" for page in pages for task in page)


def test_pending_filter_reads_a_bounded_number_of_items_per_request(
    jwt_env: dict[str, str], owner_scoped_aws: Aws, lambda_context: FakeLambdaContext
) -> None:
    # Given 40 tasks of Alice, none pending, and a read bound of 10 items
    ids = [f"a{index:02d}" for index in range(40)]
    seed(owner_scoped_aws, ALICE, ids)
    for task_id in ids:
        set_status(owner_scoped_aws, task_id, "success")
    counting = ReadRecorder(owner_scoped_aws.dynamodb)
    use_repository(client=counting, max_filter_evaluated=10)

    # When she asks for her pending tasks
    status, tasks, headers = call(
        as_owner(ALICE, http_event("GET", "/tasks", query={"status": "pending", "limit": "5"})),
        lambda_context,
    )

    # Then the request read at most 10 items, answered an empty page, and links onwards
    assert (status, tasks) == (HTTPStatus.OK, [])
    assert 0 < counting.items_read <= 10
    assert next_query(headers) is not None


def test_finished_listing_is_most_recently_finished_first(
    jwt_env: dict[str, str], owner_scoped_aws: Aws, lambda_context: FakeLambdaContext
) -> None:
    # Given three tasks created a1, a2, a3 that finished in the order a2, a3, a1
    seed(owner_scoped_aws, ALICE, ["a1", "a2", "a3"])
    repository = TaskRepository(owner_scoped_aws.task_table, client=owner_scoped_aws.dynamodb)
    for task_id in ("a2", "a3", "a1"):
        assert repository.claim(task_id, 1, "m", 60, owner=ALICE, delivery="d1").task is not None
        assert repository.record_success(task_id, 1, "m", 0, owner=ALICE, delivery="d1")

    # When she pages through her tasks in success, one at a time
    pages = follow_pages(lambda_context, ALICE, {"status": "success", "limit": "1"})

    # Then they come most recently finished first, each once
    assert [task_id for page in pages for task_id in listed_ids(page)] == ["a1", "a3", "a2"]


def test_unfiltered_owner_listing_fills_a_page_of_big_tasks(
    jwt_env: dict[str, str], owner_scoped_aws: Aws, lambda_context: FakeLambdaContext
) -> None:
    # Tasks of ~300 KB each: the page's BatchGetItem reads items that no single Query could return
    repository = TaskRepository(owner_scoped_aws.task_table, client=owner_scoped_aws.dynamodb)
    for index in range(8):
        task = new_task(
            TaskSubmission(answer="x"), f"big-{index}", T0 + timedelta(seconds=index), owner=ALICE
        )
        repository.create(replace(task, payload={"blob": "b" * 300_000}))

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


def position(**changes: str) -> dict[str, str]:
    return {"at": CREATED, "taskId": "a1", "listing": "all", "scope": ALICE, **changes}


@pytest.mark.parametrize(
    "key",
    [
        {"taskId": "a1", "listPartition": "TASK", "createdAt": CREATED},
        {"taskId": "a1", "owner": ALICE, "createdAt": CREATED},
        position(scope=BOB),
        position(scope="*"),
        position(at="yesterday"),
        position(taskId="a/1"),
        position(extra="x"),
        {"at": CREATED, "taskId": "a1", "scope": ALICE},
    ],
    ids=[
        "old-none-stage",
        "old-owner",
        "other-owner",
        "none-scope",
        "bad-time",
        "bad-id",
        "extra-key",
        "missing-key",
    ],
)
def test_forged_or_foreign_cursor_is_422_never_a_dynamodb_error(
    jwt_env: dict[str, str], owner_scoped_aws: Aws, lambda_context: FakeLambdaContext, key: dict[str, str]
) -> None:
    seed(owner_scoped_aws, ALICE, ["a1"])

    for query in (
        {"cursor": encode_cursor(key)},
        {"cursor": encode_cursor(key), "status": "error"},
        {"cursor": encode_cursor(key), "status": "pending"},
    ):
        status, error, _ = call(as_owner(ALICE, http_event("GET", "/tasks", query=query)), lambda_context)

        assert status == HTTPStatus.UNPROCESSABLE_ENTITY, error
        assert [e["field"] for e in error["errors"]] == ["cursor"]


def test_cursor_of_an_owner_listing_names_the_callers_listing_and_position(
    jwt_env: dict[str, str], owner_scoped_aws: Aws, lambda_context: FakeLambdaContext
) -> None:
    seed(owner_scoped_aws, ALICE, ["a1", "a2"])

    _, _, headers = call(as_owner(ALICE, http_event("GET", "/tasks", query={"limit": "1"})), lambda_context)
    query = next_query(headers)

    assert query is not None
    assert decode_cursor(query["cursor"]) == {
        "at": utc_timestamp(T0 + timedelta(seconds=1)),
        "taskId": "a2",
        "listing": "all",
        "scope": ALICE,
    }


# --------------------------------------------------------------------------- layers underneath


def test_repository_reads_are_scoped_to_the_owner_given(owner_scoped_aws: Aws) -> None:
    seed(owner_scoped_aws, ALICE, ["a1"])
    repository = TaskRepository(owner_scoped_aws.task_table, client=owner_scoped_aws.dynamodb)

    assert repository.get("a1", owner=BOB) is None
    assert repository.get("a1", owner=ALICE) is not None
    assert repository.list_page(limit=10, owner=BOB).tasks == []
    with pytest.raises(InvalidCursorError):
        repository.list_page(limit=10, owner=BOB, start_key=position())


def test_repository_keeps_two_owners_tasks_of_one_id_apart(owner_scoped_aws: Aws) -> None:
    seed(owner_scoped_aws, ALICE, ["same"])
    seed(owner_scoped_aws, BOB, ["same"], start=5)
    set_status(owner_scoped_aws, "same", "error", owner=ALICE)
    repository = TaskRepository(owner_scoped_aws.task_table, client=owner_scoped_aws.dynamodb)

    assert repository.retry("same", owner=ALICE).run == 2
    bobs = repository.get("same", owner=BOB)
    assert bobs is not None
    assert (bobs.owner, bobs.status, bobs.run) == (BOB, TaskStatus.PENDING, 1)
    assert repository.get("same") is None  # the auth: none key of that id is another task


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
    item = get_item(moto_aws, "a1")
    assert table_schema.TASK_OWNER not in item
    assert item[table_schema.TASK_PK] == "a1"
    shard = table_schema.shard_of("a1", table_schema.DEFAULT_LIST_SHARDS)
    assert item[table_schema.TASKS_BY_CREATED_PK] == table_schema.list_key(table_schema.SCOPE_ALL, shard)


# --------------------------------------------------------------------------- helpers


class ReadRecorder:
    """Delegates to a real DynamoDB client and counts the items BatchGetItem read."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.items_read = 0

    def batch_get_item(self, **kwargs: Any) -> Any:
        response = self._client.batch_get_item(**kwargs)
        self.items_read += sum(len(items) for items in response.get("Responses", {}).values())
        return response

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)
