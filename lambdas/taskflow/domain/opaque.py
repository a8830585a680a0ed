"""Opaque tokens a client hands back unchanged (list cursors, WebSocket resume cursors): base64url
without padding of compact JSON. What the JSON must hold is each caller's check."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any


def encode(value: Any) -> str:
    raw = json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode("utf-8")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decode(token: str) -> Any:
    """The JSON value inside `token`; ValueError if it is not one `encode` made."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        return json.loads(raw.decode("utf-8"))
    except (binascii.Error, ValueError, UnicodeDecodeError, RecursionError):
        raise ValueError("not an opaque token") from None
