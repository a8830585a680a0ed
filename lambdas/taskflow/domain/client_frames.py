"""What the server answers to a frame a browser sends on the WebSocket ($default route).

{"action": "ping"}  ->  {"type": "pong"}
anything else       ->  {"type": "error", "message": "..."}   (the connection stays open)
"""

from __future__ import annotations

import json
from typing import Any, Final

MAX_CLIENT_FRAME_BYTES: Final = 8 * 1024
SUPPORTED_ACTIONS: Final = ("ping",)


def _error(message: str) -> dict[str, Any]:
    return {"type": "error", "message": message}


def too_large(size: int) -> dict[str, Any]:
    return _error(f"frame is {size} bytes; the limit is {MAX_CLIENT_FRAME_BYTES}")


def answer(frame: bytes) -> dict[str, Any]:
    if len(frame) > MAX_CLIENT_FRAME_BYTES:
        return too_large(len(frame))
    try:
        message = json.loads(frame.decode("utf-8"))
    except (ValueError, RecursionError):
        return _error('frame is not JSON; send {"action": "ping"}')
    if not isinstance(message, dict):
        return _error('frame must be a JSON object like {"action": "ping"}')
    action = message.get("action")
    if action == "ping":
        return {"type": "pong"}
    shown = action if isinstance(action, str) and len(action) <= 64 else "<missing or invalid>"
    return _error(f"unknown action {shown!r}; supported: {', '.join(SUPPORTED_ACTIONS)}")
