"""Who asked the embedded AWS for what: a request's service, operation, resource and caller.

The service and operation come from `X-Amz-Target`, else from the SigV4 credential scope and the
`Action` parameter (query protocol). The caller is the stack component (`X-Local-Caller`, set by
local/emulator/aws_json.py), a function (`app/<Function>` in its boto3 User-Agent: the stack sets
`AWS_SDK_UA_APP_ID`), `sdk` (boto3 without an app id) or `other`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import parse_qs

CALLER_HEADER: Final = "X-Local-Caller"
SQS_CHUNK_BYTES: Final = 64 * 1024

_TARGET_SERVICES: Final = {
    "DynamoDB_20120810": "dynamodb",
    "DynamoDBStreams_20120810": "dynamodbstreams",
    "AmazonSQS": "sqs",
}
# Credential=<key>/<date>/<region>/<service>/aws4_request
_CREDENTIAL_SCOPE: Final = re.compile(r"Credential=[^/,\s]+/\d+/([^/]+)/([^/]+)/aws4_request")
_APP_ID: Final = re.compile(r"(?:^|\s)app/(\S+)")
_STREAM_TABLE: Final = re.compile(r":table/([^/]+)/stream/")


def classify(headers: Mapping[str, str], query_string: str = "", body: bytes = b"") -> tuple[str, str]:
    """(service, operation) of an AWS request, from its headers, query string and form body."""
    target = headers.get("x-amz-target", "")
    if target:
        prefix, _, operation = target.rpartition(".")
        return _TARGET_SERVICES.get(prefix, prefix.lower() or "unknown"), operation or "unknown"
    scope = _CREDENTIAL_SCOPE.search(headers.get("authorization", ""))
    service = scope.group(2) if scope else "unknown"
    action = parse_qs(query_string).get("Action")
    if not action and body and "x-www-form-urlencoded" in headers.get("content-type", ""):
        action = parse_qs(body.decode("utf-8", "replace")).get("Action")
    return service, (action[0] if action else "unknown")


def caller_of(headers: Mapping[str, str]) -> str:
    """Who made the request: the stack component (X-Local-Caller), `function:<Name>`
    (a function's boto3, by its User-Agent app id), `sdk` or `other`."""
    explicit = headers.get(CALLER_HEADER.lower(), "").strip()
    if explicit:
        return explicit
    agent = headers.get("user-agent", "")
    app = _APP_ID.search(agent)
    if app:
        return f"function:{app.group(1)}"
    if "Boto3/" in agent or "Botocore/" in agent:
        return "sdk"
    return "other"


def resource_of(payload: Mapping[str, Any]) -> str:
    if isinstance(payload.get("TableName"), str):
        return str(payload["TableName"])
    if isinstance(payload.get("QueueUrl"), str):
        return str(payload["QueueUrl"]).rstrip("/").rsplit("/", 1)[-1]
    if isinstance(payload.get("StreamArn"), str):
        match = _STREAM_TABLE.search(payload["StreamArn"])
        return match.group(1) if match else ""
    if isinstance(payload.get("RequestItems"), dict) and len(payload["RequestItems"]) == 1:
        return str(next(iter(payload["RequestItems"])))
    return ""


def sqs_billed_requests(request_bytes: int, response_bytes: int) -> int:
    """SQS bills every 64 KB chunk of a request's payload as one request."""
    return max(1, math.ceil(max(request_bytes, response_bytes) / SQS_CHUNK_BYTES))


_TARGET_PREFIXES: Final = {service: prefix for prefix, service in _TARGET_SERVICES.items()}


def json_protocol_headers(service: str, action: str, region: str, caller: str = "") -> dict[str, str]:
    """The headers of an AWS JSON-protocol request as the local stack sends them to moto: the
    target, a credential scope naming the region and service (no real signature), the caller."""
    scope = "dynamodb" if service == "dynamodbstreams" else service
    headers = {
        "Content-Type": "application/x-amz-json-1.0",
        "X-Amz-Target": f"{_TARGET_PREFIXES[service]}.{action}",
        "Authorization": (
            f"AWS4-HMAC-SHA256 Credential=local/20260101/{region}/{scope}/aws4_request, "
            "SignedHeaders=host, Signature=0"
        ),
    }
    if caller:
        headers[CALLER_HEADER] = caller
    return headers


def region_of(headers: Mapping[str, str], default: str) -> str:
    match = _CREDENTIAL_SCOPE.search(headers.get("authorization", ""))
    return match.group(1) if match else default
