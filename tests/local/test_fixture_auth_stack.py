"""The local stack on the auth fixture: the local issuer, the HTTP JWT authorizer, the $connect authorizer.

`python -m local --stage auth` on tests/local/fixtures/assembly (a Cognito user pool and app
client, a JWT authorizer on the HTTP API, a Lambda REQUEST authorizer on WebSocket $connect that
discovers the issuer's keys over HTTP like on AWS), talked to over real HTTP and WebSocket.
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from http import HTTPStatus
from pathlib import Path
from typing import Any

import aiohttp
import boto3
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from local_support import FIXTURE_ASSEMBLY, REPO_ROOT, wait_for
from multidict import CIMultiDict
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from local.auth.issuer import LocalIssuer, load_issuer
from local.launcher import LocalStackProcess

pytestmark = pytest.mark.e2e

ORIGIN = "http://localhost:4200"
ARGUMENTS = ["--cdk-out", str(FIXTURE_ASSEMBLY), "--stage", "auth", "--dev-token-lifetime", "600"]


@pytest.fixture(scope="module")
def state_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("auth-state")


@pytest.fixture(scope="module")
def stack(state_dir: Path) -> Iterator[LocalStackProcess]:
    with LocalStackProcess([*ARGUMENTS, "--state-dir", str(state_dir)]) as running:
        yield running


@pytest.fixture(scope="module")
def issuer(stack: LocalStackProcess, state_dir: Path) -> LocalIssuer:
    return load_issuer(state_dir, stage="auth")


def request(
    url: str,
    method: str = "GET",
    headers: dict[str, str] | CIMultiDict[str] | None = None,
) -> tuple[int, dict[str, str], str]:
    async def call() -> tuple[int, dict[str, str], str]:
        async with (
            aiohttp.ClientSession() as session,
            session.request(method, url, headers=headers) as response,
        ):
            return response.status, {k.lower(): v for k, v in response.headers.items()}, await response.text()

    return asyncio.run(call())


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Origin": ORIGIN}


def dev_token_fields(stack: LocalStackProcess) -> dict[str, str]:
    line = next(line for line in stack.output if line.startswith("LOCAL_DEV_TOKEN "))
    return dict(part.split("=", 1) for part in line.split()[1:])


def lines_with(stack: LocalStackProcess, *parts: str) -> int:
    return sum(1 for line in stack.output if all(part in line for part in parts))


def test_the_stack_prints_a_dev_token_and_records_its_issuer(stack, state_dir):
    # Given the stack started
    fields = dev_token_fields(stack)
    state = json.loads((state_dir / "stacks" / "Fixture-auth.json").read_text())["auth"]
    text = stack.text()

    # Then the dev token is printed before the ready line, with how to use it
    assert text.index("LOCAL_DEV_TOKEN ") < text.index("LOCAL_STACK_READY ")
    assert fields["sub"] == "local-dev-user"
    expires = time.mktime(time.strptime(fields["expires"], "%Y-%m-%dT%H:%M:%SZ")) - time.timezone
    assert 500 < expires - time.time() <= 600  # --dev-token-lifetime 600
    assert f'curl -H "Authorization: Bearer $TOKEN" {stack.http_url}/echo/' in text
    assert f"{stack.ws_url}?token=$TOKEN" in text
    # (to copy as printed: the interpreter that has the packages, the state folder the stack uses)
    more = text.split("TOKEN=$(", 1)[1].split(")", 1)[0].split()
    assert (REPO_ROOT / more[0]).resolve() == Path(sys.executable).resolve()
    assert more[1:] == [
        "-m",
        "local.token",
        "--sub",
        "alice",
        "--stack",
        "Fixture-auth",
        "--state-dir",
        str(state_dir),
    ]
    # and the state file has what minting needs
    assert state["devToken"] == fields["token"]
    assert state["devSubject"] == "local-dev-user"
    assert state["issuer"].startswith(f"{stack.http_url}/_local/issuers/us-east-1_")
    assert state["jwksUrl"] == state["issuer"] + "/.well-known/jwks.json"
    assert state["audience"] == [
        json.loads((state_dir / "stacks" / "Fixture-auth.json").read_text())["outputs"]["UserPoolClientId"]
    ]
    # and the dev token works
    status, _, body = request(f"{stack.http_url}/echo/dev", headers=bearer(fields["token"]))
    assert status == HTTPStatus.OK, body
    assert (
        json.loads(body)["event"]["requestContext"]["authorizer"]["jwt"]["claims"]["sub"] == "local-dev-user"
    )


def test_the_issuer_serves_discovery_and_the_jwks_that_verify_its_tokens(stack, issuer):
    # When a client discovers the issuer's keys over HTTP
    with urllib.request.urlopen(issuer.discovery_url, timeout=10) as reply:
        discovery = json.load(reply)
        cors = reply.headers["access-control-allow-origin"]
    with urllib.request.urlopen(discovery["jwks_uri"], timeout=10) as reply:
        jwks = jwt.PyJWKSet.from_dict(json.load(reply))

    # Then that key verifies a token the issuer minted
    token = issuer.mint("alice")
    key = jwks[jwt.get_unverified_header(token)["kid"]]
    claims = jwt.decode(
        token, key.key, algorithms=["RS256"], audience=issuer.audience[0], issuer=discovery["issuer"]
    )
    assert claims["sub"] == "alice"
    assert discovery["issuer"] == issuer.url
    assert cors == "*"
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(f"{stack.http_url}/_local/issuers/nobody/.well-known/jwks.json", timeout=10)
    assert missing.value.code == HTTPStatus.NOT_FOUND


def foreign_token(issuer: LocalIssuer) -> str:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return jwt.encode(issuer.claims("mallory"), other, algorithm="RS256", headers={"kid": issuer.kid})


@pytest.mark.parametrize(
    "kind", ["missing", "not bearer", "malformed", "expired", "foreign", "other audience"]
)
def test_bad_tokens_get_401_with_the_cors_headers_and_no_function_runs(stack, issuer, kind):
    # Given a request with a bad token (or none) from the allowed origin
    tokens = {
        "missing": None,
        "not bearer": "Basic dXNlcjpwYXNz",
        "malformed": "Bearer not-a-jwt",
        "expired": "Bearer " + issuer.mint("carol", expires_in=-60),
        "foreign": "Bearer " + foreign_token(issuer),
        "other audience": "Bearer " + issuer.mint("carol", audience="someone-else"),
    }
    headers = {"Origin": ORIGIN} | ({"Authorization": tokens[kind]} if tokens[kind] else {})
    path = f"/echo/refused-{uuid.uuid4().hex[:8]}"

    # When it reaches a route with the JWT authorizer
    status, response_headers, body = request(stack.http_url + path, headers=headers)

    # Then API Gateway's 401, with its challenge and the CORS headers, and the function never ran
    assert (status, json.loads(body)) == (HTTPStatus.UNAUTHORIZED, {"message": "Unauthorized"})
    assert response_headers["access-control-allow-origin"] == ORIGIN
    challenge = response_headers["www-authenticate"]
    assert challenge == "Bearer" if kind == "missing" else 'error="invalid_token"' in challenge
    wait_for(lambda: lines_with(stack, f"GET {path} -> 401"))
    assert lines_with(stack, "ApiFunction", path) == 0


def test_two_authorization_headers_are_one_bad_token_whatever_their_order(stack, issuer):
    valid = "Bearer " + issuer.mint("alice")
    statuses = [
        request(
            f"{stack.http_url}/echo/twice",
            headers=CIMultiDict([("Authorization", first), ("Authorization", second)]),
        )[0]
        for first, second in ((valid, "Bearer garbage"), ("Bearer garbage", valid))
    ]

    assert statuses == [
        HTTPStatus.UNAUTHORIZED,
        HTTPStatus.UNAUTHORIZED,
    ]  # API Gateway joins them with a comma


def test_preflights_need_no_token(stack):
    status, headers, _ = request(
        f"{stack.http_url}/echo/x",
        "OPTIONS",
        {
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization",
        },
    )
    assert status == HTTPStatus.NO_CONTENT
    assert headers["access-control-allow-origin"] == ORIGIN
    assert "authorization" in headers["access-control-allow-headers"]


def test_the_function_gets_the_claims_and_unguarded_routes_get_no_authorizer(stack, issuer):
    # When a valid token is used on a guarded route, and nothing on a public one
    token = issuer.mint("alice", claims={"cognito:groups": ["admins", "users"]})
    status, _, body = request(f"{stack.http_url}/echo/mine", headers=bearer(token))
    public_status, _, public_body = request(f"{stack.http_url}/public")

    # Then the guarded function sees the claims as API Gateway passes them; the public one no authorizer
    assert status == HTTPStatus.OK, body
    authorizer = json.loads(body)["event"]["requestContext"]["authorizer"]
    claims = authorizer["jwt"]["claims"]
    assert (claims["sub"], claims["aud"], claims["iss"]) == ("alice", issuer.audience[0], issuer.url)
    assert claims["exp"].isdigit()
    assert claims["cognito:groups"] == "[admins users]"
    assert authorizer["jwt"]["scopes"] is None
    assert public_status == HTTPStatus.OK
    assert "authorizer" not in json.loads(public_body)["event"]["requestContext"]


def test_a_route_with_scopes_needs_a_token_with_one(stack, issuer):
    without = request(f"{stack.http_url}/scoped", headers=bearer(issuer.mint("alice")))
    reader = issuer.mint("alice", token_use="access", scope="openid items/read")
    status, _, body = request(f"{stack.http_url}/scoped", headers=bearer(reader))
    assert without[0] == HTTPStatus.FORBIDDEN
    assert 'error="insufficient_scope"' in without[1]["www-authenticate"]
    assert status == HTTPStatus.OK, body
    authorizer = json.loads(body)["event"]["requestContext"]["authorizer"]["jwt"]
    assert authorizer["scopes"] == ["openid", "items/read"]
    assert authorizer["claims"]["client_id"] == issuer.audience[0]


def refused_status(url: str) -> int:
    with pytest.raises(InvalidStatus) as refused:
        connect(url, open_timeout=30).close()
    return refused.value.response.status_code


def test_connect_without_the_identity_source_is_refused_without_calling_the_authorizer(stack):
    # Given how often the authorizer ran so far
    rejections = lines_with(stack, "$connect without route.request.querystring.token: rejected (401)")
    calls = lines_with(stack, "AuthorizerFunction")

    # When a client connects without a token, or with an empty one
    assert refused_status(stack.ws_url) == HTTPStatus.UNAUTHORIZED
    assert refused_status(stack.ws_url + "?token=") == HTTPStatus.UNAUTHORIZED

    # Then both were refused before the authorizer (the line prints before the answer)
    wait_for(
        lambda: (
            lines_with(stack, "rejected (401)", "without route.request.querystring.token") >= rejections + 2
        )
    )
    assert lines_with(stack, "AuthorizerFunction") == calls


@pytest.mark.parametrize(
    ("token", "status"),
    [
        ("unauthorized", HTTPStatus.UNAUTHORIZED),
        ("deny", HTTPStatus.FORBIDDEN),
        ("other-resource", HTTPStatus.FORBIDDEN),
        ("deny-wins", HTTPStatus.FORBIDDEN),
        ("boom", HTTPStatus.INTERNAL_SERVER_ERROR),
        ("not-a-jwt", HTTPStatus.UNAUTHORIZED),
    ],
)
def test_the_authorizers_answer_decides_the_handshake(stack, token, status):
    assert refused_status(f"{stack.ws_url}?token={token}") == status
    wait_for(lambda: lines_with(stack, "AuthorizerFunction", f"-> rejected ({status.value}"))


def whoami(url: str) -> dict[str, Any]:
    with connect(url, open_timeout=30) as socket_:
        socket_.send("whoami")
        reply: dict[str, Any] = json.loads(socket_.recv(timeout=30))
    return reply


def connect_record(stack: LocalStackProcess, connection_id: str) -> dict[str, Any] | None:
    dynamodb = boto3.client(
        "dynamodb",
        endpoint_url=stack.moto_url,
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="x",
    )
    (table,) = [name for name in dynamodb.list_tables()["TableNames"] if "ConnectionsTable" in name]
    item = dynamodb.get_item(TableName=table, Key={"id": {"S": f"connect-{connection_id}"}}).get("Item")
    return json.loads(item["authorizer"]["S"]) if item else None


def test_an_allowed_connection_carries_the_authorizer_context_on_every_route(stack):
    # When the authorizer allows (with a wildcard resource) and returns a context
    reply = whoami(f"{stack.ws_url}?token=wildcard-abc")

    # Then $default sees principalId, context and latency, and so did $connect
    authorizer = reply["authorizer"]
    assert authorizer["principalId"] == "wildcard-abc"
    assert (authorizer["owner"], authorizer["stageVariable"], authorizer["n"]) == ("wildcard-abc", "local", 7)
    assert isinstance(authorizer["integrationLatency"], int)
    assert connect_record(stack, reply["connectionId"]) == authorizer


def test_a_jwt_is_checked_by_the_authorizer_through_oidc_discovery(stack, issuer):
    # When clients connect with a valid, an expired and the dev token
    alice = whoami(f"{stack.ws_url}?token={issuer.mint('alice')}")
    dev = whoami(f"{stack.ws_url}?token={dev_token_fields(stack)['token']}")
    expired = refused_status(f"{stack.ws_url}?token={issuer.mint('alice', expires_in=-60)}")

    # Then the authorizer function (which fetched the JWKS from JWT_ISSUER) let the valid ones in
    assert (alice["authorizer"]["principalId"], alice["authorizer"]["owner"]) == ("alice", "alice")
    assert dev["authorizer"]["owner"] == "local-dev-user"
    assert expired == HTTPStatus.UNAUTHORIZED


def test_the_token_cli_mints_for_the_running_stack(stack, state_dir):
    printed = subprocess.run(
        [
            sys.executable,
            "-m",
            "local.token",
            "--sub",
            "zed",
            "--state-dir",
            str(state_dir),
            "--stage",
            "auth",
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.strip()
    status, _, body = request(f"{stack.http_url}/echo/cli", headers=bearer(printed))
    assert status == HTTPStatus.OK, body
    assert json.loads(body)["event"]["requestContext"]["authorizer"]["jwt"]["claims"]["sub"] == "zed"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def test_the_key_and_tokens_survive_a_restart(tmp_path):
    # Given a stack on fixed ports, and a token its issuer minted
    ports = ["--http-port", str(free_port()), "--ws-port", str(free_port())]
    arguments = [*ARGUMENTS, *ports, "--state-dir", str(tmp_path)]
    with LocalStackProcess(arguments) as first:
        issuer = load_issuer(tmp_path, stage="auth")
        token, dev_token = issuer.mint("alice", expires_in=3600), dev_token_fields(first)["token"]
        kid = issuer.kid

    # When the stack is started again with the same state dir
    with LocalStackProcess(arguments) as second:
        with urllib.request.urlopen(load_issuer(tmp_path, stage="auth").jwks_url, timeout=10) as reply:
            (jwk,) = json.load(reply)["keys"]
        status, _, body = request(f"{second.http_url}/echo/again", headers=bearer(token))
        dev_status = request(f"{second.http_url}/echo/again", headers=bearer(dev_token))[0]

    # Then the same key serves, and the earlier tokens still pass
    assert jwk["kid"] == kid
    assert status == HTTPStatus.OK, body
    assert dev_status == HTTPStatus.OK
    assert dev_token_fields(second)["token"] != dev_token  # a fresh dev token each start
