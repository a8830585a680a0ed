"""Local fault injection: the worker hooks against moto, a killed worker, duplicate SQS deliveries,
push failures and the fault directory's files."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
import types
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, EndpointConnectionError

from local.console import Console
from local.emulator.aws_json import AwsJsonClient
from local.faults.injection import (
    FaultOptions,
    SqsMappingStats,
    parse_outage,
    prepare_directory,
    read_json_lines,
    write_sqs_outage,
)
from local.faults.worker_hooks import WorkerFaults
from local.gateways.websocket_api import WebSocketApiServer
from local.runtime.pool import FunctionPool, InvocationResult, RuntimeFunction
from local.sources.sqs import DuplicateDeliveries, SqsPoller, SqsSource
from local.template.model import EventSourceMappingSpec, WebSocketApiSpec

REGION = "us-east-1"
INJECTED_BEFORE_SEND = {
    "InternalServerError",
    "ThrottlingException",
    "ProvisionedThroughputExceededException",
}


def aws_client(service: str, endpoint: str, attempts: int = 1) -> Any:
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id="x",
        aws_secret_access_key="x",
        config=Config(retries={"mode": "standard", "total_max_attempts": attempts}),
    )


def worker_faults(directory: Path, **config: Any) -> WorkerFaults:
    values: dict[str, Any] = {
        "function": "Probe",
        "effectsLog": str(directory / "effects.log"),
        "faultsLog": str(directory / "faults.log"),
        "controlFile": str(directory / "control.json"),
        "seed": 7,
        "step": "chaos_step_probe:process_task",
    }
    values.update(config)
    return WorkerFaults(values)


def lines(path: Path) -> list[dict[str, Any]]:
    return read_json_lines(path)[0]


@pytest.fixture
def table(moto_endpoint: str) -> str:
    name = f"tasks-{uuid.uuid4().hex[:8]}"
    aws_client("dynamodb", moto_endpoint).create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "taskId", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "taskId", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return name


@pytest.fixture
def step_module() -> Iterator[types.ModuleType]:
    """A stand-in for taskflow.domain.processing: process_task fails when the task says so."""
    module = types.ModuleType("chaos_step_probe")

    def process_task(task: Any, attempt: int) -> None:
        if task.fail:
            raise RuntimeError("step failed")

    module.process_task = process_task  # type: ignore[attr-defined]
    sys.modules[module.__name__] = module
    yield module
    del sys.modules[module.__name__]


def task(task_id: str, fail: bool = False) -> Any:
    return types.SimpleNamespace(task_id=task_id, run=1, fail=fail)


def commit(client: Any, table_name: str, task_id: str, condition: str | None = None) -> None:
    """An UpdateItem on the task, like the processor's commit."""
    arguments: dict[str, Any] = {
        "TableName": table_name,
        "Key": {"taskId": {"S": task_id}},
        "UpdateExpression": "SET #s = :s",
        "ExpressionAttributeNames": {"#s": "status"},
        "ExpressionAttributeValues": {":s": {"S": "success"}},
    }
    if condition:
        arguments["ConditionExpression"] = condition
    client.update_item(**arguments)


# --- the fault directory ----------------------------------------------------------------------


def test_an_outage_is_start_colon_duration():
    outage = parse_outage("5:10")
    assert (outage.start, outage.duration) == (5.0, 10.0)
    for bad in ("5", "5:0", "-1:3", "a:b"):
        with pytest.raises(ValueError, match="START:DURATION"):
            parse_outage(bad)


def test_json_lines_are_read_whole_and_resumed_from_an_offset(tmp_path):
    path = tmp_path / "faults.log"
    path.write_text('{"fault": "a"}\n{"fault": "b"}\n{"fault": "c"')  # the last line is being written
    records, offset = read_json_lines(path)
    assert [r["fault"] for r in records] == ["a", "b"]
    with path.open("a") as file:
        file.write('}\n{"fault": "d"}\n')
    assert [r["fault"] for r in read_json_lines(path, offset)[0]] == ["c", "d"]
    assert read_json_lines(tmp_path / "missing.log") == ([], 0)


def test_the_fault_directory_is_emptied_at_start(tmp_path):
    (tmp_path / "effects.log").write_text("old\n")
    (tmp_path / "notes.txt").write_text("kept\n")
    prepare_directory(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_any_fault_option_turns_the_recording_on():
    assert not FaultOptions().summary()
    options = FaultOptions(duplicate_rate=0.05, mutant="unconditional-writes")
    assert options.summary() == ["0.05 of SQS messages delivered twice", "MUTANT unconditional-writes"]
    config = json.loads(FaultOptions(directory=Path("x"), kill_rate=0.02).worker_config("Fn"))
    assert (config["function"], config["killRate"], config["step"]) == (
        "Fn",
        0.02,
        "taskflow.domain.processing:process_task",
    )


# --- the worker hooks (registered on one client, in this process) -----------------------------


def test_errors_injected_before_sending_never_reach_the_table(tmp_path, moto_endpoint, table):
    faults = worker_faults(tmp_path, awsErrorRate=1.0, afterWriteShare=0.0)
    dynamodb = aws_client("dynamodb", moto_endpoint)
    faults.register(dynamodb.meta.events)

    with pytest.raises(ClientError) as raised:
        dynamodb.put_item(TableName=table, Item={"taskId": {"S": "t1"}})

    assert raised.value.response["Error"]["Code"] in INJECTED_BEFORE_SEND
    clean = aws_client("dynamodb", moto_endpoint)
    assert "Item" not in clean.get_item(TableName=table, Key={"taskId": {"S": "t1"}})
    (fired,) = lines(tmp_path / "faults.log")
    assert (fired["fault"], fired["service"], fired["operation"]) == ("aws-error", "dynamodb", "PutItem")


def test_botocore_retries_absorb_errors_injected_before_sending(tmp_path, moto_endpoint, table, monkeypatch):
    monkeypatch.setattr("botocore.retries.standard.ExponentialBackoff.delay_amount", lambda *_: 0)
    faults = worker_faults(tmp_path, awsErrorRate=0.5, afterWriteShare=0.0)
    dynamodb = aws_client("dynamodb", moto_endpoint, attempts=20)
    faults.register(dynamodb.meta.events)

    for index in range(10):
        dynamodb.put_item(TableName=table, Item={"taskId": {"S": f"t{index}"}})

    assert len(lines(tmp_path / "faults.log")) > 0  # some attempts failed, every call succeeded
    assert dynamodb.scan(TableName=table)["Count"] == 10


def test_an_error_after_a_write_leaves_the_write_applied(tmp_path, moto_endpoint, table):
    faults = worker_faults(tmp_path, awsErrorRate=1.0, afterWriteShare=1.0)
    dynamodb = aws_client("dynamodb", moto_endpoint)
    faults.register(dynamodb.meta.events)

    with pytest.raises(ClientError) as raised:
        dynamodb.put_item(TableName=table, Item={"taskId": {"S": "t1"}})
    read = dynamodb.get_item(TableName=table, Key={"taskId": {"S": "t1"}})  # reads are not failed after

    assert raised.value.response["Error"]["Code"] == "InternalServerError"
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
    assert read["Item"]["taskId"] == {"S": "t1"}
    assert lines(tmp_path / "faults.log")[0]["kind"] == "InternalServerError-after-write"


def test_sqs_sends_fail_with_connection_errors_during_the_outage_only(tmp_path, moto_endpoint):
    faults = worker_faults(tmp_path)
    sqs = aws_client("sqs", moto_endpoint)
    faults.register(sqs.meta.events)
    url = sqs.create_queue(QueueName=f"q-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    now = time.time()

    write_sqs_outage(tmp_path, now - 1, now + 60)
    with pytest.raises(EndpointConnectionError):
        sqs.send_message(QueueUrl=url, MessageBody="during")
    with pytest.raises(EndpointConnectionError):
        sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": "1", "MessageBody": "during"}])
    sqs.get_queue_attributes(QueueUrl=url)  # other calls still work
    write_sqs_outage(tmp_path, now - 10, now - 5)
    sqs.send_message(QueueUrl=url, MessageBody="after")

    assert [f["operation"] for f in lines(tmp_path / "faults.log")] == ["SendMessage", "SendMessageBatch"]
    assert sqs.receive_message(QueueUrl=url)["Messages"][0]["Body"] == "after"


def test_a_step_whose_success_commit_succeeds_is_one_effect(tmp_path, moto_endpoint, table, step_module):
    faults = worker_faults(tmp_path)
    dynamodb = aws_client("dynamodb", moto_endpoint)
    faults.register(dynamodb.meta.events)
    assert faults.wrap_step()

    step_module.process_task(task("ok"), 1)
    commit(dynamodb, table, "ok")
    commit(dynamodb, table, "ok")  # a later write of the same task is not the step's commit
    with pytest.raises(RuntimeError):
        step_module.process_task(task("failed", fail=True), 2)
    commit(dynamodb, table, "failed")  # the failure commit: no effect
    step_module.process_task(task("refused"), 1)
    with pytest.raises(ClientError):
        commit(dynamodb, table, "refused", condition="attribute_exists(taskId)")  # lease lost: no effect

    records = lines(tmp_path / "effects.log")
    assert [(r["event"], r["taskId"], r.get("ok")) for r in records] == [
        ("step", "ok", True),
        ("effect", "ok", None),
        ("step", "failed", False),
        ("step", "refused", True),
    ]


def test_the_mutant_makes_the_commit_unconditional(tmp_path, moto_endpoint, table, step_module):
    dynamodb = aws_client("dynamodb", moto_endpoint)
    dynamodb.put_item(TableName=table, Item={"taskId": {"S": "done"}, "status": {"S": "success"}})
    faults = worker_faults(tmp_path, mutant="unconditional-writes")
    mutated = aws_client("dynamodb", moto_endpoint)
    faults.register(mutated.meta.events)
    assert faults.wrap_step()

    with pytest.raises(ClientError):
        commit(dynamodb, table, "done", condition="#s = :pending")  # the real condition refuses
    step_module.process_task(task("done"), 1)
    commit(mutated, table, "done", condition="#s = :s AND attribute_not_exists(#s)")

    assert [r["event"] for r in lines(tmp_path / "effects.log")] == ["step", "effect"]
    assert lines(tmp_path / "faults.log")[0]["fault"] == "mutant"


# --- a worker killed after its commit -----------------------------------------------------------

HANDLER = """
import boto3
from chaos_probe import step


def handler(event, context):
    client = boto3.client(
        "dynamodb", endpoint_url=event["endpoint"], region_name="us-east-1",
        aws_access_key_id="x", aws_secret_access_key="x",
    )
    if event["runStep"]:
        step.process_task(step.Task(event["taskId"]), 1)
    client.update_item(
        TableName=event["table"], Key={"taskId": {"S": event["taskId"]}},
        UpdateExpression="SET #s = :s", ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":s": {"S": "success"}},
    )
    return "committed"
"""

STEP = """
class Task:
    def __init__(self, task_id):
        self.task_id = task_id
        self.run = 1


def process_task(task, attempt):
    return None
"""


def test_a_worker_killed_after_its_commit_is_replaced(tmp_path, moto_endpoint, table):
    package = tmp_path / "code" / "chaos_probe"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "handler.py").write_text(HANDLER)
    (package / "step.py").write_text(STEP)
    fault_dir = tmp_path / "faults"
    fault_dir.mkdir()
    config = json.loads(FaultOptions(directory=fault_dir, kill_rate=1.0).worker_config("Probe"))
    config["step"] = "chaos_probe.step:process_task"
    code = (tmp_path / "code").resolve()
    function = RuntimeFunction(
        key="Probe",
        display_name="Probe",
        name="Stack-Probe",
        arn="arn:aws:lambda:us-east-1:123456789012:function:Stack-Probe",
        handler="chaos_probe.handler.handler",
        timeout_seconds=20.0,
        memory_size=256,
        code_dir=code,
        environment={"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(code)},
        max_workers=1,
        faults=json.dumps(config),
    )
    event = {"endpoint": moto_endpoint, "table": table, "taskId": "t1"}

    async def main() -> tuple[list[InvocationResult], int]:
        pool = FunctionPool(function, tmp_path / "logs")
        try:
            results = [
                await pool.invoke({**event, "runStep": True}),  # commit, then os._exit
                await pool.invoke({**event, "runStep": False}),  # a plain write: no kill
            ]
            return results, pool.worker_exits
        finally:
            await pool.stop()

    (killed, next_one), exits = asyncio.run(main())

    assert killed.outcome == "error"
    assert killed.error is not None
    assert killed.error["errorType"] == "Runtime.ExitError"
    assert (next_one.outcome, next_one.payload) == ("ok", "committed")
    assert exits == 1
    assert [r["event"] for r in lines(fault_dir / "effects.log")] == ["step", "effect"]  # before dying
    (kill,) = lines(fault_dir / "faults.log")
    assert (kill["fault"], kill["taskId"], kill["afterSuccess"]) == ("worker-kill", "t1", True)


# --- duplicate deliveries ---------------------------------------------------------------------


def sqs_mapping() -> EventSourceMappingSpec:
    return EventSourceMappingSpec(
        logical_id="M",
        function_id="F",
        source_kind="sqs",
        source_id="S",
        batch_size=10,
        batching_window_seconds=0.0,
        report_batch_item_failures=True,
        maximum_concurrency=None,
        starting_position="TRIM_HORIZON",
        filter_patterns=[],
        maximum_retry_attempts=-1,
        bisect_on_error=False,
        maximum_record_age_seconds=-1,
        enabled=True,
    )


def deliver_twice(
    moto_endpoint: str,
    answer: Callable[[int, dict[str, Any]], InvocationResult],
    consumed_log: Path | None = None,
) -> tuple[list[dict[str, Any]], SqsMappingStats, tuple[int, int]]:
    """Three messages through a poller that duplicates every message; `answer(call, event)`."""
    sqs = aws_client("sqs", moto_endpoint)
    url = sqs.create_queue(QueueName=f"q-{uuid.uuid4().hex[:8]}", Attributes={"VisibilityTimeout": "30"})[
        "QueueUrl"
    ]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    for index in range(3):
        sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"taskId": f"t{index}"}))
    calls: list[dict[str, Any]] = []
    stats = SqsMappingStats("Fn", "Queue", consumed_log is not None, consumed_log=consumed_log)

    async def invoke(event: dict[str, Any]) -> InvocationResult:
        calls.append(event)
        return answer(len(calls), event)

    async def main() -> None:
        async with aiohttp.ClientSession() as session:
            from local.faults.injection import Dice  # noqa: PLC0415

            poller = SqsPoller(
                SqsSource(sqs_mapping(), "Fn", "Queue", url, arn, REGION, pollers=1),
                AwsJsonClient(session, moto_endpoint, REGION),
                invoke,
                Console(quiet=True),
                duplicates=DuplicateDeliveries(1.0, Dice(1), max_delay_seconds=0.0),
                stats=stats,
            )
            poller.start()
            deadline = time.monotonic() + 15
            while stats.messages < 3 or len(calls) < 2 * stats.batches:
                assert time.monotonic() < deadline, "timed out"
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.3)
            await poller.stop()

    asyncio.run(main())
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    depth = (
        int(attributes["ApproximateNumberOfMessages"]),
        int(attributes["ApproximateNumberOfMessagesNotVisible"]),
    )
    return calls, stats, depth


def ids(event: dict[str, Any]) -> list[str]:
    return sorted(record["messageId"] for record in event["Records"])


def test_a_duplicated_message_is_delivered_again_in_a_concurrent_invocation(moto_endpoint):
    def answer(call: int, event: dict[str, Any]) -> InvocationResult:
        return InvocationResult("ok", 1.0, "r")

    calls, stats, depth = deliver_twice(moto_endpoint, answer)

    deliveries = Counter(message_id for call in calls for message_id in ids(call))
    assert sorted(deliveries.values()) == [2, 2, 2]
    assert len(calls) == 2 * stats.batches
    assert stats.duplicate_messages == stats.messages == 3
    assert stats.deleted == 3
    assert depth == (0, 0)


def test_the_copys_acknowledgement_never_deletes_the_original(moto_endpoint):
    # the original delivery fails every message; the copy succeeds: nothing may be deleted
    def answer(call: int, event: dict[str, Any]) -> InvocationResult:
        first_of_pair = call % 2 == 1
        failures = [{"itemIdentifier": r["messageId"]} for r in event["Records"]]
        return InvocationResult(
            "ok", 1.0, "r", payload={"batchItemFailures": failures if first_of_pair else []}
        )

    _, stats, depth = deliver_twice(moto_endpoint, answer)

    assert stats.deleted == 0
    assert depth == (0, 3)  # all three in flight until their visibility timeout


def test_dead_letter_messages_consumed_are_logged_for_the_checker(moto_endpoint, tmp_path):
    def answer(call: int, event: dict[str, Any]) -> InvocationResult:
        return InvocationResult("ok", 1.0, "r")

    _, stats, _ = deliver_twice(moto_endpoint, answer, consumed_log=tmp_path / "consumed.log")
    records, _ = read_json_lines(tmp_path / "consumed.log")

    # the originals are logged (the copies delete nothing, and log nothing)
    assert sorted(json.loads(record["body"])["taskId"] for record in records) == ["t0", "t1", "t2"]
    assert {record["queue"] for record in records} == {"Queue"}
    assert stats.deleted == 3


# --- push failures --------------------------------------------------------------------------------


def test_push_failures_answer_500_and_half_of_them_deliver_the_frame_anyway():
    from local.faults.injection import Dice, StackFaultCounters  # noqa: PLC0415

    async def main() -> tuple[list[int], list[str], dict[str, int]]:
        counters = StackFaultCounters()
        server = WebSocketApiServer(
            WebSocketApiSpec("Ws", "Ws", "abc123", "$request.body.action", {}, "dev"),
            {},
            lambda function_id, event: asyncio.sleep(0),  # type: ignore[arg-type, return-value]
            Console(quiet=True),
            "123456789012",
            push_failure_rate=1.0,
            dice=Dice(3),
            counters=counters,
        )
        runner = aiohttp.web.AppRunner(server.application())
        await runner.setup()
        site = aiohttp.web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        statuses, frames = [], []
        try:
            async with (
                aiohttp.ClientSession() as session,
                session.ws_connect(f"http://127.0.0.1:{port}/dev") as socket,
            ):
                await asyncio.sleep(0.1)
                (connection_id,) = server.connections
                for index in range(20):
                    async with session.post(
                        f"http://127.0.0.1:{port}/dev/@connections/{connection_id}",
                        data=f"frame {index}",
                        headers={"Authorization": "AWS4-HMAC-SHA256 Credential=test"},
                    ) as response:
                        statuses.append(response.status)
                while True:
                    try:
                        message = await socket.receive(timeout=0.3)
                    except TimeoutError:
                        break
                    frames.append(str(message.data))
        finally:
            await runner.cleanup()
        return statuses, frames, dict(counters.counts)

    statuses, frames, counts = asyncio.run(main())

    assert set(statuses) == {500}
    assert counts["push-failure-after-send"] == len(frames) > 0
    assert counts["push-failure-before-send"] == 20 - len(frames) > 0
