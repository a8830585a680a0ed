"""The local stack keeps what it accepted across a stop, a kill -9 of everything, and a kill -9 of
its embedded AWS, and refuses a damaged state without touching it (issue 13)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from e2e_support import REPO_ROOT, Api, Aws, Frames, ensure_synthesized, wait_for

from local.launcher import LocalStackProcess
from local.state.running_stack import StateFileError, running_stack_state

pytestmark = pytest.mark.e2e

TASKS = 40
FINAL = ("success", "error")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def stack_arguments(state_dir: Path, *extra: str) -> list[str]:
    return [
        *("--cdk-out", str(ensure_synthesized()), "--stage", "dev"),
        *("--time-scale", "0.01", "--failure-rate", "0", "--quiet"),
        *("--state-dir", str(state_dir), "--http-port", str(free_port()), "--ws-port", str(free_port())),
        *extra,
    ]


def submit_all(api: Api, bodies: list[dict[str, Any]]) -> list[str]:
    """POST each body, as the frontend does, retrying a 503 or a refused connection; the ids that
    got their 202."""

    def submit(body: dict[str, Any]) -> str | None:
        for _ in range(100):
            try:
                status, _, _ = api.request("POST", "/tasks", body)
            except (urllib.error.URLError, ConnectionError):
                status = None
            if status == 202:
                return str(body["taskId"])
            time.sleep(0.1)
        return None

    with ThreadPoolExecutor(8) as pool:
        return [task_id for task_id in pool.map(submit, bodies) if task_id is not None]


def bodies(count: int) -> list[dict[str, Any]]:
    """The frontend's body; every other task fails its first attempt (then backs off, pending)."""
    return [
        {
            "taskId": f"restart-{index:03d}-{os.urandom(4).hex()}",
            "answer": f"answer {index}",
            "status": "pending",
            "retries": 0,
            **({"simulate": {"failAttempts": 1}} if index % 2 else {}),
        }
        for index in range(count)
    ]


def listed(api: Api) -> dict[str, str]:
    """Every task of GET /tasks (all pages): id -> status."""
    tasks: dict[str, str] = {}
    path: str | None = "/tasks?limit=500"
    while path is not None:
        status, headers, page = api.request("GET", path)
        assert status == 200, (status, page)
        tasks.update({task["taskId"]: task["status"] for task in page})
        match = re.search(r"<([^>]+)>;\s*rel=\"next\"", headers.get("link", ""))
        path = match.group(1).removeprefix(api.base_url) if match else None
    return tasks


@pytest.mark.parametrize("stop", ["SIGKILL of the process group", "SIGTERM"])
def test_every_accepted_task_survives_a_stop_or_kill_of_the_whole_stack_and_finishes(tmp_path, stop):
    # Given a stack that accepted 40 tasks, half of them pending after a failed first attempt,
    # with a WebSocket client connected
    arguments = stack_arguments(tmp_path / "state")
    first = LocalStackProcess(arguments)
    first.start()
    frames = Frames(first.ws_url)
    plan = bodies(TASKS)
    retried = {str(body["taskId"]) for body in plan if "simulate" in body}
    accepted = submit_all(Api(first.http_url), plan)
    assert len(accepted) == TASKS

    # When the whole stack is killed (or stopped) right away, and started again
    assert first.process is not None
    if stop == "SIGTERM":
        first.process.send_signal(signal.SIGTERM)
    else:
        os.killpg(first.process.pid, signal.SIGKILL)
    first.process.wait(30)
    first.stop()
    frames.close()
    with LocalStackProcess(arguments) as second:
        api, aws = Api(second.http_url), Aws(second.moto_url)
        restored = next(line for line in second.output if "  state  " in line)

        # Then it says what it restored, and the connection of the last run got its $disconnect
        assert f"restored TaskTable {TASKS} items" in restored, restored
        if stop != "SIGTERM":
            assert "1 WebSocket connection of the last run closed" in restored, restored
        assert aws.dynamodb.scan(TableName=aws.table("Connection"), Select="COUNT")["Count"] == 0
        # and every accepted task is listed, and finishes without anyone's help
        assert set(accepted) <= set(listed(api))

        def all_final() -> bool:
            tasks = listed(api)
            return all(tasks[task_id] in FINAL for task_id in accepted)

        wait_for(all_final, timeout=120, interval=1.0, what="every accepted task to finish")
        # The tasks that never failed succeed, unless the kill cost them a delivery: a message in
        # flight at the kill comes back with a receive spent, as after a Lambda crash; at
        # --time-scale 0.01 its redelivery also finds the dead worker's lease (5 real seconds)
        # and is deferred (docs/local-stack.md, "Restarts").
        final = {task_id: api.task(task_id) or {} for task_id in accepted}
        unexplained = {
            task_id: task
            for task_id, task in final.items()
            if task.get("status") == "error"
            and task_id not in retried
            and "none of which completed an attempt" not in str(task.get("errorMessage"))
        }
        assert unexplained == {}
        assert sum(1 for task in final.values() if task.get("status") == "success") >= TASKS * 0.9


def test_the_embedded_aws_killed_mid_burst_is_back_within_seconds_and_nothing_is_lost(tmp_path):
    with LocalStackProcess(stack_arguments(tmp_path / "state")) as stack:
        api = Api(stack.http_url)
        unavailable: list[tuple[float, bool]] = []  # (when, had Retry-After) of every 503
        accepted: list[str] = []

        def submit(body: dict[str, Any]) -> None:
            for _ in range(200):
                status, headers, _ = api.request("POST", "/tasks", body)
                if status == 202:
                    accepted.append(str(body["taskId"]))
                    return
                assert status == 503, status  # never a 500
                unavailable.append((time.monotonic(), "retry-after" in headers))
                time.sleep(0.1)

        burst = threading.Thread(target=lambda: [submit(body) for body in bodies(50)])
        burst.start()
        wait_for(lambda: len(accepted) >= 20, timeout=60, what="the first 20 tasks")
        moto_pid = int(running_stack_state(stack.state_dir)["motoPid"])
        os.kill(moto_pid, signal.SIGKILL)
        killed = time.monotonic()
        burst.join(120)

        assert len(accepted) == 50
        assert "restarting it from" in stack.text()
        assert int(running_stack_state(stack.state_dir)["motoPid"]) != moto_pid
        # clients saw 503 with Retry-After only for the seconds the restart took
        assert all(with_retry_after for _, with_retry_after in unavailable)
        assert max((when - killed for when, _ in unavailable), default=0.0) < 5.0

        def all_final() -> bool:
            tasks = listed(api)
            return all(tasks.get(task_id) in FINAL for task_id in accepted)

        wait_for(all_final, timeout=120, interval=1.0, what="every accepted task to finish")


def _emulator_pid(state_dir: Path) -> int | None:
    try:
        return int(running_stack_state(state_dir)["motoPid"])
    except (StateFileError, KeyError, ValueError):
        return None


def _kill_emulator_until_the_stack_exits(stack: LocalStackProcess) -> float:
    """Kill the embedded AWS each time the stack has restarted it; seconds from the last kill
    until the stack exited."""
    assert stack.process is not None
    last_pid, killed = 0, time.monotonic()
    while stack.process.poll() is None:
        pid = _emulator_pid(stack.state_dir)
        if pid and pid != last_pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            last_pid, killed = pid, time.monotonic()
        time.sleep(0.05)
    return time.monotonic() - killed


@pytest.mark.parametrize(
    ("extra", "reason"),
    [
        pytest.param((), "giving up", id="dies again and again"),
        pytest.param(("--in-memory",), "keeps its state in memory", id="nothing to restart from"),
    ],
)
def test_a_stack_that_cannot_get_its_emulator_back_exits_within_5_seconds_saying_why(tmp_path, extra, reason):
    stack = LocalStackProcess(stack_arguments(tmp_path / "state", *extra))
    stack.start()
    try:
        seconds = _kill_emulator_until_the_stack_exits(stack)
    finally:
        stack.stop()

    assert stack.process is not None
    assert stack.process.returncode == 1
    assert seconds < 5.0
    error = next(line for line in stack.output if line.startswith("error: "))
    assert "the embedded AWS (moto" in error
    assert reason in error
    if not extra:
        assert f"{tmp_path / 'state'}" in error


def test_a_damaged_state_is_a_clear_error_and_nothing_changes(tmp_path):
    # Given a state file that is not one (garbage, as after a disk problem)
    folder = tmp_path / "state" / "stacks" / "TaskBackend-dev"
    folder.mkdir(parents=True)
    (folder / "state.sqlite").write_bytes(b"\x00garbage" * 512)
    before = {path.name: path.read_bytes() for path in folder.iterdir()}

    # When the stack starts on it
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "local", *stack_arguments(tmp_path / "state")],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    # Then it stops at once with one paragraph naming the file and the way out, no traceback
    assert result.returncode == 2
    assert time.monotonic() - started < 30
    assert "Traceback" not in result.stderr + result.stdout
    message = result.stderr.strip()
    assert message.count("\n") == 0
    assert str(folder / "state.sqlite") in message
    assert "make dev FRESH=1" in message
    # and nothing changed on disk (the lock file aside: who holds the state, released)
    assert {path.name: path.read_bytes() for path in folder.iterdir() if path.name != "lock"} == before

    # and --fresh (make dev FRESH=1) starts empty
    with LocalStackProcess([*stack_arguments(tmp_path / "state"), "--fresh"]) as fresh:
        assert "new and empty" in fresh.text()


def _title(api: Api) -> str:
    status, _, document = api.request("GET", "/openapi.json")
    assert status == 200
    return str(document["info"]["title"])


def test_saved_code_reaches_the_next_invocation_and_broken_code_never_does(tmp_path):
    # Given the stack running the functions from a copy of lambdas/ it watches
    source = tmp_path / "lambdas"
    subprocess.run(["cp", "-r", str(REPO_ROOT / "lambdas"), str(source)], check=True)
    openapi = source / "taskflow" / "api" / "openapi.py"
    errors = source / "taskflow" / "api" / "errors.py"
    with LocalStackProcess(stack_arguments(tmp_path / "state", "--watch", str(source))) as stack:
        api = Api(stack.http_url)
        frames = Frames(stack.ws_url)
        original = _title(api)
        assert f"code            {source} (8 functions)" in stack.text()

        # When a file is saved, the next invocation runs it (state and connections stay)
        task_id = api.submit()
        openapi.write_text(
            openapi.read_text().replace(f'TITLE: Final = "{original}"', 'TITLE: Final = "Edited"')
        )
        saved = time.monotonic()
        wait_for(lambda: _title(api) == "Edited", timeout=10, interval=0.05, what="the edit to be live")
        print(f"edit live after {time.monotonic() - saved:.2f} s")
        assert api.task(task_id) is not None
        frames.send(json.dumps({"action": "ping"}))
        wait_for(lambda: {"type": "pong"} in frames.frames, timeout=10, what="a pong on the old connection")

        # A syntax error is shown with its file and line, and the previous code keeps serving
        openapi.write_text(openapi.read_text() + "\ndef broken(:\n")
        wait_for(lambda: "held back" in stack.text(), timeout=10, what="the syntax error report")
        assert re.search(rf"{re.escape(str(openapi))}:\d+: invalid syntax", stack.text())
        assert _title(api) == "Edited"
        # and once fixed, the fix is live
        openapi.write_text(openapi.read_text().replace("\ndef broken(:\n", "").replace('"Edited"', '"Fixed"'))
        wait_for(lambda: _title(api) == "Fixed", timeout=10, interval=0.05, what="the fix to be live")

        # A module that fails at import: the function says so and stays on the code that worked
        errors.write_text(errors.read_text() + '\nraise RuntimeError("boom at import")\n')
        wait_for(lambda: stack.text().count("reloaded lambdas/") >= 3, timeout=10, what="the third reload")
        assert _title(api) == "Fixed"
        failed = "HttpApiFunction: the new code failed its cold start (RuntimeError: boom at import)"
        wait_for(lambda: failed in stack.text(), timeout=10, what="the failed cold start report")
        frames.close()


def test_make_devs_relative_state_and_watched_folders_run_the_functions():
    # Given the stack started as `make dev` starts it: from the repository, with `--watch lambdas`
    # and the state under a relative folder (the default `.local-state`; here a folder of its own)
    relative_state = Path(".local-state") / "tests" / f"relative-{os.getpid()}-{time.monotonic_ns()}"
    arguments = [*stack_arguments(relative_state), "--watch", "lambdas"]
    try:
        with LocalStackProcess(arguments) as stack:
            api = Api(stack.http_url)

            # When a task is submitted, then it is accepted and processed by the watched code
            task_id = api.submit()
            wait_for(lambda: (api.task(task_id) or {}).get("status") == "success", what="the task to succeed")

        assert f"code            {REPO_ROOT / 'lambdas'} (8 functions)" in stack.text()
    finally:
        shutil.rmtree(REPO_ROOT / relative_state, ignore_errors=True)


def test_synth_is_skipped_when_nothing_it_reads_changed():
    """`make dev` synthesizes only when infra/, app.py, cdk.json (or what they import) changed;
    lambdas/ edits need no synth for it (the stack reloads them), but do for test and deploy."""
    subprocess.run(["make", "synth"], cwd=REPO_ROOT, check=True, capture_output=True, timeout=600)

    def up_to_date(target: str, *changed: str) -> bool:
        what_if = [item for path in changed for item in ("-W", path)]
        result = subprocess.run(
            ["make", "-q", *what_if, target], cwd=REPO_ROOT, capture_output=True, check=False
        )
        return result.returncode == 0

    assert up_to_date("cdk.out/.synth-infra")
    assert up_to_date("cdk.out/.synth-all")
    assert not up_to_date("cdk.out/.synth-infra", "infra/config.py")
    assert not up_to_date("cdk.out/.synth-infra", "cdk.json")
    assert not up_to_date("cdk.out/.synth-infra", "app.py")
    assert up_to_date("cdk.out/.synth-infra", "lambdas/taskflow/api/app.py")
    assert not up_to_date("cdk.out/.synth-all", "lambdas/taskflow/api/app.py")


def test_a_state_file_deleted_while_the_stack_runs_stops_it_and_acknowledges_nothing_more(tmp_path):
    # Given a running stack that has acknowledged a task
    stack = LocalStackProcess(stack_arguments(tmp_path / "state"))
    stack.start()
    try:
        api = Api(stack.http_url)
        assert api.request("POST", "/tasks", {"answer": "before", "taskId": "before"})[0] == 202

        # When its state file is deleted under it
        folder = tmp_path / "state" / "stacks" / "TaskBackend-dev"
        for name in ("state.sqlite", "state.sqlite-wal", "state.sqlite-shm"):
            with contextlib.suppress(FileNotFoundError):
                (folder / name).unlink()

        # Then the next submission is not acknowledged (its write has nowhere durable to go), and
        # the stack stops saying why instead of going on with an empty state
        try:
            status = api.request("POST", "/tasks", {"answer": "after", "taskId": "after"})[0]
        except (urllib.error.URLError, ConnectionError):
            status = None
        assert status != 202
        assert stack.process is not None
        wait_for(lambda: stack.process.poll() is not None, timeout=30)
    finally:
        stack.stop()

    assert stack.process.returncode == 1
    error = next(line for line in stack.output if line.startswith("error: "))
    assert f"its state file {folder / 'state.sqlite'} is gone" in error
    assert not (folder / "state.sqlite").exists()  # nothing was quietly started empty
