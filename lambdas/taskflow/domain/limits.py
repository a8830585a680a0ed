"""Limits of a task's fields (documented in the README's API section).

Plain constants, no pydantic: the queue message (taskflow.domain.messages) and the repository
check task ids against TASK_ID_PATTERN in functions that never build a Task model.
"""

from __future__ import annotations

from typing import Final

TASK_ID_PATTERN: Final = r"^[A-Za-z0-9_-]{1,64}$"
MAX_ANSWER_LENGTH: Final = 1000  # characters; the Angular frontend allows 1..200
MAX_PAYLOAD_BYTES: Final = 16 * 1024  # compact UTF-8 JSON of `payload`
MAX_PAYLOAD_DEPTH: Final = 8  # the payload object itself is depth 1
MAX_FAIL_ATTEMPTS: Final = 100
MAX_NUMBER_DIGITS: Final = 38  # DynamoDB numbers: 38 significant digits
MAX_ERROR_MESSAGE_LENGTH: Final = 1000  # longer step errors are truncated
