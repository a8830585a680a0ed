"""The dev stack end to end: the frontend's requests in, every status change out on the WebSocket."""

from __future__ import annotations

import json
import time
from http import HTTPStatus

import pytest
from e2e_support import Frames, wait_for

pytestmark = pytest.mark.e2e


def statuses(frames, task_id):
    """(status, retries) of every frame pushed for the task, in write order (version)."""
    return [(f["status"], f["retries"]) for f in sorted(frames.of_task(task_id), key=lambda f: f["version"])]


def test_a_submitted_task_is_pushed_pending_then_success_and_listed(api, frames):
    task_id = api.submit(answer="the frontend's answer")

    final = frames.final(task_id)

    assert final["status"] == "success"
    assert statuses(frames, task_id) == [("pending", 0), ("success", 0)]
    assert {"taskId", "status", "retries", "errorMessage", "updatedAt"} <= set(final)
    status, _, listed = api.request("GET", "/tasks")
    assert status == HTTPStatus.OK
    assert isinstance(listed, list)
    mine = next(t for t in listed if t["taskId"] == task_id)
    assert (mine["status"], mine["retries"], mine["answer"]) == ("success", 0, "the frontend's answer")
    assert api.task(task_id)["status"] == "success"


def test_each_failed_attempt_is_pushed_before_the_success(api, frames):
    task_id = api.submit(simulate={"failAttempts": 2})

    final = frames.final(task_id)

    assert (final["status"], final["retries"]) == ("success", 2)
    assert statuses(frames, task_id) == [("pending", 0), ("pending", 1), ("pending", 2), ("success", 2)]
    first_retry = next(f for f in frames.of_task(task_id) if f["retries"] == 1)
    assert first_retry["errorMessage"]


def test_a_task_that_always_fails_ends_error_and_its_dlq_message_is_consumed(api, frames, aws):
    task_id = api.submit(simulate={"failAttempts": 100})

    final = frames.final(task_id)

    assert final["status"] == "error"
    assert final["retries"] == 2  # the dev retry budget: maxReceiveCount 3 = 1 attempt + 2 retries
    assert final["errorMessage"]
    wait_for(lambda: aws.depth("DeadLetter") == 0, what="the DLQ to drain")
    assert api.task(task_id)["status"] == "error"


def test_cors_preflight_answers_the_configured_origin_only(api):
    preflight = {"Origin": "http://localhost:4200", "Access-Control-Request-Method": "POST"}
    status, headers, _ = api.request("OPTIONS", "/tasks", headers=preflight)
    assert status == HTTPStatus.NO_CONTENT
    assert headers["access-control-allow-origin"] == "http://localhost:4200"
    assert "POST" in headers["access-control-allow-methods"]
    assert "content-type" in headers["access-control-allow-headers"].lower()
    status, headers, _ = api.request(
        "OPTIONS", "/tasks", headers={**preflight, "Origin": "https://evil.example"}
    )
    assert status == HTTPStatus.NO_CONTENT
    assert "access-control-allow-origin" not in headers
    _, headers, _ = api.request("GET", "/tasks", headers={"Origin": "http://localhost:4200"})
    assert headers["access-control-allow-origin"] == "http://localhost:4200"
    assert "link" in headers["access-control-expose-headers"].lower()


def test_the_gateway_answers_unknown_routes_and_tasks(api):
    assert api.request("GET", "/nowhere")[::2] == (HTTPStatus.NOT_FOUND, {"message": "Not Found"})
    assert api.request("GET", "/tasks/no-such-task")[0] == HTTPStatus.NOT_FOUND


def test_a_percent_encoded_task_id_reads_the_task_as_api_gateway_decodes_it(api):
    task_id = api.submit(answer="encoded")
    encoded = "".join(f"%{ord(c):02X}" if c == "-" else c for c in task_id)
    assert encoded != task_id

    status, _, task = api.request("GET", f"/tasks/{encoded}")

    assert status == HTTPStatus.OK
    assert task["taskId"] == task_id


def test_ping_gets_pong_and_garbage_an_error_frame_on_an_open_connection(frames):
    frames.send(json.dumps({"action": "ping"}))
    wait_for(lambda: {"type": "pong"} in frames.frames, what="pong")
    frames.send("this is not json")
    error = wait_for(
        lambda: next((f for f in frames.frames if isinstance(f, dict) and f.get("type") == "error"), None)
    )
    assert error["message"]
    frames.send(json.dumps({"action": "ping"}))
    wait_for(lambda: frames.frames.count({"type": "pong"}) == 2, what="a second pong on the same connection")


def test_a_vanished_client_is_removed_on_the_next_push(api, aws, frames):
    # A client that went away without $disconnect (lost network, a crash) leaves its row behind.
    table = aws.table("ConnectionTable")
    stale = "vanishedXXXXXX="
    expires = str(int(time.time()) + 3600)
    aws.dynamodb.put_item(
        TableName=table,
        Item={
            "connectionId": {"S": stale},
            "connectedAt": {"S": "2026-01-01T00:00:00Z"},
            "expiresAt": {"N": expires},
        },
    )

    task_id = api.submit()
    frames.final(task_id)

    def row_gone() -> bool:
        return "Item" not in aws.dynamodb.get_item(TableName=table, Key={"connectionId": {"S": stale}})

    assert wait_for(row_gone, what="the notifier to delete the connection row after 410 Gone")


def test_a_client_that_drops_during_a_burst_resumes_and_misses_no_final_frame(api, dev_stack):
    # Given a client that saw the first task's frames, then dropped
    before = Frames(dev_stack.ws_url)
    first = api.submit()
    before.final(first)
    last_cursor = before.of_task(first)[-1]["cursor"]
    before.close()

    # When tasks are submitted and finish while it is away, and it reconnects and resumes
    missed = [api.submit(simulate={"failAttempts": index % 2}) for index in range(12)]
    wait_for(
        lambda: all(api.task(task_id)["status"] == "success" for task_id in missed), 90, what="the burst"
    )
    again = Frames(dev_stack.ws_url)
    try:
        again.send(json.dumps({"action": "resume", "since": last_cursor}))
        resumed = wait_for(
            lambda: next(
                (f for f in again.frames if isinstance(f, dict) and f.get("type") == "resumed"), None
            ),
            30,
            what="the resumed answer",
        )

        # Then every missed task's final frame came, before the answer that closes the replay
        finals = {task_id: again.final(task_id, timeout=1) for task_id in missed}
        assert {frame["status"] for frame in finals.values()} == {"success"}
        assert resumed["count"] >= len(missed)
        assert again.frames.index(resumed) > max(again.frames.index(frame) for frame in finals.values())
    finally:
        again.close()


def test_a_forged_resume_cursor_gets_an_error_frame_on_an_open_connection(frames):
    frames.send(json.dumps({"action": "resume", "since": "forged"}))
    frames.send('{"action": "ping"}')

    error = wait_for(
        lambda: next((f for f in frames.frames if isinstance(f, dict) and f.get("type") == "error"), None),
        10,
        what="the error frame",
    )
    wait_for(lambda: {"type": "pong"} in frames.frames, 10, what="the pong after it")
    assert "cursor" in error["message"]
