"""taskflow.deadline: the invocation's own timer, and the one it found armed."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from lambda_support import FakeLambdaContext

from taskflow import deadline
from taskflow.deadline import OutOfTimeError, answer_before_timeout, raise_if_out_of_time
from taskflow.errors import DependencyUnavailableError

pytestmark = pytest.mark.timing


def context(remaining_seconds: float) -> FakeLambdaContext:
    return FakeLambdaContext(remaining_millis=int(remaining_seconds * 1000))


@pytest.fixture
def outer_timer() -> Iterator[list[int]]:
    """A timer armed before the invocation (as pytest-timeout arms one), with its own handler."""
    fired: list[int] = []
    previous_handler = signal.signal(signal.SIGALRM, lambda signum, _frame: fired.append(signum))
    previous = signal.setitimer(signal.ITIMER_REAL, 100.0)
    yield fired
    signal.setitimer(signal.ITIMER_REAL, *previous)
    signal.signal(signal.SIGALRM, previous_handler)


def test_a_wait_past_the_budget_raises_out_of_time_a_dependency_error():
    started = time.monotonic()

    with pytest.raises(OutOfTimeError) as raised, answer_before_timeout(context(1.2), reserve_seconds=1.0):
        time.sleep(5)

    assert isinstance(raised.value, DependencyUnavailableError)
    assert 0.15 < time.monotonic() - started < 1.0


def test_the_timer_found_armed_gets_its_time_and_handler_back(outer_timer):
    before = signal.getitimer(signal.ITIMER_REAL)[0]

    with answer_before_timeout(context(30), reserve_seconds=1.0):
        assert signal.getitimer(signal.ITIMER_REAL)[0] <= 29.0  # ours is in charge meanwhile

    left = signal.getitimer(signal.ITIMER_REAL)[0]
    assert before - 5 < left <= before
    handler: Any = signal.getsignal(signal.SIGALRM)
    handler(signal.SIGALRM, None)
    assert outer_timer == [signal.SIGALRM]


def test_an_earlier_timer_stays_in_charge(outer_timer):
    with answer_before_timeout(context(500), reserve_seconds=1.0):
        assert 95 < signal.getitimer(signal.ITIMER_REAL)[0] <= 100.0


def test_nothing_fires_once_the_invocation_is_over():
    before = signal.getitimer(signal.ITIMER_REAL)[0]  # pytest-timeout's, or none

    with answer_before_timeout(context(1.3), reserve_seconds=1.0):
        pass

    after = signal.getitimer(signal.ITIMER_REAL)[0]
    assert after == 0.0 if before == 0.0 else before - 5 < after <= before
    assert deadline._deadline is None
    raise_if_out_of_time()  # no deadline armed: no refusal


def test_the_aws_hook_refuses_a_new_attempt_once_the_deadline_has_passed():
    with answer_before_timeout(context(1.25), reserve_seconds=1.0):
        raise_if_out_of_time()  # time left: no refusal
        with pytest.raises(OutOfTimeError):  # the timer (botocore would wrap this one and retry)
            time.sleep(5)
        with pytest.raises(OutOfTimeError):  # so the hook refuses the retry
            raise_if_out_of_time()


def test_off_the_main_thread_it_does_nothing():
    armed: list[float | None] = []

    def invocation() -> None:
        with answer_before_timeout(context(1.1), reserve_seconds=1.0):
            armed.append(deadline._deadline)

    worker = threading.Thread(target=invocation)
    worker.start()
    worker.join(5)

    assert armed == [None]
