"""The WebSocket $connect authorizer: tokens signed with a test RSA key, verified against an issuer
served by a tiny HTTP server on 127.0.0.1 (OIDC discovery document and JWK set)."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm
from lambda_support import UNUSABLE_SUBS, WS_METHOD_ARN, FakeLambdaContext, ws_authorizer_event

from taskflow import env_vars
from taskflow.auth_contract import OWNER_CONTEXT_KEY, TOKEN_EXPIRY_CONTEXT_KEY
from taskflow.clients.oidc_keys import IssuerKeys
from taskflow.errors import DependencyUnavailableError
from taskflow.handlers import ws_authorizer
from taskflow.metric_names import MetricName
from taskflow.services.token_verifier import TokenRejectedError, TokenVerifier

AUDIENCE = "web-client"
OTHER_AUDIENCE = "mobile-client"
ISSUER_PATH = "/realms/tasks"  # discovery is {issuer}/.well-known/openid-configuration


@pytest.fixture(scope="module")
def signing_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def other_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def public_jwk(key: rsa.RSAPrivateKey, kid: str) -> dict[str, Any]:
    jwk: dict[str, Any] = RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
    return {**jwk, "kid": kid, "use": "sig", "alg": "RS256"}


@dataclass
class Issuer:
    """What the fake issuer serves, and what it was asked for."""

    url: str = ""
    keys: list[dict[str, Any]] = field(default_factory=list)
    requests: Counter[str] = field(default_factory=Counter)
    discovery_status: int = 200
    keys_status: int = 200

    def paths(self) -> dict[str, Any]:
        return {
            f"{ISSUER_PATH}/.well-known/openid-configuration": {
                "issuer": self.url,
                "jwks_uri": f"{self.url}/keys",
            },
            f"{ISSUER_PATH}/keys": {"keys": self.keys},
        }


def serve(issuer: Issuer) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            issuer.requests[self.path] += 1
            document = issuer.paths().get(self.path)
            status = (
                issuer.discovery_status if self.path.endswith("openid-configuration") else issuer.keys_status
            )
            if document is None:
                status = 404
            body = json.dumps(document).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    # A short poll interval: shutdown() at the end of each test returns at once.
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True).start()
    return server


@pytest.fixture
def issuer(signing_key: rsa.RSAPrivateKey, monkeypatch: pytest.MonkeyPatch) -> Iterator[Issuer]:
    """A running issuer with one key ("k1"), and the authorizer's environment pointing at it."""
    state = Issuer(keys=[public_jwk(signing_key, "k1")])
    server = serve(state)
    state.url = f"http://127.0.0.1:{server.server_address[1]}{ISSUER_PATH}"
    monkeypatch.setenv(env_vars.STAGE, "test")
    monkeypatch.setenv(env_vars.JWT_ISSUER, state.url)
    monkeypatch.setenv(env_vars.JWT_AUDIENCE, f"{AUDIENCE}, {OTHER_AUDIENCE}")
    yield state
    server.shutdown()
    server.server_close()


def token(
    issuer: Issuer,
    key: rsa.RSAPrivateKey,
    *,
    kid: str | None = "k1",
    algorithm: str = "RS256",
    drop: tuple[str, ...] = (),
    **claims: Any,
) -> str:
    now = int(time.time())
    payload = {"iss": issuer.url, "aud": AUDIENCE, "sub": "alice", "iat": now, "exp": now + 300, **claims}
    for name in drop:
        payload.pop(name, None)
    headers = {"kid": kid} if kid is not None else {}
    return jwt.encode(payload, key, algorithm=algorithm, headers=headers)


def authorize(token_value: str | None, context: FakeLambdaContext) -> dict[str, Any]:
    return ws_authorizer.handler(ws_authorizer_event(token_value), context)


def assert_unauthorized(token_value: str | None, context: FakeLambdaContext) -> None:
    with pytest.raises(ws_authorizer.UnauthorizedError) as raised:
        authorize(token_value, context)
    assert str(raised.value) == "Unauthorized"  # exactly what API Gateway turns into 401


# --------------------------------------------------------------------------- valid tokens


def test_valid_token_allows_the_connection_with_its_owner_in_the_context(
    issuer: Issuer, signing_key: rsa.RSAPrivateKey, lambda_context: FakeLambdaContext
) -> None:
    expires_at = int(time.time()) + 300
    response = authorize(token(issuer, signing_key, sub="alice-sub", exp=expires_at), lambda_context)

    assert response == {
        "principalId": "alice-sub",
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [{"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": [WS_METHOD_ARN]}],
        },
        "context": {OWNER_CONTEXT_KEY: "alice-sub", TOKEN_EXPIRY_CONTEXT_KEY: expires_at},
    }


@pytest.mark.parametrize(
    "claims",
    [
        {"aud": OTHER_AUDIENCE},
        {"aud": ["someone-else", AUDIENCE]},
        {"client_id": AUDIENCE, "aud": None},
    ],
    ids=["second audience", "audience list", "client_id without aud (Cognito access token)"],
)
def test_accepted_audiences(
    issuer: Issuer, signing_key: rsa.RSAPrivateKey, lambda_context: FakeLambdaContext, claims: dict[str, Any]
) -> None:
    drop = tuple(name for name, value in claims.items() if value is None)
    present = {name: value for name, value in claims.items() if value is not None}

    response = authorize(token(issuer, signing_key, drop=drop, **present), lambda_context)

    assert response["principalId"] == "alice"


@pytest.mark.parametrize("algorithm", ["RS384", "RS512"])
def test_every_rsa_algorithm_api_gateway_accepts_is_accepted(
    issuer: Issuer, signing_key: rsa.RSAPrivateKey, lambda_context: FakeLambdaContext, algorithm: str
) -> None:
    response = authorize(token(issuer, signing_key, algorithm=algorithm), lambda_context)

    assert response["context"][OWNER_CONTEXT_KEY] == "alice"


# --------------------------------------------------------------------------- refused tokens


def test_missing_token_is_unauthorized(issuer: Issuer, lambda_context: FakeLambdaContext) -> None:
    assert_unauthorized(None, lambda_context)
    assert_unauthorized("", lambda_context)
    assert issuer.requests == Counter()  # nothing to verify: the issuer was not even asked


@pytest.mark.parametrize(
    "value",
    ["not-a-jwt", "a.b.c", "eyJhbGciOiJSUzI1NiJ9.e30", "x" * 20_000],
    ids=["garbage", "three garbage segments", "two segments", "huge"],
)
def test_malformed_token_is_unauthorized(
    issuer: Issuer, lambda_context: FakeLambdaContext, value: str
) -> None:
    assert_unauthorized(value, lambda_context)


@pytest.mark.parametrize(
    ("case", "make"),
    [
        ("signed with another key", lambda i, k, o: token(i, o)),
        ("wrong issuer", lambda i, k, o: token(i, k, iss="https://evil.example.com")),
        ("issuer with a trailing slash", lambda i, k, o: token(i, k, iss=i.url + "/")),
        ("wrong audience", lambda i, k, o: token(i, k, aud="someone-else")),
        ("audience list without ours", lambda i, k, o: token(i, k, aud=["x", "y"])),
        ("aud decides over client_id", lambda i, k, o: token(i, k, aud="someone-else", client_id=AUDIENCE)),
        ("wrong client_id", lambda i, k, o: token(i, k, drop=("aud",), client_id="someone-else")),
        ("no aud nor client_id", lambda i, k, o: token(i, k, drop=("aud",))),
        ("expired", lambda i, k, o: token(i, k, exp=int(time.time()) - 1)),
        ("no exp", lambda i, k, o: token(i, k, drop=("exp",))),
        ("not valid yet (nbf)", lambda i, k, o: token(i, k, nbf=int(time.time()) + 600)),
        ("issued in the future (iat)", lambda i, k, o: token(i, k, iat=int(time.time()) + 600)),
        ("exp a numeric string", lambda i, k, o: token(i, k, exp=str(int(time.time()) + 600))),
        ("nbf a boolean", lambda i, k, o: token(i, k, nbf=True)),
        ("iat a numeric string", lambda i, k, o: token(i, k, iat=str(int(time.time()) - 60))),
        ("nbf a numeric string", lambda i, k, o: token(i, k, nbf=str(int(time.time()) - 60))),
        ("no sub", lambda i, k, o: token(i, k, drop=("sub",))),
        ("empty sub", lambda i, k, o: token(i, k, sub="")),
        ("no iss", lambda i, k, o: token(i, k, drop=("iss",))),
        ("no kid", lambda i, k, o: token(i, k, kid=None)),
        ("unknown kid", lambda i, k, o: token(i, k, kid="k-unknown")),
        (
            "HMAC algorithm",
            lambda i, k, o: jwt.encode({"sub": "alice"}, "secret-" * 8, headers={"kid": "k1"}),
        ),
        (
            "alg none",
            lambda i, k, o: jwt.encode({"sub": "alice"}, None, algorithm="none", headers={"kid": "k1"}),
        ),
    ],
)
def test_invalid_token_is_unauthorized(
    issuer: Issuer,
    signing_key: rsa.RSAPrivateKey,
    other_key: rsa.RSAPrivateKey,
    lambda_context: FakeLambdaContext,
    case: str,
    make: Any,
) -> None:
    assert_unauthorized(make(issuer, signing_key, other_key), lambda_context)


@pytest.mark.parametrize("sub", UNUSABLE_SUBS.values(), ids=UNUSABLE_SUBS.keys())
def test_a_sub_that_is_no_owner_is_unauthorized_as_on_the_http_api(
    issuer: Issuer, signing_key: rsa.RSAPrivateKey, lambda_context: FakeLambdaContext, sub: object
) -> None:
    # The same list of `sub` claims as the HTTP API's test (test_owner_isolation): one rule
    made = token(issuer, signing_key, drop=("sub",)) if sub is None else token(issuer, signing_key, sub=sub)

    assert_unauthorized(made, lambda_context)


def test_the_token_is_never_logged(
    issuer: Issuer,
    signing_key: rsa.RSAPrivateKey,
    lambda_context: FakeLambdaContext,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level("DEBUG", logger="taskflow")
    valid = token(issuer, signing_key)
    expired = token(issuer, signing_key, exp=int(time.time()) - 1)

    authorize(valid, lambda_context)
    assert_unauthorized(expired, lambda_context)

    logged = (
        caplog.text + capsys.readouterr().out + json.dumps([r.__dict__ for r in caplog.records], default=str)
    )
    assert "connection refused: token rejected" in caplog.messages
    for secret in (valid, expired):
        assert secret not in logged
        assert secret.split(".")[2] not in logged  # not even the signature


def emitted_metrics(output: str) -> list[str]:
    """Names of the EMF metrics in what the handler printed."""
    names = []
    for line in output.splitlines():
        if line.startswith("{") and '"_aws"' in line:
            document = json.loads(line)
            names += [m["Name"] for d in document["_aws"]["CloudWatchMetrics"] for m in d["Metrics"]]
    return names


def test_a_refused_token_is_counted_so_the_errors_alarm_can_leave_it_out(
    issuer: Issuer,
    signing_key: rsa.RSAPrivateKey,
    lambda_context: FakeLambdaContext,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given one valid and one expired token
    authorize(token(issuer, signing_key), lambda_context)
    assert emitted_metrics(capsys.readouterr().out) == []

    # When the expired one is refused
    assert_unauthorized(token(issuer, signing_key, exp=int(time.time()) - 1), lambda_context)

    # Then the refusal is counted once (the invocation itself failed: that is how a 401 is asked for)
    assert emitted_metrics(capsys.readouterr().out) == [MetricName.TOKENS_REJECTED]


# --------------------------------------------------------------------------- the issuer's keys


def test_keys_are_fetched_once_per_warm_container(
    issuer: Issuer, signing_key: rsa.RSAPrivateKey, lambda_context: FakeLambdaContext
) -> None:
    for _ in range(3):
        authorize(token(issuer, signing_key), lambda_context)

    assert issuer.requests == Counter(
        {f"{ISSUER_PATH}/.well-known/openid-configuration": 1, f"{ISSUER_PATH}/keys": 1}
    )


def test_a_rotated_key_is_fetched_once_then_unknown_kids_do_not_hammer_the_issuer(
    issuer: Issuer,
    signing_key: rsa.RSAPrivateKey,
    other_key: rsa.RSAPrivateKey,
    lambda_context: FakeLambdaContext,
) -> None:
    # Given a warm authorizer, and then the issuer rotating to a new key "k2"
    authorize(token(issuer, signing_key), lambda_context)
    issuer.keys = [public_jwk(signing_key, "k1"), public_jwk(other_key, "k2")]

    # When a token signed with the new key arrives, and then tokens naming made-up keys
    rotated = authorize(token(issuer, other_key, kid="k2", sub="bob"), lambda_context)
    for index in range(3):
        assert_unauthorized(token(issuer, signing_key, kid=f"made-up-{index}"), lambda_context)

    # Then the key set was fetched once more for "k2", and not again for the made-up ones
    assert rotated["principalId"] == "bob"
    assert issuer.requests[f"{ISSUER_PATH}/keys"] == 2


def test_forced_refreshes_are_spaced_by_the_cooldown(signing_key: rsa.RSAPrivateKey, issuer: Issuer) -> None:
    now = [1000.0]
    keys = IssuerKeys(issuer.url, refresh_cooldown_seconds=30, monotonic=lambda: now[0])
    verifier = TokenVerifier(keys, issuer=issuer.url, audiences=[AUDIENCE])

    for advance in (0.0, 10.0, 25.0):  # refreshes at t=1000 and t=1035, not at t=1010
        now[0] += advance
        with pytest.raises(TokenRejectedError):
            verifier.owner_of(token(issuer, signing_key, kid="made-up"))

    assert issuer.requests[f"{ISSUER_PATH}/keys"] == 3  # the first fetch, then two forced refreshes


def test_an_issuer_outage_after_the_keys_expired_uses_the_cached_keys_for_a_while(
    signing_key: rsa.RSAPrivateKey, issuer: Issuer, caplog: pytest.LogCaptureFixture
) -> None:
    # Given keys fetched at t=1000, then the issuer's key endpoint failing
    now = [1000.0]
    keys = IssuerKeys(
        issuer.url,
        lifespan_seconds=900,
        refresh_cooldown_seconds=30,
        max_stale_seconds=3600,
        monotonic=lambda: now[0],
    )
    verifier = TokenVerifier(keys, issuer=issuer.url, audiences=[AUDIENCE])
    assert verifier.owner_of(token(issuer, signing_key, sub="alice")) == "alice"
    issuer.keys_status = 503
    keys_path = f"{ISSUER_PATH}/keys"

    # When the set is due for its refresh (t=1900), and again within the cooldown (t=1910)
    now[0] = 1900.0
    during_outage = verifier.owner_of(token(issuer, signing_key, sub="bob"))
    attempts_at_the_refresh = issuer.requests[keys_path]
    now[0] = 1910.0
    verifier.owner_of(token(issuer, signing_key, sub="bob"))

    # Then the cached key still verifies, the issuer is asked once per cooldown, and it is logged
    assert during_outage == "bob"
    assert attempts_at_the_refresh == 2
    assert issuer.requests[keys_path] == 2
    assert "token issuer keys unreachable: using the cached key set" in caplog.messages

    # But once the set is older than its lifespan plus the stale allowance, the outage is a failure
    now[0] = 1000.0 + 900 + 3600
    with pytest.raises(DependencyUnavailableError):
        verifier.owner_of(token(issuer, signing_key, sub="bob"))


def test_unreachable_issuer_is_a_dependency_failure_not_unauthorized(
    issuer: Issuer,
    signing_key: rsa.RSAPrivateKey,
    lambda_context: FakeLambdaContext,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Given tokens of an issuer whose server is down (connection refused on its port)
    valid = token(issuer, signing_key)
    down = serve(Issuer())
    down_url = f"http://127.0.0.1:{down.server_address[1]}{ISSUER_PATH}"
    down.shutdown()
    down.server_close()
    ws_authorizer.verifier.override(
        TokenVerifier(IssuerKeys(down_url), issuer=issuer.url, audiences=[AUDIENCE])
    )

    # When a connection asks to be authorized
    with pytest.raises(DependencyUnavailableError) as raised:
        authorize(valid, lambda_context)

    # Then the invocation fails with something other than "Unauthorized" (API Gateway: 500), logged
    assert str(raised.value) != "Unauthorized"
    assert [r.levelname for r in caplog.records if r.getMessage().startswith("token not verified")] == [
        "ERROR"
    ]


@pytest.mark.parametrize(
    "break_issuer",
    [
        pytest.param(lambda i: setattr(i, "discovery_status", 503), id="discovery answers 503"),
        pytest.param(lambda i: setattr(i, "keys", []), id="empty key set"),
        pytest.param(lambda i: setattr(i, "keys", [{"kty": "nonsense", "kid": "k1"}]), id="unusable key set"),
    ],
)
def test_broken_issuer_is_a_dependency_failure_not_unauthorized(
    issuer: Issuer, signing_key: rsa.RSAPrivateKey, lambda_context: FakeLambdaContext, break_issuer: Any
) -> None:
    valid = token(issuer, signing_key)
    break_issuer(issuer)

    with pytest.raises(DependencyUnavailableError):
        authorize(valid, lambda_context)


def test_https_issuer_refuses_keys_over_plain_http(issuer: Issuer) -> None:
    # A discovery document that sends an https issuer's key lookup to http is an issuer problem.
    keys = IssuerKeys("https://issuer.example.com/pool")
    keys.discovery_url = f"{issuer.url}/.well-known/openid-configuration"

    with pytest.raises(DependencyUnavailableError, match="not https"):
        keys.signing_key("k1")


def test_discovery_url_is_the_issuer_without_its_trailing_slash() -> None:
    assert IssuerKeys("https://id.example.com/tenant/").discovery_url == (
        "https://id.example.com/tenant/.well-known/openid-configuration"
    )
