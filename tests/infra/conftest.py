"""Fixtures for the template tests: the stage variants (template_queries.STAGE_VARIANTS), each
synthesized at most once per test session and handed to every test that names it.

    @on_variants("dev", "prod")
    def test_something(variant): ...   # variant.stage, variant.template, variant.ids, variant.stack
"""

from __future__ import annotations

import os

# jsii prints a banner about the local Node version on every start; it is noise in test output.
os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

import pytest
from template_queries import Variant, stage_variant


@pytest.fixture(scope="session")
def variant(request: pytest.FixtureRequest) -> Variant:
    """The stage variant a test is parametrized with (`on_variants`, or `indirect=["variant"]`)."""
    name = getattr(request, "param", None)
    assert name is not None, "parametrize the test with on_variants(...) to say which stage it reads"
    return stage_variant(name)
