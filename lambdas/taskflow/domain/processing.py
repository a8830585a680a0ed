"""The processing step: the ONE function a user replaces with real work (`process_task`).

The processor calls `process_task(task, attempt)` after it has claimed the task's lease, and
commits the outcome with a conditional write:

- return normally  -> the task becomes `success`;
- raise anything   -> the attempt failed: its message becomes `errorMessage`, SQS redelivers
                      the message after an exponential backoff, and after MAX_RECEIVE_COUNT
                      attempts the DLQ consumer marks the task `error`.

Delivery is at-least-once: if the function dies between the step and the commit, the step runs
again for the same task. Make external side effects idempotent, e.g. keyed by
(task.task_id, task.run).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from taskflow.domain.task import Task


class ProcessingError(Exception):
    """Raise this (or any exception) from `process_task` to fail the attempt with a message."""


@dataclass(frozen=True)
class SimulationSettings:
    failure_rate: float = 0.0  # probability that an attempt fails at random
    allow_fault_injection: bool = False  # honour the per-task `simulate` switch


# Module-level state, set once per cold start by `configure()` (the processor does it).
_settings = SimulationSettings()
_rng = random.Random()


def configure(*, failure_rate: float, seed: int | None, allow_fault_injection: bool) -> None:
    """Set the simulation parameters and seed the failure RNG (None: seeded from the OS)."""
    global _settings  # noqa: PLW0603 - cold-start configuration of this module
    _settings = SimulationSettings(failure_rate=failure_rate, allow_fault_injection=allow_fault_injection)
    _rng.seed(seed)


# ##############################################################################################
# ##                                                                                          ##
# ##                              REPLACE THIS WITH YOUR WORK                                 ##
# ##                                                                                          ##
# ##   `process_task` is the processing step. Everything else (leases, retries, backoff,      ##
# ##   dead-lettering, notifications) is handled around it. Keep the signature.               ##
# ##                                                                                          ##
# ##############################################################################################
def process_task(task: Task, attempt: int) -> None:
    """Process one task. `attempt` is 1 for the first try, 2 for the first retry, ...

    Return to succeed; raise to fail this attempt (the exception's message is shown to users).
    The default implementation only simulates work, see `_simulate_work`.
    """
    _simulate_work(task, attempt)


def _simulate_work(task: Task, attempt: int) -> None:
    """Fail deterministically on attempts 1..k when the task asks for it (`simulate.failAttempts`,
    only where fault injection is allowed), else fail at random with probability FAILURE_RATE."""
    if _settings.allow_fault_injection and task.simulate is not None:
        if attempt <= task.simulate.fail_attempts:
            raise ProcessingError(
                f"simulated failure on attempt {attempt} (failAttempts={task.simulate.fail_attempts})"
            )
        return
    if _settings.failure_rate > 0 and _rng.random() < _settings.failure_rate:
        raise ProcessingError(f"simulated random failure on attempt {attempt}")
