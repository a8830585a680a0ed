"""Chaos runs against the local stack (`python -m local.chaos`, make chaos): faults in, a recorded
history out, checked against the invariants of checker.py. The modules: docs/local-stack.md's file
map; a walk through a run: its "Fault injection and chaos runs".
"""
