"""Fixtures for the template tests: the stages from cdk.json and their synthesized templates.

Each stage is synthesized at most once per test session (`synth` is cached on the frozen
StageConfig); the module-scoped fixtures hand the same Template to every test of a module.
"""

from __future__ import annotations

import os

# jsii prints a banner about the local Node version on every start; it is noise in test output.
os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

import pytest
from aws_cdk.assertions import Template
from template_queries import StackIds, cdk_json_stages, stack_ids, synth

from infra.config import StageConfig


@pytest.fixture(scope="module")
def dev_stage() -> StageConfig:
    return cdk_json_stages()["dev"]


@pytest.fixture(scope="module")
def prod_stage() -> StageConfig:
    return cdk_json_stages()["prod"]


@pytest.fixture(scope="module")
def dev_template(dev_stage: StageConfig) -> Template:
    return synth(dev_stage)


@pytest.fixture(scope="module")
def prod_template(prod_stage: StageConfig) -> Template:
    return synth(prod_stage)


@pytest.fixture(scope="module")
def dev_ids(dev_template: Template) -> StackIds:
    return stack_ids(dev_template)


@pytest.fixture(scope="module")
def prod_ids(prod_template: Template) -> StackIds:
    return stack_ids(prod_template)
