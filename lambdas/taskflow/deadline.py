"""Answer before Lambda's timeout kills the invocation.

A function that hits its timeout is killed mid-call and API Gateway answers the client a bare 500:
exactly what must not happen when the cause is a slow dependency (a DynamoDB that answers in 8 s
instead of 8 ms, SDK retries adding up). `answer_before_timeout` arms a SIGALRM timer for the
invocation's remaining time minus a reserve; if it fires, DependencyUnavailableError is raised
wherever the route is (usually inside a botocore call), which the HTTP API turns into its 503
with Retry-After (taskflow.api.app arms it around the route only, as a middleware: an error
handler or the response builder is never interrupted). The write that was in flight may or may
not have happened: every route is safe to repeat (POST /tasks is idempotent on taskId, a
repeated retry is a 409), as after any 503.

botocore wraps whatever interrupts its HTTP read into a retryable HTTPClientError, so the timer
alone would only start the next attempt: `raise_if_out_of_time` (a hook on every client,
taskflow.clients.aws) refuses any further attempt or retry once the deadline has passed.

Signals are delivered to the main thread only; elsewhere (or with no time left to arm) this does
nothing. A timer that was already armed (pytest-timeout's, in tests) is restored afterwards.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Final, Protocol

from taskflow.errors import DependencyUnavailableError

# Time kept back to build the 503, log it and flush metrics before Lambda's own timeout.
RESERVE_SECONDS: Final = 1.0


class InvocationContext(Protocol):
    def get_remaining_time_in_millis(self) -> int: ...


class OutOfTimeError(DependencyUnavailableError):
    """The invocation was about to time out while waiting on a dependency."""

    def __init__(self) -> None:
        super().__init__("AWS", "no answer before the function's time limit")


_deadline: float | None = None  # time.monotonic() of the armed invocation's deadline


def raise_if_out_of_time(**_: Any) -> None:
    """botocore before-send / needs-retry hook: no new attempt after the deadline."""
    deadline = _deadline
    if deadline is not None and time.monotonic() >= deadline:
        raise OutOfTimeError


def seconds_left(context: InvocationContext) -> Callable[[], float]:
    """The invocation's remaining seconds, read each time it is called (a long loop asks before
    each step whether to stop: the WebSocket resume, the notifier)."""
    return lambda: context.get_remaining_time_in_millis() / 1000


@contextmanager
def answer_before_timeout(
    context: InvocationContext, reserve_seconds: float = RESERVE_SECONDS
) -> Iterator[None]:
    budget = context.get_remaining_time_in_millis() / 1000 - reserve_seconds
    if budget <= 0 or threading.current_thread() is not threading.main_thread():
        yield
        return

    armed = True

    def expire(_signum: int, _frame: Any) -> None:
        if armed:  # not once the body has finished (the signal may land in the finally below)
            raise OutOfTimeError

    global _deadline  # noqa: PLW0603 - one invocation at a time per execution environment
    started = time.monotonic()
    previous_handler = signal.signal(signal.SIGALRM, expire)
    previous_delay, previous_interval = signal.setitimer(signal.ITIMER_REAL, budget)
    if previous_delay and previous_delay < budget:  # an earlier timer stays in charge
        signal.setitimer(signal.ITIMER_REAL, previous_delay, previous_interval)
        signal.signal(signal.SIGALRM, previous_handler)
        yield
        return
    _deadline = started + budget
    try:
        yield
    finally:
        armed = False
        _deadline = None
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous_handler)
        if previous_delay:
            left = previous_delay - (time.monotonic() - started)
            signal.setitimer(signal.ITIMER_REAL, max(left, 0.001), previous_interval)
