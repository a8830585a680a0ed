"""Authentication and per-owner isolation, end to end, on the prod stage (`auth: jwt`).

The prod stage from cdk.out runs on the local stack, which plays the stage's Cognito user pool
as a local issuer: it signs tokens with its own key, serves the JWKS, and checks every request
like API Gateway's authorizers would (the HTTP JWT authorizer on every route, the Lambda
REQUEST authorizer on WebSocket $connect). Users A and B get tokens from that issuer.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Iterator
from http import HTTPStatus
from pathlib import Path
from typing import Any

import pytest
from e2e_support import Api, Frames, ensure_synthesized, wait_for
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from local.launcher import LocalStackProcess

pytestmark = pytest.mark.e2e

STAGE = "prod"
DEV_TOKEN_PREFIX = "LOCAL_DEV_TOKEN "


class Issuer:
    """Tokens from the running stack's local issuer (its key, issuer URL and audience)."""

    def __init__(self, state_dir: Path) -> None:
        from local.auth.issuer import load_issuer  # noqa: PLC0415 - imported where tokens are minted

        self._issuer = load_issuer(state_dir, stage=STAGE)

    def token(self, subject: str, **options: Any) -> str:
        return str(self._issuer.mint(subject, **options))

    def subject_of(self, token: str) -> str:
        return str(self._issuer.subject_of(token))

    def foreign_token(self, subject: str) -> str:
        """Right issuer, audience and lifetime, signed by a key the stack has never seen."""
        import jwt  # noqa: PLC0415
        from cryptography.hazmat.primitives.asymmetric import rsa  # noqa: PLC0415

        claims = json.loads(json.dumps(self._issuer.claims(subject)))
        other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return jwt.encode(claims, other_key, algorithm="RS256", headers={"kid": self._issuer.kid})


@pytest.fixture(scope="module")
def auth_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalStackProcess, Path]]:
    state_dir = tmp_path_factory.mktemp("auth-state")
    arguments = [
        "--cdk-out",
        str(ensure_synthesized()),
        "--stage",
        STAGE,
        "--time-scale",
        "0.01",
        "--state-dir",
        str(state_dir),
    ]
    with LocalStackProcess(arguments) as stack:
        yield stack, state_dir


@pytest.fixture(scope="module")
def issuer(auth_stack: tuple[LocalStackProcess, Path]) -> Issuer:
    return Issuer(auth_stack[1])


class User:
    """One signed-in user: the HTTP API with their token, and their WebSocket."""

    def __init__(self, stack: LocalStackProcess, token: str) -> None:
        self.token = token
        self.api = Api(stack.http_url)
        self.ws_url = f"{stack.ws_url}?token={token}"

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, dict[str, str], Any]:
        return self.api.request(method, path, body, {"Authorization": f"Bearer {self.token}"})

    def submit(self, task_id: str | None = None, answer: str = "42") -> str:
        task_id = task_id or str(uuid.uuid4())
        status, _, body = self.request("POST", "/tasks", {"taskId": task_id, "answer": answer})
        assert status == HTTPStatus.ACCEPTED, (status, body)
        return task_id

    def listed_ids(self) -> set[str]:
        status, _, body = self.request("GET", "/tasks?limit=500")
        assert status == HTTPStatus.OK, (status, body)
        return {task["taskId"] for task in body}


@pytest.fixture(scope="module")
def alice(auth_stack: tuple[LocalStackProcess, Path], issuer: Issuer) -> User:
    return User(auth_stack[0], issuer.token(f"alice-{uuid.uuid4()}"))


@pytest.fixture(scope="module")
def bob(auth_stack: tuple[LocalStackProcess, Path], issuer: Issuer) -> User:
    return User(auth_stack[0], issuer.token(f"bob-{uuid.uuid4()}"))


def test_the_dev_token_printed_at_start_is_accepted(auth_stack):
    # Given the token the stack printed when it started
    stack, _ = auth_stack
    line = next(line for line in stack.output if line.startswith(DEV_TOKEN_PREFIX))
    fields = dict(part.split("=", 1) for part in line.split()[1:] if "=" in part)

    # When it is used on the HTTP API and the WebSocket
    status, _, body = User(stack, fields["token"]).request("GET", "/tasks")
    with connect(f"{stack.ws_url}?token={fields['token']}", open_timeout=30) as socket:
        socket.send(json.dumps({"action": "ping"}))
        pong = json.loads(socket.recv(timeout=30))

    # Then both accept it
    assert (status, type(body)) == (HTTPStatus.OK, list)
    assert pong == {"type": "pong"}


def test_a_user_lists_reads_and_retries_only_their_own_tasks(alice, bob):
    # Given a task of each user
    alice_task, bob_task = alice.submit(), bob.submit()

    # When each lists, and Bob reads and retries Alice's task
    alice_ids, bob_ids = alice.listed_ids(), bob.listed_ids()
    read = bob.request("GET", f"/tasks/{alice_task}")
    retried = bob.request("POST", f"/tasks/{alice_task}/retry")
    unknown = bob.request("GET", f"/tasks/{uuid.uuid4()}")

    # Then each sees only their own, and Alice's task is as unknown to Bob as a task that never existed
    assert alice_task in alice_ids
    assert bob_task not in alice_ids
    assert bob_task in bob_ids
    assert alice_task not in bob_ids
    assert read[0] == retried[0] == unknown[0] == HTTPStatus.NOT_FOUND
    assert set(read[2]) == set(unknown[2]) == {"message", "taskId"}
    assert alice.request("GET", f"/tasks/{alice_task}")[0] == HTTPStatus.OK


def test_two_users_submitting_the_same_task_id_each_get_their_own_task(alice, bob):
    # Given Alice's task
    task_id = alice.submit(answer="alice's secret")

    # When Bob submits the same id with his own body, then reads it
    status, _, created = bob.request("POST", "/tasks", {"taskId": task_id, "answer": "bob's"})
    _, _, read = bob.request("GET", f"/tasks/{task_id}")

    # Then he gets his own task, nothing of Alice's, and hers is still hers
    assert status == HTTPStatus.ACCEPTED
    assert created["answer"] == read["answer"] == "bob's"
    assert "alice's secret" not in json.dumps([created, read])
    assert alice.request("GET", f"/tasks/{task_id}")[2]["answer"] == "alice's secret"
    assert task_id in bob.listed_ids()


def test_a_user_receives_only_the_frames_of_their_own_tasks(alice, bob):
    # Given both users connected
    alice_frames, bob_frames = Frames(alice.ws_url), Frames(bob.ws_url)
    try:
        # When Alice's task runs to the end, then Bob's
        alice_task = alice.submit()
        alice_final = alice_frames.final(alice_task)
        bob_task = bob.submit()
        bob_final = bob_frames.final(bob_task)

        # Then each got their own task's frames and none of the other's
        assert alice_final["status"] == bob_final["status"] == "success"
        assert next(f["status"] for f in alice_frames.of_task(alice_task)) == "pending"
        assert bob_frames.of_task(alice_task) == []
        assert alice_frames.of_task(bob_task) == []
    finally:
        alice_frames.close()
        bob_frames.close()


def bad_tokens(issuer: Issuer) -> dict[str, str | None]:
    return {
        "missing": None,
        "malformed": "Bearer not-a-jwt",
        "expired": "Bearer " + issuer.token("carol", expires_in=-60),
        "signed by another key": "Bearer " + issuer.foreign_token("carol"),
        "for another audience": "Bearer " + issuer.token("carol", audience="someone-else"),
    }


ROUTES = [
    ("GET", "/tasks", None),
    ("POST", "/tasks", {"answer": "42"}),
    ("GET", f"/tasks/{uuid.uuid4()}", None),
    ("POST", f"/tasks/{uuid.uuid4()}/retry", None),
    ("GET", "/openapi.json", None),
]


def test_every_route_answers_401_to_a_missing_malformed_expired_or_foreign_token(auth_stack, issuer):
    # Given every route and every kind of bad token
    api = Api(auth_stack[0].http_url)
    answers = {}
    for kind, header in bad_tokens(issuer).items():
        for method, path, body in ROUTES:
            headers = {"Authorization": header} if header else {}
            status, _, response = api.request(method, path, body, headers)
            answers[(kind, method, path)] = (status, response)

    # Then each is refused with API Gateway's 401, before any function runs
    refused = {key: value for key, value in answers.items() if value != (401, {"message": "Unauthorized"})}
    assert refused == {}
    assert len(answers) == len(ROUTES) * 5


def test_cors_preflight_needs_no_token(auth_stack):
    # When a browser preflights a POST without any token
    status, headers, _ = Api(auth_stack[0].http_url).request(
        "OPTIONS",
        "/tasks",
        headers={
            "Origin": "https://app.example.com",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type",
        },
    )

    # Then it is answered for the stage's origin
    assert status in (HTTPStatus.OK, HTTPStatus.NO_CONTENT)
    assert headers.get("access-control-allow-origin") == "https://app.example.com"


@pytest.mark.parametrize(
    "kind", ["missing", "malformed", "expired", "signed by another key", "for another audience"]
)
def test_websocket_connect_with_a_bad_token_is_rejected_with_401(auth_stack, issuer, kind):
    # Given a WebSocket URL with a bad token (or none)
    header = bad_tokens(issuer)[kind]
    url = (
        auth_stack[0].ws_url
        if header is None
        else f"{auth_stack[0].ws_url}?token={header.removeprefix('Bearer ')}"
    )

    # When a client connects
    with pytest.raises(InvalidStatus) as refused:
        connect(url, open_timeout=30).close()

    # Then the handshake is refused with 401
    assert refused.value.response.status_code == HTTPStatus.UNAUTHORIZED


def frames_before_pong(socket: Any) -> list[dict[str, Any]]:
    """Ping, then read up to the pong: the frames that came first (a task of the connection's
    owner that finishes meanwhile is pushed to it, maybe before the pong)."""
    socket.send(json.dumps({"action": "ping"}))
    before: list[dict[str, Any]] = []
    while (frame := json.loads(socket.recv(timeout=30))) != {"type": "pong"}:
        before.append(frame)
        assert len(before) <= 10, before
    return before


def test_an_accepted_connection_is_stored_under_its_owner(auth_stack, alice, issuer):
    # Given Alice connected
    with connect(alice.ws_url, open_timeout=30) as socket:
        assert all(frame.get("type") == "task" for frame in frames_before_pong(socket))

        # Then her connection row carries her as owner (the notifier finds it by owner)
        from e2e_support import Aws  # noqa: PLC0415

        aws = Aws(auth_stack[0].moto_url)
        table = aws.table("ConnectionTable")
        owners = wait_for(
            lambda: [item.get("owner", {}).get("S") for item in aws.dynamodb.scan(TableName=table)["Items"]],
            what="a stored connection",
        )
        assert issuer.subject_of(alice.token) in owners


def test_a_connection_ends_with_its_token(auth_stack, issuer):
    # Given Carol connected with a token that expires in a few seconds (and a fresh one for HTTP)
    carol = f"carol-{uuid.uuid4()}"
    short = issuer.token(carol, expires_in=4)
    expires_at = json.loads(base64.urlsafe_b64decode(short.split(".")[1] + "==").decode())["exp"]
    user = User(auth_stack[0], issuer.token(carol))
    frames = Frames(f"{auth_stack[0].ws_url}?token={short}")
    try:
        wait_for(lambda: time.time() > expires_at + 1, 30, what="the short token's expiry")

        # When one of her tasks changes after that
        task_id = user.submit()

        # Then the connection gets no task frame: one `expired` frame, then it is closed
        expired = wait_for(
            lambda: next(
                (f for f in frames.frames if isinstance(f, dict) and f.get("type") == "expired"), None
            ),
            60,
            what="the expired frame",
        )
        wait_for(lambda: frames.connection.close_code is not None or None, 30, what="the close")
        assert "fresh token" in expired["message"]
        assert frames.of_task(task_id) == []

        # And a connection with a fresh token is served: its pong comes, and any frame before it is
        # of Carol's task (it may finish meanwhile and be pushed to the new connection first)
        with connect(user.ws_url, open_timeout=30) as socket:
            assert {frame.get("taskId") for frame in frames_before_pong(socket)} <= {task_id}
    finally:
        frames.close()


@pytest.mark.parametrize(
    "sub",
    [123, ["alice"], {"id": "alice"}, "alice ", " alice", ""],
    ids=["a number", "a list", "an object", "trailing space", "leading space", "empty"],
)
def test_a_sub_that_is_no_owner_is_401_on_both_apis(auth_stack, issuer, sub):
    # Given a token of the stage's issuer, valid in every way but its `sub`
    token = issuer.token("placeholder", claims={"sub": sub})

    # When it is used on the HTTP API and on the WebSocket
    status, _, _ = User(auth_stack[0], token).request("GET", "/tasks")
    with pytest.raises(InvalidStatus) as refused:
        connect(f"{auth_stack[0].ws_url}?token={token}", open_timeout=30).close()

    # Then both refuse it with 401
    assert status == HTTPStatus.UNAUTHORIZED
    assert refused.value.response.status_code == HTTPStatus.UNAUTHORIZED
