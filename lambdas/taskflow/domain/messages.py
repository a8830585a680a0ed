"""The TaskQueue message: {"taskId": "...", "run": 1, "correlationId": "...", "owner": "..."}
(also what the DLQ holds). `owner` is there on `auth: jwt` stages only: with the taskId it is
the task's key (taskflow.table_schema).

A frozen dataclass validated on construction, not a pydantic model: the enqueuer and the DLQ
consumer read and write messages but never build a Task, so they need not import pydantic.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from taskflow.domain.errors import MalformedMessageError
from taskflow.domain.limits import MAX_NUMBER_DIGITS, TASK_ID_PATTERN
from taskflow.domain.owners import owner_or_none

MAX_CORRELATION_ID_LENGTH: Final = 256
_TASK_ID: Final = re.compile(TASK_ID_PATTERN)


@dataclass(frozen=True)
class TaskMessage:
    """A valid message: constructing one with an invalid field raises MalformedMessageError."""

    task_id: str  # "taskId" in the body
    run: int
    correlation_id: str | None = None  # "correlationId" in the body
    owner: str | None = None  # the task's owner (auth: jwt stages)

    def __post_init__(self) -> None:
        bad = []
        # fullmatch: the pattern's `$` would also accept a trailing newline with re.match.
        if not isinstance(self.task_id, str) or not _TASK_ID.fullmatch(self.task_id):
            bad.append("taskId")
        # Strictly an integer: not a bool, a float or a numeric string; one DynamoDB can hold.
        if type(self.run) is not int or not 1 <= self.run < 10**MAX_NUMBER_DIGITS:
            bad.append("run")
        if self.correlation_id is not None and (
            not isinstance(self.correlation_id, str) or len(self.correlation_id) > MAX_CORRELATION_ID_LENGTH
        ):
            bad.append("correlationId")
        if self.owner is not None and owner_or_none(self.owner) != self.owner:
            bad.append("owner")
        if bad:
            raise MalformedMessageError(f"message body is not a task message (bad: {', '.join(bad)})")

    def to_body(self) -> str:
        body: dict[str, Any] = {"taskId": self.task_id, "run": self.run}
        if self.correlation_id is not None:
            body["correlationId"] = self.correlation_id
        if self.owner is not None:
            body["owner"] = self.owner
        return json.dumps(body, ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_fields(cls, fields: Mapping[str, Any]) -> TaskMessage:
        """The message of a body's fields (camelCase; unknown fields are ignored)."""
        # Any JSON value (or None when absent): __post_init__ checks them.
        task_id: Any = fields.get("taskId")
        run: Any = fields.get("run")
        return cls(
            task_id=task_id, run=run, correlation_id=fields.get("correlationId"), owner=fields.get("owner")
        )

    @classmethod
    def parse(cls, body: str | None) -> TaskMessage:
        """Parse a message body; MalformedMessageError says why it is not a task message."""
        try:
            data = json.loads(body or "")
        except (ValueError, RecursionError) as error:
            raise MalformedMessageError(f"message body is not JSON: {error}") from None
        if not isinstance(data, dict):
            raise MalformedMessageError("message body is not a JSON object")
        return cls.from_fields(data)
