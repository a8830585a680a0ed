"""WebSocket frames for task changes: which table changes are worth a frame, and what it says.

A frame goes out for every change a user can see: creation (INSERT), each failed attempt
(the lease backs off), success, error, retry. Internal writes (lease claims, releases) are skipped.
Frames carry no payload, so they stay far below API Gateway's 32 KB frame limit: answer and
errorMessage are at most 1000 characters each, and a frame cuts one that is longer (an item edited
by hand) to that length, rather than let a post @connections refuses (413) hold up the stream, and
with it every other task's frames.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, Final

from taskflow.domain.limits import MAX_ANSWER_LENGTH, MAX_ERROR_MESSAGE_LENGTH
from taskflow.domain.resume import ResumeCursor

FRAME_FIELDS: Final = ("taskId", "status", "retries", "errorMessage", "updatedAt", "version", "answer")
# The free-text fields, and the length no task written through the API exceeds.
_TEXT_LIMITS: Final = {"answer": MAX_ANSWER_LENGTH, "errorMessage": MAX_ERROR_MESSAGE_LENGTH}


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


def is_visible_change(old_image: Mapping[str, Any] | None, new_image: Mapping[str, Any]) -> bool:
    """True for a new task or a change of status: every transition (a failed attempt, success,
    error, retry) writes `updatedAt`, which the frame's cursor is made of; a lease claim or release
    does not. A failed attempt is a frame even when it shows what the one before did: the final
    attempt keeps `retries` (no attempt follows it) and often fails with the same message, and the
    contract promises a frame for each failed attempt."""
    return not old_image or old_image.get("updatedAt") != new_image.get("updatedAt")


def task_frame(new_image: Mapping[str, Any], scope: str) -> dict[str, Any]:
    """The frame of a task's state; `cursor` is where a client that saw it resumes from
    (taskflow.domain.resume), in `scope` (the task's owner, or "*" on `auth: none` stages)."""
    frame: dict[str, Any] = {"type": "task"}
    for name in FRAME_FIELDS:
        value = _plain(new_image.get(name))
        if name in _TEXT_LIMITS and value is not None:
            # (a map or list there was edited in by hand too: it is no text, and could be any size)
            value = value[: _TEXT_LIMITS[name]] if isinstance(value, str) else None
        frame[name] = value
    frame["cursor"] = ResumeCursor(str(new_image.get("updatedAt")), scope).encode()
    return frame


def encode_frame(frame: Mapping[str, Any]) -> bytes:
    return json.dumps(frame, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
