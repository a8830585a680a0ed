"""Helpers of the end-to-end tests: a synthesized assembly, HTTP and WebSocket clients, waits.

The tests talk to a running local stack only over real HTTP and a real WebSocket client,
and read queue depths / table rows through its embedded AWS (moto) endpoint.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
from websockets.sync.client import ClientConnection, connect

if TYPE_CHECKING:
    from local.chaos.runner import ChaosResult

REPO_ROOT = Path(__file__).resolve().parents[2]
CDK_OUT = REPO_ROOT / "cdk.out"


def ensure_synthesized() -> Path:
    """cdk.out as `make test` leaves it; synthesized here when a test run starts without it."""
    if not (CDK_OUT / "manifest.json").exists():
        subprocess.run(["make", "synth"], cwd=REPO_ROOT, check=True, capture_output=True)
    return CDK_OUT


def synth_variants(outdir: Path, variants: dict[str, dict[str, Any]]) -> Path:
    """Synthesize dev-stage variants (stage name -> changed settings) into `outdir`.

    Tests may import infra/ (the local stack may not): this is the same `cdk synth` a person
    runs after editing cdk.json, done in-process so the test needs no second CLI run.
    """
    # Imported here: jsii starts a Node process, which only the tests that synthesize need.
    import aws_cdk as cdk  # noqa: PLC0415

    from infra.config import StageConfig, load_stages  # noqa: PLC0415
    from infra.stack import TaskBackendStack, stack_name_for  # noqa: PLC0415

    context = json.loads((REPO_ROOT / "cdk.json").read_text())["context"]
    dev = load_stages(context["stages"])["dev"]
    previous = Path.cwd()
    os.chdir(REPO_ROOT)  # the Lambda asset path ("lambdas") is relative to the project
    try:
        settings = {k: v for k, v in context.items() if k != "stages"}
        # what the CDK CLI adds: construct paths and asset folders in the template's metadata
        settings.update({"aws:cdk:enable-path-metadata": True, "aws:cdk:enable-asset-metadata": True})
        app = cdk.App(outdir=str(outdir), context=settings)
        for name, changes in variants.items():
            stage = StageConfig.model_validate({**dev.model_dump(), **changes, "name": name})
            TaskBackendStack(app, stack_name_for(stage), stage=stage)
        app.synth()
    finally:
        os.chdir(previous)
    return outdir


def wait_for(
    condition: Callable[[], Any], timeout: float = 30.0, interval: float = 0.1, what: str = ""
) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or condition}")
        time.sleep(interval)


class Api:
    """The HTTP API, with the frontend's request shapes."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url

    def request(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], Any]:
        data = json.dumps(body).encode() if body is not None else None
        all_headers = {"Content-Type": "application/json"} if data is not None else {}
        all_headers.update(headers or {})
        request = urllib.request.Request(self.base_url + path, data=data, method=method, headers=all_headers)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                status, raw, response_headers = response.status, response.read(), response.headers
        except urllib.error.HTTPError as error:
            status, raw, response_headers = error.code, error.read(), error.headers
        text = raw.decode()
        try:
            parsed = json.loads(text) if text else None
        except json.JSONDecodeError:
            parsed = text
        return status, {k.lower(): v for k, v in response_headers.items()}, parsed

    def submit(self, answer: str = "42", simulate: dict[str, Any] | None = None) -> str:
        """POST /tasks with the frontend's exact body (plus the test-only simulate switch)."""
        task_id = str(uuid.uuid4())
        body: dict[str, Any] = {"taskId": task_id, "answer": answer, "status": "pending", "retries": 0}
        if simulate is not None:
            body["simulate"] = simulate
        status, _, response = self.request("POST", "/tasks", body)
        assert status == 202, (status, response)
        return task_id

    def task(self, task_id: str) -> dict[str, Any] | None:
        status, _, body = self.request("GET", f"/tasks/{task_id}")
        return body if status == 200 else None


class Frames:
    """A WebSocket client that keeps every frame it receives."""

    def __init__(self, url: str) -> None:
        self._connect = connect(url, open_timeout=30)
        self.connection: ClientConnection = self._connect.__enter__()
        self.frames: list[Any] = []
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        try:
            for message in self.connection:
                try:
                    frame = json.loads(message)
                except json.JSONDecodeError:
                    frame = message
                with self._lock:
                    self.frames.append(frame)
        except Exception:  # closed
            return

    def send(self, text: str) -> None:
        self.connection.send(text)

    def of_task(self, task_id: str) -> list[dict[str, Any]]:
        with self._lock:
            return [f for f in self.frames if isinstance(f, dict) and f.get("taskId") == task_id]

    def final(self, task_id: str, timeout: float = 60.0) -> dict[str, Any]:
        def done() -> dict[str, Any] | None:
            return next((f for f in self.of_task(task_id) if f.get("status") in ("success", "error")), None)

        return wait_for(done, timeout, what=f"the final frame of {task_id}")

    def close(self) -> None:
        self._connect.__exit__(None, None, None)


class Aws:
    """The embedded AWS of a running local stack (queue depths, table rows)."""

    def __init__(self, endpoint: str) -> None:
        options = {
            "endpoint_url": endpoint,
            "region_name": "us-east-1",
            "aws_access_key_id": "x",
            "aws_secret_access_key": "x",
        }
        self.sqs = boto3.client("sqs", **options)
        self.dynamodb = boto3.client("dynamodb", **options)

    def queue_url(self, name_part: str) -> str:
        urls = [u for u in self.sqs.list_queues()["QueueUrls"] if name_part in u.rsplit("/", 1)[1]]
        assert len(urls) == 1, urls
        return str(urls[0])

    def depth(self, name_part: str) -> int:
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=self.queue_url(name_part),
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"]) + int(
            attributes["ApproximateNumberOfMessagesNotVisible"]
        )

    def table(self, name_part: str) -> str:
        names = [n for n in self.dynamodb.list_tables()["TableNames"] if name_part in n]
        assert len(names) == 1, names
        return str(names[0])


# The faults a chaos run injects (names as the checker's report counts them): each must fire.
EVERY_FAULT = (
    "processing failures",
    "worker kills",
    "duplicate deliveries",
    "AWS errors",
    "SQS outage refusals",
    "push failures",
    "abrupt disconnects",
    "POST responses lost",
)


def run_chaos_in(tmp_path: Path, **settings: Any) -> ChaosResult:
    """A chaos run (python -m local.chaos, in-process) of cdk.out's stage unless `settings` say
    otherwise; its log and report are printed, so pytest shows them when a test fails."""
    from local.chaos.runner import ChaosConfig, run_chaos  # noqa: PLC0415 - only the chaos tests need it

    settings.setdefault("cdk_out", ensure_synthesized())
    config = ChaosConfig(run_dir=tmp_path / "run", **settings)
    lines: list[str] = []
    result = run_chaos(config, lines.append)
    print("\n".join(lines + result.report.lines()))
    return result
