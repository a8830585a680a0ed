"""What a client submits (POST /tasks): pydantic models, validated at the edge.

Only the HTTP API loads this module (and pydantic): the functions that handle stored tasks (the
processor, the DLQ consumer) use the plain taskflow.domain.task.Task.
"""

from __future__ import annotations

import hashlib
import json
import math
from decimal import Decimal
from typing import Annotated, Any, Final

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, field_validator, model_validator
from pydantic.alias_generators import to_camel

from taskflow.domain.limits import (
    MAX_ANSWER_LENGTH,
    MAX_FAIL_ATTEMPTS,
    MAX_NUMBER_DIGITS,
    MAX_PAYLOAD_BYTES,
    MAX_PAYLOAD_DEPTH,
    TASK_ID_PATTERN,
    json_number,
)

# DynamoDB numbers: up to MAX_NUMBER_DIGITS significant digits, magnitude 1e-130 .. 9.99...e125.
_MIN_FLOAT_MAGNITUDE: Final = 1e-130
_MAX_FLOAT_MAGNITUDE: Final = 9.9e125


class _CamelModel(BaseModel):
    # Client input is read by its wire names only (`taskId`, `failAttempts`). A field's Python name
    # (`task_id`) is refused, not ignored like other unknown fields: a client that sent it meaning
    # the id would otherwise get a new task for every replay.
    model_config = ConfigDict(alias_generator=to_camel, frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _wire_names_only(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for name, field in cls.model_fields.items():
                if field.alias and field.alias != name and name in data:
                    raise ValueError(f"{name} is not a field: this API spells it {field.alias}")
        return data


class Simulation(_CamelModel):
    """Per-task fault injection: fail attempts 1..fail_attempts, then succeed."""

    model_config = ConfigDict(extra="forbid")

    fail_attempts: Annotated[StrictInt, Field(ge=0, le=MAX_FAIL_ATTEMPTS)]


def _check_encodable(text: str, where: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{where} contains an unpaired surrogate (not valid UTF-8)") from None


def _check_json_value(value: Any, depth: int, path: str) -> None:
    """Raise ValueError if `value` (parsed JSON) cannot be stored as-is in DynamoDB."""
    if isinstance(value, dict | list):
        if depth > MAX_PAYLOAD_DEPTH:
            raise ValueError(f"payload is nested deeper than {MAX_PAYLOAD_DEPTH} levels (at {path})")
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for key, item in items:
            if isinstance(key, str):
                if not key:
                    raise ValueError(f"payload keys must be non-empty strings (at {path})")
                _check_encodable(key, f"a key at {path}")
            _check_json_value(item, depth + 1, f"{path}.{key}" if isinstance(key, str) else f"{path}[{key}]")
    else:
        _check_json_scalar(value, path)


def _check_json_scalar(value: Any, path: str) -> None:
    if isinstance(value, str):
        _check_encodable(value, f"the string at {path}")
    elif isinstance(value, bool) or value is None:
        return
    elif isinstance(value, int):
        if len(str(abs(value))) > MAX_NUMBER_DIGITS:
            raise ValueError(f"the integer at {path} has more than {MAX_NUMBER_DIGITS} digits")
    elif isinstance(value, float):
        magnitude = abs(value)
        if not math.isfinite(value) or (
            magnitude and not _MIN_FLOAT_MAGNITUDE <= magnitude <= _MAX_FLOAT_MAGNITUDE
        ):
            raise ValueError(f"the number at {path} is outside the range 1e-130..9.9e125")
    else:  # pragma: no cover - json.loads yields nothing else
        raise ValueError(f"unsupported value at {path}")


class TaskSubmission(_CamelModel):
    """The client-owned fields of POST /tasks. Unknown fields (the frontend's `status`,
    `retries`) are ignored: the server owns them."""

    model_config = ConfigDict(extra="ignore")

    task_id: Annotated[StrictStr, Field(pattern=TASK_ID_PATTERN)] | None = None
    answer: Annotated[StrictStr, Field(min_length=1, max_length=MAX_ANSWER_LENGTH)]
    payload: dict[str, Any] | None = None
    simulate: Simulation | None = None

    @field_validator("answer")
    @classmethod
    def _answer_is_utf8(cls, answer: str) -> str:
        _check_encodable(answer, "answer")
        return answer

    @field_validator("payload")
    @classmethod
    def _payload_fits(cls, payload: dict[str, Any] | None) -> dict[str, Any] | None:
        if payload is None:
            return None
        _check_json_value(payload, 1, "payload")
        payload = _as_stored(payload)
        size = len(_canonical_json(payload).encode("utf-8"))
        if size > MAX_PAYLOAD_BYTES:
            raise ValueError(f"payload is {size} bytes as JSON; the limit is {MAX_PAYLOAD_BYTES}")
        return payload

    def request_hash(self) -> str:
        """sha256 of the canonical JSON of the client-owned fields (idempotency check)."""
        owned = {
            "answer": self.answer,
            "payload": self.payload,
            "simulate": self.simulate.model_dump(by_alias=True) if self.simulate else None,
        }
        return hashlib.sha256(_canonical_json(owned).encode("utf-8")).hexdigest()


def _as_stored(value: Any) -> Any:
    """`value` as a read of the stored task gives it back (taskflow.repositories.dynamodb stores a
    float as its decimal value and reads it with `json_number`): 1.0, 1e20 and -0.0 become integers.
    So the 202's body is what GET answers later, and `1.0` and `1` are the same body for the
    idempotency check."""
    if isinstance(value, float):
        return json_number(Decimal(repr(value)))
    if isinstance(value, dict):
        return {key: _as_stored(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_as_stored(item) for item in value]
    return value


def _canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
