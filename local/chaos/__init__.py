"""Chaos runs against the local stack: faults in, a recorded history out, checked for lost tasks,
duplicated effects, regressions, unexpected tasks, DLQ accounting and missed frames; on a stage
with authorizers (`auth: jwt`) also for isolation: several users, none of whom ever receives a
frame of, or reads, another user's task.

    python -m local.chaos --tasks 1000        (make chaos; cli.py)

runner.py             the run's settings (ChaosConfig) and its phases, run_chaos()
stack.py              the local stack under the run, and the faults dealt to it from outside
frontend.py           the simulated frontend over HTTP: submissions, polls, listings
websocket_clients.py  its WebSocket clients: staying, churning, resuming
recorder.py           every response and frame into the history (history.py)
checker.py            the invariants, checked over the history into a report (report.py)

The faults inside the stack live in local/faults.py. docs/local-stack.md ("Fault injection and
chaos runs") walks through a run.
"""
