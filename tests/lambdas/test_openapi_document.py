"""The HTTP API's OpenAPI document: generated from the resolver, served at GET /openapi.json, kept
in docs/openapi.json, and true to what the handler answers."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from http import HTTPStatus
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from jsonschema import Draft202012Validator
from lambda_support import REGION, Aws, FakeLambdaContext, http_event, json_post, signed_in

from taskflow import table_schema
from taskflow.api import app as api_app
from taskflow.api import openapi
from taskflow.api.response_bodies import TaskView
from taskflow.auth_contract import AUTH_JWT
from taskflow.domain.limits import MAX_ANSWER_LENGTH
from taskflow.domain.submission import TaskSubmission
from taskflow.domain.task import new_task
from taskflow.handlers import http_api
from taskflow.repositories.task_repository import TaskRepository
from taskflow.services.task_service import TaskService

DOCUMENT_FILE = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"
T0 = datetime(2026, 11, 25, 23, 0, tzinfo=UTC)


def committed_document() -> dict[str, Any]:
    return dict(json.loads(DOCUMENT_FILE.read_text(encoding="utf-8")))


def call(event: dict[str, Any], context: FakeLambdaContext) -> dict[str, Any]:
    return dict(http_api.handler(event, context))


# --------------------------------------------------------------------------- the document


def test_docs_openapi_json_is_what_the_code_generates() -> None:
    generated = openapi.render(openapi.build_document(openapi.document_app()))

    assert DOCUMENT_FILE.read_text(encoding="utf-8") == generated, (
        "docs/openapi.json is out of date with the HTTP API's routes: run `make openapi` and commit it"
    )


def test_get_openapi_json_serves_the_document(
    offline_env: dict[str, str], lambda_context: FakeLambdaContext
) -> None:
    response = call(http_event("GET", "/openapi.json"), lambda_context)

    assert response["statusCode"] == HTTPStatus.OK
    assert response["headers"]["Content-Type"] == "application/json"
    assert json.loads(response["body"]) == committed_document()


def test_document_is_built_on_its_first_request_only(
    offline_env: dict[str, str], lambda_context: FakeLambdaContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    builds: list[object] = []
    real_build = openapi.build_document

    def counting_build(app: Any, **options: Any) -> dict[str, Any]:
        builds.append(app)
        return real_build(app, **options)

    monkeypatch.setattr(openapi, "build_document", counting_build)

    call(http_event("GET", "/tasks/not-there-yet", headers={"x": "cold start"}), lambda_context)
    assert builds == []  # a cold start (and any other route) does not pay for the document
    first = call(http_event("GET", "/openapi.json"), lambda_context)["body"]
    second = call(http_event("GET", "/openapi.json"), lambda_context)["body"]

    assert len(builds) == 1
    assert first == second


def test_task_view_has_exactly_the_keys_of_a_public_task() -> None:
    task = new_task(TaskSubmission(answer="x"), "t1", T0)
    schema = TaskView.model_json_schema(by_alias=True, mode="serialization")

    assert set(schema["properties"]) == set(task.to_public())
    assert set(schema["required"]) == set(task.to_public())
    TaskView.model_validate(task.to_public())


def test_the_405_table_lists_exactly_the_documented_operations() -> None:
    documented = {
        path: {method.upper() for method in operations}
        for path, operations in committed_document()["paths"].items()
    }
    as_patterns = {
        re.sub(r"\{[^}]+\}", "[^/]+", path).replace(".", r"\."): m for path, m in documented.items()
    }

    assert as_patterns == dict(api_app.ROUTES)


def test_post_tasks_documents_the_body_the_route_reads() -> None:
    operation = committed_document()["paths"]["/tasks"]["post"]
    schemas = committed_document()["components"]["schemas"]

    body = operation["requestBody"]
    assert body["required"] is True
    assert body["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/TaskSubmission"}
    submission = schemas["TaskSubmission"]
    assert submission["required"] == ["answer"]
    assert submission["properties"]["answer"]["maxLength"] == MAX_ANSWER_LENGTH
    assert submission["properties"]["taskId"]["anyOf"][0]["pattern"] == r"^[A-Za-z0-9_-]{1,64}$"
    assert "additionalProperties" not in submission  # the frontend's status/retries are ignored


def test_no_route_documents_powertools_own_validation_error_shape() -> None:
    text = DOCUMENT_FILE.read_text(encoding="utf-8")

    assert "HTTPValidationError" not in text
    assert '"ValidationError"' not in text


def test_a_reference_to_a_missing_component_fails_the_build(
    offline_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(openapi, "REQUEST_MODELS", ())

    with pytest.raises(ValueError, match="TaskSubmission"):
        openapi.build_document(openapi.document_app())


# --------------------------------------------------------------------------- answers as documented


class DocumentedResponses:
    """Checks a handler response against the operation's documented response."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document

    def check(self, method: str, path: str, response: dict[str, Any]) -> None:
        operation = self.document["paths"][path][method.lower()]
        status = str(response["statusCode"])
        assert status in operation["responses"], f"{method} {path} answered an undocumented {status}"
        documented = operation["responses"][status]
        headers = {name.lower(): value for name, value in response.get("headers", {}).items()}
        for name, spec in documented.get("headers", {}).items():
            value = headers.get(name.lower())
            if spec.get("required"):
                assert value is not None, f"{method} {path} {status} lacks the {name} header"
            if value is not None:
                self._validate(spec["schema"], int(value) if spec["schema"]["type"] == "integer" else value)
        media = headers["content-type"].split(";")[0]
        assert media in documented["content"], f"{method} {path} {status} answered {media}"
        self._validate(documented["content"][media]["schema"], json.loads(response["body"]))

    def _validate(self, schema: dict[str, Any], instance: Any) -> None:
        # The response schemas refer to '#/components/...': resolve them inside this root.
        Draft202012Validator({**schema, "components": self.document["components"]}).validate(instance)


def _seed(moto_aws: Aws, task_id: str, status: str = "pending") -> None:
    TaskRepository(moto_aws.task_table, client=moto_aws.dynamodb).create(
        new_task(TaskSubmission(answer="seeded"), task_id, T0)
    )
    if status != "pending":
        moto_aws.dynamodb.update_item(
            TableName=moto_aws.task_table,
            Key={table_schema.TASK_PK: {"S": task_id}},
            UpdateExpression="SET #s = :s, errorMessage = :m",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={":s": {"S": status}, ":m": {"S": "boom"}},
        )


@dataclass(frozen=True)
class Scenario:
    method: str
    path: str  # as documented
    event: Callable[[], dict[str, Any]]
    status: HTTPStatus


JSON = {"content-type": "application/json"}
SCENARIOS = {
    "submitted": Scenario(
        "POST", "/tasks", lambda: json_post("/tasks", {"taskId": "new", "answer": "x"}), HTTPStatus.ACCEPTED
    ),
    "resubmitted with another body": Scenario(
        "POST",
        "/tasks",
        lambda: json_post("/tasks", {"taskId": "p1", "answer": "other"}),
        HTTPStatus.CONFLICT,
    ),
    "broken JSON": Scenario(
        "POST", "/tasks", lambda: http_event("POST", "/tasks", body="{", headers=JSON), HTTPStatus.BAD_REQUEST
    ),
    "too large": Scenario(
        "POST",
        "/tasks",
        lambda: http_event("POST", "/tasks", body="x" * 40_000, headers=JSON),
        HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
    ),
    "not JSON": Scenario(
        "POST",
        "/tasks",
        lambda: http_event("POST", "/tasks", body="a", headers={"content-type": "text/plain"}),
        HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
    ),
    "invalid submission": Scenario(
        "POST", "/tasks", lambda: json_post("/tasks", {"answer": ""}), HTTPStatus.UNPROCESSABLE_ENTITY
    ),
    "listed with a next page": Scenario(
        "GET", "/tasks", lambda: http_event("GET", "/tasks", query={"limit": "1"}), HTTPStatus.OK
    ),
    "listed with a bad limit": Scenario(
        "GET",
        "/tasks",
        lambda: http_event("GET", "/tasks", query={"limit": "0"}),
        HTTPStatus.UNPROCESSABLE_ENTITY,
    ),
    "read": Scenario("GET", "/tasks/{taskId}", lambda: http_event("GET", "/tasks/p1"), HTTPStatus.OK),
    "read unknown": Scenario(
        "GET", "/tasks/{taskId}", lambda: http_event("GET", "/tasks/nope"), HTTPStatus.NOT_FOUND
    ),
    "read an id no route carries": Scenario(
        "GET", "/tasks/{taskId}", lambda: http_event("GET", "/tasks/\u20ac"), HTTPStatus.NOT_FOUND
    ),
    "retried": Scenario(
        "POST", "/tasks/{taskId}/retry", lambda: http_event("POST", "/tasks/e1/retry"), HTTPStatus.ACCEPTED
    ),
    "retried while pending": Scenario(
        "POST", "/tasks/{taskId}/retry", lambda: http_event("POST", "/tasks/p1/retry"), HTTPStatus.CONFLICT
    ),
    "retried unknown": Scenario(
        "POST", "/tasks/{taskId}/retry", lambda: http_event("POST", "/tasks/nope/retry"), HTTPStatus.NOT_FOUND
    ),
    "document": Scenario("GET", "/openapi.json", lambda: http_event("GET", "/openapi.json"), HTTPStatus.OK),
}


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_every_answer_is_a_documented_status_with_its_documented_body_and_headers(
    function_env: dict[str, str], moto_aws: Aws, lambda_context: FakeLambdaContext, name: str
) -> None:
    scenario = SCENARIOS[name]
    _seed(moto_aws, "p1")
    _seed(moto_aws, "e1", status="error")

    response = call(scenario.event(), lambda_context)

    assert response["statusCode"] == scenario.status, response.get("body")
    DocumentedResponses(committed_document()).check(scenario.method, scenario.path, response)


@pytest.mark.parametrize(
    ("method", "path", "event", "dynamodb_call"),
    [
        ("POST", "/tasks", lambda: json_post("/tasks", {"answer": "x"}), "put_item"),
        ("GET", "/tasks", lambda: http_event("GET", "/tasks"), "query"),
        ("GET", "/tasks/{taskId}", lambda: http_event("GET", "/tasks/t1"), "get_item"),
        ("POST", "/tasks/{taskId}/retry", lambda: http_event("POST", "/tasks/t1/retry"), "update_item"),
    ],
)
def test_dynamodb_down_is_the_documented_503_on_every_task_route(
    offline_env: dict[str, str],
    lambda_context: FakeLambdaContext,
    method: str,
    path: str,
    event: Callable[[], dict[str, Any]],
    dynamodb_call: str,
) -> None:
    client = boto3.client("dynamodb", region_name=REGION)
    stubber = Stubber(client)
    stubber.add_client_error(dynamodb_call, service_error_code="ThrottlingException", http_status_code=400)
    stubber.activate()
    http_api.service.override(
        TaskService(TaskRepository("TaskTable", client=client), stage="test", allow_fault_injection=True)
    )

    response = call(event(), lambda_context)

    assert response["statusCode"] == HTTPStatus.SERVICE_UNAVAILABLE
    DocumentedResponses(committed_document()).check(method, path, response)


# --------------------------------------------------------------------------- stages with auth: jwt


def jwt_document() -> dict[str, Any]:
    return openapi.build_document(openapi.document_app(), auth_mode=AUTH_JWT)


def test_none_stage_document_declares_no_authentication() -> None:
    document = committed_document()

    assert "security" not in document
    assert "securitySchemes" not in document["components"]
    assert not [op for path in document["paths"].values() for op in path.values() if "401" in op["responses"]]


def test_jwt_stage_document_requires_a_bearer_jwt_on_every_operation() -> None:
    document = jwt_document()

    assert document["components"]["securitySchemes"] == {
        "bearerAuth": {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": document["components"]["securitySchemes"]["bearerAuth"]["description"],
        }
    }
    assert document["security"] == [{"bearerAuth": []}]
    operations = [op for path in document["paths"].values() for op in path.values()]
    assert len(operations) == 5
    for operation in operations:
        unauthorized = operation["responses"]["401"]
        assert unauthorized["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/ErrorBody"
        }
    assert "Bearer" in document["info"]["description"]


def test_jwt_stage_document_differs_from_the_none_one_only_by_authentication() -> None:
    document, committed = jwt_document(), committed_document()
    for path_item in document["paths"].values():
        for operation in path_item.values():
            del operation["responses"]["401"]

    assert document["paths"] == committed["paths"]
    assert document["components"]["schemas"] == committed["components"]["schemas"]


def test_get_openapi_json_on_a_jwt_stage_serves_that_stages_document(
    jwt_env: dict[str, str], lambda_context: FakeLambdaContext
) -> None:
    response = call(signed_in(http_event("GET", "/openapi.json"), "alice"), lambda_context)

    assert response["statusCode"] == HTTPStatus.OK
    assert json.loads(response["body"]) == jwt_document()


JWT_SCENARIOS = {
    "no claims": ("GET", "/tasks", lambda: http_event("GET", "/tasks"), HTTPStatus.UNAUTHORIZED),
    "submit without claims": (
        "POST",
        "/tasks",
        lambda: json_post("/tasks", {"answer": "x"}),
        HTTPStatus.UNAUTHORIZED,
    ),
    "another owner's task": (
        "GET",
        "/tasks/{taskId}",
        lambda: signed_in(http_event("GET", "/tasks/owned"), "bob"),
        HTTPStatus.NOT_FOUND,
    ),
    "own id submitted with another body": (
        "POST",
        "/tasks",
        lambda: signed_in(json_post("/tasks", {"taskId": "owned", "answer": "changed"}), "alice"),
        HTTPStatus.CONFLICT,
    ),
    "own list": ("GET", "/tasks", lambda: signed_in(http_event("GET", "/tasks"), "alice"), HTTPStatus.OK),
}


@pytest.mark.parametrize("name", sorted(JWT_SCENARIOS))
def test_every_answer_on_a_jwt_stage_is_documented_in_its_document(
    jwt_env: dict[str, str], owner_scoped_aws: Aws, lambda_context: FakeLambdaContext, name: str
) -> None:
    method, path, event, status = JWT_SCENARIOS[name]
    TaskRepository(owner_scoped_aws.task_table, client=owner_scoped_aws.dynamodb).create(
        new_task(TaskSubmission(answer="seeded"), "owned", T0, owner="alice")
    )

    response = call(event(), lambda_context)

    assert response["statusCode"] == status, response.get("body")
    DocumentedResponses(jwt_document()).check(method, path, response)
