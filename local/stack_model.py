"""Moved to local/template/; this name stays until local/stack_auth.py moves (issue 16)."""

from local.template.model import ISSUERS_PATH, StackModel
from local.template.values import LocalValues

__all__ = ["ISSUERS_PATH", "LocalValues", "StackModel"]
