"""The whole chain on moto, driven by invoking the handlers as Lambda would:

POST /tasks -> TaskTable stream -> enqueue -> TaskQueue -> processor (retries by visibility
timeout) -> TaskTable stream -> notifier -> @connections; plus the DLQ path and POST /retry.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from http import HTTPStatus
from typing import Any

import pytest
from lambda_support import (
    MAX_RECEIVE_COUNT,
    Aws,
    FakeConnections,
    FakeLambdaContext,
    StreamReader,
    http_event,
    json_post,
    put_connection,
    sqs_event,
)

from taskflow import env_vars
from taskflow.handlers import dlq_consumer, enqueue, http_api, notifier, processor
from taskflow.observability import logger
from taskflow.repositories.connection_repository import ConnectionRepository
from taskflow.services.task_notifier import TaskNotifier

TASK_ID = "0b9c2d52-6c1b-4d8e-9f3a-2f4f0c2e7a11"


class Pipeline:
    """Plays the event source mappings: stream -> enqueue + notifier, queue -> processor,
    DLQ -> dlq_consumer; deletes the messages a handler acknowledged, as the ESM does."""

    def __init__(self, moto_aws: Aws, context: FakeLambdaContext) -> None:
        self.aws = moto_aws
        self.context = context
        self.stream: StreamReader = moto_aws.stream_reader()
        self.receives = 0

    def pump_stream(self) -> None:
        event = self.stream.read()
        if event["Records"]:
            assert enqueue.handler(event, self.context) == {"batchItemFailures": []}
            assert notifier.handler(event, self.context) == {"batchItemFailures": []}

    def drain(self, queue_url: str, handler: Any) -> None:
        while messages := self.aws.receive(queue_url):
            self.receives += 1
            response = handler(sqs_event(messages), self.context)
            failed = {failure["itemIdentifier"] for failure in response["batchItemFailures"]}
            for message in messages:
                if message["MessageId"] not in failed:
                    self.aws.sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
            self.pump_stream()

    def run(self) -> None:
        self.pump_stream()
        self.drain(self.aws.queue_url, processor.handler)
        self.drain(self.aws.dlq_url, dlq_consumer.handler)


@pytest.fixture
def browser(function_env: dict[str, str], moto_aws: Aws, monkeypatch: pytest.MonkeyPatch) -> FakeConnections:
    # Backoff base 0: a failed message is visible again at once instead of after 2..4 s.
    monkeypatch.setenv(env_vars.BACKOFF_BASE_SECONDS, "0")
    put_connection(moto_aws, "browser")
    connections = FakeConnections()
    notifier.notifier.override(TaskNotifier(ConnectionRepository(moto_aws.connection_table), connections))
    return connections


def frames_of(connections: FakeConnections) -> list[tuple[str, int]]:
    return [(frame["status"], frame["retries"]) for frame in connections.frames["browser"]]


def get_task(context: FakeLambdaContext) -> dict[str, Any]:
    response = http_api.handler(http_event("GET", f"/tasks/{TASK_ID}"), context)
    assert response["statusCode"] == HTTPStatus.OK
    return dict(json.loads(response["body"]))


def test_task_failing_twice_then_succeeding_is_pushed_at_every_step(
    browser: FakeConnections, moto_aws: Aws, lambda_context: FakeLambdaContext
) -> None:
    pipeline = Pipeline(moto_aws, lambda_context)
    body = {
        "taskId": TASK_ID,
        "answer": "42",
        "status": "pending",
        "retries": 0,
        "simulate": {"failAttempts": 2},
    }

    response = http_api.handler(json_post("/tasks", body), lambda_context)
    pipeline.run()

    assert response["statusCode"] == HTTPStatus.ACCEPTED
    task = get_task(lambda_context)
    assert (task["status"], task["retries"], task["errorMessage"]) == ("success", 2, None)
    assert pipeline.receives == 3
    assert frames_of(browser) == [("pending", 0), ("pending", 1), ("pending", 2), ("success", 2)]
    assert browser.frames["browser"][1]["errorMessage"] == "simulated failure on attempt 1 (failAttempts=2)"
    assert moto_aws.receive(moto_aws.dlq_url) == []


def test_task_that_always_fails_is_dead_lettered_then_retried_to_success(
    browser: FakeConnections, moto_aws: Aws, lambda_context: FakeLambdaContext
) -> None:
    pipeline = Pipeline(moto_aws, lambda_context)
    body = {"taskId": TASK_ID, "answer": "42", "simulate": {"failAttempts": MAX_RECEIVE_COUNT}}

    http_api.handler(json_post("/tasks", body), lambda_context)
    pipeline.run()

    failed = get_task(lambda_context)
    assert (failed["status"], failed["retries"]) == ("error", MAX_RECEIVE_COUNT - 1)
    assert failed["errorMessage"].startswith(f"simulated failure on attempt {MAX_RECEIVE_COUNT}")
    assert frames_of(browser) == [
        ("pending", 0),
        ("pending", 1),
        ("pending", 2),
        ("pending", 2),
        ("error", 2),
    ]

    # POST /retry starts run 2 through the stream (MODIFY error -> pending -> enqueue). The switch
    # counts attempts per run, so run 2 fails the same way and ends in error again.
    retried = http_api.handler(http_event("POST", f"/tasks/{TASK_ID}/retry"), lambda_context)
    pipeline.run()

    assert retried["statusCode"] == HTTPStatus.ACCEPTED
    assert json.loads(retried["body"])["run"] == 2
    final = get_task(lambda_context)
    assert (final["status"], final["run"]) == ("error", 2)
    assert frames_of(browser)[5:] == [
        ("pending", 0),
        ("pending", 1),
        ("pending", 2),
        ("pending", 2),
        ("error", 2),
    ]


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    """Every line the handlers' logger writes at INFO and above, formatted as in Lambda."""
    underlying = logging.getLogger(logger.service)
    previous = underlying.level
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(logger.registered_formatter)
    underlying.addHandler(handler)
    underlying.setLevel(logging.INFO)
    yield buffer
    underlying.removeHandler(handler)
    underlying.setLevel(previous)


def test_the_request_id_follows_the_task_into_every_functions_log(
    browser: FakeConnections,
    moto_aws: Aws,
    lambda_context: FakeLambdaContext,
    log_lines: io.StringIO,
) -> None:
    # Given a task submitted in API request "req-1234" that fails once, then succeeds
    pipeline = Pipeline(moto_aws, lambda_context)
    body = {"taskId": TASK_ID, "answer": "42", "simulate": {"failAttempts": 1}}
    http_api.handler(json_post("/tasks", body), lambda_context)

    # When it goes through enqueue, the processor and the notifier
    pipeline.run()

    # Then every log line any of them wrote about the task carries the request id
    lines = [json.loads(line) for line in log_lines.getvalue().splitlines()]
    about_task = [line for line in lines if line.get("task_id") == TASK_ID]
    assert {line["message"] for line in about_task} >= {
        "attempt failed",
        "task succeeded",
        "task change to push",
    }
    assert {line.get("correlation_id") for line in about_task} == {"req-1234"}
