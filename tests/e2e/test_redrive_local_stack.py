"""`make redrive` against the local stack: failed tasks are re-run and, with the fault switched
off, end `success` (issue 8)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from e2e_support import Api, Aws, ensure_synthesized, wait_for

from local.faults.injection import write_control_window
from local.launcher import LocalStackProcess
from ops import redrive

pytestmark = pytest.mark.e2e

TASKS = 3


def test_redrive_reruns_dead_lettered_tasks_to_success_once_the_fault_is_off(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fault_dir, state_dir = tmp_path / "faults", tmp_path / "state"
    arguments = [
        *("--cdk-out", str(ensure_synthesized()), "--stage", "dev"),
        *("--time-scale", "0.01", "--failure-rate", "0"),
        *("--fault-dir", str(fault_dir), "--state-dir", str(state_dir), "--quiet"),
    ]
    with LocalStackProcess(arguments) as stack:
        api, aws = Api(stack.http_url), Aws(stack.moto_url)
        # Given tasks that fail every attempt (a processing outage) until they are dead-lettered
        write_control_window(fault_dir, "processingOutage", time.time() - 1, time.time() + 3600)
        task_ids = [api.submit(f"answer {n}") for n in range(TASKS)]

        def statuses() -> list[str]:
            return [(api.task(task_id) or {}).get("status", "?") for task_id in task_ids]

        wait_for(lambda: statuses() == ["error"] * TASKS, timeout=90, what="tasks to end in error")
        wait_for(lambda: aws.depth("DeadLetter") == 0, timeout=30, what="the DLQ consumer to drain")

        # When the fault is switched off and the stage is redriven
        write_control_window(fault_dir, "processingOutage", time.time() - 2, time.time() - 1)
        exit_code = redrive.main(["--stage", "dev", "--target", "local", "--state-dir", str(state_dir)])

        # Then every task runs again, in a new run, and succeeds
        assert exit_code == 0
        assert f"{TASKS} task(s) re-run" in capsys.readouterr().out
        wait_for(lambda: statuses() == ["success"] * TASKS, timeout=90, what="redriven tasks to succeed")
        assert {(api.task(task_id) or {}).get("run") for task_id in task_ids} == {2}
        assert aws.depth("DeadLetter") == 0


def test_redrive_against_a_stopped_local_stack_says_how_to_start_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    exit_code = redrive.main(["--stage", "dev", "--target", "local", "--state-dir", str(tmp_path)])

    assert exit_code == 2
    assert "make dev" in capsys.readouterr().err
