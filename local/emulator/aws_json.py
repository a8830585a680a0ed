"""A tiny asynchronous client for the AWS JSON protocol, for the local stack's own calls to moto.

The pollers, the TTL sweeper, the queue-depth monitor and provisioning run on the event loop.
boto3 is synchronous and costs about a millisecond of CPU per call in botocore; speaking the
JSON protocol directly keeps the loop free and hands the stream records over exactly as they
are on the wire (which is the shape Lambda puts in its events). The handlers keep using boto3.

Each component gets its own client (`with_caller`), whose requests carry `X-Local-Caller`, so the
embedded AWS's request meter (local/metering/meter.py) tells the stack's own calls (event source
mappings, TTL sweeper, depth monitor, provisioning) from the functions'.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp

from local.metering.protocol import json_protocol_headers


class AwsError(Exception):
    def __init__(self, code: str, message: str, status: int) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status


class EmulatorRestarting(Exception):
    """The embedded AWS went away and is being restarted: the next call waits for it."""


def describe_call_error(error: Exception) -> str:
    """A poller's failed call, for its warning: a timeout says what it likely means."""
    if isinstance(error, TimeoutError):
        return "the embedded AWS did not answer in time (a stopped or starved process, a frozen disk?)"
    return repr(error)


class AwsJsonClient:
    """`available` (local/emulator/supervisor.py's `up`): set while the embedded AWS runs; calls made while it
    restarts wait for it, and a call it drops raises EmulatorRestarting (not worth a warning)."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        endpoint: str,
        region: str,
        caller: str = "",
        available: asyncio.Event | None = None,
    ) -> None:
        self._session = session
        self._endpoint = endpoint.rstrip("/") + "/"
        self._region = region
        self.caller = caller
        self._available = available

    def with_caller(self, caller: str) -> AwsJsonClient:
        """The same client (session, endpoint, region) labelled as `caller` for the request meter."""
        return AwsJsonClient(self._session, self._endpoint, self._region, caller, self._available)

    async def call(
        self, service: str, action: str, payload: dict[str, Any], timeout: float = 60
    ) -> dict[str, Any]:
        available = self._available
        if available is not None and not available.is_set():
            await available.wait()
        headers = json_protocol_headers(service, action, self._region, self.caller)
        limit = aiohttp.ClientTimeout(total=timeout)
        try:
            async with self._session.post(
                self._endpoint, data=json.dumps(payload), headers=headers, timeout=limit
            ) as response:
                text = await response.text()
        except aiohttp.ClientConnectionError as error:
            if available is not None:
                await asyncio.sleep(0.2)  # the supervisor sees a dead process within this
                if not available.is_set():
                    raise EmulatorRestarting(str(error)) from error
            raise
        body: dict[str, Any] = json.loads(text) if text else {}
        if response.status >= 400:
            code = str(body.get("__type", response.status)).rsplit("#", 1)[-1]
            message = str(body.get("message") or body.get("Message") or text)
            raise AwsError(code, message, response.status)
        return body

    async def sqs(self, action: str, payload: dict[str, Any], timeout: float = 60) -> dict[str, Any]:
        return await self.call("sqs", action, payload, timeout)

    async def dynamodb(self, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        return await self.call("dynamodb", action, payload)

    async def streams(self, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        return await self.call("dynamodbstreams", action, payload)
