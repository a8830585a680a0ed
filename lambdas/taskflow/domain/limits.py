"""Limits of a task's fields (documented in the README's API section).

Plain constants, no pydantic: the queue message (taskflow.domain.messages) and the repository
check task ids against TASK_ID_PATTERN in functions that never build a Task model.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Final

TASK_ID_PATTERN: Final = r"^[A-Za-z0-9_-]{1,64}$"
MAX_ANSWER_LENGTH: Final = 1000  # characters; the Angular frontend allows 1..200
MAX_PAYLOAD_BYTES: Final = 16 * 1024  # compact UTF-8 JSON of `payload`
MAX_PAYLOAD_DEPTH: Final = 8  # the payload object itself is depth 1
MAX_FAIL_ATTEMPTS: Final = 100
MAX_NUMBER_DIGITS: Final = 38  # DynamoDB numbers: 38 significant digits
MAX_ERROR_MESSAGE_LENGTH: Final = 1000  # longer step errors are truncated


def json_number(number: Decimal) -> int | float:
    """A stored number (DynamoDB keeps its decimal value) as a JSON value: an integer if it is one
    of at most MAX_NUMBER_DIGITS digits (so 1.0 reads back as 1), else a float (1E+40 as 1e+40, as
    it was submitted: no integer of more digits is ever accepted)."""
    if number == number.to_integral_value() and len(str(abs(int(number)))) <= MAX_NUMBER_DIGITS:
        return int(number)
    return float(number)
