"""docs/security.md names the test that proves each protection: each of them must exist."""

from __future__ import annotations

import ast
import functools
import re
from pathlib import Path

from template_queries import REPO_ROOT

TESTS = REPO_ROOT / "tests"
# `file.py::test_name` (a row may go on with `::other_test` for the same file), with an optional
# `tests/<layer>/` prefix and an optional parametrization id in brackets.
REFERENCE = re.compile(r"`(?:(?P<file>(?:tests/\w+/)?test_\w+\.py))?::(?P<test>test_\w+)(?:\[[^\]]*\])?`")


@functools.cache
def _test_functions(path: Path) -> frozenset[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return frozenset(
        node.name
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")
    )


def _find(file: str) -> Path:
    if "/" in file:
        return REPO_ROOT / file
    matches = sorted(TESTS.glob(f"*/{file}"))
    assert len(matches) == 1, f"docs/security.md names {file}, found {matches}"
    return matches[0]


def references(text: str) -> list[tuple[str, str]]:
    """(test file, test name) for every test the text names, in order."""
    found = []
    current: str | None = None
    for line in text.splitlines():
        current = None  # a bare `::test` continues the file named before it on the same line
        for match in REFERENCE.finditer(line):
            current = match.group("file") or current
            assert current is not None, f"`::{match.group('test')}` names no file: {line[:80]}"
            found.append((current, match.group("test")))
    return found


def test_every_test_the_security_doc_names_exists():
    named = references((REPO_ROOT / "docs" / "security.md").read_text(encoding="utf-8"))

    missing = [f"{file}::{test}" for file, test in named if test not in _test_functions(_find(file))]

    assert len(named) > 50
    assert missing == []


def test_a_renamed_test_would_be_noticed():
    named = references(
        "`test_nag.py::test_no_such_test`, `::test_stage_has_no_unacknowledged_nag_errors_or_warnings`"
    )

    assert named == [
        ("test_nag.py", "test_no_such_test"),
        ("test_nag.py", "test_stage_has_no_unacknowledged_nag_errors_or_warnings"),
    ]
    assert "test_no_such_test" not in _test_functions(_find("test_nag.py"))
