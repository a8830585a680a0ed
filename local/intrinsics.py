"""Moved to local/template/intrinsics.py; this name stays until local/stack_auth.py moves (issue 16)."""

from local.template.intrinsics import IntrinsicError

__all__ = ["IntrinsicError"]
