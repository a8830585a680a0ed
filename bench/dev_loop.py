"""The local stack's dev loop: a crash with work in flight, a restart, an edit.

    python -m bench dev-loop                     # dev stage, real time (time scale 1)
    python -m bench dev-loop --tasks 200         # more tasks in the crash

1. crash: the dev stage at its real speed (no time scale, failure rate 0) accepts `--tasks`
   tasks, every other one failing its first attempt (`simulate.failAttempts 1`, so it waits out
   its backoff, pending); a moment after the last 202 the whole stack is killed (SIGKILL of its
   process group) and started again on the same state. It prints the seconds to ready, the tasks
   lost (not listed after the restart: must be 0) and the seconds until every one is final
   (the issue's bound: 4 minutes);
2. restart: a clean stop and a start with nothing to do, to ready (goal: <= 5 s);
3. edit: the functions run a copy of lambdas/ the stack watches; `--edits` times a change to
   the OpenAPI title is saved and GET /openapi.json polled until it shows it (goal: <= 2 s).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from local.launcher import REPO_ROOT, LocalStackProcess

FINAL = ("success", "error")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def request(method: str, url: str, body: Any = None) -> tuple[int | None, Any]:
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json"} if data else {}
    try:
        with urllib.request.urlopen(
            urllib.request.Request(url, data, headers, method=method), timeout=30
        ) as reply:
            return reply.status, json.loads(reply.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, None
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return None, None


def statuses(http_url: str) -> dict[str, str]:
    status, tasks = request("GET", f"{http_url}/tasks?limit=500")
    return {task["taskId"]: task["status"] for task in tasks} if status == 200 else {}


def crash(arguments: list[str], tasks: int) -> None:
    first = LocalStackProcess(arguments)
    first.start()
    ids = [f"crash-{index:04d}-{uuid.uuid4().hex[:8]}" for index in range(tasks)]

    def submit(index: int) -> bool:
        body = {"taskId": ids[index], "answer": f"a{index}", "status": "pending", "retries": 0}
        if index % 2:
            body["simulate"] = {"failAttempts": 1}
        return request("POST", f"{first.http_url}/tasks", body)[0] == 202

    with ThreadPoolExecutor(8) as pool:
        accepted = sum(pool.map(submit, range(tasks)))
    time.sleep(1.0)  # the first attempts run: the flaky half fails and backs off, pending
    before = statuses(first.http_url)
    pending = sum(1 for task_id in ids if before.get(task_id) == "pending")
    assert first.process is not None
    os.killpg(first.process.pid, signal.SIGKILL)
    killed = time.monotonic()
    first.process.wait(30)
    first.stop()
    print(
        f"crash: {accepted} of {tasks} accepted, {pending} pending, then SIGKILL of the whole stack",
        flush=True,
    )

    started = time.monotonic()
    with LocalStackProcess(arguments) as second:
        ready = time.monotonic() - started
        restored = next((line.strip() for line in second.output if line.startswith("  state ")), "")
        print(f"crash: ready again {ready:.1f} s after the restart began; {restored}", flush=True)
        after = statuses(second.http_url)
        lost = [task_id for task_id in ids if task_id not in after]
        print(f"crash: lost {len(lost)} of {accepted} accepted tasks", flush=True)
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            after = statuses(second.http_url)
            if all(after.get(task_id) in FINAL for task_id in ids):
                break
            time.sleep(2.0)
        final = sum(1 for task_id in ids if after.get(task_id) in FINAL)
        errors = sum(1 for task_id in ids if after.get(task_id) == "error")
        print(
            f"crash: {final} of {accepted} final {time.monotonic() - killed:.0f} s after the kill "
            f"({errors} error)",
            flush=True,
        )


def restart(arguments: list[str]) -> None:
    """The stack stopped cleanly after the crash step: start it again, nothing left to do."""
    started = time.monotonic()
    with LocalStackProcess(arguments):
        print(
            f"restart: ready {time.monotonic() - started:.2f} s after the start (nothing pending)", flush=True
        )


def edit(arguments: list[str], edits: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / "lambdas"
        shutil.copytree(REPO_ROOT / "lambdas", source, ignore=shutil.ignore_patterns("__pycache__"))
        openapi = source / "taskflow" / "api" / "openapi.py"
        with LocalStackProcess([*arguments, "--watch", str(source)]) as stack:
            url = f"{stack.http_url}/openapi.json"
            request("GET", url)  # warm
            time.sleep(3.0)  # prewarm finished
            seconds = []
            for number in range(edits):
                text = openapi.read_text()
                marker = f"Edit {number}"
                start = text.index('TITLE: Final = "') + len('TITLE: Final = "')
                openapi.write_text(text[:start] + marker + text[text.index('"', start) :])
                saved = time.monotonic()
                while (request("GET", url)[1] or {}).get("info", {}).get("title") != marker:
                    time.sleep(0.02)
                seconds.append(time.monotonic() - saved)
                time.sleep(1.0)
            print(
                f"edit: live after {statistics.median(seconds):.2f} s (median of {edits}; "
                f"max {max(seconds):.2f} s)",
                flush=True,
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench dev-loop", description=__doc__.split("\n\n")[0])
    parser.add_argument("--cdk-out", type=Path, default=Path("cdk.out"))
    parser.add_argument("--tasks", type=int, default=100)
    parser.add_argument("--edits", type=int, default=5)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as state:
        arguments = [
            *("--cdk-out", str(args.cdk_out), "--stage", "dev", "--failure-rate", "0", "--quiet"),
            *("--state-dir", state, "--http-port", str(free_port()), "--ws-port", str(free_port())),
        ]
        crash(arguments, args.tasks)
        restart(arguments)
        edit(arguments, args.edits)
    return 0


if __name__ == "__main__":
    sys.exit(main())
