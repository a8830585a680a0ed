"""The chaos checker on hand-made histories: a clean one passes, each violation kind is found."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from typing import Any

import pytest

from local.chaos.checker import check
from local.chaos.frontend import WsClient
from local.chaos.history import ClientHistory, Frame, History, Observation, Recorder, Submission, Twin
from local.chaos.runner import ChaosConfig

SUCCEEDS = "task-ok"
FAILS = "task-err"


def get(
    task_id: str,
    status: str,
    version: int,
    started: float,
    ended: float | None = None,
    *,
    source: str = "get",
    run: int = 1,
) -> Observation:
    """One HTTP observation; the request took 0.1 s unless `ended` says otherwise."""
    return Observation(task_id, status, version, run, 0, source, started, ended or started + 0.1)


def frame(task_id: str, status: str, version: int, received: float = 0.0) -> Frame:
    return Frame(task_id, status, version, 0, received)


def body(task_id: str, status: str, version: int) -> dict[str, Any]:
    return {"taskId": task_id, "status": status, "version": version, "run": 1, "retries": 0}


def clean_history() -> History:
    """Two accepted tasks: one succeeds after a failed attempt, one is dead-lettered."""
    history = History(requested=2, started=100.0, drained=110.0, queue_depth=0, dlq_depth=0)
    for task_id in (SUCCEEDS, FAILS):
        history.submissions[task_id] = Submission(task_id, {"taskId": task_id}, ["503", "202"], 100.5)
    history.observations = [
        get(SUCCEEDS, "pending", 1, 101.0, source="post"),
        get(SUCCEEDS, "pending", 4, 102.0),
        get(SUCCEEDS, "success", 7, 103.0, source="list"),
        get(SUCCEEDS, "success", 7, 104.0),
        get(FAILS, "pending", 1, 101.0, source="post"),
        get(FAILS, "error", 12, 105.0),
    ]
    stays = ClientHistory("stay-0", stays=True, connected_at=99.0, connects=1)
    stays.frames = [
        frame(SUCCEEDS, "pending", 1),
        frame(SUCCEEDS, "success", 7),  # out of order and twice: allowed
        frame(SUCCEEDS, "pending", 4),
        frame(SUCCEEDS, "success", 7),
        frame(FAILS, "pending", 1),
        frame(FAILS, "error", 12),
    ]
    churns = ClientHistory("churn-1", stays=False, connected_at=99.0, connects=3, aborts=2)
    churns.frames = [frame(SUCCEEDS, "pending", 4)]
    history.clients = [stays, churns]
    history.final = {SUCCEEDS: body(SUCCEEDS, "success", 7), FAILS: body(FAILS, "error", 12)}
    history.final_list = [FAILS, SUCCEEDS]
    history.listed = {FAILS, SUCCEEDS}
    history.effects = [{"event": "effect", "taskId": SUCCEEDS, "run": 1}]
    history.steps = [
        {"event": "step", "taskId": SUCCEEDS, "ok": False},
        {"event": "step", "taskId": SUCCEEDS, "ok": True},
        *[{"event": "step", "taskId": FAILS, "ok": False}] * 3,
    ]
    history.dlq_consumed = [{"taskId": FAILS, "run": 1}]
    return history


def test_a_clean_history_passes_with_its_figures():
    report = check(clean_history())

    assert report.ok, report.lines()
    assert set(report.violations.values()) == {0}
    assert (report.accepted, report.success, report.error) == (2, 1, 1)
    assert (report.dlq_consumed_tasks, report.dlq_missing) == (1, [])
    assert (report.attempts, report.failed_attempts, report.effects) == (5, 4, 1)
    assert (report.post_attempts, report.post_retries) == (4, 2)
    assert report.stayed_clients == 1
    assert report.lines()[-1].endswith("PASS: every invariant holds")


def test_a_task_left_pending_is_lost():
    history = clean_history()
    history.final[SUCCEEDS] = body(SUCCEEDS, "pending", 7)

    report = check(history)

    assert report.lost == [SUCCEEDS]
    assert not report.ok


def test_a_task_that_is_gone_is_lost():
    history = clean_history()
    history.final[SUCCEEDS] = None

    assert check(history).lost == [SUCCEEDS]


def test_an_error_task_whose_dlq_message_was_not_consumed_is_lost_and_breaks_the_dlq_count():
    history = clean_history()
    history.dlq_consumed = []

    report = check(history)

    assert report.lost == [FAILS]
    assert report.dlq_missing == [FAILS]
    assert report.dlq_missing
    assert "DLQ consumed = error count: NO" in "\n".join(report.lines())


def test_a_dlq_message_of_a_task_that_succeeded_is_stale_not_a_violation():
    history = clean_history()
    history.dlq_consumed.append({"taskId": SUCCEEDS, "run": 1})

    report = check(history)

    assert report.ok
    assert report.dlq_stale == [SUCCEEDS]
    assert (report.dlq_consumed_messages, report.dlq_consumed_tasks) == (2, 1)


def test_two_committed_successes_of_one_task_are_a_duplicated_effect():
    history = clean_history()
    history.effects.append({"event": "effect", "taskId": SUCCEEDS, "run": 1})

    report = check(history)

    assert report.duplicated_effects == {SUCCEEDS: 2}
    assert not report.ok


@pytest.mark.parametrize(
    ("task_id", "earlier", "later"),
    [
        (SUCCEEDS, ("success", 7), ("pending", 9)),
        (SUCCEEDS, ("success", 7), ("error", 9)),
        (FAILS, ("error", 12), ("pending", 13)),
    ],
)
def test_a_terminal_status_followed_by_another_status_in_real_time_is_a_regression(task_id, earlier, later):
    history = clean_history()
    history.observations += [
        get(task_id, earlier[0], earlier[1], 106.0, 106.2),
        get(task_id, later[0], later[1], 106.3, 106.4, source="list"),
    ]
    history.final[task_id] = body(task_id, later[0], later[1])

    report = check(history)

    assert report.regression_tasks == [task_id]
    assert f"{earlier[0]} then {later[0]}" in report.regressions[0].detail


def test_overlapping_requests_are_not_ordered():
    history = clean_history()
    # the pending read was sent before the error read completed: either order is possible
    history.observations += [
        get(FAILS, "error", 12, 104.0, 104.5),
        get(FAILS, "pending", 4, 104.4, 104.6),
    ]

    assert check(history).ok


def test_a_lower_version_after_a_higher_one_between_consistent_reads_is_a_stale_read():
    history = clean_history()
    history.observations += [get(FAILS, "pending", 3, 104.0), get(FAILS, "pending", 2, 104.5)]

    report = check(history)

    assert report.regression_tasks == [FAILS]
    assert "stale read" in report.regressions[0].detail


def test_listings_may_lag_on_versions_but_not_on_status():
    history = clean_history()
    history.observations += [get(FAILS, "pending", 3, 104.0), get(FAILS, "pending", 2, 104.5, source="list")]

    assert check(history).ok


def test_frames_going_back_to_pending_by_version_are_a_regression_whatever_their_arrival_order():
    history = clean_history()
    history.clients[1].frames.append(frame(SUCCEEDS, "pending", 9))  # newer than the success (v7)

    report = check(history)

    assert report.regression_tasks == [SUCCEEDS]
    assert "success at version 7" in report.regressions[0].detail


def test_one_version_with_two_statuses_is_a_regression():
    history = clean_history()
    history.clients[0].frames.append(frame(FAILS, "success", 12))

    report = check(history)

    assert report.regression_tasks == [FAILS]
    assert "version 12 seen as error" in report.regressions[0].detail


def test_a_final_read_older_than_an_observed_version_is_a_regression():
    history = clean_history()
    history.clients[0].frames.append(frame(SUCCEEDS, "success", 8))

    assert check(history).regression_tasks == [SUCCEEDS]


def test_a_new_run_without_a_retry_is_a_regression():
    history = clean_history()
    history.observations.append(get(SUCCEEDS, "success", 7, 106.0, run=2))

    assert check(history).regression_tasks == [SUCCEEDS]


def test_a_listed_task_that_was_never_accepted_is_unexpected():
    history = clean_history()
    history.listed.add("somebody-elses")

    report = check(history)

    assert report.unexpected == ["somebody-elses"]
    assert not report.ok


def test_a_task_listed_twice_in_the_final_listing_is_unexpected():
    history = clean_history()
    history.final_list.append(SUCCEEDS)

    report = check(history)

    assert report.listed_twice == [SUCCEEDS]
    assert report.violations["unexpected"] == 1


def test_a_client_that_stayed_connected_must_get_every_final_status():
    history = clean_history()
    history.clients[0].frames = [f for f in history.clients[0].frames if f.status != "error"]

    report = check(history)

    assert report.missed_final_frames == {"stay-0": [FAILS]}
    assert not report.ok


def test_clients_that_churned_are_not_held_to_the_final_frames():
    history = clean_history()
    history.clients[1].frames = []

    assert check(history).ok


def reconnecting_history() -> History:
    """The clean history with its churning client holding a cursor from before both submissions."""
    history = clean_history()
    history.clients[1].first_cursor_at = 100.0
    history.clients[1].resumes = 2
    history.clients[1].frames += [frame(SUCCEEDS, "success", 7), frame(FAILS, "error", 12)]
    return history


def test_a_reconnecting_client_must_get_every_final_status_accepted_after_its_first_cursor():
    history = reconnecting_history()
    assert check(history).reconnecting_clients == 1
    assert check(history).ok

    history.clients[1].frames = [f for f in history.clients[1].frames if f.status != "error"]
    report = check(history)

    assert report.missed_final_frames_reconnecting == {"churn-1": [FAILS]}
    assert not report.ok


def test_a_client_told_to_resync_is_held_to_what_its_frames_and_its_listing_showed():
    history = reconnecting_history()
    churns = history.clients[1]
    churns.resyncs = 1
    churns.frames = [f for f in churns.frames if f.status != "error"]
    churns.listed = {(FAILS, "pending")}  # its listing came before the task failed, and no frame after

    report = check(history)
    assert report.missed_final_frames_reconnecting == {"churn-1": [FAILS]}
    assert (report.reconnecting_clients, report.resyncs) == (1, 1)

    churns.listed.add((FAILS, "error"))  # a later listing showed the final status
    assert check(history).ok


def test_a_client_whose_relisting_kept_failing_is_counted_not_checked():
    history = reconnecting_history()
    history.clients[1].resyncs, history.clients[1].unlisted_resyncs = 1, 1
    history.clients[1].frames = []

    report = check(history)

    assert (report.reconnecting_clients, report.unlisted_clients) == (0, 1)
    assert report.missed_final_frames_reconnecting == {}
    assert "1 NOT CHECKED: their listing failed" in "\n".join(report.lines())


def test_a_client_meant_to_stay_that_lost_its_connection_is_reported_not_checked_for_frames():
    history = clean_history()
    history.clients[0].dropped = 1
    history.clients[0].frames = []

    report = check(history)

    assert report.dropped_clients == ["stay-0"]
    assert report.missed_final_frames == {}
    assert not report.ok


def test_a_submission_never_accepted_is_rejected():
    history = clean_history()
    history.submissions["refused"] = Submission("refused", {}, ["409"], None)

    report = check(history)

    assert report.rejected == ["refused"]
    assert not report.ok


def test_messages_left_in_the_queues_fail_the_run():
    history = clean_history()
    history.dlq_depth = 1

    assert check(history).violations["queues not empty"] == 1


def test_the_history_survives_a_json_round_trip(tmp_path):
    history = clean_history()
    history.outage = (101.0, 111.0)
    history.clients[1].resyncs = 1
    history.clients[1].listed = {(FAILS, "error"), (SUCCEEDS, "pending")}
    path = tmp_path / "history.json"
    history.save(path)

    again = History.from_json(json.loads(path.read_text()))

    assert check(again).to_json() == check(history).to_json()
    assert again.outage == (101.0, 111.0)
    assert again.clients[1].listed == {(FAILS, "error"), (SUCCEEDS, "pending")}


# --- isolation (stages with authorizers): each task is owned by the user who submitted it ----

ALICE, BOB = "chaos-user-0", "chaos-user-1"
BOBS = "task-bob"


def authenticated_history() -> History:
    """The clean history on a stage with authorizers: Alice owns the two tasks, Bob owns a third;
    each has a client that stays connected and gets exactly its own user's frames."""
    history = clean_history()
    history.auth = True
    history.users = [ALICE, BOB]
    history.requested = 3
    for submission in history.submissions.values():
        submission.user = ALICE
    history.submissions[BOBS] = Submission(BOBS, {"taskId": BOBS}, ["202"], 100.6, user=BOB)
    history.observations = [replace(o, user=ALICE) for o in history.observations] + [
        get(BOBS, "pending", 1, 101.0, source="post"),
        get(BOBS, "success", 3, 104.0, source="list"),
    ]
    history.observations[-2:] = [replace(o, user=BOB) for o in history.observations[-2:]]
    alice_stays, alice_churns = history.clients
    alice_stays.name, alice_stays.user = "stay-0:alice", ALICE
    alice_churns.name, alice_churns.user = "churn-2:alice", ALICE
    alice_too = ClientHistory("stay-2:alice", stays=True, connected_at=99.0, connects=1, user=ALICE)
    alice_too.frames = [frame(SUCCEEDS, "success", 7), frame(FAILS, "error", 12)]
    bob_stays = ClientHistory("stay-1:bob", stays=True, connected_at=99.0, connects=1, user=BOB)
    bob_stays.frames = [frame(BOBS, "pending", 1), frame(BOBS, "success", 3)]
    history.clients = [alice_stays, bob_stays, alice_too, alice_churns]
    history.final[BOBS] = body(BOBS, "success", 3)
    history.final_list.append(BOBS)
    history.listed.add(BOBS)
    history.effects.append({"event": "effect", "taskId": BOBS, "run": 1})
    history.steps.append({"event": "step", "taskId": BOBS, "ok": True})
    history.cross_reads = {"404": 5}
    return history


def test_a_clean_authenticated_history_passes_with_its_isolation_figures():
    report = check(authenticated_history())

    assert report.ok, report.lines()
    assert report.violations["foreign frames"] == report.violations["foreign reads"] == 0
    assert (report.users, report.tasks_per_user, report.stayed_per_user) == (
        2,
        {ALICE: 2, BOB: 1},
        {ALICE: 2, BOB: 1},
    )
    assert (report.frames_checked, report.clients_checked, report.reads_checked) == (11, 4, 8)
    text = "\n".join(report.lines())
    assert "foreign frames   0        ok   (11 frames to 4 clients of their users)" in text
    assert "reads as another user: 5 refused (404)" in text
    assert report.to_json()["isolation"]["crossReads"] == {"404": 5}


def test_a_frame_of_another_users_task_is_a_foreign_frame_and_fails_the_run():
    history = authenticated_history()
    history.clients[1].frames.append(frame(SUCCEEDS, "success", 7))  # Bob's client, Alice's task

    report = check(history)

    assert not report.ok
    assert report.violations["foreign frames"] == 1
    assert [(f.task_id, f.kind) for f in report.foreign_frames] == [(SUCCEEDS, "foreign frame")]
    assert f"of {BOB} got success v7 of a task owned by {ALICE}" in report.foreign_frames[0].detail
    text = "\n".join(report.lines())
    assert "foreign frames   1        VIOLATED" in text
    assert f"  foreign frame: {SUCCEEDS}: client stay-1:bob" in text
    assert text.endswith("FAIL")


def test_a_churning_client_is_held_to_its_users_tasks_too():
    history = authenticated_history()
    history.clients[3].frames.append(frame(BOBS, "pending", 1))

    assert check(history).violations["foreign frames"] == 1


def test_a_frame_of_a_task_nobody_submitted_is_foreign():
    history = authenticated_history()
    history.clients[0].frames.append(frame("somebody-elses", "pending", 1))

    report = check(history)

    assert "nobody in the run submitted" in report.foreign_frames[0].detail
    assert not report.ok


def test_an_http_read_that_shows_another_users_task_is_a_foreign_read():
    history = authenticated_history()
    # Bob's listing shows Alice's task; a read of it as Bob answered 200
    history.observations.append(replace(get(SUCCEEDS, "success", 7, 106.0, source="list"), user=BOB))
    history.cross_reads["200"] = 1

    report = check(history)

    assert not report.ok
    assert report.violations["foreign reads"] == 1
    assert f"list with the token of {BOB} showed success v7" in report.foreign_reads[0].detail
    assert "1 200" in "\n".join(report.lines())


def test_each_client_that_stayed_must_get_the_final_frames_of_its_own_users_tasks_only():
    history = authenticated_history()
    # Bob's client gets none of Alice's frames (as it must); a second client of Alice misses one
    history.clients[2].frames = [frame(SUCCEEDS, "success", 7)]

    report = check(history)

    assert report.missed_final_frames == {"stay-2:alice": [FAILS]}
    assert report.violations["foreign frames"] == 0


def test_without_authorizers_there_are_no_isolation_figures():
    report = check(clean_history())

    assert "foreign frames" not in report.violations
    assert "isolation" not in report.to_json()
    assert not any("foreign" in line or line.startswith("users") for line in report.lines())


def test_an_authenticated_history_survives_a_json_round_trip(tmp_path):
    history = authenticated_history()
    history.clients[1].frames.append(frame(SUCCEEDS, "success", 7))
    path = tmp_path / "history.json"
    history.save(path)

    again = History.from_json(json.loads(path.read_text()))

    assert (again.auth, again.users, again.cross_reads) == (True, [ALICE, BOB], {"404": 5})
    assert check(again).to_json() == check(history).to_json()
    assert check(again).violations["foreign frames"] == 1


def test_the_runner_gives_each_user_two_staying_clients_and_one_that_churns():
    plan = ChaosConfig().client_plan([ALICE, BOB])

    assert plan == [
        (f"stay-0:{ALICE}", ALICE, True),
        (f"stay-1:{BOB}", BOB, True),
        (f"stay-2:{ALICE}", ALICE, True),
        (f"stay-3:{BOB}", BOB, True),
        (f"churn-4:{ALICE}", ALICE, False),
        (f"churn-5:{BOB}", BOB, False),
    ]


def test_without_users_the_runner_keeps_its_six_clients_three_of_which_stay():
    assert ChaosConfig().client_plan([]) == [
        ("stay-0", None, True),
        ("stay-1", None, True),
        ("stay-2", None, True),
        ("churn-3", None, False),
        ("churn-4", None, False),
        ("churn-5", None, False),
    ]
    assert ChaosConfig(clients=2, stay=5).client_plan([]) == [("stay-0", None, True), ("stay-1", None, True)]


# --- reused ids (twins): another user's task under the same taskId ----------------------------


def with_twin(history: History, *, read_back: str | None = "twin answer 1 of bob") -> History:
    """Bob also submitted a task under Alice's SUCCEEDS id, and read it back at the end."""
    twin = Twin(SUCCEEDS, BOB, "twin answer 1 of bob", outcomes=["202"], accepted=True)
    twin.final = {"taskId": SUCCEEDS, "answer": read_back, "status": "success"}
    history.twins[twin.answer] = twin
    history.twin_reads = 4
    return history


def test_a_reused_id_seen_only_by_its_owner_passes_and_is_counted():
    report = check(with_twin(authenticated_history()))

    assert report.ok, report.lines()
    assert (report.twins, report.twins_accepted, report.twin_reads) == (1, 1, 4)
    assert "twin leaks       0        ok   (1 ids reused by another user, 1 accepted" in "\n".join(
        report.lines()
    )


def test_a_twin_shown_to_another_user_fails_the_run():
    history = with_twin(authenticated_history())
    history.twin_leaks.append(f"a frame to stay-0:alice with the token of {ALICE} showed {BOB}'s {SUCCEEDS}")

    report = check(history)

    assert not report.ok
    assert report.violations["twin leaks"] == 1
    assert "  twin leak: a frame to stay-0:alice" in "\n".join(report.lines())


@pytest.mark.parametrize("read_back", ["chaos answer 1", None], ids=["the other task", "nothing"])
def test_a_twin_read_back_as_anything_but_itself_fails_the_run(read_back):
    report = check(with_twin(authenticated_history(), read_back=read_back))

    assert report.violations["twin leaks"] == 1
    assert f"{BOB}'s {SUCCEEDS} read back as" in report.twin_leaks[0]


def test_the_recorder_tells_a_twins_frames_and_reads_apart_by_answer():
    # Given a run where Bob reused Alice's id
    history = History(requested=1, auth=True, users=[ALICE, BOB])
    history.submissions[SUCCEEDS] = Submission(SUCCEEDS, {"taskId": SUCCEEDS}, ["202"], 100.0, user=ALICE)
    with_twin(history).twin_reads = 0
    alice = ClientHistory("stay-0:alice", stays=True, user=ALICE)
    bob = ClientHistory("stay-1:bob", stays=True, user=BOB)
    history.clients = [alice, bob]
    recorder = Recorder(history)

    def task_frame(answer: str) -> str:
        return json.dumps(
            {"type": "task", "taskId": SUCCEEDS, "status": "pending", "version": 1, "answer": answer}
        )

    # When each gets the frame of their own task, and Alice a frame of Bob's
    recorder.on_message(alice, task_frame("chaos answer 1"))
    recorder.on_message(bob, task_frame("twin answer 1 of bob"))
    recorder.on_message(alice, task_frame("twin answer 1 of bob"))
    recorder.record(replace(get(SUCCEEDS, "pending", 1, 101.0), user=BOB, answer="twin answer 1 of bob"))

    # Then Alice's task's frame is a run frame, Bob's twin frame and read are his own, and the
    # twin frame Alice got is a leak
    assert [f.answer for f in alice.frames] == ["chaos answer 1"]
    assert (bob.frames, bob.twin_frames, history.twin_reads) == ([], 1, 1)
    assert history.observations == []
    assert history.twin_leaks == [
        f"a frame to stay-0:alice with the token of {ALICE} showed {BOB}'s {SUCCEEDS}"
    ]


# --- the churning clients follow the README's client --------------------------------------------


class _Connection:
    """A connection that delivers `messages`, then records what the client sends."""

    def __init__(self, *messages: dict[str, Any]) -> None:
        self.messages = [json.dumps(message) for message in messages]
        self.sent: list[dict[str, Any]] = []

    def __aiter__(self) -> AsyncIterator[str]:
        return self._messages()

    async def _messages(self) -> AsyncIterator[str]:
        for message in self.messages:
            yield message

    async def send(self, message: str) -> None:
        self.sent.append(json.loads(message))


async def _no_listing(user: str | None) -> None:
    return None


def read_as_client(
    client_history: ClientHistory,
    connection: _Connection,
    list_tasks: Callable[[str | None], Awaitable[list[dict[str, Any]] | None]] = _no_listing,
) -> None:
    """What a chaos WebSocket client does with the connection's messages, and the work they start."""
    client = WsClient(
        client_history,
        "ws://127.0.0.1:1",
        random.Random(0),
        Recorder(History(requested=0)),
        stack=None,  # type: ignore[arg-type] - _read never asks it
        stopping=asyncio.Event(),
        resume=True,
        list_tasks=list_tasks,
    )

    async def read() -> None:
        await client._read(connection)  # type: ignore[arg-type] - what _read uses of a connection
        await client.side_work_done()

    asyncio.run(read())


def test_a_resync_answer_moves_the_cursor_and_the_client_lists_its_tasks_again():
    client_history = ClientHistory("churn-0", stays=False, user=ALICE, cursor="old", resume_pending=True)
    listed_as: list[str | None] = []

    async def list_tasks(user: str | None) -> list[dict[str, Any]]:
        listed_as.append(user)
        return [{"taskId": SUCCEEDS, "status": "success"}]

    resync = {"type": "resync", "reason": "too many changes", "cursor": "new"}
    read_as_client(client_history, _Connection(resync), list_tasks)

    assert (client_history.resyncs, client_history.resume_pending, client_history.cursor) == (1, False, "new")
    assert listed_as == [ALICE]
    assert client_history.listed == {(SUCCEEDS, "success")}


@pytest.mark.parametrize(
    ("answer", "sent_again"),
    [
        ({"type": "error", "message": "tasks cannot be read right now", "retry": True}, True),
        ({"type": "error", "message": "the cursor belongs to another caller"}, False),
    ],
)
def test_an_error_answer_that_says_retry_gets_the_same_resume_again_on_the_same_connection(
    answer, sent_again
):
    client_history = ClientHistory("stay-0", stays=True, cursor="kept", resume_pending=True)
    connection = _Connection(answer)

    read_as_client(client_history, connection)

    assert client_history.resume_errors == 1
    assert connection.sent == ([{"action": "resume", "since": "kept"}] if sent_again else [])
    assert client_history.resume_pending is sent_again
