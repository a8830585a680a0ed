"""The local WebSocket gateway's @connections API: who may call it, and clients that do not read."""

from __future__ import annotations

import asyncio
import base64
import os
import socket
from typing import Any

import aiohttp
from aiohttp import web

from local.console import Console
from local.gateways.websocket_api import WebSocketApiServer
from local.template.model import WebSocketApiSpec

SIGNED = {"Authorization": "AWS4-HMAC-SHA256 Credential=test/20261204/us-east-1/execute-api/aws4_request"}


async def _no_function(function_id: str, event: dict[str, Any]) -> Any:
    return None


async def _serving(server: WebSocketApiServer) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(server.application())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]


def _server(**options: Any) -> WebSocketApiServer:
    return WebSocketApiServer(
        WebSocketApiSpec("Ws", "Ws", "abc123", "$request.body.action", {}, "dev"),
        {},
        _no_function,  # type: ignore[arg-type]
        Console(quiet=True),
        "123456789012",
        **options,
    )


async def _until(condition: Any, seconds: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


def test_an_unsigned_call_to_connections_is_refused_and_pushes_nothing() -> None:
    # A web page in a browser on this machine can POST text to 127.0.0.1, but cannot sign.
    async def main() -> tuple[list[int], list[str]]:
        server = _server()
        runner, port = await _serving(server)
        try:
            async with (
                aiohttp.ClientSession() as session,
                session.ws_connect(f"http://127.0.0.1:{port}/dev") as ws,
            ):
                await _until(lambda: len(server.connections) == 1)
                (connection_id,) = server.connections
                url = f"http://127.0.0.1:{port}/dev/@connections/{connection_id}"
                statuses = []
                for method in ("POST", "GET", "DELETE"):
                    async with session.request(method, url, data="forged") as response:
                        statuses.append(response.status)
                async with session.post(url, data="signed", headers=SIGNED) as response:
                    statuses.append(response.status)
                received = [str((await ws.receive(timeout=2)).data)]
            return statuses, received
        finally:
            await runner.cleanup()

    statuses, received = asyncio.run(main())

    assert statuses == [403, 403, 403, 200]
    assert received == ["signed"]  # the forged frame never reached the client


def test_a_client_that_does_not_read_is_disconnected_and_holds_up_no_other_post() -> None:
    async def main() -> tuple[list[int], float, bool]:
        server = _server(send_timeout_seconds=0.3)
        runner, port = await _serving(server)
        stalled = socket.socket()
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
        try:
            # A client that completes its handshake, then never reads again
            stalled.setblocking(False)
            loop = asyncio.get_running_loop()
            await loop.sock_connect(stalled, ("127.0.0.1", port))
            key = base64.b64encode(os.urandom(16)).decode()
            await loop.sock_sendall(
                stalled,
                (
                    f"GET /dev HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                    f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
                ).encode(),
            )
            assert b" 101 " in await loop.sock_recv(stalled, 1024)
            await _until(lambda: len(server.connections) == 1)
            (stalled_id,) = server.connections
            async with (
                aiohttp.ClientSession() as session,
                session.ws_connect(f"http://127.0.0.1:{port}/dev") as ws,
            ):
                await _until(lambda: len(server.connections) == 2)
                (healthy_id,) = set(server.connections) - {stalled_id}
                frame = b"x" * 100_000
                statuses = []
                # When frames are pushed to it until its buffers are full
                for _ in range(400):
                    async with session.post(
                        f"http://127.0.0.1:{port}/dev/@connections/{stalled_id}", data=frame, headers=SIGNED
                    ) as response:
                        statuses.append(response.status)
                    if response.status != 200:
                        break
                # Then a post to a healthy client is as quick as ever
                started = loop.time()
                async with session.post(
                    f"http://127.0.0.1:{port}/dev/@connections/{healthy_id}", data="hello", headers=SIGNED
                ) as response:
                    assert response.status == 200
                healthy_post = loop.time() - started
                assert (await ws.receive(timeout=2)).data == "hello"
                await _until(lambda: stalled_id not in server.connections)
            return statuses, healthy_post, server.posts["slowClient"] == 1
        finally:
            stalled.close()
            await runner.cleanup()

    statuses, healthy_post, counted = asyncio.run(main())

    assert statuses[-1] == 410  # the post that found it not reading: GoneException, so it is forgotten
    assert set(statuses[:-1]) <= {200}
    assert healthy_post < 0.3
    assert counted
