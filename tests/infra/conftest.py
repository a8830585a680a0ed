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
from template_queries import (
    EXTERNAL_AUDIENCE,
    EXTERNAL_ISSUER,
    StackIds,
    cdk_json_stages,
    changed,
    stack_ids,
    synth,
)

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


# Stages with `auth: jwt`, derived from dev so that they differ from it in authentication only:
# one that creates its Cognito user pool, one that names an external issuer.
@pytest.fixture(scope="module")
def jwt_pool_stage(dev_stage: StageConfig) -> StageConfig:
    return changed(dev_stage, auth="jwt")


@pytest.fixture(scope="module")
def jwt_issuer_stage(dev_stage: StageConfig) -> StageConfig:
    return changed(dev_stage, auth="jwt", jwt_issuer=EXTERNAL_ISSUER, jwt_audience=EXTERNAL_AUDIENCE)


@pytest.fixture(scope="module")
def jwt_pool_template(jwt_pool_stage: StageConfig) -> Template:
    return synth(jwt_pool_stage)


@pytest.fixture(scope="module")
def jwt_issuer_template(jwt_issuer_stage: StageConfig) -> Template:
    return synth(jwt_issuer_stage)


@pytest.fixture(scope="module")
def jwt_pool_ids(jwt_pool_template: Template) -> StackIds:
    return stack_ids(jwt_pool_template)


@pytest.fixture(scope="module")
def jwt_issuer_ids(jwt_issuer_template: Template) -> StackIds:
    return stack_ids(jwt_issuer_template)


# dev with the task data encrypted under a key of its own, as prod is (an `auth: none` stage with it).
@pytest.fixture(scope="module")
def dev_cmk_stage(dev_stage: StageConfig) -> StageConfig:
    return changed(dev_stage, customer_managed_keys=True)


@pytest.fixture(scope="module")
def dev_cmk_template(dev_cmk_stage: StageConfig) -> Template:
    return synth(dev_cmk_stage)


@pytest.fixture(scope="module")
def dev_cmk_ids(dev_cmk_template: Template) -> StackIds:
    return stack_ids(dev_cmk_template)


# prod as it was before authentication existed: the template of an `auth: none` stage must not change.
@pytest.fixture(scope="module")
def prod_auth_none_stage(prod_stage: StageConfig) -> StageConfig:
    return changed(prod_stage, auth="none")


@pytest.fixture(scope="module")
def prod_auth_none_template(prod_auth_none_stage: StageConfig) -> Template:
    return synth(prod_auth_none_stage)
