"""Chaos runs of the dev stage (python -m local.chaos, in-process): every fault on, then a mutant.

The reduced run (200 tasks, about a minute on 2 cores) asserts every figure of the checker, with
the embedded AWS killed mid-burst (its WebSocket clients stay connected through that). `make chaos`
(1,000 tasks) also kills the whole stack mid-burst and starts it again; tests/e2e/test_restart.py
covers that kill in `make test`. The mutant run proves the checker can fail.
"""

from __future__ import annotations

from collections import Counter

import pytest
from e2e_support import EVERY_FAULT, run_chaos_in

from local.chaos.runner import ChaosResult, created_during

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def reduced_run(tmp_path_factory: pytest.TempPathFactory) -> ChaosResult:
    return run_chaos_in(
        tmp_path_factory.mktemp("chaos"),
        tasks=200,
        concurrency=8,  # a slower burst, so the SQS outage covers a good part of it
        failure_rate=0.3,
        kill_rate=0.04,  # above make chaos's 2 %: at 200 tasks a kill must happen in every run
        duplicate_rate=0.05,
        aws_error_rate=0.05,
        push_failure_rate=0.02,
        sqs_outage=(1.0, 10.0),
        stack_kill_at=None,  # make chaos and test_restart.py: it cuts the staying clients off
        emulator_kill_at=6.0,
        drain_timeout=120.0,
    )


def test_every_invariant_holds_under_every_fault(reduced_run):
    report = reduced_run.report

    assert report.accepted == 200
    assert report.lost == []
    assert report.duplicated_effects == {}
    assert report.regressions == []
    assert report.unexpected == []
    assert report.dlq_missing == []
    assert report.dlq_consumed_tasks == report.error
    assert report.missed_final_frames == {}
    assert report.stayed_clients == 3
    assert report.rejected == []
    assert (report.queue_depth, report.dlq_depth) == (0, 0)
    assert report.success + report.error == 200
    assert report.effects == report.success  # each success committed once, after one step
    assert report.ok
    assert report.wall_seconds < 120
    assert [r["what"] for r in reduced_run.history.restarts] == ["emulator"]


def test_each_fault_fired_at_least_once(reduced_run):
    injected = reduced_run.report.injected

    assert {name: injected.get(name, 0) for name in EVERY_FAULT if not injected.get(name)} == {}
    assert reduced_run.report.attempts > reduced_run.report.accepted  # failed attempts were retried


def test_tasks_accepted_while_sqs_was_down_all_end_terminal_after_it_came_back(reduced_run):
    history = reduced_run.history
    assert history.outage is not None
    start, until = history.outage
    during = created_during(history, start, until)
    first_attempt = {}
    for step in history.steps:
        first_attempt.setdefault(step["taskId"], step["at"])

    attempted = [task_id for task_id in during if task_id in first_attempt]
    never_run = [task_id for task_id in during if task_id not in first_attempt]

    assert len(during) >= 20
    assert all(history.final[task_id]["status"] in ("success", "error") for task_id in during)
    assert len(attempted) > len(during) // 2
    assert min(first_attempt[task_id] for task_id in attempted) >= until  # nothing got through meanwhile
    # A task can spend its whole retry budget without its step ever running: a worker killed
    # mid-batch costs a receive to every message of the batch it had not reached yet (as a
    # crashed Lambda does on AWS). Such a task must have been dead-lettered to error.
    assert {task_id: history.final[task_id]["status"] for task_id in never_run} == dict.fromkeys(
        never_run, "error"
    )


def test_retried_submissions_never_create_a_second_task(reduced_run):
    history = reduced_run.history
    retried = [s.task_id for s in history.submissions.values() if len(s.outcomes) > 1]

    assert retried  # lost responses (and 503s) made clients post the same task again
    assert Counter(history.final_list) == Counter(history.accepted_ids)  # one entry per taskId


def test_the_checker_fails_a_processor_whose_writes_are_unconditional(tmp_path):
    result = run_chaos_in(
        tmp_path,
        tasks=40,
        clients=2,
        stay=1,
        mutant="unconditional-writes",
        duplicate_rate=0.5,
        kill_rate=0.0,
        aws_error_rate=0.0,
        push_failure_rate=0.0,
        lost_response_rate=0.0,
        sqs_outage=None,
        stack_kill_at=None,
        emulator_kill_at=None,
        drain_timeout=15.0,
        frame_grace=2.0,
    )
    report = result.report

    assert not report.ok
    assert report.duplicated_effects or report.regressions
    assert report.injected["MUTANT writes"] > 0
