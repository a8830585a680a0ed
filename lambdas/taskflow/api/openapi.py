"""The HTTP API's OpenAPI 3.1 document, generated from the resolver's routes.

Powertools generates the paths, operations and parameters from the routes (the query and path
parameters are the same annotations that validate them). What Powertools cannot infer is declared
on each route in taskflow.api.app and referenced here by name:

* the POST /tasks body, read by taskflow.api.request_body.read_model (size, content type and JSON
  checks come before the model, so Powertools' own body validation is not used): the route names
  it in `openapi_extensions={"requestBody": ...}`, pointing at the TaskSubmission component;
* every status a route can answer, with its headers and body (`responses=`), pointing at the
  models of taskflow.api.response_bodies.

`build_document` adds those models' JSON schemas (pydantic, the same models that validate) as
components, and removes what Powertools adds on its own but this API never sends: a 422 with
Powertools' `HTTPValidationError` body on every route (this API's 422 body is ValidationErrorBody,
declared by the routes whose input can be invalid), and the component schemas nothing refers to
any more. It fails on a reference to a component that does not exist.

On a stage with `auth: jwt` (`build_document(app, auth_mode="jwt")`) the document also declares
the bearer token: a `bearerAuth` security scheme (HTTP bearer, JWT), required globally, and a 401
response on every operation. With `auth: none` it has none of that.

The HTTP function serves the document at GET /openapi.json, built on the first request (so cold
starts do not pay for it), for its own stage. The repository keeps a copy, the `auth: none` one, in
docs/openapi.json:

    make openapi     # PYTHONPATH=lambdas python -m taskflow.api.openapi --output docs/openapi.json
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, cast

from taskflow.api.request_body import JSON_MEDIA_TYPE, MAX_BODY_BYTES
from taskflow.auth_contract import AUTH_JWT, AUTH_NONE, OWNER_CLAIM, TOKEN_HEADER, AuthMode
from taskflow.domain.limits import (
    MAX_ANSWER_LENGTH,
    MAX_PAYLOAD_BYTES,
    MAX_PAYLOAD_DEPTH,
    TASK_ID_PATTERN,
)
from taskflow.domain.submission import TaskSubmission

if TYPE_CHECKING:
    from aws_lambda_powertools.event_handler import APIGatewayHttpResolver
    from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
    from pydantic import BaseModel

TITLE: Final = "Task backend HTTP API"
API_VERSION: Final = "1.0.0"
DOCUMENT_PATH: Final = "/openapi.json"
COMPONENT_REF: Final = "#/components/schemas/{model}"
POWERTOOLS_VALIDATION_ERROR: Final = "HTTPValidationError"
# The request bodies the routes read themselves (so Powertools cannot infer them).
REQUEST_MODELS: Final[tuple[type[BaseModel], ...]] = (TaskSubmission,)

DESCRIPTION: Final = f"""\
Accepts tasks, processes them asynchronously with retries, and pushes every status change to
WebSocket clients. Every error body is JSON with a human-readable `message`.

Limits: a request body of at most {MAX_BODY_BYTES} bytes (413), JSON only (415), `answer` 1 to
{MAX_ANSWER_LENGTH} characters, `payload` a JSON object of at most {MAX_PAYLOAD_BYTES} bytes as
compact JSON nested at most {MAX_PAYLOAD_DEPTH} levels, numbers DynamoDB can store (422).

API Gateway itself answers 429 `{{"message": "Too Many Requests"}}` when the stage's throttle
is exceeded, and applies the CORS policy of the stage (allowed origins get
`Access-Control-Allow-Origin`; no credentials).
"""


# Stages with `auth: jwt` only.
SECURITY_SCHEME: Final = "bearerAuth"
AUTH_DESCRIPTION: Final = f"""
Authentication: every request needs `{TOKEN_HEADER}: Bearer <JWT>`, a token of this stage's
issuer and audience (API Gateway verifies it and answers 401 `{{"message": "Unauthorized"}}`
otherwise). Each caller (the token's `{OWNER_CLAIM}`) sees only its own tasks: another caller's task
is answered 404, like an unknown id. The WebSocket takes the same token as `?token=<JWT>`.
"""
UNAUTHENTICATED_STATUS: Final = "401"


def component(model: str) -> dict[str, str]:
    """A JSON schema referring to the component of the model named `model`: one of REQUEST_MODELS
    or taskflow.api.response_bodies.RESPONSE_MODELS (build_document fails on any other name).

    By name, so that importing the routes does not build the response models: a cold start pays
    nothing for the document."""
    return {"$ref": COMPONENT_REF.format(model=model)}


def json_request_body(model: str, description: str) -> dict[str, Any]:
    """An OpenAPI requestBody for a route's `openapi_extensions`."""
    return {
        "description": description,
        "required": True,
        "content": {JSON_MEDIA_TYPE: {"schema": component(model)}},
    }


def json_response(
    description: str, schema: Mapping[str, Any], headers: Mapping[str, Any] | None = None
) -> OpenAPIResponse:
    """An OpenAPI response for a route's `responses=`: a JSON body and its headers."""
    response: dict[str, Any] = {
        "description": description,
        "content": {JSON_MEDIA_TYPE: {"schema": dict(schema)}},
    }
    if headers:
        response["headers"] = dict(headers)
    # Powertools' TypedDict has no `required` for headers, which OpenAPI allows (and this API uses).
    return cast("OpenAPIResponse", response)


def header(description: str, schema: Mapping[str, Any], *, required: bool) -> dict[str, Any]:
    return {"description": description, "required": required, "schema": dict(schema)}


LOCATION_HEADER: Final = {
    "Location": header(
        "the task's own URL",
        {"type": "string", "pattern": "^/tasks/" + TASK_ID_PATTERN.removeprefix("^")},
        required=True,
    )
}
LINK_HEADER: Final = {
    "Link": header(
        'the next page (RFC 8288), only when there is one: `</tasks?limit=..&cursor=..>; rel="next"`',
        {"type": "string", "pattern": r'^</tasks\?[^>]*cursor=[^>]+>; rel="next"$'},
        required=False,
    )
}
RETRY_AFTER_HEADER: Final = {
    "Retry-After": header("seconds to wait before retrying", {"type": "integer", "minimum": 1}, required=True)
}


def list_of(model: str) -> dict[str, Any]:
    return {"type": "array", "items": component(model)}


def build_document(app: APIGatewayHttpResolver, *, auth_mode: AuthMode = AUTH_NONE) -> dict[str, Any]:
    """The OpenAPI document of `app` on a stage with `auth_mode` (see the module docstring)."""
    description = DESCRIPTION + AUTH_DESCRIPTION if auth_mode == AUTH_JWT else DESCRIPTION
    document: dict[str, Any] = json.loads(
        app.get_openapi_json_schema(title=TITLE, version=API_VERSION, description=description)
    )
    for operation in _operations(document):
        responses = operation.get("responses", {})
        for status in [s for s, r in responses.items() if _is_powertools_validation_error(r)]:
            del responses[status]
    if auth_mode == AUTH_JWT:
        _require_bearer_token(document)
    schemas: dict[str, Any] = document.setdefault("components", {}).setdefault("schemas", {})
    for name, schema in _model_schemas().items():
        if name in schemas and schemas[name] != schema:
            raise ValueError(f"two different component schemas are named {name!r}")
        schemas[name] = schema
    referenced = _referenced_components(document)
    missing = referenced - schemas.keys()
    if missing:
        raise ValueError(f"the document refers to components that do not exist: {sorted(missing)}")
    document["components"]["schemas"] = {name: schemas[name] for name in sorted(referenced)}
    return document


def _require_bearer_token(document: dict[str, Any]) -> None:
    """Declare the JWT bearer scheme, require it on every operation and document its 401."""
    document.setdefault("components", {})["securitySchemes"] = {
        SECURITY_SCHEME: {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": f"a JWT of this stage's issuer and audience; its `{OWNER_CLAIM}` owns the tasks",
        }
    }
    document["security"] = [{SECURITY_SCHEME: []}]
    unauthenticated = json_response(
        "no valid bearer token (API Gateway), or a token without a `sub` claim", component("ErrorBody")
    )
    for operation in _operations(document):
        responses = operation.setdefault("responses", {})
        responses[UNAUTHENTICATED_STATUS] = dict(unauthenticated)
        operation["responses"] = {status: responses[status] for status in sorted(responses)}


def _operations(document: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    for path_item in document.get("paths", {}).values():
        yield from (value for value in path_item.values() if isinstance(value, dict))


def _is_powertools_validation_error(response: Mapping[str, Any]) -> bool:
    schemas = [media.get("schema") for media in response.get("content", {}).values()]
    return schemas == [{"$ref": COMPONENT_REF.format(model=POWERTOOLS_VALIDATION_ERROR)}]


def _model_schemas() -> dict[str, Any]:
    """JSON schemas of the request models (as validated) and response models (as serialized)."""
    from pydantic.json_schema import models_json_schema  # noqa: PLC0415 - only when building

    from taskflow.api.response_bodies import RESPONSE_MODELS  # noqa: PLC0415

    models = [(model, "validation") for model in REQUEST_MODELS]
    models += [(model, "serialization") for model in RESPONSE_MODELS]
    _, definitions = models_json_schema(models, ref_template=COMPONENT_REF)  # type: ignore[arg-type]
    return dict(definitions.get("$defs", {}))


def _refs(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        ref = value.get("$ref")
        if isinstance(ref, str):
            yield ref
        for item in value.values():
            yield from _refs(item)
    elif isinstance(value, list):
        for item in value:
            yield from _refs(item)


def _referenced_components(document: dict[str, Any]) -> set[str]:
    """Names of the component schemas reachable from the paths (through other components too)."""
    prefix = COMPONENT_REF.format(model="")
    schemas = document.get("components", {}).get("schemas", {})
    found: set[str] = set()
    pending = [ref.removeprefix(prefix) for ref in _refs(document.get("paths", {}))]
    while pending:
        name = pending.pop()
        if name in found:
            continue
        found.add(name)
        pending.extend(ref.removeprefix(prefix) for ref in _refs(schemas.get(name, {})))
    return found


def render(document: Mapping[str, Any]) -> str:
    """The document as kept in docs/openapi.json (stable, readable, one trailing newline)."""
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def document_app() -> APIGatewayHttpResolver:
    """The resolver with placeholder settings: routes do not depend on the stage, so neither
    does the document (nothing here reaches AWS)."""
    from taskflow.api.app import create_app  # noqa: PLC0415 - app.py imports this module
    from taskflow.repositories.task_repository import TaskRepository  # noqa: PLC0415
    from taskflow.services.task_service import TaskService  # noqa: PLC0415
    from taskflow.settings import HttpApiSettings  # noqa: PLC0415

    settings = HttpApiSettings(
        stage="openapi",
        task_table_name="unused",
        task_list_shards=1,
        cors_origins=("http://localhost",),
        cors_headers=("Content-Type",),
        allow_fault_injection=True,
    )
    service = TaskService(
        TaskRepository(settings.task_table_name), stage="openapi", allow_fault_injection=True
    )
    return create_app(settings, service)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write the HTTP API's OpenAPI document.")
    parser.add_argument("--output", type=Path, help="file to write (default: standard output)")
    parser.add_argument(
        "--auth",
        choices=[AUTH_NONE, AUTH_JWT],
        default=AUTH_NONE,
        help="the document of a stage with this `auth` (default: none, the one in docs/openapi.json)",
    )
    arguments = parser.parse_args(argv)
    text = render(build_document(document_app(), auth_mode=arguments.auth))
    if arguments.output is None:
        sys.stdout.write(text)
    else:
        arguments.output.write_text(text, encoding="utf-8")
        print(f"wrote {arguments.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
