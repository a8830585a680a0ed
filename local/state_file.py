"""Moved to local/state/running_stack.py; this name stays until local/auth.py moves (issue 16)."""

from local.state.running_stack import StateFileError, running_stack_state

__all__ = ["StateFileError", "running_stack_state"]
