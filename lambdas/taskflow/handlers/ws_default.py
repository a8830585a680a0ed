"""WsDefaultFunction: WebSocket $default route, two-way: the returned body goes back to the
client as a frame. Ping gets pong; anything else an error frame (never a closed connection)."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from taskflow.domain.client_frames import MAX_CLIENT_FRAME_BYTES, answer, too_large
from taskflow.observability import logger

_NOT_BASE64 = b"\xff"  # not UTF-8, so answered with an error frame


def _reply(event: dict[str, Any]) -> dict[str, Any]:
    body = event.get("body") or ""
    encoded = bool(event.get("isBase64Encoded"))
    # Size first, before decoding anything (a text frame has at least as many bytes as characters).
    if len(body) > (MAX_CLIENT_FRAME_BYTES * 4 // 3 + 4 if encoded else MAX_CLIENT_FRAME_BYTES):
        return too_large(len(body) * 3 // 4 if encoded else len(body.encode("utf-8", errors="replace")))
    if encoded:
        try:
            return answer(base64.b64decode(body, validate=True))
        except (binascii.Error, ValueError):
            return answer(_NOT_BASE64)
    return answer(body.encode("utf-8", errors="surrogatepass"))


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    reply = _reply(event)
    if reply["type"] == "error":
        connection_id = (event.get("requestContext") or {}).get("connectionId")
        logger.info(
            "client frame rejected", extra={"connection_id": connection_id, "reason": reply["message"]}
        )
    return {"statusCode": 200, "body": json.dumps(reply)}
