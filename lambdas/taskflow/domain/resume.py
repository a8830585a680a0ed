"""WebSocket resume cursors: where a client's view of its tasks stands.

Every task frame carries `cursor`, an opaque string: base64url (no padding) of
{"v": 1, "at": <the change's updatedAt>, "scope": <the connection's scope>} (the owner on
`auth: jwt` stages, "*" on `auth: none`). A client that reconnects sends the last cursor it saw,
`{"action": "resume", "since": <cursor>}`, and gets every task that changed after it
(taskflow.services.resume). The scope only lets the server refuse another caller's cursor with a
clear error; what a resume reads is always the connection's own scope, so a forged cursor can
name a time, never another owner's tasks.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from taskflow.domain import opaque

CURSOR_VERSION: Final = 1
MAX_CURSOR_LENGTH: Final = 2048  # a scope is at most 1 KB of UTF-8 (taskflow.domain.owners)
_TIMESTAMP: Final = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")


class InvalidResumeCursorError(ValueError):
    """Not a cursor this server issued (malformed, another version, or damaged)."""


@dataclass(frozen=True)
class ResumeCursor:
    at: str  # a stored timestamp (taskflow.domain.clock format)
    scope: str

    def encode(self) -> str:
        return opaque.encode({"v": CURSOR_VERSION, "at": self.at, "scope": self.scope})

    @property
    def when(self) -> datetime:
        return datetime.strptime(self.at, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)

    @classmethod
    def decode(cls, text: object) -> ResumeCursor:
        if not isinstance(text, str) or not text or len(text) > MAX_CURSOR_LENGTH:
            raise InvalidResumeCursorError("`since` must be a cursor string from a task frame")
        try:
            fields = opaque.decode(text)
        except ValueError:
            raise InvalidResumeCursorError("`since` is not a cursor this server issued") from None
        if (
            not isinstance(fields, dict)
            or set(fields) != {"v", "at", "scope"}
            or type(fields["v"]) is not int  # not true, nor 1.0: the version as this server writes it
            or fields["v"] != CURSOR_VERSION
        ):
            raise InvalidResumeCursorError("`since` is not a cursor this server issued")
        at, scope = fields["at"], fields["scope"]
        if not isinstance(at, str) or not _TIMESTAMP.fullmatch(at) or not isinstance(scope, str) or not scope:
            raise InvalidResumeCursorError("`since` is damaged")
        try:
            cls(at, scope).when  # noqa: B018 - a real date (not 2026-13-45)
        except ValueError:
            raise InvalidResumeCursorError("`since` is damaged") from None
        return cls(at, scope)
