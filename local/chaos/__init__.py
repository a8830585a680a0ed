"""Chaos runs against the local stack: faults in, a recorded history out, checked for lost tasks,
duplicated effects, regressions, unexpected tasks, DLQ accounting and missed frames; on a stage
with authorizers (`auth: jwt`) also for isolation: several users, none of whom ever receives a
frame of, or reads, another user's task.

    python -m local.chaos --tasks 1000        (make chaos)

runner.py drives the stack and records the history (history.py); checker.py states and checks
the invariants. The faults themselves live in the local stack (local/faults.py).
"""
