"""Opaque list cursors: base64url (no padding) of the JSON of the key to resume after."""

from __future__ import annotations

from typing import Final
from urllib.parse import urlencode

from taskflow.domain import opaque
from taskflow.errors import InvalidCursorError

MAX_CURSOR_LENGTH: Final = 1024
CURSOR_PATTERN: Final = r"^[A-Za-z0-9_-]+$"  # what encode_cursor issues (base64url, no padding)


def encode_cursor(key: dict[str, str]) -> str:
    return opaque.encode(key)


def decode_cursor(cursor: str) -> dict[str, str]:
    """The key inside `cursor`; InvalidCursorError if it is not one this API issued."""
    if not cursor or len(cursor) > MAX_CURSOR_LENGTH:
        raise InvalidCursorError("the cursor is empty or too long")
    try:
        key = opaque.decode(cursor)
    except ValueError:
        raise InvalidCursorError("the cursor is not valid") from None
    if not isinstance(key, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in key.items()
    ):
        raise InvalidCursorError("the cursor is not valid")
    return key


def next_link(path: str, *, limit: int, cursor: str, status: str | None) -> str:
    """An RFC 8288 Link header value announcing the next page."""
    params = {"limit": str(limit), "cursor": cursor}
    if status is not None:
        params["status"] = status
    return f'<{path}?{urlencode(params)}>; rel="next"'
