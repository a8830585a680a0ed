"""Property-based fuzzing of the HTTP API against its own OpenAPI document (schemathesis).

The document is read from the running dev stack (GET /openapi.json, a route of the template like
the task routes), so what is fuzzed is what a deployed stage documents; it must equal
docs/openapi.json. Every operation (the document's own included) gets schema-valid and
schema-violating requests (query, path and bodies; plus schemathesis's coverage cases: boundary
values, missing or wrong content types, methods without a route), each sent with an allowed, a
foreign or no Origin. Every response must:

* not be a server error (not_a_server_error),
* have a documented status code, content type, body schema and headers,
* reject what violates the schema with a 4xx (negative_data_rejection),
* follow the CORS policy: the allowed origin gets its own Access-Control-Allow-Origin and
  `Vary: Origin`, any other origin none, never `*` and never credentials.

Not checked: positive_data_acceptance. A schema-valid body can still be refused, and that is
documented: the payload's byte size, depth and DynamoDB number range are not expressible in the
schema (422), and a reused taskId with another body is a 409.

Budget: MAX_EXAMPLES per operation, deterministic (derandomized, fixed seed), no shrinking, no
example database: about 550 requests, 10 s on two cores.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from http import HTTPStatus
from pathlib import Path
from typing import Any, Final

import pytest
import schemathesis
from e2e_support import Api
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from local.launcher import LocalStackProcess

pytestmark = pytest.mark.e2e

REPO_ROOT = Path(__file__).resolve().parents[2]
ALLOWED_ORIGIN: Final = "http://localhost:4200"  # the dev stage's CORS origin (cdk.json)
FOREIGN_ORIGIN: Final = "https://evil.example"
MAX_EXAMPLES: Final = 100
SEED: Final = 20261126


class CorsViolation(AssertionError):
    pass


def cors_follows_the_origin(ctx: Any, response: Any, case: Any) -> bool | None:
    """A schemathesis check: the CORS headers of any response follow the request's Origin."""
    sent = {name.lower(): value for name, value in (response.request.headers or {}).items()}
    received = {name.lower(): values for name, values in response.headers.items()}

    def header(name: str) -> str | None:
        values = received.get(name)
        return ", ".join(values) if values else None

    origin = sent.get("origin")
    allow_origin = header("access-control-allow-origin")
    if header("access-control-allow-credentials") is not None:
        raise CorsViolation("the API allows credentials")
    if origin == ALLOWED_ORIGIN:
        if allow_origin != ALLOWED_ORIGIN:
            raise CorsViolation(f"allowed origin got Access-Control-Allow-Origin {allow_origin!r}")
        exposed = {h.strip().lower() for h in (header("access-control-expose-headers") or "").split(",")}
        if not {"location", "link"} <= exposed:
            raise CorsViolation(f"Location and Link are not exposed: {exposed}")
    elif allow_origin is not None:
        raise CorsViolation(f"origin {origin!r} got Access-Control-Allow-Origin {allow_origin!r}")
    # The function adds Vary: Origin; a method without a route is answered by the gateway itself.
    from_function = case.method.upper() == case.operation.method.upper()
    if from_function and "origin" not in (header("vary") or "").lower():
        raise CorsViolation("the response does not vary by Origin")
    return None


CHECKS: Final = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
    negative_data_rejection,
    cors_follows_the_origin,
]
_origins: Iterator[str | None] = itertools.cycle([ALLOWED_ORIGIN, FOREIGN_ORIGIN, None])


@pytest.fixture(scope="module")
def served_document(api: Api) -> dict[str, Any]:
    status, _, document = api.request("GET", "/openapi.json")
    assert status == HTTPStatus.OK
    return dict(document)


@pytest.fixture(scope="module")
def api_schema(dev_stack: LocalStackProcess, served_document: dict[str, Any]) -> Any:
    # from_dict, not from_url: schemathesis leaves out the operation its schema was loaded from,
    # and GET /openapi.json is an operation of this API like the others.
    schema = schemathesis.openapi.from_dict(served_document, config=schemathesis.Config(seed=SEED))
    schema.config.update(base_url=dev_stack.http_url, request_timeout=30)
    schema.config.generation.update(
        modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
        max_examples=MAX_EXAMPLES,
        deterministic=True,
        no_shrink=True,
        database="none",
    )
    return schema


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
def test_every_operation_answers_as_documented_and_never_with_a_server_error(case: Any) -> None:
    origin = next(_origins)
    case.call_and_validate(headers={"Origin": origin} if origin else None, checks=CHECKS)


def test_the_stack_serves_the_document_kept_in_the_repository(
    api: Api, served_document: dict[str, Any]
) -> None:
    _, headers, _ = api.request("GET", "/openapi.json")

    assert headers["content-type"] == "application/json"
    assert served_document == json.loads((REPO_ROOT / "docs" / "openapi.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/tasks", None),
        ("GET", "/tasks/no-such-task", None),
        ("POST", "/tasks", {"answer": ""}),
        ("GET", "/openapi.json", None),
    ],
)
def test_a_foreign_origin_gets_no_cors_headers_on_any_answer(
    api: Api, method: str, path: str, body: dict[str, Any] | None
) -> None:
    # The local stack applies the template's CorsConfiguration, as API Gateway does.
    _, foreign, _ = api.request(method, path, body, headers={"Origin": FOREIGN_ORIGIN})
    _, allowed, _ = api.request(method, path, body, headers={"Origin": ALLOWED_ORIGIN})

    assert not [name for name in foreign if name.startswith("access-control-")]
    assert allowed["access-control-allow-origin"] == ALLOWED_ORIGIN
    assert "access-control-allow-credentials" not in allowed
    assert foreign["vary"] == allowed["vary"] == "Origin"


# Regressions of what the fuzzer found (docs/security.md lists them).


@pytest.mark.parametrize("path", ["/tasks/a%0Ab", "/tasks/a%0Ab/retry"])
def test_a_task_id_holding_a_newline_reaches_the_function(api: Api, path: str) -> None:
    # The local gateway's catch-all route did not match a decoded newline, and aiohttp answered
    # its own text/plain 404; API Gateway routes it to {taskId} like any other character.
    method = "POST" if path.endswith("/retry") else "GET"

    status, headers, body = api.request(method, path)

    assert status == HTTPStatus.NOT_FOUND
    assert headers["content-type"] == "application/json"
    assert body["message"]


def test_a_cursor_that_is_not_base64url_is_refused_before_it_makes_a_long_url(api: Api) -> None:
    # A cursor of 1,024 four-byte characters made a 12 KB URL that the HTTP server refused
    # (400, text/plain); the document now says what cursors are: base64url, at most 1,024 characters.
    status, _, body = api.request("GET", "/tasks?cursor=%F0%9F%98%80")

    assert status == HTTPStatus.UNPROCESSABLE_ENTITY
    assert [error["field"] for error in body["errors"]] == ["cursor"]
