"""The embedded AWS's request meter (local/metering/meter.py): who called what, and what it cost."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import threading
import urllib.request
import uuid
from collections.abc import Mapping
from typing import Any

import aiohttp
import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from local.emulator.aws_json import AwsJsonClient
from local.metering.capacity import IndexShape, TableShape
from local.metering.meter import METER_PATH, RequestMeterMiddleware
from local.metering.protocol import CALLER_HEADER, caller_of, classify

REGION = "us-east-1"
SCOPE = f"AWS4-HMAC-SHA256 Credential=AKID/20261126/{REGION}/%s/aws4_request, SignedHeaders=host, Signature=0"


# --------------------------------------------------------------------------- classification


def test_the_operation_comes_from_x_amz_target_for_json_protocols():
    assert classify({"x-amz-target": "DynamoDB_20120810.PutItem"}) == ("dynamodb", "PutItem")
    assert classify({"x-amz-target": "AmazonSQS.ReceiveMessage"}) == ("sqs", "ReceiveMessage")
    assert classify({"x-amz-target": "DynamoDBStreams_20120810.GetRecords"}) == (
        "dynamodbstreams",
        "GetRecords",
    )


def test_the_query_protocol_is_classified_by_credential_scope_and_action():
    headers = {
        "authorization": SCOPE % "sqs",
        "content-type": "application/x-www-form-urlencoded; charset=utf-8",
    }
    assert classify(headers, "", b"Action=SendMessage&QueueUrl=x") == ("sqs", "SendMessage")
    assert classify({"authorization": SCOPE % "sns"}, "Action=Publish") == ("sns", "Publish")
    assert classify({}) == ("unknown", "unknown")


def test_the_caller_is_the_stack_component_or_the_function_named_in_the_user_agent():
    assert caller_of({CALLER_HEADER.lower(): "depth-monitor", "user-agent": "Python/3.11 aiohttp/3"}) == (
        "depth-monitor"
    )
    boto = "Boto3/1.40 md/Botocore#1.40 ua/2.1 os/linux app/ProcessorFunction cfg/retry-mode#standard"
    assert caller_of({"user-agent": boto}) == "function:ProcessorFunction"
    assert caller_of({"user-agent": "Boto3/1.40 md/Botocore#1.40"}) == "sdk"
    assert caller_of({"user-agent": "curl/8"}) == "other"


# --------------------------------------------------------------------------- the middleware, with fakes

TABLE = "Tasks"
SHAPE = TableShape(("taskId",), (IndexShape("ByStatus", ("status",)),))


class FakeStore:
    """Items in a dict; the fake app below changes them as DynamoDB would."""

    def __init__(self) -> None:
        self.items: dict[str, dict[str, Any]] = {}
        self._lock = threading.RLock()

    def lock(self) -> contextlib.AbstractContextManager[Any]:
        return self._lock

    def shape(self, region: str, table: str) -> TableShape | None:
        return SHAPE if table == TABLE else None

    def get(self, region: str, table: str, key: Mapping[str, Any]) -> dict[str, Any] | None:
        found = self.items.get(key["taskId"]["S"])
        return json.loads(json.dumps(found)) if found is not None else None


class FakeDynamoDb:
    """A WSGI app answering PutItem (conditional on absence), UpdateItem (status) and Scan."""

    def __init__(self, store: FakeStore) -> None:
        self.store = store

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        body = json.loads(environ["wsgi.input"].read(int(environ["CONTENT_LENGTH"])))
        operation = environ["HTTP_X_AMZ_TARGET"].rpartition(".")[2]
        items = self.store.items
        if operation == "PutItem":
            task_id = body["Item"]["taskId"]["S"]
            if task_id in items:
                return self._answer(
                    start_response, "400 Bad Request", {"__type": "x#ConditionalCheckFailedException"}
                )
            items[task_id] = body["Item"]
            return self._answer(start_response, "200 OK", {})
        if operation == "UpdateItem":
            items[body["Key"]["taskId"]["S"]]["status"] = {"S": body["Status"]}
            return self._answer(start_response, "200 OK", {})
        if operation == "Scan":  # ProjectionExpression taskId, FilterExpression dropping one item
            kept = [{"taskId": item["taskId"]} for item in list(items.values())[1:]]
            return self._answer(
                start_response, "200 OK", {"Items": kept, "Count": len(kept), "ScannedCount": len(items)}
            )
        return self._answer(start_response, "200 OK", {})

    @staticmethod
    def _answer(start_response: Any, status: str, document: dict[str, Any]) -> list[bytes]:
        start_response(status, [("Content-Type", "application/x-amz-json-1.0")])
        return [json.dumps(document).encode()]


def call(
    app: Any, path: str = "/", method: str = "POST", body: Any = None, **headers: str
) -> tuple[str, bytes]:
    data = json.dumps(body).encode() if body is not None else b""
    environ = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "CONTENT_LENGTH": str(len(data)),
        "CONTENT_TYPE": "application/x-amz-json-1.0",
        "wsgi.input": io.BytesIO(data),
    }
    environ.update({"HTTP_" + name.upper(): value for name, value in headers.items()})
    answer: list[str] = []
    chunks = app(environ, lambda status, _headers, _exc=None: answer.append(status))
    return answer[0], b"".join(chunks)


def dynamodb(app: Any, operation: str, body: dict[str, Any], caller: str = "") -> tuple[str, bytes]:
    headers = {
        "X_AMZ_TARGET": f"DynamoDB_20120810.{operation}",
        "AUTHORIZATION": SCOPE % "dynamodb",
        "USER_AGENT": "Boto3/1.40 md/Botocore#1.40 app/HttpApiFunction",
    }
    if caller:
        headers["X_LOCAL_CALLER"] = caller
    return call(app, body=body, **headers)


def counters(app: Any, method: str = "GET") -> dict[tuple[str, str, str], dict[str, Any]]:
    status, data = call(app, METER_PATH, method)
    assert status.startswith("200")
    return {(row["caller"], row["service"], row["operation"]): row for row in json.loads(data)["operations"]}


@pytest.fixture
def metered() -> RequestMeterMiddleware:
    store = FakeStore()
    return RequestMeterMiddleware(FakeDynamoDb(store), store=store)


def item(task_id: str, status: str = "pending") -> dict[str, Any]:
    return {"taskId": {"S": task_id}, "status": {"S": status}, "answer": {"S": "x" * 1100}}


def test_writes_are_counted_with_the_units_of_the_table_and_of_each_index_they_touch(metered):
    dynamodb(metered, "PutItem", {"TableName": TABLE, "Item": item("a")})
    dynamodb(metered, "UpdateItem", {"TableName": TABLE, "Key": {"taskId": {"S": "a"}}, "Status": "success"})

    rows = counters(metered)

    put = rows[("function:HttpApiFunction", "dynamodb", "PutItem")]
    assert (put["requests"], put["writeUnits"], put["indexWriteUnits"]) == (1, 4.0, {"ByStatus": 2.0})
    update = rows[("function:HttpApiFunction", "dynamodb", "UpdateItem")]
    assert update["writeUnits"] == 2 + 2 + 2  # table, and the ByStatus entry moved (delete + put)


def test_write_units_are_also_counted_per_partition_of_the_table_and_of_each_index(metered):
    dynamodb(metered, "PutItem", {"TableName": TABLE, "Item": item("a")})
    dynamodb(metered, "PutItem", {"TableName": TABLE, "Item": item("b")})
    dynamodb(metered, "UpdateItem", {"TableName": TABLE, "Key": {"taskId": {"S": "a"}}, "Status": "success"})

    status, data = call(metered, METER_PATH, "DELETE")
    partitions = json.loads(data)["partitionWriteUnits"]
    assert status.startswith("200")

    assert partitions == {
        TABLE: {"a": 2.0 + 2.0, "b": 2.0},
        f"{TABLE}/ByStatus": {"pending": 2.0 + 2.0 + 2.0, "success": 2.0},  # the move: half to each
    }
    assert json.loads(call(metered, METER_PATH, "GET")[1])["partitionWriteUnits"] == {}


def test_a_failed_conditional_write_costs_the_existing_item_and_is_counted_as_such(metered):
    dynamodb(metered, "PutItem", {"TableName": TABLE, "Item": item("a")})
    status, _ = dynamodb(metered, "PutItem", {"TableName": TABLE, "Item": item("a")})

    put = counters(metered)[("function:HttpApiFunction", "dynamodb", "PutItem")]

    assert status.startswith("400")
    assert (put["requests"], put["errors"], put["conditionFailed"]) == (2, 1, 1)
    assert put["writeUnits"] == 4 + 2  # the refused put: the stored item's 2 units, no index


def test_scans_size_the_stored_items_and_report_what_a_filter_dropped(metered):
    for name in ("a", "b", "c"):
        dynamodb(metered, "PutItem", {"TableName": TABLE, "Item": item(name)})
    dynamodb(metered, "Scan", {"TableName": TABLE, "ProjectionExpression": "taskId"})

    scan = counters(metered)[("function:HttpApiFunction", "dynamodb", "Scan")]

    assert scan["readUnits"] == 0.5  # two stored items (~1.1 KB each, not the projected key) < 4 KB
    assert scan["unsizedItems"] == 1  # the one the filter dropped


def test_the_stacks_own_calls_are_kept_apart_by_their_caller_header(metered):
    dynamodb(metered, "PutItem", {"TableName": TABLE, "Item": item("a")})
    dynamodb(metered, "Scan", {"TableName": TABLE}, caller="ttl-sweeper")
    dynamodb(metered, "DescribeTable", {"TableName": TABLE}, caller="depth-monitor")

    callers = {caller for caller, _, _ in counters(metered)}

    assert callers == {"function:HttpApiFunction", "ttl-sweeper", "depth-monitor"}


def test_delete_returns_the_counters_and_starts_from_zero(metered):
    dynamodb(metered, "PutItem", {"TableName": TABLE, "Item": item("a")})

    assert counters(metered, "DELETE")
    assert counters(metered) == {}
    assert call(metered, METER_PATH, "PUT")[0].startswith("405")


# --------------------------------------------------------------------------- against moto


def meter(endpoint: str, method: str = "GET") -> list[dict[str, Any]]:
    request = urllib.request.Request(endpoint + METER_PATH, method=method)
    with urllib.request.urlopen(request, timeout=10) as response:
        rows: list[dict[str, Any]] = json.load(response)["operations"]
    return rows


def test_the_moto_process_counts_functions_and_stack_components_apart(moto_endpoint):
    # given a function's boto3 client (app id, as the stack sets AWS_SDK_UA_APP_ID) and the stack's
    # own JSON client labelled as the depth monitor
    function = boto3.client(
        "sqs",
        endpoint_url=moto_endpoint,
        region_name=REGION,
        aws_access_key_id="x",
        aws_secret_access_key="x",
        config=Config(user_agent_appid="EnqueueFunction"),
    )
    queue_url = function.create_queue(QueueName=f"meter-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    meter(moto_endpoint, "DELETE")

    # when each makes its calls
    function.send_message(QueueUrl=queue_url, MessageBody="x" * 70_000)  # two 64 KB chunks
    function.send_message(QueueUrl=queue_url, MessageBody="small")

    async def monitor() -> None:
        async with aiohttp.ClientSession() as session:
            stack = AwsJsonClient(session, moto_endpoint, REGION, caller="depth-monitor")
            await stack.sqs("GetQueueAttributes", {"QueueUrl": queue_url, "AttributeNames": ["All"]})

    asyncio.run(monitor())
    with pytest.raises(ClientError):
        function.get_queue_url(QueueName="no-such-queue")

    # then the meter tells them apart, by operation
    rows = {(r["caller"], r["operation"]): r for r in meter(moto_endpoint)}
    send = rows[("function:EnqueueFunction", "SendMessage")]
    assert (send["service"], send["requests"], send["billedRequests"]) == ("sqs", 2, 3)
    assert send["resource"] == queue_url.rsplit("/", 1)[-1]
    assert rows[("depth-monitor", "GetQueueAttributes")]["requests"] == 1
    assert rows[("function:EnqueueFunction", "GetQueueUrl")]["errors"] == 1
    assert {caller for caller, _ in rows} == {"function:EnqueueFunction", "depth-monitor"}


def test_the_moto_process_computes_write_units_from_the_stored_items(moto_endpoint):
    client = boto3.client(
        "dynamodb",
        endpoint_url=moto_endpoint,
        region_name=REGION,
        aws_access_key_id="x",
        aws_secret_access_key="x",
        config=Config(user_agent_appid="ProcessorFunction"),
    )
    table = f"meter-{uuid.uuid4().hex[:8]}"
    client.create_table(
        TableName=table,
        BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "taskId", "KeyType": "HASH"}],
        AttributeDefinitions=[
            {"AttributeName": "taskId", "AttributeType": "S"},
            {"AttributeName": "status", "AttributeType": "S"},
        ],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "ByStatus",
                "KeySchema": [{"AttributeName": "status", "KeyType": "HASH"}],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
    )
    meter(moto_endpoint, "DELETE")

    client.put_item(TableName=table, Item={"taskId": {"S": "a"}, "status": {"S": "pending"}})
    client.update_item(
        TableName=table,
        Key={"taskId": {"S": "a"}},
        UpdateExpression="SET #s = :s",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":s": {"S": "success"}},
    )
    client.get_item(TableName=table, Key={"taskId": {"S": "a"}}, ConsistentRead=True)

    rows = {r["operation"]: r for r in meter(moto_endpoint) if r["resource"] == table}
    assert rows["PutItem"]["writeUnits"] == 2  # table + ByStatus
    assert rows["UpdateItem"]["writeUnits"] == 3  # table + ByStatus delete + put
    assert rows["UpdateItem"]["indexWriteUnits"] == {"ByStatus": 2}
    assert rows["GetItem"]["readUnits"] == 1
