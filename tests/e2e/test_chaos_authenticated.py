"""Chaos runs of the prod stage (`auth: jwt`): several users under every fault, then a mutant.

The stage's authorizers are found in the running stack's state file; the runner mints a token
per user from the stack's local issuer, submits the tasks round-robin as those users and gives
each user 2 staying and 1 churning WebSocket client. On top of the dev run's invariants the
checker holds every frame and every HTTP read to its user's own tasks. The run (150 tasks, 4
users, every fault) takes about 30 s on 2 cores; the mutant (a notifier that forgot it serves an
`auth: jwt` stage, so it pushes every frame to every connection) proves the isolation check fails.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from e2e_support import EVERY_FAULT, ensure_synthesized, run_chaos_in

from local.chaos.runner import ChaosResult

pytestmark = pytest.mark.e2e

STAGE = "prod"
TEMPLATE = f"TaskBackend-{STAGE}.template.json"
USERS = 4
TASKS = 150


@pytest.fixture(scope="module")
def users_run(tmp_path_factory: pytest.TempPathFactory) -> ChaosResult:
    return run_chaos_in(
        tmp_path_factory.mktemp("chaos-prod"),
        stage=STAGE,
        tasks=TASKS,
        users=USERS,
        concurrency=8,
        # prod's own rate is 0 and it takes no `simulate` bodies: --failure-rate is the only way to
        # make attempts fail; 0.6 over 5 receives dead-letters about 8 % of the tasks
        failure_rate=0.6,
        kill_rate=0.04,
        duplicate_rate=0.05,
        aws_error_rate=0.05,
        push_failure_rate=0.02,
        lost_response_rate=0.08,  # at 150 tasks, so that some response is lost in every run
        sqs_outage=(1.0, 6.0),
        stack_kill_at=None,  # make chaos and tests/e2e/test_restart.py (it cuts the staying clients off)
        emulator_kill_at=4.0,
        drain_timeout=120.0,
    )


def test_every_invariant_holds_for_every_user_under_every_fault(users_run):
    report = users_run.report

    assert report.auth
    assert report.accepted == TASKS
    assert report.lost == []
    assert report.duplicated_effects == {}
    assert report.regressions == []
    assert report.unexpected == []
    assert report.dlq_missing == []
    assert report.dlq_consumed_tasks == report.error > 0
    assert report.missed_final_frames == {}
    assert report.rejected == []
    assert (report.queue_depth, report.dlq_depth) == (0, 0)
    assert report.success + report.error == TASKS
    assert report.effects == report.success
    assert report.ok
    assert report.wall_seconds < 90  # prod's 180 s visibility timeout and 5 s backoffs, scaled by 0.01


def test_no_user_ever_sees_another_users_task(users_run):
    report = users_run.report

    assert report.foreign_frames == []
    assert report.foreign_reads == []
    assert report.users == USERS
    assert report.frames_checked > TASKS * 2  # every client's frames were checked
    assert report.cross_reads.get("404", 0) > 0  # other users' reads were refused...
    assert "200" not in report.cross_reads  # ...and none was answered


def test_the_tasks_are_spread_over_the_users_and_each_has_clients_that_stayed(users_run):
    report = users_run.report
    history = users_run.history

    assert report.tasks_per_user == {
        user: TASKS // USERS + (i < TASKS % USERS) for i, user in enumerate(history.users)
    }
    assert report.stayed_per_user == dict.fromkeys(history.users, 2)
    assert report.stayed_clients == 2 * USERS
    # each client received frames of its own user's tasks only, the churning ones included
    owners = history.owners
    assert all(client.frames for client in history.clients if client.stays)
    assert all(owners[frame.task_id] == client.user for client in history.clients for frame in client.frames)


def test_each_fault_fired_at_least_once(users_run):
    injected = users_run.report.injected

    assert {name: injected.get(name, 0) for name in EVERY_FAULT if not injected.get(name)} == {}
    assert users_run.report.attempts > users_run.report.accepted  # --failure-rate applies on prod


def broadcasting_notifier(assembly: Path, folder: Path) -> Path:
    """The prod template with a notifier that lost its AUTH_MODE (so it pushes every change to
    every connection), in a folder that links the assembly's assets."""
    folder.mkdir()
    for entry in assembly.iterdir():
        if entry.name != TEMPLATE:
            (folder / entry.name).symlink_to(entry.resolve())
    template = json.loads((assembly / TEMPLATE).read_text())
    notifiers = [
        resource
        for logical_id, resource in template["Resources"].items()
        if resource["Type"] == "AWS::Lambda::Function"
        and logical_id.startswith("WebSocketApiNotifierFunction")
    ]
    assert len(notifiers) == 1
    del notifiers[0]["Properties"]["Environment"]["Variables"]["AUTH_MODE"]
    (folder / TEMPLATE).write_text(json.dumps(template))
    return folder / TEMPLATE


def test_the_checker_fails_a_notifier_that_pushes_frames_to_every_user(tmp_path):
    template = broadcasting_notifier(ensure_synthesized(), tmp_path / "assembly")

    result = run_chaos_in(
        tmp_path,
        stage=STAGE,
        template=template,
        tasks=20,
        users=2,
        failure_rate=0.0,
        kill_rate=0.0,
        duplicate_rate=0.0,
        aws_error_rate=0.0,
        push_failure_rate=0.0,
        lost_response_rate=0.0,
        sqs_outage=None,
        stack_kill_at=None,
        emulator_kill_at=None,
        drain_timeout=30.0,
        frame_grace=5.0,
    )
    report = result.report

    assert report.auth
    assert not report.ok
    assert len(report.foreign_frames) >= 20  # every staying client got the other user's frames
    assert {v.kind for v in report.foreign_frames} == {"foreign frame"}
    assert report.foreign_reads == []  # the HTTP API still isolates the users
    assert (report.lost, report.missed_final_frames) == ([], {})
    assert "foreign frames" in "\n".join(report.lines())
