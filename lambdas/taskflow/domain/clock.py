"""Time in the task domain: the clock that services and repositories are given (tests pass a
fixed one), and the timestamp format stored in the tables."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


def utc_timestamp(moment: datetime) -> str:
    """ISO-8601 UTC with microseconds and Z, e.g. 2026-11-25T23:00:00.123456Z (sorts as text)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
