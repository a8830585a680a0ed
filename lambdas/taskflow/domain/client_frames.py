"""What a browser may send on the WebSocket ($default route), and the simple answers.

{"action": "ping"}                     ->  {"type": "pong"}
{"action": "resume", "since": cursor}  ->  the missed task frames, then {"type": "resumed", ...}
                                           (or {"type": "resync", ...}: taskflow.services.resume)
anything else                          ->  {"type": "error", "message": "..."}
The connection stays open whatever a client sends.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, Final

MAX_CLIENT_FRAME_BYTES: Final = 8 * 1024
SUPPORTED_ACTIONS: Final = ("ping", "resume")


def error(message: str, *, retry: bool = False) -> dict[str, Any]:
    """An error frame; `retry`: the same frame sent again, a few seconds later, may succeed (a resume
    whose read or replay failed), so a client sends it again while it stays connected."""
    frame: dict[str, Any] = {"type": "error", "message": message}
    return {**frame, "retry": True} if retry else frame


def expired(expires_at: int) -> dict[str, Any]:
    """The last frame of a connection whose token expired: it is closed right after. No task frame
    reaches it from its token's expiry on; the client connects again with a fresh token and resumes
    (README, "Resume after a reconnect")."""
    when = datetime.fromtimestamp(expires_at, UTC).isoformat().replace("+00:00", "Z")
    return {
        "type": "expired",
        "expiredAt": when,
        "message": "this connection's token expired: connect again with a fresh token, then resume",
    }


def too_large(size: int) -> dict[str, Any]:
    return error(f"frame is {size} bytes; the limit is {MAX_CLIENT_FRAME_BYTES}")


def request_of(frame: bytes) -> dict[str, Any]:
    """The client's request (a JSON object whose `action` is supported), or the error frame that
    answers it."""
    if len(frame) > MAX_CLIENT_FRAME_BYTES:
        return too_large(len(frame))
    try:
        message = json.loads(frame.decode("utf-8"))
    except (ValueError, RecursionError):
        return error('frame is not JSON; send {"action": "ping"}')
    if not isinstance(message, dict):
        return error('frame must be a JSON object like {"action": "ping"}')
    action = message.get("action")
    if action in SUPPORTED_ACTIONS:
        return message
    shown = action if isinstance(action, str) and len(action) <= 64 else "<missing or invalid>"
    return error(f"unknown action {shown!r}; supported: {', '.join(SUPPORTED_ACTIONS)}")
