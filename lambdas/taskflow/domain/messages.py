"""The TaskQueue message: {"taskId": "...", "run": 1, "correlationId": "..."} (also what the DLQ holds)."""

from __future__ import annotations

import json
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, ValidationError

from taskflow.domain.errors import MalformedMessageError
from taskflow.domain.task import TASK_ID_PATTERN


class TaskMessage(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    task_id: Annotated[StrictStr, Field(alias="taskId", pattern=TASK_ID_PATTERN)]
    run: Annotated[StrictInt, Field(ge=1)]
    correlation_id: Annotated[str | None, Field(alias="correlationId", max_length=256)] = None

    def to_body(self) -> str:
        return self.model_dump_json(by_alias=True, exclude_none=True)

    @classmethod
    def parse(cls, body: str | None) -> TaskMessage:
        """Parse a message body; MalformedMessageError says why it is not a task message."""
        try:
            data = json.loads(body or "")
        except (ValueError, RecursionError) as error:
            raise MalformedMessageError(f"message body is not JSON: {error}") from None
        if not isinstance(data, dict):
            raise MalformedMessageError("message body is not a JSON object")
        try:
            return cls.model_validate(data)
        except ValidationError as error:
            fields = ", ".join(".".join(str(p) for p in e["loc"]) or "body" for e in error.errors())
            raise MalformedMessageError(f"message body is not a task message (bad: {fields})") from None
