"""The whole local stack on the fixture template: gateway behaviour that handlers cannot see.

Starts `python -m local` once for the module on free ports (a few seconds), then talks real
HTTP and WebSocket to it. The product's own flows are in tests/e2e.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import signal
import socket
import struct
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from http import HTTPStatus
from pathlib import Path
from typing import Any

import aiohttp
import boto3
import pytest
import websockets
from botocore.exceptions import ClientError
from local_support import FIXTURE_ASSEMBLY, run_fixture_stack, wait_for

from local.launcher import LocalStackProcess
from local.state.running_stack import state_file_path

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def stats_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("stats") / "stats.json"


@pytest.fixture(scope="module")
def stack(stats_file: Path) -> Iterator[LocalStackProcess]:
    arguments = ["--cdk-out", str(FIXTURE_ASSEMBLY), "--stage", "dev", "--time-scale", "0.05"]
    with LocalStackProcess([*arguments, "--stats-file", str(stats_file)]) as running:
        yield running


def request(
    stack: LocalStackProcess, method: str, path: str, **kwargs: Any
) -> tuple[int, dict[str, str], str]:
    async def call() -> tuple[int, dict[str, str], str]:
        async with (
            aiohttp.ClientSession() as session,
            session.request(method, stack.http_url + path, **kwargs) as response,
        ):
            headers = {k.lower(): v for k, v in response.headers.items()}
            return response.status, headers, await response.text()

    return asyncio.run(call())


def aws(stack: LocalStackProcess, service: str, **kwargs: Any) -> Any:
    return boto3.client(
        service, region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x", **kwargs
    )


def test_the_banner_reports_the_urls_and_counts_what_is_not_emulated(stack):
    text = stack.text()
    report = stack.state_dir / "stacks" / "Fixture-dev" / "report.txt"
    assert f"HTTP API        {stack.http_url}" in text
    assert f"WebSocket API   {stack.ws_url}" in text
    assert stack.ws_url.endswith("/test")
    assert "satisfied locally" in text
    assert f"the list: {report}" in text
    assert "provided by this venv's packages" in report.read_text()
    assert "AWS::IAM::Role x1: IAM is not enforced locally" in report.read_text()


def test_requests_become_v2_events_and_results_become_responses(stack):
    status, headers, body = request(
        stack, "POST", "/echo/a/b?x=1&x=2", data=b"\x00\x01", headers={"Cookie": "k=v"}
    )
    assert status == HTTPStatus.OK
    echoed = json.loads(body)
    event = echoed["event"]
    assert (event["routeKey"], event["rawPath"], event["pathParameters"]) == (
        "ANY /echo/{proxy+}",
        "/echo/a/b",
        {"proxy": "a/b"},
    )
    assert event["queryStringParameters"] == {"x": "1,2"}
    assert event["cookies"] == ["k=v"]
    assert event["isBase64Encoded"] is True
    assert echoed["env"]["TABLE_NAME"] == "Fixture-dev-ItemsTable1A2B3C4D"
    assert echoed["env"]["AWS_ENDPOINT_URL"] == stack.moto_url
    assert echoed["context"]["memory_limit_in_mb"] == 256
    assert headers["set-cookie"] in ("a=1", "b=2")
    status, _, body = request(stack, "GET", "/bare")
    assert (status, json.loads(body)) == (HTTPStatus.OK, {"hello": "world"})


def test_a_content_encoded_body_reaches_the_function_as_sent(stack):
    # A body that says gzip but is not: aiohttp would have answered a text/plain 500 inflating it
    status, _, body = request(
        stack,
        "POST",
        "/echo/encoded",
        data=b'{"answer": "x"}',
        headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
    )

    assert status == HTTPStatus.OK, body
    event = json.loads(body)["event"]
    assert (event["headers"]["content-encoding"], event["body"]) == ("gzip", '{"answer": "x"}')


def test_unknown_routes_errors_and_timeouts_answer_like_api_gateway(stack):
    assert request(stack, "GET", "/nope")[::2] == (HTTPStatus.NOT_FOUND, '{"message": "Not Found"}')
    assert request(stack, "DELETE", "/items/x")[0] == HTTPStatus.NOT_FOUND
    error = request(stack, "GET", "/boom")
    assert (error[0], json.loads(error[2])) == (
        HTTPStatus.INTERNAL_SERVER_ERROR,
        {"message": "Internal Server Error"},
    )
    started = time.monotonic()
    timeout = request(stack, "GET", "/slow")
    assert timeout[0] == HTTPStatus.INTERNAL_SERVER_ERROR
    assert time.monotonic() - started < 6  # the template's Timeout is 2 s
    wait_for(lambda: "GET /slow -> 500" in stack.text())
    assert "boom on purpose" in stack.text()


def test_cors_comes_from_the_apis_configuration(stack):
    preflight = {"Origin": "http://localhost:4200", "Access-Control-Request-Method": "POST"}
    status, headers, _ = request(stack, "OPTIONS", "/items", headers=preflight)
    assert status == HTTPStatus.NO_CONTENT
    assert headers["access-control-allow-origin"] == "http://localhost:4200"
    assert headers["access-control-allow-methods"] == "GET,POST"
    assert headers["access-control-max-age"] == "600"
    status, headers, _ = request(
        stack, "OPTIONS", "/items", headers={**preflight, "Origin": "http://evil.example"}
    )
    assert status == HTTPStatus.NO_CONTENT
    assert "access-control-allow-origin" not in headers
    # the integration's own CORS header is replaced by the configured one
    _, headers, _ = request(stack, "GET", "/echo/x", headers={"Origin": "http://localhost:4200"})
    assert headers["access-control-allow-origin"] == "http://localhost:4200"
    assert headers["access-control-expose-headers"] == "location"
    _, headers, _ = request(stack, "GET", "/echo/x", headers={"Origin": "http://evil.example"})
    assert "access-control-allow-origin" not in headers


def item(stack: LocalStackProcess, item_id: str) -> dict[str, Any] | None:
    status, _, body = request(stack, "GET", f"/items/{item_id}")
    return json.loads(body) if status == HTTPStatus.OK else None


def test_stream_queue_retry_and_dead_letter_paths(stack):
    flaky, poison = f"flaky-{uuid.uuid4().hex[:6]}", f"poison-{uuid.uuid4().hex[:6]}"
    assert request(stack, "POST", "/items", json={"id": flaky, "fail": 1})[0] == HTTPStatus.CREATED
    assert request(stack, "POST", "/items", json={"id": poison, "fail": 9})[0] == HTTPStatus.CREATED
    done = wait_for(lambda: (i := item(stack, flaky)) and i["status"] == "done" and i)
    assert done["attempts"] == 2  # failed once, redelivered after the (scaled) visibility timeout
    wait_for(lambda: (i := item(stack, poison)) and i["status"] == "dead")  # maxReceiveCount 2 -> DLQ
    sqs = aws(stack, "sqs", endpoint_url=stack.moto_url)
    for url in sqs.list_queues()["QueueUrls"]:
        attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
        assert attributes["Attributes"]["ApproximateNumberOfMessages"] == "0"


def test_expired_items_are_removed_by_the_ttl_sweeper(stack):
    expired = f"expired-{uuid.uuid4().hex[:6]}"
    request(stack, "POST", "/items", json={"id": expired, "expiresAt": int(time.time()) - 5})
    assert wait_for(lambda: item(stack, expired) is None, timeout=15, interval=0.5)


def test_websocket_routes_two_way_responses_and_error_frames(stack):
    async def talk() -> list[str]:
        async with websockets.connect(stack.ws_url) as socket:
            frames = []
            await socket.send("hello")
            frames.append(await socket.recv())
            await socket.send(json.dumps({"action": "push"}))
            frames.append(await socket.recv())
            frames.append(await socket.recv())
            await socket.send("boom")
            frames.append(await socket.recv())
            await socket.send("still open")
            frames.append(await socket.recv())
            return [str(frame) for frame in frames]

    echo, pushed, reply, error, after = asyncio.run(talk())
    assert echo == "echo hello"
    assert pushed == "pushed"
    assert json.loads(reply)["sourceIp"] == "127.0.0.1"
    assert json.loads(error)["message"] == "Internal server error"
    assert after == "echo still open"


def test_a_frame_route_selection_cannot_parse_goes_to_default_and_the_connection_stays(stack):
    # json.loads raises RecursionError on this (2,000 bytes), not JSONDecodeError
    nested = "[" * 1000 + "]" * 1000

    async def talk() -> list[str]:
        async with websockets.connect(stack.ws_url) as socket:
            frames = []
            for frame in (nested, "still open"):
                await socket.send(frame)
                frames.append(str(await asyncio.wait_for(socket.recv(), timeout=10)))
            return frames

    assert asyncio.run(talk()) == ["echo " + nested, "echo still open"]
    assert "RecursionError" not in stack.text()


def _abort_handshakes(ws_url: str, count: int) -> None:
    """Send `count` valid upgrade requests, each followed at once by a reset (SO_LINGER 0)."""
    url = urllib.parse.urlsplit(ws_url)
    assert url.hostname is not None
    assert url.port is not None
    for _ in range(count):
        key = base64.b64encode(os.urandom(16)).decode()
        upgrade = (
            f"GET {url.path} HTTP/1.1\r\nHost: {url.netloc}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        with socket.create_connection((url.hostname, url.port), timeout=10) as raw:
            raw.sendall(upgrade.encode())
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def test_a_handshake_the_client_aborts_still_runs_disconnect_once(stack):
    # given clients that reset right after their upgrade request, while $connect runs (and accepts)
    start = len(stack.output)
    _abort_handshakes(stack.ws_url, 5)

    def since_start() -> str:
        return "".join(stack.output[start:])

    connected = wait_for(lambda: len(ids := re.findall(r" ok +\$connect (\S+)", since_start())) == 5 and ids)

    # then each accepted $connect is followed by exactly one $disconnect of that connection
    def disconnects() -> dict[str, int]:
        text = since_start()
        counts = {cid: text.count(f"$disconnect {cid}\n") for cid in connected}
        return counts if all(counts.values()) else {}

    assert wait_for(disconnects, timeout=10) == dict.fromkeys(connected, 1)
    # and an upgrade that failed (most do; a reset seen only after the 101 is a normal close) is
    # a console line, not a traceback
    assert 1 <= since_start().count("handshake aborted by the client") <= 5
    assert "Traceback" not in since_start()


def test_a_client_that_leaves_before_its_body_is_sent_is_one_line_not_a_traceback(stack):
    # given a POST announcing 100 bytes of body, sending 18, then closing its connection
    start = len(stack.output)
    url = urllib.parse.urlsplit(stack.http_url)
    assert url.hostname is not None
    assert url.port is not None
    head = f"POST /echo/short HTTP/1.1\r\nHost: {url.netloc}\r\nContent-Type: application/json\r\n"
    with socket.create_connection((url.hostname, url.port), timeout=10) as raw:
        raw.sendall(f"{head}Content-Length: 100\r\n\r\n".encode() + b'{"answer":"short"}')

    # then the console says so in one line, and the stack still answers
    wait_for(lambda: "the client left before sending its body" in "".join(stack.output[start:]))
    assert "Traceback" not in "".join(stack.output[start:])
    assert request(stack, "GET", "/bare")[0] == HTTPStatus.OK


def test_a_non_2xx_connect_rejects_the_handshake(stack):
    async def connect() -> None:
        async with websockets.connect(stack.ws_url + "?reject=1"):
            pass

    with pytest.raises(websockets.exceptions.InvalidStatus) as rejected:
        asyncio.run(connect())
    assert rejected.value.response.status_code == HTTPStatus.FORBIDDEN


def test_frames_over_128_kb_close_the_connection_with_1009(stack):
    async def send_big() -> int | None:
        async with websockets.connect(stack.ws_url, max_size=None) as socket:
            await socket.send("x" * (128 * 1024 + 1))
            with pytest.raises(websockets.exceptions.ConnectionClosed) as closed:
                await socket.recv()
            return closed.value.rcvd.code if closed.value.rcvd else None

    assert asyncio.run(send_big()) == 1009


def test_the_management_api_works_with_boto3(stack):
    async def scenario() -> dict[str, Any]:
        async with websockets.connect(stack.ws_url) as socket:
            await socket.send(json.dumps({"action": "push"}))
            await socket.recv()
            connection_id = json.loads(await socket.recv())["connectionId"]
            client = aws(
                stack, "apigatewaymanagementapi", endpoint_url=stack.ws_url.replace("ws://", "http://")
            )
            await asyncio.to_thread(client.post_to_connection, ConnectionId=connection_id, Data=b'{"n": 1}')
            frame = await socket.recv()
            info = await asyncio.to_thread(client.get_connection, ConnectionId=connection_id)
            await asyncio.to_thread(client.delete_connection, ConnectionId=connection_id)
            with pytest.raises(websockets.exceptions.ConnectionClosed):
                await socket.recv()
            with pytest.raises(ClientError) as gone:
                await asyncio.to_thread(client.post_to_connection, ConnectionId=connection_id, Data=b"x")
            return {"frame": frame, "info": info, "gone": gone.value.response["Error"]["Code"]}

    result = asyncio.run(scenario())
    assert result["frame"] == '{"n": 1}'
    assert result["info"]["Identity"]["SourceIp"] == "127.0.0.1"
    assert result["gone"] == "GoneException"


def test_the_embedded_aws_tells_the_functions_calls_from_the_stacks_own(stack):
    # given the flows above (HTTP, stream, queue, DLQ, TTL) have run
    def callers() -> dict[str, set[str]]:
        with urllib.request.urlopen(stack.moto_url + "/_local/requests", timeout=10) as response:
            rows = json.load(response)["operations"]
        seen: dict[str, set[str]] = {}
        for row in rows:
            seen.setdefault(row["caller"], set()).add(f"{row['service']}.{row['operation']}")
        return seen

    # when the depth monitor (every 5 s) has also made its calls
    seen = wait_for(lambda: (found := callers()) and "depth-monitor" in found and found, interval=0.5)

    # then each call is labelled with who made it
    assert "dynamodb.PutItem" in seen["function:ApiFunction"]
    assert "dynamodb.UpdateItem" in seen["function:DlqFunction"]
    assert {"sqs.ReceiveMessage", "sqs.DeleteMessageBatch"} <= seen["esm-sqs/WorkerFunction"]
    assert "dynamodbstreams.GetRecords" in seen["esm-stream/StreamFunction"]
    assert "dynamodb.CreateTable" in seen["provision"]
    assert "dynamodb.Scan" in seen["ttl-sweeper"]
    assert seen["depth-monitor"] == {"sqs.GetQueueAttributes"}


def test_the_stats_file_counts_invocations_and_connection_posts(stack, stats_file):
    # the file is rewritten every second: wait for the one after the WebSocket tests above
    def posted() -> dict[str, Any] | None:
        stats = json.loads(stats_file.read_text()) if stats_file.exists() else {}
        posts = stats.get("webSocketPosts", {})
        return stats if posts.get("delivered", 0) >= 1 and posts.get("gone", 0) >= 1 else None

    stats = wait_for(posted)

    api = stats["invocations"]["ApiFunction"]
    assert api["invocations"] == sum(api["outcomes"].values()) > 0, api
    assert api["outcomes"].get("timeout") == 1, api  # GET /slow
    assert api["billedMs"] >= api["invocations"]  # at least 1 ms each
    assert stats["invocations"]["SocketFunction"]["invocations"] > 0


@pytest.mark.parametrize("memory", [[], ["--in-memory"]], ids=["durable", "in-memory"])
def test_a_second_stack_on_the_same_state_is_refused_and_leaves_the_running_ones_run_file(stack, memory):
    run_file = state_file_path(stack.state_dir, "Fixture-dev")
    assert run_file.exists()

    # as a second `make dev` would start: on the same ports too
    ports = [str(urllib.parse.urlsplit(url).port) for url in (stack.http_url, stack.ws_url)]
    second = run_fixture_stack(
        "--state-dir", str(stack.state_dir), "--http-port", ports[0], "--ws-port", ports[1], *memory
    )

    assert second.returncode == 2
    assert "Another local stack" in second.stderr + second.stdout
    assert run_file.exists()  # `python -m local.token`, make redrive and the chaos runner read it
    assert json.loads(run_file.read_text())["http"] == stack.http_url


def test_a_log_folder_that_cannot_be_written_stops_the_start_with_one_clear_line(tmp_path):
    not_a_folder = tmp_path / "logs"
    not_a_folder.write_text("a file where the log folder should be")

    started = run_fixture_stack("--state-dir", str(tmp_path / "state"), "--log-dir", str(not_a_folder))

    assert started.returncode == 1
    assert f"error: the functions' log folder {not_a_folder}/Fixture-dev cannot be written" in started.stderr
    assert "LOCAL_STACK_READY" not in started.stdout
    assert "Traceback" not in started.stderr + started.stdout


def test_stopping_leaves_no_process_behind():
    arguments = ["--cdk-out", str(FIXTURE_ASSEMBLY), "--stage", "dev"]
    with LocalStackProcess(arguments) as running:
        assert running.process is not None
        pid = running.process.pid
        children = wait_for(lambda: len(_children(pid)) >= 3 and _children(pid))  # moto and warm workers
        running.process.send_signal(signal.SIGINT)
        running.process.wait(20)
    assert "stopped" in running.text()
    wait_for(lambda: not any(_alive(pid) for pid in children), timeout=10)


def _children(pid: int) -> list[int]:
    result = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    fields = stat.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                result.append(int(entry))
    return result


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
