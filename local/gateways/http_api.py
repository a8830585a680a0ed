"""An API Gateway HTTP API (payload format 2.0) on 127.0.0.1, from the template's routes.

Requests become format 2.0 events for the route's function and its result is mapped back with
API Gateway's rules; CORS preflights are answered from the Api's CorsConfiguration; a route with
a JWT authorizer checks the token first (local/gateways/jwt_authorizer.py). The answers, errors included:
docs/local-stack.md, "Gateway and Lambda behaviour reproduced" and "Authentication".
"""

from __future__ import annotations

import asyncio
import base64
import functools
import json
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import KW_ONLY, dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from aiohttp import web
from multidict import CIMultiDict

from local.gateways import cors
from local.gateways.api_server import ApiServer
from local.gateways.http_routes import RouteMatch, RouteTable
from local.runtime.pool import InvocationResult
from local.template.model import HttpApiSpec, HttpRouteSpec

if TYPE_CHECKING:  # imported at run time only by stacks with authorizers (it loads PyJWT)
    from local.gateways.jwt_authorizer import JwtValidator

MAX_BODY_BYTES = 10 * 1024 * 1024  # API Gateway's payload limit
# An HTTP API's integration timeout (its default and maximum): no answer by then is a 503, and the
# invocation goes on. Locally the wait includes a free worker (--max-concurrency), so a flood of
# requests is answered 503 in bounded time instead of queueing without end.
INTEGRATION_TIMEOUT_SECONDS = 30.0

_TEXT_TYPES = (
    "text/",
    "application/json",
    "application/javascript",
    "application/xml",
    "application/x-www-form-urlencoded",
    "application/graphql",
)


class ResponseError(ValueError):
    """A function result API Gateway would refuse (it answers 500)."""


@dataclass(frozen=True)
class HttpResponse:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


def is_text_body(content_type: str | None) -> bool:
    if not content_type:
        return False
    media = content_type.split(";", 1)[0].strip().lower()
    return media.startswith(_TEXT_TYPES) or media.endswith(("+json", "+xml"))


def merged_pairs(pairs: Iterable[tuple[str, str]], *, lower: bool = False) -> dict[str, str]:
    """Repeated names joined with commas, as API Gateway joins repeated headers and query parameters."""
    merged: dict[str, str] = {}
    for name, value in pairs:
        key = name.lower() if lower else name
        merged[key] = f"{merged[key]},{value}" if key in merged else value
    return merged


def merged_headers(headers: Iterable[tuple[str, str]]) -> tuple[dict[str, str], list[str]]:
    """The headers (lower-cased names, repeats joined) and the cookies, as in a format 2.0 event."""
    cookies: list[str] = []
    rest: list[tuple[str, str]] = []
    for name, value in headers:
        if name.lower() == "cookie":
            cookies.extend(part.strip() for part in value.split(";") if part.strip())
        else:
            rest.append((name, value))
    return merged_pairs(rest, lower=True), cookies


def http_event_v2(
    *,
    api: HttpApiSpec,
    account_id: str,
    route_key: str,
    method: str,
    raw_path: str,
    raw_query: str,
    headers: list[tuple[str, str]],
    query: list[tuple[str, str]],
    path_parameters: Mapping[str, str],
    body: bytes,
    source_ip: str,
    domain_name: str,
    request_id: str,
    now: float,
    authorizer: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A payload format 2.0 event, as API Gateway builds it (`authorizer`: the JWT authorizer's
    `{"jwt": {"claims": ..., "scopes": ...}}`, on routes that have one). `raw_path` is the path as
    sent; HTTP APIs give the function its percent-decoded form, in `rawPath` too."""
    merged, cookies = merged_headers(headers)
    raw_path = unquote(raw_path)
    query_parameters = merged_pairs(query)
    stage = api.stage_name
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": raw_path,
        "rawQueryString": raw_query,
        "headers": merged,
        "requestContext": {
            "accountId": account_id,
            "apiId": api.api_id,
            "domainName": domain_name,
            "domainPrefix": domain_name.split(".", 1)[0],
            "http": {
                "method": method,
                "path": raw_path,
                "protocol": "HTTP/1.1",
                "sourceIp": source_ip,
                "userAgent": merged.get("user-agent", ""),
            },
            "requestId": request_id,
            "routeKey": route_key,
            "stage": stage,
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "timeEpoch": int(now * 1000),
        },
        "isBase64Encoded": False,
    }
    if authorizer is not None:
        event["requestContext"]["authorizer"] = dict(authorizer)
    if cookies:
        event["cookies"] = cookies
    if query_parameters:
        event["queryStringParameters"] = query_parameters
    if path_parameters:
        event["pathParameters"] = dict(path_parameters)
    if body:
        if is_text_body(merged.get("content-type")):
            try:
                event["body"] = body.decode("utf-8")
            except UnicodeDecodeError:
                event["body"] = base64.b64encode(body).decode()
                event["isBase64Encoded"] = True
        else:
            event["body"] = base64.b64encode(body).decode()
            event["isBase64Encoded"] = True
    return event


def http_response_v2(payload: Any) -> HttpResponse:
    """Map a function result to HTTP with API Gateway's format 2.0 rules."""
    if not isinstance(payload, dict) or "statusCode" not in payload:
        # No statusCode: the result itself is the JSON body of a 200.
        return HttpResponse(200, [("content-type", "application/json")], json.dumps(payload).encode())
    status = payload["statusCode"]
    if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
        raise ResponseError(f"statusCode {status!r} is not an HTTP status")
    headers = _response_headers(payload)
    body = _response_body(payload)
    if not any(name.lower() == "content-type" for name, _ in headers) and body:
        headers.append(("content-type", "application/json"))
    return HttpResponse(status, headers, body)


def _response_headers(payload: dict[str, Any]) -> list[tuple[str, str]]:
    headers = [(str(name), _header_value(value)) for name, value in (payload.get("headers") or {}).items()]
    for name, values in (payload.get("multiValueHeaders") or {}).items():
        if not isinstance(values, list):
            raise ResponseError(f"multiValueHeaders[{name!r}] is not a list")
        headers.extend((str(name), _header_value(value)) for value in values)
    cookies = payload.get("cookies") or []
    if not isinstance(cookies, list):
        raise ResponseError("cookies is not a list")
    headers.extend(("set-cookie", str(cookie)) for cookie in cookies)
    return headers


def _response_body(payload: dict[str, Any]) -> bytes:
    raw_body = payload.get("body")
    if raw_body is None:
        return b""
    if not isinstance(raw_body, str):
        raise ResponseError(f"body is {type(raw_body).__name__}, not a string")
    if not payload.get("isBase64Encoded"):
        return raw_body.encode("utf-8")
    try:
        return base64.b64decode(raw_body, validate=True)
    except ValueError as error:
        raise ResponseError(f"body is not valid base64: {error}") from None


def _header_value(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str | int | float):
        return str(value)
    raise ResponseError(f"header value {value!r} is not a string")


def _json_error(status: int, message: str) -> HttpResponse:
    return HttpResponse(
        status, [("content-type", "application/json")], json.dumps({"message": message}).encode()
    )


@dataclass(eq=False)
class HttpApiServer(ApiServer[HttpApiSpec]):
    _: KW_ONLY
    validators: Mapping[str, JwtValidator] | None = None  # JWT authorizer logical id -> its validator
    integration_timeout_seconds: float = INTEGRATION_TIMEOUT_SECONDS

    def __post_init__(self) -> None:
        self._routes: RouteTable[HttpRouteSpec] = RouteTable([(r.route_key, r) for r in self.api.routes])

    def application(self, extra_routes: Sequence[web.RouteDef] = ()) -> web.Application:
        """The gateway; `extra_routes` (the local issuers' endpoints) are matched before any route."""
        app = web.Application(client_max_size=MAX_BODY_BYTES)
        app.add_routes(extra_routes)
        # Every path reaches handle(), which routes as API Gateway does. `[\s\S]` and not `.`: a path
        # may hold a (percent-encoded) newline, which `.` does not match (aiohttp then answered
        # its own text/plain 404 instead of the route's function).
        app.router.add_route("*", r"/{tail:[\s\S]*}", self.handle)
        return app

    async def _read_body(self, request: web.Request) -> bytes | HttpResponse:
        """The request's body, or the answer that replaces it."""
        try:
            return await request.read()
        except web.HTTPRequestEntityTooLarge:
            return _json_error(413, "Request Entity Too Large")
        except ConnectionError:  # the client went before its whole body arrived: nobody to answer
            self.console.detail(f"{request.method} {request.path}: the client left before sending its body")
            return _json_error(400, "Bad Request")

    async def handle(self, request: web.Request) -> web.StreamResponse:
        request_id = str(uuid.uuid4())
        # Repeats joined as API Gateway joins them: two Authorization headers are one bad token.
        request_headers = merged_pairs(request.headers.items(), lower=True)
        api = self.api
        if api.cors is not None and cors.is_preflight(request.method, request_headers):
            return self._send(
                HttpResponse(204, list(cors.preflight_headers(api.cors, request_headers).items()), b""),
                request_id,
            )
        path = request.raw_path.split("?", 1)[0]  # the route table decodes each segment it matches
        if api.stage_name != "$default":
            prefix = f"/{api.stage_name}"
            if path != prefix and not path.startswith(prefix + "/"):
                return self._finish(_json_error(404, "Not Found"), request_headers, request_id)
            path = path[len(prefix) :] or "/"
        match = self._routes.match(request.method, path)
        if match is None or match.target.function_id is None:
            return self._finish(_json_error(404, "Not Found"), request_headers, request_id)
        authorizer: dict[str, Any] | None = None
        route = match.target
        validator = (
            self.validators.get(route.authorizer.logical_id) if route.authorizer and self.validators else None
        )
        if validator is not None:
            from local.gateways.jwt_authorizer import JwtRejected  # noqa: PLC0415 - loaded with the validators

            try:
                authorizer = validator.authorize(
                    request_headers, merged_pairs(request.query.items()), route.authorization_scopes
                )
            except JwtRejected as rejected:
                self.console.detail(
                    f"{request.method} {request.path} -> {rejected.status} "
                    f"(JWT authorizer: {rejected.description or 'no token'})"
                )
                response = _json_error(rejected.status, rejected.message)
                response.headers.append(("www-authenticate", rejected.challenge(route.authorization_scopes)))
                return self._finish(response, request_headers, request_id)
        body = await self._read_body(request)
        if isinstance(body, HttpResponse):
            return self._finish(body, request_headers, request_id)
        event = http_event_v2(
            api=api,
            account_id=self.account_id,
            route_key=match.route_key,
            method=request.method,
            raw_path=request.raw_path.split("?", 1)[0],
            raw_query=request.query_string,
            headers=list(request.headers.items()),
            query=list(request.query.items()),
            path_parameters=match.path_parameters,
            body=body,
            source_ip=request.remote or "127.0.0.1",
            domain_name=request.host,
            request_id=request_id,
            now=time.time(),
            authorizer=authorizer,
        )
        response = await self._call(match, event, request)
        return self._finish(response, request_headers, request_id)

    async def _call(
        self, match: RouteMatch[HttpRouteSpec], event: dict[str, Any], request: web.Request
    ) -> HttpResponse:
        function_id = match.target.function_id
        assert function_id is not None
        name = self.function_names[function_id]
        where = f"{request.method} {request.path}"
        invocation = asyncio.ensure_future(self.invoke(function_id, event))
        try:
            result = await asyncio.wait_for(asyncio.shield(invocation), self.integration_timeout_seconds)
        except TimeoutError:
            invocation.add_done_callback(functools.partial(self._late, name, where))
            self.console.detail(
                f"{where} -> 503: {name} did not answer within the integration timeout "
                f"({self.integration_timeout_seconds:g} s); the invocation goes on"
            )
            return _json_error(503, "Service Unavailable")
        if not result.ok:
            self.console.invocation(name, result, result.outcome_text(), f"{where} -> 500")
            return _json_error(500, "Internal Server Error")
        try:
            response = http_response_v2(result.payload)
        except ResponseError as error:
            self.console.invocation(name, result, "error bad response", f"{where} -> 500: {error}")
            return _json_error(500, "Internal Server Error")
        self.console.invocation(name, result, "ok", f"{where} -> {response.status}")
        return response

    def _late(self, name: str, where: str, invocation: asyncio.Future[InvocationResult]) -> None:
        """The line of an invocation whose request was answered 503 before it ended (queued for a
        worker, or slow): it ran all the same, as a request answered 503 may have."""
        if invocation.cancelled() or invocation.exception() is not None:
            return
        result = invocation.result()
        self.console.invocation(name, result, result.outcome_text(), f"{where} (answered 503 before)")

    def _finish(
        self, response: HttpResponse, request_headers: dict[str, str], request_id: str
    ) -> web.Response:
        headers = response.headers
        if self.api.cors is not None:
            headers = [(k, v) for k, v in headers if not cors.is_cors_header(k)]
            headers += list(cors.response_headers(self.api.cors, request_headers).items())
        return self._send(HttpResponse(response.status, headers, response.body), request_id)

    def _send(self, response: HttpResponse, request_id: str) -> web.Response:
        headers: CIMultiDict[str] = CIMultiDict()
        for name, value in response.headers:
            headers.add(name, value)
        headers["apigw-requestid"] = request_id
        return web.Response(status=response.status, body=response.body or None, headers=headers)
