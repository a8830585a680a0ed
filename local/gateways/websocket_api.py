"""An API Gateway WebSocket API on 127.0.0.1, with its @connections management API.

What API Gateway does that it reproduces: docs/local-stack.md ("Gateway and Lambda behaviour
reproduced", "Authentication", and the restart and fault-injection sections). Beyond those: a
client that drops during the handshake after `$connect` accepted it still gets its `$disconnect`
(every accepted `$connect` gets exactly one, or the function's records leak), and a durable
stack's `connection_log` records each connection before `$connect` runs.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Iterable, Mapping, Sequence
from dataclasses import KW_ONLY, dataclass, field
from typing import Any, Protocol

from aiohttp import WSMsgType, web

from local.faults.injection import Dice, StackFaultCounters
from local.gateways.api_server import ApiServer
from local.gateways.lambda_authorizer import authorizer_event, decide, identity_values, method_arn
from local.runtime.pool import InvocationResult
from local.template.model import RequestAuthorizerSpec, WebSocketApiSpec, WebSocketRouteSpec

MAX_MESSAGE_BYTES = 128 * 1024  # API Gateway: 128 KB per message (32 KB frames)
# A post to a client that does not read (its socket's buffers full) gives up after this: the client
# is disconnected and the post answered 410, so the notifier's one POST (and, behind it, every
# other client's frames) is not held up by it.
SEND_TIMEOUT_SECONDS = 2.0
# @connections answers 403 to a request that is not signed (Authorization: AWS4-HMAC-SHA256 ...), as
# API Gateway does: a web page in a browser on this machine cannot push frames or close
# connections, since it cannot send that header to this origin.
SIGV4_SCHEME = "AWS4-HMAC-SHA256 "


def new_connection_id() -> str:
    """16 characters ending in '=', like API Gateway's (so clients must URL-encode it)."""
    return base64.urlsafe_b64encode(os.urandom(11)).decode()


@dataclass
class Connection:
    connection_id: str
    socket: web.WebSocketResponse
    connected_at: float
    source_ip: str
    user_agent: str
    host: str
    last_active: float = field(default_factory=time.time)
    authorizer: dict[str, Any] | None = None  # the $connect authorizer's principalId and context
    transport: asyncio.Transport | None = None  # the client's TCP connection (to drop it)

    def details(self) -> dict[str, Any]:
        """What a later $disconnect event needs (the connection log keeps it)."""
        return {
            "connectionId": self.connection_id,
            "connectedAt": self.connected_at,
            "sourceIp": self.source_ip,
            "userAgent": self.user_agent,
            "host": self.host,
            "authorizer": self.authorizer,
        }

    @classmethod
    def from_details(cls, details: dict[str, Any]) -> Connection:
        return cls(
            connection_id=str(details["connectionId"]),
            socket=web.WebSocketResponse(),
            connected_at=float(details["connectedAt"]),
            source_ip=str(details["sourceIp"]),
            user_agent=str(details["userAgent"]),
            host=str(details["host"]),
            authorizer=details.get("authorizer"),
        )


class ConnectionLog(Protocol):
    def add_connection(self, connection_id: str, state: dict[str, Any]) -> None: ...

    def remove_connection(self, connection_id: str) -> None: ...


def select_route(expression: str, body: str | bytes, routes: Mapping[str, WebSocketRouteSpec]) -> str:
    """The route key for a message: the expression's value if it names a route, else $default.

    A body the expression cannot be evaluated on goes to $default, as on AWS: not JSON
    (JSONDecodeError), an integer past Python's 4300 digits (a plain ValueError) or nesting
    deeper than the parser recurses (RecursionError, e.g. `[` * 1000).
    """
    prefix = "$request.body."
    if expression.startswith(prefix) and isinstance(body, str):
        try:
            value: Any = json.loads(body)
        except (ValueError, RecursionError):
            value = None
        for part in expression[len(prefix) :].split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            key = str(value)
            if key in routes and not key.startswith("$"):
                return key
    return "$default"


def route_response_body(payload: Any) -> str | None:
    """What a two-way route sends back: the `body` of the function's result."""
    if payload is None:
        return None
    if isinstance(payload, dict):
        if "body" not in payload:
            return None
        body = payload["body"]
        if body is None:
            return None
        return body if isinstance(body, str) else json.dumps(body)
    return payload if isinstance(payload, str) else json.dumps(payload)


def _subprotocol(payload: Any) -> str | None:
    headers = payload.get("headers") if isinstance(payload, dict) else None
    value = (headers or {}).get("Sec-WebSocket-Protocol")
    return str(value) if value else None


def _multi_values(pairs: Iterable[tuple[str, str]]) -> tuple[dict[str, str], dict[str, list[str]]]:
    """Headers or query parameters as API Gateway's events give them: the last value of each name,
    and all its values."""
    multi: dict[str, list[str]] = {}
    for name, value in pairs:
        multi.setdefault(name, []).append(value)
    return {name: values[-1] for name, values in multi.items()}, multi


def _error_frame(connection: Connection, message: str, request_id: str) -> str:
    return json.dumps({"message": message, "connectionId": connection.connection_id, "requestId": request_id})


def _management_error(status: int, error_type: str, message: str | None) -> web.Response:
    """An @connections error as API Gateway's management API answers it."""
    return web.json_response({"message": message}, status=status, headers={"x-amzn-ErrorType": error_type})


def _iso(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch)) + f".{int(epoch * 1000) % 1000:03d}Z"


@dataclass(eq=False)
class WebSocketApiServer(ApiServer[WebSocketApiSpec]):
    _: KW_ONLY
    push_failure_rate: float = 0.0
    dice: Dice = field(default_factory=lambda: Dice(None))
    counters: StackFaultCounters = field(default_factory=StackFaultCounters)
    region: str = "us-east-1"
    connection_log: ConnectionLog | None = None
    send_timeout_seconds: float = SEND_TIMEOUT_SECONDS
    connections: dict[str, Connection] = field(default_factory=dict, init=False)
    posts: Counter[str] = field(default_factory=Counter, init=False)
    posted_bytes: int = field(default=0, init=False)
    _background: set[asyncio.Task[Any]] = field(default_factory=set, init=False)

    def application(self, extra_routes: Sequence[web.RouteDef] = ()) -> web.Application:
        """The API; `extra_routes` (the local issuers' endpoints, when there is no HTTP API) first."""
        app = web.Application(client_max_size=MAX_MESSAGE_BYTES + 1024)
        app.add_routes(extra_routes)
        for prefix in ("/{stage}", ""):
            path = f"{prefix}/@connections/{{connection_id}}"
            app.router.add_post(path, self.post_to_connection)
            app.router.add_get(path, self.get_connection)
            app.router.add_delete(path, self.delete_connection)
        app.router.add_get("/", self.connect)
        app.router.add_get("/{stage}", self.connect)
        return app

    # --- the WebSocket side ----------------------------------------------------------------

    def _context(
        self, connection: Connection, route_key: str, event_type: str, request_id: str
    ) -> dict[str, Any]:
        now = time.time()
        context: dict[str, Any] = {
            "routeKey": route_key,
            "eventType": event_type,
            "extendedRequestId": request_id,
            "requestTime": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "messageDirection": "IN",
            "stage": self.api.stage_name,
            "connectedAt": int(connection.connected_at * 1000),
            "requestTimeEpoch": int(now * 1000),
            "identity": {"sourceIp": connection.source_ip, "userAgent": connection.user_agent},
            "requestId": request_id,
            "domainName": connection.host,
            "connectionId": connection.connection_id,
            "apiId": self.api.api_id,
        }
        if connection.authorizer is not None:
            context["authorizer"] = dict(connection.authorizer)
        return context

    async def _run_route(self, route_key: str, event: dict[str, Any], detail: str) -> InvocationResult | None:
        route = self.api.routes.get(route_key)
        if route is None or route.function_id is None:
            return None
        name = self.function_names[route.function_id]
        result = await self.invoke(route.function_id, event)
        outcome = result.outcome_text()
        self.console.invocation(name, result, outcome, detail)
        return result

    async def connect(self, request: web.Request) -> web.StreamResponse:
        stage = request.match_info.get("stage")
        if stage is not None and stage != self.api.stage_name:
            return web.json_response({"message": "Forbidden"}, status=403)
        if request.headers.get("Upgrade", "").lower() != "websocket":
            return web.json_response({"message": "Upgrade Required: this is a WebSocket API"}, status=426)
        connection_id = new_connection_id()
        connection = Connection(
            connection_id=connection_id,
            socket=web.WebSocketResponse(max_msg_size=MAX_MESSAGE_BYTES, autoping=True),
            connected_at=time.time(),
            source_ip=request.remote or "127.0.0.1",
            user_agent=request.headers.get("User-Agent", ""),
            host=request.host,
        )
        connect_route = self.api.routes.get("$connect")
        if connect_route is not None and connect_route.authorizer is not None:
            refusal = await self._authorize(request, connection, connect_route.authorizer)
            if refusal is not None:
                return refusal
        event = self._connect_event(request, connection)
        self._logged(connection, opened=True)
        result = await self._run_route("$connect", event, f"$connect {connection_id}")
        if result is not None:
            rejection = self._rejection(connection_id, result)
            if rejection is not None:
                self._logged(connection, opened=False)
                return rejection
            protocol = _subprotocol(result.payload)
            if protocol:
                connection.socket = web.WebSocketResponse(
                    max_msg_size=MAX_MESSAGE_BYTES, autoping=True, protocols=(protocol,)
                )
        socket = connection.socket
        # $connect accepted it: from here on, whatever happens (even a failed upgrade), the
        # finally runs $disconnect once, or the function's connection record leaks.
        try:
            try:
                await socket.prepare(request)
            except ConnectionError as error:
                # The client left between its upgrade request and the 101 (e.g. a reset): a line,
                # not a traceback. aiohttp's own prepare() of the returned socket fails quietly.
                self.console.detail(f"WebSocket {connection_id}: handshake aborted by the client ({error})")
                return socket
            connection.transport = request.transport
            self.connections[connection_id] = connection
            async for message in socket:
                connection.last_active = time.time()
                if message.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                    self._spawn(self._on_message(connection, message.data))
                elif message.type == WSMsgType.ERROR:
                    break
        finally:
            self.connections.pop(connection_id, None)
            self._spawn(self._on_disconnect(connection))
        return socket

    async def _authorize(
        self, request: web.Request, connection: Connection, authorizer: RequestAuthorizerSpec
    ) -> web.Response | None:
        """Run the $connect authorizer; the handshake's refusal, or None (connection.authorizer set)."""
        connection_id = connection.connection_id
        headers, multi = _multi_values(request.headers.items())
        query, multi_query = _multi_values(request.query.items())
        context = self._context(connection, "$connect", "CONNECT", str(uuid.uuid4()))
        stage_variables = self.api.stage_variables
        if identity_values(authorizer.identity_sources, headers, query, stage_variables, context) is None:
            sources = ", ".join(authorizer.identity_sources)
            self.console.event(f"WebSocket {connection_id}: $connect without {sources}: rejected (401)")
            return web.json_response({"message": "Unauthorized"}, status=401)
        if authorizer.function_id is None:
            self.console.event(f"WebSocket {connection_id}: authorizer cannot run locally: rejected (500)")
            return web.json_response({"message": "Internal server error"}, status=500)
        arn = method_arn(self.region, self.account_id, self.api.api_id, self.api.stage_name, "$connect")
        event = authorizer_event(
            arn=arn,
            headers=headers,
            multi_headers=multi,
            query=query,
            multi_query=multi_query,
            stage_variables=stage_variables,
            request_context=context,
        )
        started = time.perf_counter()
        result = await self.invoke(authorizer.function_id, event)
        decision = decide(result, arn, (time.perf_counter() - started) * 1000)
        outcome = result.outcome_text()
        verdict = "allow" if decision.allowed else f"rejected ({decision.status}: {decision.reason})"
        name = self.function_names.get(authorizer.function_id, authorizer.function_id)
        self.console.invocation(name, result, outcome, f"authorizer $connect {connection_id} -> {verdict}")
        if not decision.allowed:
            message = {401: "Unauthorized", 403: "Forbidden"}.get(decision.status, "Internal server error")
            return web.json_response({"message": message}, status=decision.status)
        connection.authorizer = decision.context
        return None

    def _connect_event(self, request: web.Request, connection: Connection) -> dict[str, Any]:
        headers, multi = _multi_values(request.headers.items())
        query, multi_query = _multi_values(request.query.items())
        event: dict[str, Any] = {
            "headers": headers,
            "multiValueHeaders": multi,
            "requestContext": self._context(connection, "$connect", "CONNECT", str(uuid.uuid4())),
            "isBase64Encoded": False,
        }
        if multi_query:
            event["queryStringParameters"] = query
            event["multiValueQueryStringParameters"] = multi_query
        return event

    def _rejection(self, connection_id: str, result: InvocationResult) -> web.Response | None:
        """The handshake answer when $connect refuses the connection (None: accepted)."""
        if not result.ok:
            self.console.event(f"WebSocket {connection_id}: $connect failed: rejected (500)")
            return web.json_response({"message": "Internal server error"}, status=500)
        payload = result.payload
        status = payload.get("statusCode", 200) if isinstance(payload, dict) else 200
        if isinstance(status, int) and 200 <= status < 300:
            return None
        code = status if isinstance(status, int) and 400 <= status <= 599 else 500
        self.console.event(f"WebSocket {connection_id}: $connect returned {status!r}: rejected ({code})")
        return web.json_response({"message": "Forbidden" if code == 403 else "Rejected"}, status=code)

    def _spawn(self, coroutine: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _send_frame(self, connection: Connection, data: str) -> None:
        with contextlib.suppress(ConnectionError, RuntimeError):
            await connection.socket.send_str(data)

    async def _on_message(self, connection: Connection, data: str | bytes) -> None:
        request_id = str(uuid.uuid4())
        try:
            route_key = select_route(self.api.route_selection_expression, data, self.api.routes)
        except Exception as failure:  # an unforeseen body must not kill this task, unanswered
            self.console.detail(
                f"WebSocket {connection.connection_id}: route selection failed ({failure!r}): $default"
            )
            route_key = "$default"
        route = self.api.routes.get(route_key)
        if route is None or route.function_id is None:
            await self._send_frame(connection, _error_frame(connection, "Forbidden", request_id))
            return
        context = self._context(connection, route_key, "MESSAGE", request_id)
        context["messageId"] = new_connection_id()
        if isinstance(data, bytes):
            event = {
                "requestContext": context,
                "body": base64.b64encode(data).decode(),
                "isBase64Encoded": True,
            }
        else:
            event = {"requestContext": context, "body": data, "isBase64Encoded": False}
        result = await self._run_route(route_key, event, f"{route_key} {connection.connection_id}")
        if result is None:
            return
        if not result.ok:
            await self._send_frame(connection, _error_frame(connection, "Internal server error", request_id))
            return
        if route.two_way:
            body = route_response_body(result.payload)
            if body is not None:
                await self._send_frame(connection, body)

    async def _on_disconnect(self, connection: Connection, reason: str | None = None) -> None:
        socket = connection.socket
        request_id = str(uuid.uuid4())
        context = self._context(connection, "$disconnect", "DISCONNECT", request_id)
        context["disconnectStatusCode"] = socket.close_code or 1006
        if reason is None:
            reason = "Client-side close frame status code" if socket.close_code else ""
        context["disconnectReason"] = reason
        event = {
            "headers": {"Host": connection.host},
            "multiValueHeaders": {"Host": [connection.host]},
            "requestContext": context,
            "isBase64Encoded": False,
        }
        result = await self._run_route("$disconnect", event, f"$disconnect {connection.connection_id}")
        if result is None or result.ok:  # else it is owed again at the next start
            self._logged(connection, opened=False)

    def _logged(self, connection: Connection, *, opened: bool) -> None:
        if self.connection_log is None:
            return
        if opened:
            self.connection_log.add_connection(connection.connection_id, connection.details())
        else:
            self.connection_log.remove_connection(connection.connection_id)

    async def disconnect_previous(self, connections: list[dict[str, Any]]) -> None:
        """`$disconnect` for each connection of a stack that stopped without closing them."""
        for details in connections:
            await self._on_disconnect(Connection.from_details(details), "the local stack stopped")

    async def close_all(self) -> None:
        for connection in list(self.connections.values()):
            with contextlib.suppress(Exception):
                await connection.socket.close(code=1001, message=b"Going away")
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)

    # --- the @connections management API ---------------------------------------------------

    def post_counts(self) -> dict[str, Any]:
        """The @connections POSTs so far, by outcome, and the bytes posted."""
        return {**dict(self.posts), "total": sum(self.posts.values()), "bytes": self.posted_bytes}

    def _injected_failure(self, when: str) -> web.Response:
        self.counters.add(f"push-failure-{when}-send")
        self.posts["injectedFailure"] += 1
        return _management_error(500, "InternalServerErrorException", "Internal server error (local fault)")

    def _addressed(self, request: web.Request) -> Connection | web.Response:
        """The open connection an @connections request names, or the answer instead: 403 when the
        request is not signed, 410 when there is no such connection."""
        if not request.headers.get("Authorization", "").startswith(SIGV4_SCHEME):
            return _management_error(403, "ForbiddenException", "Missing Authentication Token")
        stage = request.match_info.get("stage")
        connection = self.connections.get(request.match_info["connection_id"])
        if stage not in (None, self.api.stage_name) or connection is None or connection.socket.closed:
            return _management_error(410, "GoneException", None)
        return connection

    async def post_to_connection(self, request: web.Request) -> web.Response:
        connection = self._addressed(request)
        if isinstance(connection, web.Response):
            self.posts["gone" if connection.status == 410 else "unsigned"] += 1
            return connection
        data = await request.read()
        self.posted_bytes += len(data)
        if len(data) > MAX_MESSAGE_BYTES:
            self.posts["tooLarge"] += 1
            return _management_error(413, "PayloadTooLargeException", "Message too long")
        fail = self.dice.roll(self.push_failure_rate)
        if fail and self.dice.roll(0.5):
            return self._injected_failure("before")
        if not await self._sent(connection, data):
            return _management_error(410, "GoneException", None)
        if fail:
            return self._injected_failure("after")
        self.posts["delivered"] += 1
        return web.Response(status=200)

    async def _sent(self, connection: Connection, data: bytes) -> bool:
        """Send one frame (text if it is UTF-8); False if the client has gone, or does not read
        (then it is disconnected: its receive loop ends, and $disconnect runs)."""
        try:
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError:
                sending = connection.socket.send_bytes(data)
            else:
                sending = connection.socket.send_str(text)
            await asyncio.wait_for(sending, self.send_timeout_seconds)
        except (ConnectionError, RuntimeError):
            self.posts["gone"] += 1
            return False
        except TimeoutError:
            self.posts["slowClient"] += 1
            self.console.event(
                f"WebSocket {connection.connection_id}: not reading its frames "
                f"({self.send_timeout_seconds:g} s on one): disconnected"
            )
            if connection.transport is not None:
                connection.transport.abort()
            return False
        return True

    async def get_connection(self, request: web.Request) -> web.Response:
        connection = self._addressed(request)
        if isinstance(connection, web.Response):
            return connection
        return web.json_response(
            {
                "connectedAt": _iso(connection.connected_at),
                "identity": {"sourceIp": connection.source_ip, "userAgent": connection.user_agent},
                "lastActiveAt": _iso(connection.last_active),
            }
        )

    async def delete_connection(self, request: web.Request) -> web.Response:
        connection = self._addressed(request)
        if isinstance(connection, web.Response):
            return connection
        await connection.socket.close(code=1000, message=b"")
        return web.Response(status=204)
