"""The local issuer: its key on disk, its JWKS, the tokens it mints, and finding a running stack's."""

import base64
import json
import os
import stat
import time

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from local import token as token_cli
from local.auth.issuer import (
    DEV_SUBJECT,
    AuthError,
    LocalIssuer,
    SigningKey,
    jwk_thumbprint,
    load_issuer,
)

AUDIENCE = "le2b3ty4cld8hpdelpn581k3pd"
ISSUER = "http://127.0.0.1:4000/_local/issuers/us-east-1_AbCdEfGhI"


@pytest.fixture(scope="module")
def key(tmp_path_factory):
    return SigningKey.load_or_create(tmp_path_factory.mktemp("state"))


@pytest.fixture
def issuer(key):
    return LocalIssuer(ISSUER, [AUDIENCE, "second-client"], key)


def test_the_thumbprint_is_rfc_7638s():
    # the example key of RFC 7638 section 3.1 and its thumbprint
    n = (
        "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRX"
        "jBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAt"
        "aSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XP"
        "ksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
    )
    assert jwk_thumbprint({"kty": "RSA", "n": n, "e": "AQAB", "alg": "RS256", "kid": "x"}) == (
        "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
    )


def test_the_key_is_created_private_and_reused(tmp_path):
    # Given no key yet
    first = SigningKey.load_or_create(tmp_path)

    # When the state dir is used again
    second = SigningKey.load_or_create(tmp_path)

    # Then the key file is private and the same key comes back
    path = tmp_path / "auth" / "signing-key.pem"
    assert first.path == second.path == path
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert first.kid == second.kid
    assert [p.name for p in (tmp_path / "auth").iterdir()] == ["signing-key.pem"]  # no temporary left


def test_a_broken_key_file_is_a_clear_error(tmp_path):
    (tmp_path / "auth").mkdir()
    (tmp_path / "auth" / "signing-key.pem").write_text("not a key")
    with pytest.raises(AuthError, match="not an unencrypted PEM private key"):
        SigningKey.load_or_create(tmp_path)


def test_the_jwks_and_discovery_publish_the_public_key(issuer):
    (jwk,) = issuer.jwks()["keys"]
    assert (jwk["kty"], jwk["alg"], jwk["use"], jwk["kid"]) == ("RSA", "RS256", "sig", issuer.kid)
    assert jwk["kid"] == jwk_thumbprint(jwk)
    assert "d" not in jwk  # nothing private
    public = jwt.PyJWK(jwk).key
    assert public.public_numbers() == issuer.key.public_key.public_numbers()
    discovery = issuer.discovery()
    assert discovery["issuer"] == ISSUER
    assert discovery["jwks_uri"] == ISSUER + "/.well-known/jwks.json"
    assert issuer.discovery_url == ISSUER + "/.well-known/openid-configuration"


def test_minted_tokens_look_like_cognitos(issuer):
    # When an ID token and an access token are minted
    id_token = issuer.mint("alice", claims={"email": "alice@example.com"})
    access = issuer.mint("bob", token_use="access", scope="items/read", expires_in=60)

    # Then both verify with the public key and carry Cognito's claims
    header = jwt.get_unverified_header(id_token)
    assert (header["alg"], header["kid"]) == ("RS256", issuer.kid)
    claims = issuer.verify(id_token)
    assert (claims["sub"], claims["iss"], claims["aud"], claims["token_use"]) == (
        "alice",
        ISSUER,
        AUDIENCE,
        "id",
    )
    assert claims["email"] == "alice@example.com"
    assert claims["exp"] - claims["iat"] == 3600
    access_claims = issuer.verify(access)
    assert "aud" not in access_claims
    assert (access_claims["client_id"], access_claims["scope"]) == (AUDIENCE, "items/read")
    assert issuer.subject_of(access) == "bob"


def test_expired_and_foreign_audience_tokens_can_be_minted_for_tests(issuer):
    expired = issuer.mint("carol", expires_in=-60)
    with pytest.raises(jwt.ExpiredSignatureError):
        issuer.verify(expired)
    assert issuer.subject_of(expired) == "carol"  # the subject is still readable
    with pytest.raises(jwt.InvalidAudienceError):
        issuer.verify(issuer.mint("carol", audience="someone-else"))
    assert issuer.claims("dave", now=1000, not_before=2000)["nbf"] == 2000


def write_state(state_dir, key, *, stack="Fixture-auth", pid=None, auth=True):
    state = {"stack": stack, "pid": pid or os.getpid(), "endpoint": "http://127.0.0.1:1", "outputs": {}}
    if auth:
        state["auth"] = {
            "issuer": ISSUER,
            "audience": [AUDIENCE],
            "keyFile": str(key.path),
            "devSubject": DEV_SUBJECT,
        }
    (state_dir / "stacks").mkdir(parents=True, exist_ok=True)
    (state_dir / "stacks" / f"{stack}.json").write_text(json.dumps(state))


def test_load_issuer_finds_the_running_stacks_issuer(tmp_path, key):
    # Given a running stack's state file
    write_state(tmp_path, key)

    # When its issuer is loaded, by stage or as the only stack
    by_stage = load_issuer(tmp_path, stage="auth")
    only = load_issuer(tmp_path)

    # Then tokens minted with it are the stack's
    assert by_stage.url == only.url == ISSUER
    assert by_stage.audience == (AUDIENCE,)
    assert jwt.decode(
        load_issuer(tmp_path, stage="auth").mint("erin"),
        key.public_key,
        algorithms=["RS256"],
        audience=AUDIENCE,
    )["sub"] == ("erin")


def test_load_issuer_explains_what_is_missing(tmp_path, key):
    with pytest.raises(AuthError, match="no local stack is running"):
        load_issuer(tmp_path / "nothing")
    write_state(tmp_path, key, stack="App-dev", auth=False)
    with pytest.raises(AuthError, match="has no authorizers"):
        load_issuer(tmp_path, stage="dev")
    with pytest.raises(AuthError, match=r"stage 'prod'.*running: App-dev"):
        load_issuer(tmp_path, stage="prod")
    write_state(tmp_path, key, stack="App-prod")
    with pytest.raises(AuthError, match="2 local stacks"):
        load_issuer(tmp_path)
    write_state(tmp_path, key, stack="Gone-test", pid=2**22 + 12345)
    with pytest.raises(AuthError, match="no longer running"):
        load_issuer(tmp_path, stage="test")


def test_the_token_cli_prints_a_token_for_the_running_stack(tmp_path, key, capsys):
    # Given a running stack
    write_state(tmp_path, key)

    # When a token is asked for
    code = token_cli.main(
        ["--sub", "alice", "--state-dir", str(tmp_path), "--expires-in", "120", "--claim", 'groups=["a","b"]']
    )

    # Then the token alone is printed, for the stack's issuer and audience
    assert code == 0
    printed = capsys.readouterr().out.strip()
    claims = jwt.decode(printed, key.public_key, algorithms=["RS256"], audience=AUDIENCE, issuer=ISSUER)
    assert (claims["sub"], claims["exp"] - claims["iat"], claims["groups"]) == ("alice", 120, ["a", "b"])


def test_the_token_cli_without_a_running_stack_fails_clearly(tmp_path, capsys):
    assert token_cli.main(["--sub", "alice", "--state-dir", str(tmp_path)]) == 2
    assert "no local stack is running" in capsys.readouterr().err


@pytest.mark.parametrize("sub", ["", " alice", "alice\n"])
def test_the_token_cli_refuses_a_subject_the_stack_would_refuse(tmp_path, capsys, sub):
    with pytest.raises(SystemExit) as refused:
        token_cli.main(["--sub", sub, "--state-dir", str(tmp_path)])

    assert refused.value.code == 2
    assert "is no owner" in capsys.readouterr().err


def test_tokens_from_another_key_do_not_verify(issuer):
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = jwt.encode(issuer.claims("mallory"), other, algorithm="RS256", headers={"kid": issuer.kid})
    with pytest.raises(jwt.InvalidSignatureError):
        issuer.verify(forged)
    payload = json.loads(base64.urlsafe_b64decode(forged.split(".")[1] + "=="))
    assert payload["iss"] == ISSUER
    assert time.time() < payload["exp"]
