"""Shared fixtures for the handler tests: moto (mock_aws) resources built from the same schema
constants as the CDK tables, the functions' environment, a Lambda context, and a fresh
"cold start" (no cached settings, clients or services) for every test.

Event builders and fakes live in lambda_support.py."""

from __future__ import annotations

import json
from collections.abc import Iterator

import boto3
import pytest
from lambda_support import (
    ALLOWED_ORIGIN,
    CALLBACK_URL,
    MAX_RECEIVE_COUNT,
    OTHER_ALLOWED_ORIGIN,
    REGION,
    STREAMS_ENDPOINT,
    Aws,
    FakeLambdaContext,
    create_connection_table,
    create_task_table,
)
from moto import mock_aws

from taskflow import env_vars, lazy, table_schema
from taskflow.clients import aws
from taskflow.domain import processing
from taskflow.settings import reset_settings


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Fake credentials, no real endpoint, and a fresh "cold start" for every test."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_REGION", REGION)
    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    _forget_cold_start_state()
    yield
    _forget_cold_start_state()


def _forget_cold_start_state() -> None:
    lazy.reset_all()
    reset_settings()
    aws.reset_clients()
    processing.configure(failure_rate=0.0, seed=0, allow_fault_injection=False)


# --------------------------------------------------------------------------- AWS on moto

TASK_TABLE = "TaskTable"
CONNECTION_TABLE = "ConnectionTable"
QUEUE_URL = f"https://sqs.{REGION}.amazonaws.com/123456789012/TaskQueue"


@pytest.fixture
def moto_aws() -> Iterator[Aws]:
    """The resources of an `auth: none` stage."""
    yield from _moto_aws(owner_scoped=False)


@pytest.fixture
def owner_scoped_aws() -> Iterator[Aws]:
    """The resources of an `auth: jwt` stage: the connection table indexed by owner (table_schema)."""
    yield from _moto_aws(owner_scoped=True)


def _moto_aws(*, owner_scoped: bool) -> Iterator[Aws]:
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        sqs = boto3.client("sqs", region_name=REGION)
        stream_arn = create_task_table(dynamodb, TASK_TABLE)
        create_connection_table(dynamodb, CONNECTION_TABLE, owner_scoped=owner_scoped)
        dlq_url = sqs.create_queue(QueueName="TaskDLQ")["QueueUrl"]
        dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        queue_url = sqs.create_queue(
            QueueName="TaskQueue",
            Attributes={
                "VisibilityTimeout": "180",
                "RedrivePolicy": json.dumps(
                    {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(MAX_RECEIVE_COUNT)}
                ),
            },
        )["QueueUrl"]
        assert queue_url == QUEUE_URL
        yield Aws(
            task_table=TASK_TABLE,
            connection_table=CONNECTION_TABLE,
            queue_url=queue_url,
            dlq_url=dlq_url,
            dynamodb=dynamodb,
            sqs=sqs,
            streams=boto3.client("dynamodbstreams", region_name=REGION, endpoint_url=STREAMS_ENDPOINT),
            stream_arn=stream_arn,
        )


def _set_function_env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Every variable any function gets (a superset: each settings class reads its own)."""
    values = {
        env_vars.STAGE: "test",
        env_vars.TASK_TABLE_NAME: TASK_TABLE,
        # What a TaskRepository uses unless told: the tests' own repositories and the handlers agree.
        env_vars.TASK_LIST_SHARDS: str(table_schema.DEFAULT_LIST_SHARDS),
        env_vars.CONNECTION_TABLE_NAME: CONNECTION_TABLE,
        env_vars.TASK_QUEUE_URL: QUEUE_URL,
        env_vars.WEBSOCKET_CALLBACK_URL: CALLBACK_URL,
        env_vars.CORS_ORIGINS: f"{ALLOWED_ORIGIN},{OTHER_ALLOWED_ORIGIN}",
        env_vars.CORS_HEADERS: "Content-Type,Authorization,X-Api-Key",
        env_vars.FAILURE_RATE: "0",
        env_vars.FAILURE_SEED: "7",
        env_vars.ALLOW_FAULT_INJECTION: "true",
        env_vars.MAX_RECEIVE_COUNT: str(MAX_RECEIVE_COUNT),
        env_vars.BACKOFF_BASE_SECONDS: "2",
        env_vars.BACKOFF_CAP_SECONDS: "60",
        env_vars.CONNECTION_TTL_SECONDS: "7800",
        env_vars.RESUME_MAX_CHANGES: "50",
        env_vars.RESUME_WINDOW_SECONDS: "86400",
        # Read only by the $connect authorizer (tests/lambdas/test_ws_authorizer.py points the
        # issuer at its own server); AUTH_MODE stays unset: "none", as on a stage with `auth: none`.
        env_vars.JWT_ISSUER: "https://issuer.example.com/pool",
        env_vars.JWT_AUDIENCE: "test-client",
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return values


@pytest.fixture
def function_env(moto_aws: Aws, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The functions' environment, pointing at the moto resources."""
    return _set_function_env(monkeypatch)


@pytest.fixture
def jwt_env(owner_scoped_aws: Aws, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The functions' environment on a stage with `auth: jwt`, pointing at owner-scoped tables."""
    values = _set_function_env(monkeypatch)
    monkeypatch.setenv(env_vars.AUTH_MODE, "jwt")
    return {**values, env_vars.AUTH_MODE: "jwt"}


@pytest.fixture
def offline_env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The same environment without moto, for tests that must never reach AWS (faster)."""
    return _set_function_env(monkeypatch)


# --------------------------------------------------------------------------- Lambda context


@pytest.fixture
def lambda_context() -> FakeLambdaContext:
    return FakeLambdaContext()


def pytest_configure(config: pytest.Config) -> None:
    # An invocation without metrics is normal (taskflow.observability silences this on Lambda;
    # pytest resets warning filters per test, so repeat it here).
    config.addinivalue_line("filterwarnings", "ignore:No application metrics to publish:UserWarning")
