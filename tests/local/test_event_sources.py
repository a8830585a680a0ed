"""The SQS and stream pollers against moto, with a scripted function instead of a worker."""

from __future__ import annotations

import asyncio
import io
import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import aiohttp
import boto3

from local.console import Console
from local.emulator.aws_json import AwsError, AwsJsonClient, describe_call_error
from local.runtime.pool import InvocationResult
from local.sources.sqs import SqsPoller, SqsSource
from local.sources.streams import StreamPoller, StreamSource
from local.sources.ttl_sweeper import TtlSweeper, TtlTable
from local.template.model import EventSourceMappingSpec

REGION = "us-east-1"


def mapping(kind: str, **overrides: Any) -> EventSourceMappingSpec:
    values: dict[str, Any] = {
        "logical_id": "M",
        "function_id": "F",
        "source_kind": kind,
        "source_id": "S",
        "batch_size": 10,
        "batching_window_seconds": 0.0,
        "report_batch_item_failures": True,
        "maximum_concurrency": None,
        "starting_position": "TRIM_HORIZON",
        "filter_patterns": [],
        "maximum_retry_attempts": -1,
        "bisect_on_error": False,
        "maximum_record_age_seconds": -1,
        "enabled": True,
    }
    values.update(overrides)
    return EventSourceMappingSpec(**values)


def client(service: str, endpoint: str) -> Any:
    return boto3.client(
        service, endpoint_url=endpoint, region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x"
    )


def run_until(
    condition: Callable[[], bool], poller_factory: Callable[[AwsJsonClient], Any], timeout: float = 15
) -> None:
    async def main() -> None:
        async with aiohttp.ClientSession() as session:
            poller = poller_factory(AwsJsonClient(session, ENDPOINT[0], REGION))
            poller.start()
            deadline = time.monotonic() + timeout
            try:
                while not condition():
                    assert time.monotonic() < deadline, "timed out"
                    await asyncio.sleep(0.05)
            finally:
                await poller.stop()

    asyncio.run(main())


ENDPOINT: list[str] = []


def scripted(responses: list[Callable[[dict[str, Any]], InvocationResult]], calls: list[dict[str, Any]]):
    async def invoke(event: dict[str, Any]) -> InvocationResult:
        calls.append(event)
        index = min(len(calls) - 1, len(responses) - 1)
        return responses[index](event)

    return invoke


def ok(payload: Any = None) -> Callable[[dict[str, Any]], InvocationResult]:
    return lambda event: InvocationResult(
        "ok", 1.0, "r", payload=payload(event) if callable(payload) else payload
    )


def error(event: dict[str, Any]) -> InvocationResult:
    return InvocationResult("error", 1.0, "r", error={"errorType": "ValueError", "errorMessage": "no"})


# --- SQS -------------------------------------------------------------------------------------


def sqs_setup(moto_endpoint: str, visibility: int = 30) -> tuple[Any, str, str]:
    ENDPOINT[:] = [moto_endpoint]
    sqs = client("sqs", moto_endpoint)
    url = sqs.create_queue(
        QueueName=f"q-{uuid.uuid4().hex[:8]}", Attributes={"VisibilityTimeout": str(visibility)}
    )["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return sqs, url, arn


def sqs_poller(spec: EventSourceMappingSpec, url: str, arn: str, invoke: Any, console: Console):
    source = SqsSource(spec, "Fn", "Queue", url, arn, REGION, pollers=1)
    return lambda aws: SqsPoller(source, aws, invoke, console)


def counts(sqs: Any, url: str) -> tuple[int, int]:
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]), int(
        attributes["ApproximateNumberOfMessagesNotVisible"]
    )


def test_sqs_partial_failure_deletes_everything_but_the_reported_messages(moto_endpoint):
    sqs, url, arn = sqs_setup(moto_endpoint)
    for body in ("keep", "done-1", "done-2"):
        sqs.send_message(QueueUrl=url, MessageBody=body)
    calls: list[dict[str, Any]] = []

    def fail_keep(event: dict[str, Any]) -> dict[str, Any]:
        return {
            "batchItemFailures": [
                {"itemIdentifier": r["messageId"]} for r in event["Records"] if r["body"] == "keep"
            ]
        }

    console = Console(stream=io.StringIO())
    run_until(
        lambda: len(calls) >= 1 and counts(sqs, url) == (0, 1),
        sqs_poller(mapping("sqs"), url, arn, scripted([ok(fail_keep)], calls), console),
    )
    records = [r for call in calls for r in call["Records"]]
    assert sorted(r["body"] for r in records) == ["done-1", "done-2", "keep"]
    record = records[0]
    assert (record["eventSource"], record["eventSourceARN"], record["awsRegion"]) == ("aws:sqs", arn, REGION)
    assert record["attributes"]["ApproximateReceiveCount"] == "1"
    assert counts(sqs, url) == (0, 1)  # only "keep" is left, in flight until its visibility expires
    assert "partial 1 failed" in console._stream.getvalue()  # type: ignore[attr-defined]


def test_sqs_errors_and_malformed_responses_leave_the_whole_batch(moto_endpoint):
    for response in (error, ok({"batchItemFailures": [{"itemIdentifier": "not-in-batch"}]})):
        sqs, url, arn = sqs_setup(moto_endpoint)
        sqs.send_message(QueueUrl=url, MessageBody="a")
        sqs.send_message(QueueUrl=url, MessageBody="b")
        calls: list[dict[str, Any]] = []
        console = Console(stream=io.StringIO())
        run_until(
            lambda calls=calls: sum(len(c["Records"]) for c in calls) >= 2,
            sqs_poller(mapping("sqs"), url, arn, scripted([response], calls), console),
        )
        assert counts(sqs, url) == (0, 2)


def test_sqs_messages_come_back_after_visibility_and_are_deleted_on_success(moto_endpoint):
    sqs, url, arn = sqs_setup(moto_endpoint, visibility=1)
    sqs.send_message(QueueUrl=url, MessageBody="flaky")
    calls: list[dict[str, Any]] = []
    console = Console(stream=io.StringIO())
    run_until(
        lambda: len(calls) >= 2 and counts(sqs, url) == (0, 0),
        sqs_poller(mapping("sqs"), url, arn, scripted([error, ok()], calls), console),
    )
    assert [c["Records"][0]["attributes"]["ApproximateReceiveCount"] for c in calls] == ["1", "2"]


def test_sqs_messages_no_filter_matches_are_deleted_without_an_invocation(moto_endpoint):
    sqs, url, arn = sqs_setup(moto_endpoint)
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"kind": "other"}))
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"kind": "task"}))
    calls: list[dict[str, Any]] = []
    spec = mapping("sqs", filter_patterns=[{"body": {"kind": ["task"]}}])
    console = Console(stream=io.StringIO())
    run_until(
        lambda: len(calls) >= 1 and counts(sqs, url) == (0, 0),
        sqs_poller(spec, url, arn, scripted([ok()], calls), console),
    )
    assert [json.loads(r["body"]) for c in calls for r in c["Records"]] == [{"kind": "task"}]


# --- DynamoDB streams ------------------------------------------------------------------------


def stream_setup(moto_endpoint: str, ttl: bool = False) -> tuple[Any, str, str]:
    ENDPOINT[:] = [moto_endpoint]
    dynamodb = client("dynamodb", moto_endpoint)
    name = f"t-{uuid.uuid4().hex[:8]}"
    description = dynamodb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )["TableDescription"]
    return dynamodb, name, description["LatestStreamArn"]


def stream_poller(spec: EventSourceMappingSpec, arn: str, invoke: Any, console: Console):
    source = StreamSource(spec, "Fn", "Table", arn, REGION)
    return lambda aws: StreamPoller(source, aws, invoke, console)


def sequence_numbers(event: dict[str, Any]) -> list[int]:
    return [int(r["dynamodb"]["SequenceNumber"]) for r in event["Records"]]


def test_a_partial_stream_failure_retries_from_the_lowest_failed_record(moto_endpoint):
    dynamodb, name, arn = stream_setup(moto_endpoint)
    for index in range(5):
        dynamodb.put_item(TableName=name, Item={"id": {"S": f"i{index}"}})
    calls: list[dict[str, Any]] = []

    def fail_third_and_fifth(event: dict[str, Any]) -> dict[str, Any]:
        numbers = sequence_numbers(event)
        return {"batchItemFailures": [{"itemIdentifier": str(n)} for n in (numbers[2], numbers[4])]}

    console = Console(stream=io.StringIO())
    run_until(
        lambda: len(calls) >= 2,
        stream_poller(mapping("dynamodb"), arn, scripted([ok(fail_third_and_fifth), ok()], calls), console),
    )
    first, second = sequence_numbers(calls[0]), sequence_numbers(calls[1])
    assert len(first) == 5
    assert second == first[2:]
    assert calls[0]["Records"][0]["eventSourceARN"] == arn


class _Checkpoints:
    def __init__(self) -> None:
        self.saved: dict[str, str] = {}

    def checkpoint(self, mapping: str, table: str, starting_position: str) -> str:
        return self.saved.get(mapping, "0")

    def save_checkpoint(self, mapping: str, table: str, sequence: str) -> None:
        self.saved[mapping] = sequence


class _ExpiresFirstIterator:
    """The AWS client of a poller whose iterator a restarted emulator no longer knows."""

    def __init__(self, aws: AwsJsonClient) -> None:
        self._aws, self.expired = aws, 0

    async def streams(self, operation: str, body: dict[str, Any]) -> dict[str, Any]:
        if operation == "GetRecords" and not self.expired:
            self.expired += 1
            raise AwsError("ExpiredIteratorException", "Iterator expired: get a new one", 400)
        return await self._aws.streams(operation, body)


def test_an_iterator_that_expired_with_a_restart_is_replaced_quietly_from_the_checkpoint(moto_endpoint):
    dynamodb, name, arn = stream_setup(moto_endpoint)
    dynamodb.put_item(TableName=name, Item={"id": {"S": "after-restart"}})
    calls: list[dict[str, Any]] = []
    output = io.StringIO()
    clients: list[_ExpiresFirstIterator] = []

    def poller(aws: AwsJsonClient) -> StreamPoller:
        clients.append(_ExpiresFirstIterator(aws))
        source = StreamSource(mapping("dynamodb"), "Fn", "Table", arn, REGION)
        return StreamPoller(
            source, clients[0], scripted([ok()], calls), Console(stream=output), _Checkpoints()
        )  # type: ignore[arg-type]

    run_until(lambda: len(calls) >= 1, poller)

    assert clients[0].expired == 1
    assert [r["dynamodb"]["Keys"]["id"]["S"] for r in calls[0]["Records"]] == ["after-restart"]
    assert "stream poller" not in output.getvalue()


def test_stream_records_are_skipped_loudly_when_retries_run_out(moto_endpoint):
    dynamodb, name, arn = stream_setup(moto_endpoint)
    dynamodb.put_item(TableName=name, Item={"id": {"S": "poison"}})
    calls: list[dict[str, Any]] = []
    output = io.StringIO()
    spec = mapping("dynamodb", maximum_retry_attempts=2)
    run_until(
        lambda: "SKIPPED" in output.getvalue(),
        stream_poller(spec, arn, scripted([error], calls), Console(stream=output)),
    )
    assert len(calls) == 3  # the first attempt and two retries
    assert "MaximumRetryAttempts 2 exhausted" in output.getvalue()
    dynamodb.put_item(TableName=name, Item={"id": {"S": "next"}})


def test_a_failing_batch_is_bisected_down_to_the_poison_record(moto_endpoint):
    dynamodb, name, arn = stream_setup(moto_endpoint)
    for index in range(4):
        dynamodb.put_item(TableName=name, Item={"id": {"S": f"i{index}"}})
    calls: list[dict[str, Any]] = []

    def poison_is_i2(event: dict[str, Any]) -> InvocationResult:
        ids = [r["dynamodb"]["Keys"]["id"]["S"] for r in event["Records"]]
        return error(event) if "i2" in ids else ok()(event)

    output = io.StringIO()
    spec = mapping(
        "dynamodb", bisect_on_error=True, maximum_retry_attempts=0, report_batch_item_failures=False
    )
    run_until(
        lambda: "SKIPPED" in output.getvalue(),
        stream_poller(spec, arn, scripted([poison_is_i2], calls), Console(stream=output)),
    )
    sizes = [len(c["Records"]) for c in calls]
    assert sizes == [4, 2, 2, 1, 1]  # [i0..i3] fails; [i0,i1] ok; [i2,i3] fails; [i2] skipped; [i3] ok
    assert "SKIPPED 1 stream record" in output.getvalue()


def test_stream_filters_drop_records_that_match_no_pattern(moto_endpoint):
    dynamodb, name, arn = stream_setup(moto_endpoint)
    dynamodb.put_item(TableName=name, Item={"id": {"S": "a"}, "v": {"N": "1"}})
    dynamodb.put_item(TableName=name, Item={"id": {"S": "a"}, "v": {"N": "2"}})
    dynamodb.put_item(TableName=name, Item={"id": {"S": "b"}, "v": {"N": "1"}})
    calls: list[dict[str, Any]] = []
    spec = mapping("dynamodb", filter_patterns=[{"eventName": ["INSERT"]}])
    run_until(
        lambda: len(calls) >= 1,
        stream_poller(spec, arn, scripted([ok()], calls), Console(stream=io.StringIO())),
    )
    assert [r["eventName"] for r in calls[0]["Records"]] == ["INSERT", "INSERT"]


# --- TTL -------------------------------------------------------------------------------------


def test_the_ttl_sweeper_deletes_expired_items_through_the_stream(moto_endpoint):
    dynamodb, name, _ = stream_setup(moto_endpoint)
    now = int(time.time())
    dynamodb.put_item(TableName=name, Item={"id": {"S": "old"}, "expiresAt": {"N": str(now - 10)}})
    dynamodb.put_item(TableName=name, Item={"id": {"S": "fresh"}, "expiresAt": {"N": str(now + 3600)}})
    dynamodb.put_item(TableName=name, Item={"id": {"S": "forever"}})

    async def sweep() -> int:
        async with aiohttp.ClientSession() as session:
            aws = AwsJsonClient(session, moto_endpoint, REGION)
            sweeper = TtlSweeper([TtlTable(name, ("id",), "expiresAt")], aws, Console(stream=io.StringIO()))
            return await sweeper.sweep_once()

    assert asyncio.run(sweep()) == 1
    remaining = sorted(item["id"]["S"] for item in dynamodb.scan(TableName=name)["Items"])
    assert remaining == ["forever", "fresh"]


def test_a_pollers_timeout_warning_says_the_embedded_aws_did_not_answer() -> None:
    assert describe_call_error(TimeoutError()).startswith("the embedded AWS did not answer in time")
    assert describe_call_error(ValueError("x")) == "ValueError('x')"
