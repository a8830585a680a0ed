"""Fixtures of the local stack's own tests. Helpers live in local_support.py."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from local_support import start_moto, stop_moto


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """A moto server with the local stack's patches, shared by the tests that need AWS."""
    process, endpoint = start_moto(patched=True)
    yield endpoint
    stop_moto(process)
