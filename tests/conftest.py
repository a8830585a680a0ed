"""Test-run layout for pytest-xdist (`make test` runs two workers, `--dist loadgroup`).

Every end-to-end test starts a local stack of its own processes (moto, function workers) and some
assert timings (a restart within 5 s, a reload within 2 s): they run one after another on one
worker, while the other worker takes the unit tests, which need one core each. Unit tests marked
`timing` (a deadline of a second or less) join the end-to-end group, so they never run beside a
stack (on 2 cores a stack's processes can hold a test's process off the CPU for seconds).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Powertools reads these when taskflow.observability is first imported (as Lambda's environment
# would provide them). Set here, before any test module is collected: tests/e2e and tests/local
# import the local issuer, which imports the Lambda code's TokenVerifier and with it
# taskflow.observability, so a later conftest would come too late for that process.
os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "taskflow")
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "TaskBackendTest")
os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")

_E2E = Path(__file__).parent / "e2e"


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        # tests/local's fixture stacks (marked e2e) too: their module shares one stack, and a test
        # there may read what the ones before it did, so the module must stay on one worker.
        marked = item.get_closest_marker("timing") or item.get_closest_marker("e2e")
        if _E2E in Path(item.path).parents or marked:
            item.add_marker(pytest.mark.xdist_group("stacks"))
