"""The patched moto keeps SQS's semantics, and a receive no longer costs O(queue depth).

Every semantic test runs against moto as shipped *and* with local/emulator/patches.py, so the
patch is held to moto's own behaviour (plus SQS's, where moto was wrong).
"""

import json
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from local_support import start_moto, stop_moto

from local.emulator import CLOSE_RECEIVES


def sqs_client(endpoint: str) -> Any:
    return boto3.client(
        "sqs",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="x",
    )


@pytest.fixture(scope="module", params=["patched", "moto as shipped"])
def sqs(request) -> Iterator:
    process, endpoint = start_moto(patched=request.param == "patched")
    client = sqs_client(endpoint)
    yield client
    stop_moto(process)


def new_queue(sqs, **attributes):
    name = f"q-{uuid.uuid4().hex[:8]}"
    attributes = {k: str(v) for k, v in attributes.items()}
    return sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]


def receive(sqs, url, count=10, wait=0, visibility=None):
    kwargs = {
        "QueueUrl": url,
        "MaxNumberOfMessages": count,
        "WaitTimeSeconds": wait,
        "AttributeNames": ["All"],
    }
    if visibility is not None:
        kwargs["VisibilityTimeout"] = visibility
    return sqs.receive_message(**kwargs).get("Messages", [])


def depth(sqs, url):
    attributes = sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]), int(
        attributes["ApproximateNumberOfMessagesNotVisible"]
    )


def test_a_received_message_is_invisible_until_its_visibility_timeout(sqs):
    url = new_queue(sqs, VisibilityTimeout=1)
    sqs.send_message(QueueUrl=url, MessageBody="m")
    (first,) = receive(sqs, url)
    assert receive(sqs, url) == []
    assert depth(sqs, url) == (0, 1)
    time.sleep(1.2)
    (again,) = receive(sqs, url)
    assert again["MessageId"] == first["MessageId"]
    assert again["Attributes"]["ApproximateReceiveCount"] == "2"
    assert again["ReceiptHandle"] != first["ReceiptHandle"]


def test_change_visibility_to_zero_makes_it_visible_at_once(sqs):
    url = new_queue(sqs, VisibilityTimeout=30)
    sqs.send_message(QueueUrl=url, MessageBody="m")
    (message,) = receive(sqs, url)
    sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0)
    (again,) = receive(sqs, url)
    assert again["Attributes"]["ApproximateReceiveCount"] == "2"


def test_messages_move_to_the_dlq_after_max_receive_count_receives(sqs):
    dlq = new_queue(sqs)
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    redrive = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 2})
    url = new_queue(sqs, VisibilityTimeout=30, RedrivePolicy=redrive)
    sqs.send_message(QueueUrl=url, MessageBody="poison")
    for expected in ("1", "2"):
        (message,) = receive(sqs, url)
        assert message["Attributes"]["ApproximateReceiveCount"] == expected
        sqs.change_message_visibility(
            QueueUrl=url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
        )
    assert receive(sqs, url) == []  # the third receive dead-letters it instead
    assert depth(sqs, url) == (0, 0)
    (dead,) = receive(sqs, dlq)
    assert dead["Body"] == "poison"


def test_deleted_messages_are_gone_and_old_handles_still_delete(sqs):
    url = new_queue(sqs, VisibilityTimeout=30)
    sqs.send_message(QueueUrl=url, MessageBody="a")
    sqs.send_message(QueueUrl=url, MessageBody="b")
    first, second = receive(sqs, url)
    sqs.delete_message(QueueUrl=url, ReceiptHandle=first["ReceiptHandle"])
    sqs.delete_message(QueueUrl=url, ReceiptHandle=first["ReceiptHandle"])  # twice is fine
    sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=second["ReceiptHandle"], VisibilityTimeout=0)
    (again,) = receive(sqs, url)
    assert again["Body"] == second["Body"]
    sqs.delete_message(QueueUrl=url, ReceiptHandle=second["ReceiptHandle"])  # the older handle
    assert depth(sqs, url) == (0, 0)


def test_an_unknown_receipt_handle_is_an_error(sqs):
    url = new_queue(sqs)
    with pytest.raises(ClientError, match="ReceiptHandleIsInvalid"):
        sqs.delete_message(QueueUrl=url, ReceiptHandle="not-a-handle")
    with pytest.raises(ClientError, match="ReceiptHandleIsInvalid"):
        sqs.change_message_visibility(QueueUrl=url, ReceiptHandle="not-a-handle", VisibilityTimeout=0)


def test_batches_respect_the_count_and_every_message_is_delivered_once(sqs):
    url = new_queue(sqs, VisibilityTimeout=30)
    for start in range(0, 25, 10):
        entries = [{"Id": str(i), "MessageBody": str(i)} for i in range(start, min(start + 10, 25))]
        sqs.send_message_batch(QueueUrl=url, Entries=entries)
    bodies = []
    while batch := receive(sqs, url, count=10):
        assert len(batch) <= 10
        bodies += [m["Body"] for m in batch]
    assert sorted(bodies, key=int) == [str(i) for i in range(25)]
    assert depth(sqs, url) == (0, 25)


def test_long_polling_returns_as_soon_as_a_message_is_visible(sqs):
    url = new_queue(sqs, VisibilityTimeout=1)
    sqs.send_message(QueueUrl=url, MessageBody="m")
    receive(sqs, url)
    started = time.monotonic()
    (message,) = receive(sqs, url, wait=5)
    assert 0.8 < time.monotonic() - started < 3
    assert message["Attributes"]["ApproximateReceiveCount"] == "2"


def test_queue_attributes_are_the_same_as_moto_reports(sqs):
    url = new_queue(sqs, VisibilityTimeout=7, DelaySeconds=0)
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert attributes["VisibilityTimeout"] == "7"
    assert attributes["ApproximateNumberOfMessages"] == "0"
    assert "QueueArn" in attributes
    assert "RedrivePolicy" not in attributes


def test_a_receive_does_not_slow_down_with_queue_depth(moto_endpoint):
    sqs = sqs_client(moto_endpoint)
    url = new_queue(sqs, VisibilityTimeout=300)
    for _ in range(200):
        sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": str(i), "MessageBody": "x"} for i in range(10)])
    timings = []
    for _ in range(5):
        started = time.perf_counter()
        assert len(receive(sqs, url)) == 10
        timings.append(time.perf_counter() - started)
    # moto as shipped takes over a second per receive at this depth
    assert sorted(timings)[2] < 0.25


@pytest.fixture(scope="module", params=["patched", "moto as shipped"])
def dynamodb(request) -> Iterator:
    process, endpoint = start_moto(patched=request.param == "patched")
    options = {
        "endpoint_url": endpoint,
        "region_name": "us-east-1",
        "aws_access_key_id": "x",
        "aws_secret_access_key": "x",
    }
    yield boto3.client("dynamodb", **options), boto3.client("dynamodbstreams", **options)
    stop_moto(process)


def test_stream_records_read_the_same_as_moto_writes_them(dynamodb):
    tables, streams = dynamodb
    name = f"t-{uuid.uuid4().hex[:8]}"
    arn = tables.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )["TableDescription"]["LatestStreamArn"]
    tables.put_item(TableName=name, Item={"id": {"S": "a"}, "n": {"N": "1"}, "l": {"L": [{"BOOL": True}]}})
    tables.update_item(
        TableName=name,
        Key={"id": {"S": "a"}},
        UpdateExpression="SET n = :two",
        ExpressionAttributeValues={":two": {"N": "2"}},
    )
    shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
    iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON")[
        "ShardIterator"
    ]

    records = streams.get_records(ShardIterator=iterator, Limit=10)["Records"]

    assert [r["eventName"] for r in records] == ["INSERT", "MODIFY"]
    modify = records[1]["dynamodb"]
    assert modify["OldImage"]["n"] == {"N": "1"}
    assert modify["NewImage"] == {"id": {"S": "a"}, "n": {"N": "2"}, "l": {"L": [{"BOOL": True}]}}
    assert modify["Keys"] == {"id": {"S": "a"}}
    assert int(records[1]["dynamodb"]["SequenceNumber"]) == int(records[0]["dynamodb"]["SequenceNumber"]) + 1
    created = modify["ApproximateCreationDateTime"]
    assert abs(created.timestamp() - time.time()) < 30  # epoch seconds, in UTC


def test_once_the_stack_closes_receives_a_long_poll_under_way_returns_empty_and_takes_nothing():
    # Given a patched emulator of its own (closing is for good) and a long poll on an empty queue
    process, endpoint = start_moto(patched=True)
    try:
        sqs = sqs_client(endpoint)
        url = new_queue(sqs, VisibilityTimeout=30)
        with ThreadPoolExecutor(1) as pool:
            started = time.monotonic()
            waiting = pool.submit(receive, sqs, url, 10, 10)

            # When the stack, stopping, closes the receives (whether or not the poll reached the
            # emulator first: the command comes on another channel, stdin)
            assert process.stdin is not None
            process.stdin.write(f"{CLOSE_RECEIVES}\n")
            process.stdin.flush()

            # Then the poll returns empty well before its 10 s
            assert waiting.result(timeout=15) == []
            assert time.monotonic() - started < 5
        # and a message that arrives afterwards is left as it is: no receive takes it any more
        sqs.send_message(QueueUrl=url, MessageBody="m")
        assert receive(sqs, url) == []
        assert depth(sqs, url) == (1, 0)  # visible, not in flight: no receive spent
    finally:
        stop_moto(process)
