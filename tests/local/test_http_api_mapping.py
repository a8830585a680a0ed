"""HTTP API payload format 2.0: the event a function gets, and how its result becomes HTTP."""

import asyncio
import base64
import io
import json

import pytest
from aiohttp.test_utils import TestClient, TestServer

from local.console import Console
from local.gateways.http_api import HttpApiServer, ResponseError, http_event_v2, http_response_v2
from local.gateways.http_routes import RouteTable
from local.runtime.pool import InvocationResult
from local.template.model import HttpApiSpec, HttpRouteSpec

API = HttpApiSpec("Api", "Api", "abc123defg", [], None, "$default")


def event(**overrides):
    arguments = {
        "api": API,
        "account_id": "123456789012",
        "route_key": "GET /tasks/{taskId}",
        "method": "GET",
        "raw_path": "/tasks/t1",
        "raw_query": "limit=5&status=a&status=b",
        "headers": [
            ("Content-Type", "application/json"),
            ("X-Multi", "1"),
            ("x-multi", "2"),
            ("Cookie", "a=1; b=2"),
        ],
        "query": [("limit", "5"), ("status", "a"), ("status", "b")],
        "path_parameters": {"taskId": "t1"},
        "body": b"",
        "source_ip": "127.0.0.1",
        "domain_name": "127.0.0.1:4000",
        "request_id": "req-1",
        "now": 1_800_000_000.123,
    }
    return http_event_v2(**{**arguments, **overrides})


def test_the_function_gets_the_path_percent_decoded_as_http_apis_give_it():
    result = event(raw_path="/tasks/abc%2D1%20%C3%A9", path_parameters={"taskId": "abc-1 \u00e9"})
    assert result["rawPath"] == result["requestContext"]["http"]["path"] == "/tasks/abc-1 \u00e9"


def test_the_event_has_the_v2_shape():
    result = event()
    assert result["version"] == "2.0"
    assert result["routeKey"] == "GET /tasks/{taskId}"
    assert result["rawPath"] == "/tasks/t1"
    assert result["rawQueryString"] == "limit=5&status=a&status=b"
    assert result["headers"] == {"content-type": "application/json", "x-multi": "1,2"}
    assert result["cookies"] == ["a=1", "b=2"]
    assert result["queryStringParameters"] == {"limit": "5", "status": "a,b"}
    assert result["pathParameters"] == {"taskId": "t1"}
    assert "body" not in result
    assert result["isBase64Encoded"] is False
    context = result["requestContext"]
    assert context["http"] == {
        "method": "GET",
        "path": "/tasks/t1",
        "protocol": "HTTP/1.1",
        "sourceIp": "127.0.0.1",
        "userAgent": "",
    }
    assert (context["apiId"], context["stage"], context["requestId"]) == ("abc123defg", "$default", "req-1")
    assert context["timeEpoch"] == 1_800_000_000_123
    assert context["time"] == "15/Jan/2027:08:00:00 +0000"


def test_json_bodies_are_text_and_binary_bodies_base64():
    text = event(method="POST", body=b'{"answer": "42"}')
    assert (text["body"], text["isBase64Encoded"]) == ('{"answer": "42"}', False)
    binary = event(method="POST", body=b"\x89PNG", headers=[("content-type", "image/png")])
    assert binary["isBase64Encoded"] is True
    assert base64.b64decode(binary["body"]) == b"\x89PNG"


def test_a_structured_result_becomes_status_headers_cookies_and_body():
    response = http_response_v2(
        {
            "statusCode": 202,
            "headers": {"Location": "/tasks/t1", "content-type": "application/json"},
            "multiValueHeaders": {"X-Both": ["a", "b"]},
            "cookies": ["s=1; HttpOnly"],
            "body": '{"ok": true}',
        }
    )
    assert response.status == 202
    assert ("Location", "/tasks/t1") in response.headers
    assert ("X-Both", "a") in response.headers
    assert ("X-Both", "b") in response.headers
    assert ("set-cookie", "s=1; HttpOnly") in response.headers
    assert response.body == b'{"ok": true}'


def test_base64_results_are_decoded():
    body = base64.b64encode(b"\x00\x01").decode()
    response = http_response_v2({"statusCode": 200, "body": body, "isBase64Encoded": True})
    assert response.body == b"\x00\x01"


@pytest.mark.parametrize("payload", [{"answer": 42}, "plain", [1, 2], None])
def test_a_result_without_status_code_is_a_200_json_body(payload):
    response = http_response_v2(payload)
    assert response.status == 200
    assert ("content-type", "application/json") in response.headers
    assert json.loads(response.body) == payload


@pytest.mark.parametrize(
    "payload",
    [{"statusCode": "200"}, {"statusCode": 99}, {"statusCode": 200, "body": {"not": "a string"}}],
)
def test_unusable_results_are_rejected(payload):
    with pytest.raises(ResponseError):
        http_response_v2(payload)


ROUTES = RouteTable(
    [
        ("GET /tasks", "list"),
        ("POST /tasks", "submit"),
        ("GET /tasks/{taskId}", "get"),
        ("GET /tasks/special", "special"),
        ("POST /tasks/{taskId}/retry", "retry"),
        ("ANY /files/{proxy+}", "files"),
        ("GET /files/{name}", "file"),
    ]
)


@pytest.mark.parametrize(
    ("method", "path", "target", "parameters"),
    [
        ("GET", "/tasks", "list", {}),
        ("POST", "/tasks", "submit", {}),
        ("GET", "/tasks/t-1", "get", {"taskId": "t-1"}),
        ("GET", "/tasks/special", "special", {}),
        ("POST", "/tasks/abc/retry", "retry", {"taskId": "abc"}),
        ("GET", "/files/a.txt", "file", {"name": "a.txt"}),
        ("DELETE", "/files/a/b/c", "files", {"proxy": "a/b/c"}),
        ("GET", "/tasks/a%20b", "get", {"taskId": "a b"}),
    ],
)
def test_the_most_specific_route_wins(method, path, target, parameters):
    match = ROUTES.match(method, path)
    assert match is not None
    assert (match.target, match.path_parameters) == (target, parameters)


@pytest.mark.parametrize(("method", "path"), [("DELETE", "/tasks"), ("GET", "/nope"), ("GET", "/tasks/a/b")])
def test_unknown_routes_do_not_match(method, path):
    assert ROUTES.match(method, path) is None


def test_the_default_route_catches_the_rest():
    table = RouteTable([("GET /a", "a"), ("$default", "fallback")])
    match = table.match("PUT", "/anything")
    assert match is not None
    assert (match.target, match.route_key) == ("fallback", "$default")


# --------------------------------------------------------------------------- the gateway


def _serve(
    invoke, timeout: float, requests: list[str], linger: float = 0.0
) -> tuple[list[tuple[int, str]], str]:
    """Each of `requests` (paths, sent at once) through an HttpApiServer whose one route invokes
    `invoke`; returns (status, body) per request and what the console printed."""
    output = io.StringIO()
    api = HttpApiSpec(
        "Api", "Api", "abc123defg", [HttpRouteSpec("GET /tasks/{taskId}", "Fn")], None, "$default"
    )
    server = HttpApiServer(
        api,
        {"Fn": "HttpApiFunction"},
        invoke,
        Console(stream=output),
        "123456789012",
        integration_timeout_seconds=timeout,
    )

    async def run() -> list[tuple[int, str]]:
        async with TestClient(TestServer(server.application())) as client:

            async def one(path: str) -> tuple[int, str]:
                response = await client.get(path)
                return response.status, await response.text()

            answers = list(await asyncio.gather(*(one(path) for path in requests)))
            await asyncio.sleep(linger)  # (what is still running after the answers)
            return answers

    return asyncio.run(run()), output.getvalue()


def test_a_function_that_does_not_answer_within_the_integration_timeout_is_a_503_and_runs_on():
    finished = []

    async def slow_invoke(function_id, event):
        delay = 5.0 if event["pathParameters"]["taskId"] == "slow" else 0.0
        await asyncio.sleep(delay)
        finished.append(event["pathParameters"]["taskId"])
        return InvocationResult("ok", delay * 1000, "r", payload={"statusCode": 200, "body": "done"})

    answers, printed = _serve(slow_invoke, 0.2, ["/tasks/slow", "/tasks/fast"])

    assert answers == [(503, '{"message": "Service Unavailable"}'), (200, "done")]
    assert "GET /tasks/slow -> 503: HttpApiFunction did not answer within the integration timeout" in printed
    assert finished == ["fast"]  # the slow one was still running when the 503 went out
    assert "GET /tasks/slow (answered 503 before)" not in printed


def test_an_invocation_answered_503_gets_its_line_when_it_ends():
    async def slow_invoke(function_id, event):
        await asyncio.sleep(0.4)
        return InvocationResult("ok", 400.0, "r", payload={"statusCode": 200, "body": "done"})

    answers, printed = _serve(slow_invoke, 0.1, ["/tasks/slow"], linger=1.0)

    assert answers == [(503, '{"message": "Service Unavailable"}')]
    assert "GET /tasks/slow (answered 503 before)" in printed


def test_a_path_with_control_characters_prints_as_one_line():
    async def invoke(function_id, event):
        return InvocationResult("ok", 1.0, "r", payload={"statusCode": 404, "body": "{}"})

    _, printed = _serve(invoke, 5.0, ["/tasks/x%0a20:41:00.000%20FORGED%1b%5b31m"])

    [line] = printed.splitlines()
    assert "/tasks/x\\n20:41:00.000 FORGED\\x1b[31m -> 404" in line
