"""Lambda events, moto helpers and in-memory fakes shared by the handler tests."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any

from local.gateways.jwt_authorizer import claim_string
from taskflow import table_schema
from taskflow.clients.connections_client import ConnectionGoneError
from taskflow.repositories.dynamodb import deserialize

REGION = "us-east-1"
MAX_RECEIVE_COUNT = 3
CALLBACK_URL = "https://abc123.execute-api.us-east-1.amazonaws.com/dev"
ALLOWED_ORIGIN = "http://localhost:4200"
OTHER_ALLOWED_ORIGIN = "https://app.example.com"
# botocore sends DynamoDB Streams calls to an account endpoint moto does not route; use the
# regional one.
STREAMS_ENDPOINT = f"https://streams.dynamodb.{REGION}.amazonaws.com"


@dataclass
class Aws:
    task_table: str
    connection_table: str
    queue_url: str
    dlq_url: str
    dynamodb: Any
    sqs: Any
    streams: Any
    stream_arn: str

    def stream_reader(self) -> StreamReader:
        return StreamReader(self.streams, self.stream_arn)

    def receive(self, queue_url: str | None = None, max_messages: int = 10) -> list[dict[str, Any]]:
        response = self.sqs.receive_message(
            QueueUrl=queue_url or self.queue_url,
            MaxNumberOfMessages=max_messages,
            AttributeNames=["All"],
            MessageSystemAttributeNames=["All"],
        )
        return list(response.get("Messages", []))


def create_task_table(dynamodb: Any, name: str) -> str:
    """The TaskTable as infra/ declares it (the same on every stage): key, ByCreated (keys only),
    ByFinished (all), stream with both images. Returns the stream's ARN."""
    dynamodb.create_table(**table_schema.task_table_request(name))
    return str(dynamodb.describe_table(TableName=name)["Table"]["LatestStreamArn"])


def create_connection_table(dynamodb: Any, name: str, *, owner_scoped: bool = False) -> None:
    dynamodb.create_table(**table_schema.connection_table_request(name, owner_scoped=owner_scoped))
    dynamodb.update_time_to_live(
        TableName=name,
        TimeToLiveSpecification={"Enabled": True, "AttributeName": table_schema.CONNECTION_TTL_ATTRIBUTE},
    )


@dataclass
class FakeLambdaContext:
    function_name: str = "test-function"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = f"arn:aws:lambda:{REGION}:123456789012:function:test-function"
    aws_request_id: str = "c6af9ac6-7b61-11e6-9a41-93e812345678"
    remaining_millis: int = 30_000

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_millis


def http_event(
    method: str,
    path: str,
    *,
    body: str | None = None,
    headers: dict[str, str] | None = None,
    query: dict[str, str] | None = None,
    base64_encoded: bool = False,
) -> dict[str, Any]:
    """An API Gateway HTTP API payload v2 event ($default stage)."""
    all_headers = {"host": "api.example.com", "user-agent": "pytest", **(headers or {})}
    raw_query = "&".join(f"{k}={v}" for k, v in (query or {}).items())
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": raw_query,
        "headers": {k.lower(): v for k, v in all_headers.items()},
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "api123",
            "domainName": "api.example.com",
            "domainPrefix": "api",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": "pytest",
            },
            "requestId": "req-1234",
            "routeKey": "$default",
            "stage": "$default",
            "time": "25/Nov/2026:23:00:00 +0000",
            "timeEpoch": 1795647600000,
        },
        "isBase64Encoded": base64_encoded,
    }
    if query:
        event["queryStringParameters"] = dict(query)
    if body is not None:
        event["body"] = body
    return event


def signed_in(event: dict[str, Any], owner: object, **claims: str) -> dict[str, Any]:
    """`event` as API Gateway's JWT authorizer passes it on: the token in the Authorization header
    (its signature is not looked at again), and its verified claims flattened to strings (payload
    v2, local.gateways.jwt_authorizer.claim_string) in requestContext.authorizer.jwt. `owner` is the
    token's `sub` claim, of any JSON type (None: no sub)."""
    token_claims: dict[str, Any] = {
        "iss": "https://issuer.example.com/pool",
        "client_id": "test-client",
        **claims,
    }
    if owner is not None:
        token_claims["sub"] = owner
    payload = base64.urlsafe_b64encode(json.dumps(token_claims).encode()).rstrip(b"=").decode()
    event.setdefault("headers", {})["authorization"] = f"Bearer eyJhbGciOiJSUzI1NiJ9.{payload}.c2ln"
    flattened = {name: claim_string(value) for name, value in token_claims.items()}
    event["requestContext"]["authorizer"] = {"jwt": {"claims": flattened, "scopes": None}}
    return event


def json_post(path: str, body: Any, **headers: str) -> dict[str, Any]:
    return http_event(
        "POST", path, body=json.dumps(body), headers={"content-type": "application/json", **headers}
    )


def sqs_event(
    messages: list[dict[str, Any]], queue_arn: str = "arn:aws:sqs:us-east-1:123456789012:TaskQueue"
) -> dict[str, Any]:
    """The Lambda SQS event for messages from moto's ReceiveMessage."""
    return {
        "Records": [
            {
                "messageId": message["MessageId"],
                "receiptHandle": message["ReceiptHandle"],
                "body": message["Body"],
                "attributes": message.get("Attributes", {"ApproximateReceiveCount": "1"}),
                "messageAttributes": {},
                "md5OfBody": message.get("MD5OfBody", ""),
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": REGION,
            }
            for message in messages
        ]
    }


WS_METHOD_ARN = "arn:aws:execute-api:us-east-1:123456789012:abc123/dev/$connect"


def ws_authorizer_event(token: str | None, *, connection_id: str = "conn-1") -> dict[str, Any]:
    """The WebSocket $connect REQUEST authorizer event (token in the query string, when given)."""
    event: dict[str, Any] = {
        "type": "REQUEST",
        "methodArn": WS_METHOD_ARN,
        "headers": {"Host": "abc123.execute-api.us-east-1.amazonaws.com", "Sec-WebSocket-Version": "13"},
        "multiValueHeaders": {"Host": ["abc123.execute-api.us-east-1.amazonaws.com"]},
        "stageVariables": {},
        "requestContext": {
            "routeKey": "$connect",
            "eventType": "CONNECT",
            "messageDirection": "IN",
            "stage": "dev",
            "connectedAt": 1795647600000,
            "requestTimeEpoch": 1795647600000,
            "identity": {"sourceIp": "127.0.0.1"},
            "requestId": "ws-auth-1",
            "domainName": "abc123.execute-api.us-east-1.amazonaws.com",
            "connectionId": connection_id,
            "apiId": "abc123",
        },
    }
    if token is not None:
        event["queryStringParameters"] = {"token": token}
        event["multiValueQueryStringParameters"] = {"token": [token]}
    return event


def ws_event(
    event_type: str,
    *,
    connection_id: str = "conn-1",
    body: str | None = None,
    base64_encoded: bool = False,
    authorizer: dict[str, Any] | None = None,
) -> dict[str, Any]:
    route = {"CONNECT": "$connect", "DISCONNECT": "$disconnect", "MESSAGE": "$default"}[event_type]
    event: dict[str, Any] = {
        "requestContext": {
            "routeKey": route,
            "eventType": event_type,
            "connectionId": connection_id,
            "requestId": "ws-req-1",
            "domainName": "abc123.execute-api.us-east-1.amazonaws.com",
            "stage": "dev",
            "apiId": "abc123",
            "connectedAt": 1795647600000,
            "requestTimeEpoch": 1795647600000,
            "messageDirection": "IN",
        },
        "isBase64Encoded": base64_encoded,
    }
    if body is not None:
        event["body"] = body
    if authorizer is not None:  # what a $connect authorizer's context becomes
        event["requestContext"]["authorizer"] = authorizer
    return event


class StreamReader:
    """Reads the TaskTable stream from moto and hands out Lambda DynamoDB stream events."""

    def __init__(self, streams: Any, stream_arn: str) -> None:
        self._streams = streams
        self._arn = stream_arn
        shard = streams.describe_stream(StreamArn=stream_arn)["StreamDescription"]["Shards"][0]["ShardId"]
        self._iterator = streams.get_shard_iterator(
            StreamArn=stream_arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]

    def read(self) -> dict[str, Any]:
        """The records written since the last read, as the event the function receives."""
        response = self._streams.get_records(ShardIterator=self._iterator)
        self._iterator = response["NextShardIterator"]
        records = []
        for raw in response["Records"]:
            record = dict(raw)
            dynamodb = dict(record["dynamodb"])
            created = dynamodb.get("ApproximateCreationDateTime")
            if created is not None and not isinstance(created, int | float):
                dynamodb["ApproximateCreationDateTime"] = int(created.timestamp())
            record["dynamodb"] = dynamodb
            record["eventSourceARN"] = self._arn
            records.append(record)
        return {"Records": records}


# --------------------------------------------------------------------------- fakes


@dataclass
class FakeConnections:
    """An in-memory @connections endpoint: records frames per connection, and can answer
    410 Gone or fail for chosen connections."""

    gone: set[str] = field(default_factory=set)
    failing: set[str] = field(default_factory=set)
    frames: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    closed: list[str] = field(default_factory=list)  # @connections DELETE, in order

    def post(self, connection_id: str, data: bytes) -> None:
        if connection_id in self.gone or connection_id in self.closed:
            raise ConnectionGoneError(connection_id)
        if connection_id in self.failing:
            raise RuntimeError(f"endpoint error for {connection_id}")
        self.frames.setdefault(connection_id, []).append(json.loads(data))

    def close(self, connection_id: str) -> None:
        if connection_id in self.failing:
            raise RuntimeError(f"endpoint error for {connection_id}")
        self.closed.append(connection_id)


# `sub` claims that are no owner, on HTTP and WebSocket alike (taskflow.domain.owners): each a 401.
UNUSABLE_SUBS: dict[str, object] = {
    "no sub claim": None,
    "empty": "",
    "a number": 123,
    "a list": ["alice"],
    "an object": {"id": "alice"},
    "a boolean": True,
    "trailing space": "alice ",
    "leading space": " alice",
    "only white space": " \t",
    "trailing newline": "alice\n",
}

FAR_FUTURE = 4102444800  # 2100-01-01, epoch seconds


def put_connection(
    moto_aws: Aws, connection_id: str, owner: str | None = None, token_expires_at: int = FAR_FUTURE
) -> None:
    """A connection row as $connect stores it (with an owner: its token's expiry too)."""
    item = {
        table_schema.CONNECTION_PK: {"S": connection_id},
        table_schema.CONNECTION_TTL_ATTRIBUTE: {"N": str(FAR_FUTURE)},
    }
    if owner is not None:
        item[table_schema.CONNECTION_OWNER] = {"S": owner}
        item[table_schema.CONNECTION_TOKEN_EXPIRES_AT] = {"N": str(token_expires_at)}
    moto_aws.dynamodb.put_item(TableName=moto_aws.connection_table, Item=item)


def connection_ids(moto_aws: Aws) -> set[str]:
    items = moto_aws.dynamodb.scan(TableName=moto_aws.connection_table)["Items"]
    return {item[table_schema.CONNECTION_PK]["S"] for item in items}


def get_item(moto_aws: Aws, task_id: str, *, owner: str | None = None) -> dict[str, Any] | None:
    """The stored item of `owner`'s task (plain values), or None."""
    key = {table_schema.TASK_PK: {"S": table_schema.task_key(task_id, owner)}}
    item = moto_aws.dynamodb.get_item(TableName=moto_aws.task_table, Key=key).get("Item")
    return deserialize(item) if item else None


def set_status(moto_aws: Aws, task_id: str, status: str, *, owner: str | None = None, **extra: Any) -> None:
    """Move a task as the pipeline would (a direct write; the pipeline has its own tests): a final
    status also enters ByFinished, finished at the task's updatedAt."""
    if status in ("success", "error"):
        item = get_item(moto_aws, task_id, owner=owner)
        assert item is not None, f"no task {task_id!r} of {owner!r}"
        shard = table_schema.shard_of(task_id, table_schema.DEFAULT_LIST_SHARDS)
        finished_key = table_schema.finished_key(table_schema.scope_of(owner), status, shard)
        extra = {
            table_schema.TASKS_BY_FINISHED_PK: finished_key,
            table_schema.TASKS_BY_FINISHED_SK: item["updatedAt"],
            **extra,
        }
    names = {"#s": "status", **{f"#{k}": k for k in extra}}
    values = {":s": {"S": status}}
    sets = ["#s = :s"]
    for key, value in extra.items():
        values[f":{key}"] = {"S": value} if isinstance(value, str) else {"N": str(value)}
        sets.append(f"#{key} = :{key}")
    moto_aws.dynamodb.update_item(
        TableName=moto_aws.task_table,
        Key={table_schema.TASK_PK: {"S": table_schema.task_key(task_id, owner)}},
        UpdateExpression="SET " + ", ".join(sets),
        ExpressionAttributeNames=names,
        ExpressionAttributeValues=values,
    )


@dataclass
class FakeQueue:
    """An in-memory TaskQueue: records sent bodies and visibility changes; can refuse entries."""

    refuse: set[int] = field(default_factory=set)  # indexes (per call) to report as failed
    sent: list[str] = field(default_factory=list)
    send_calls: list[int] = field(default_factory=list)
    visibility: list[tuple[str, int]] = field(default_factory=list)

    def send_messages(self, bodies: list[str]) -> list[int]:
        self.send_calls.append(len(bodies))
        failed = sorted(index for index in self.refuse if index < len(bodies))
        self.sent.extend(body for index, body in enumerate(bodies) if index not in self.refuse)
        return failed

    def change_visibility(self, receipt_handle: str, timeout_seconds: int) -> None:
        self.visibility.append((receipt_handle, timeout_seconds))


def sqs_record(
    body: str, *, message_id: str, receive_count: int = 1, receipt_handle: str | None = None
) -> dict[str, Any]:
    """A message as moto's ReceiveMessage returns it (for sqs_event)."""
    return {
        "MessageId": message_id,
        "ReceiptHandle": receipt_handle or f"rh-{message_id}-{receive_count}",
        "Body": body,
        "Attributes": {
            "ApproximateReceiveCount": str(receive_count),
            "SentTimestamp": "1795647600000",
            "SenderId": "AIDAEXAMPLE",
            "ApproximateFirstReceiveTimestamp": "1795647600000",
        },
    }


def task_body(task_id: str, run: int = 1) -> str:
    return json.dumps({"taskId": task_id, "run": run})


class DynamoDBCalls:
    """Counts the DynamoDB operations a client makes (a botocore event hook on the real client)."""

    def __init__(self, client: Any) -> None:
        self.operations: list[str] = []
        client.meta.events.register("before-call.dynamodb", self._record)

    def _record(self, model: Any, **_: Any) -> None:
        self.operations.append(model.name)

    def count(self, operation: str) -> int:
        return self.operations.count(operation)


def call_http_api(event: dict[str, Any], context: Any) -> tuple[int, Any, dict[str, str]]:
    """Invoke the HTTP API handler: (status, parsed JSON body or None, headers)."""
    from taskflow.handlers import http_api  # noqa: PLC0415 - built from the test's environment

    response = http_api.handler(event, context)
    body = response.get("body")
    return response["statusCode"], json.loads(body) if body else None, response.get("headers", {})
