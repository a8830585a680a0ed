"""The startup report: what from the template the local stack runs, approximates or skips."""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass


class FindingKind(enum.Enum):  # in the order the report lists them, most important first
    UNSUPPORTED = "unsupported (behaviour differs locally)"
    APPROXIMATED = "approximated"
    SATISFIED = "satisfied locally"
    INFO = "note"
    NOT_EMULATED = "not emulated (no behaviour change locally)"


@dataclass(frozen=True)
class Finding:
    kind: FindingKind
    subject: str
    detail: str

    def __str__(self) -> str:
        return f"{self.subject}: {self.detail}"


def render_findings(findings: Iterable[Finding]) -> list[str]:
    """Findings grouped by kind, most important first; duplicates removed."""
    seen: set[Finding] = set()
    grouped: dict[FindingKind, list[Finding]] = {}
    for finding in findings:
        if finding in seen:
            continue
        seen.add(finding)
        grouped.setdefault(finding.kind, []).append(finding)
    lines = []
    for kind in FindingKind:
        if kind not in grouped:
            continue
        lines.append(f"{kind.value.capitalize()}:")
        lines.extend(f"  - {finding}" for finding in grouped[kind])
    return lines
