"""A tiny asynchronous client for the AWS JSON protocol, for the local stack's own calls to moto.

The pollers, the TTL sweeper, the queue-depth monitor and provisioning run on the event loop.
boto3 is synchronous and costs about a millisecond of CPU per call in botocore; speaking the
JSON protocol directly keeps the loop free and hands the stream records over exactly as they
are on the wire (which is the shape Lambda puts in its events). The handlers keep using boto3.

Each component gets its own client (`with_caller`), whose requests carry `X-Local-Caller`, so the
embedded AWS's request meter (local/request_meter.py) tells the stack's own calls (event source
mappings, TTL sweeper, depth monitor, provisioning) from the functions'.
"""

from __future__ import annotations

import json
from typing import Any

import aiohttp

from local.request_meter import CALLER_HEADER

_TARGET_PREFIX = {
    "sqs": ("AmazonSQS", "sqs"),
    "dynamodb": ("DynamoDB_20120810", "dynamodb"),
    "dynamodbstreams": ("DynamoDBStreams_20120810", "dynamodb"),
}


class AwsError(Exception):
    def __init__(self, code: str, message: str, status: int) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status


class AwsJsonClient:
    def __init__(self, session: aiohttp.ClientSession, endpoint: str, region: str, caller: str = "") -> None:
        self._session = session
        self._endpoint = endpoint.rstrip("/") + "/"
        self._region = region
        self.caller = caller

    def with_caller(self, caller: str) -> AwsJsonClient:
        """The same client (session, endpoint, region) labelled as `caller` for the request meter."""
        return AwsJsonClient(self._session, self._endpoint, self._region, caller)

    async def call(
        self, service: str, action: str, payload: dict[str, Any], timeout: float = 60
    ) -> dict[str, Any]:
        prefix, scope = _TARGET_PREFIX[service]
        headers = {
            "Content-Type": "application/x-amz-json-1.0",
            "X-Amz-Target": f"{prefix}.{action}",
            "Authorization": (
                f"AWS4-HMAC-SHA256 Credential=local/20260101/{self._region}/{scope}/aws4_request, "
                "SignedHeaders=host, Signature=0"
            ),
        }
        if self.caller:
            headers[CALLER_HEADER] = self.caller
        async with self._session.post(
            self._endpoint,
            data=json.dumps(payload),
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=timeout),
        ) as response:
            text = await response.text()
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
