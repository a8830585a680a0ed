"""Moved to local/template/report.py; this name stays until local/stack_auth.py moves (issue 16)."""

from local.template.report import FindingKind

__all__ = ["FindingKind"]
