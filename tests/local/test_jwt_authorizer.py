"""The HTTP API's JWT authorizer: which tokens API Gateway lets through, and what the function sees."""

import base64
import time

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from local.auth.issuer import LocalIssuer, SigningKey
from local.gateways.jwt_authorizer import (
    IdentitySource,
    JwtRejected,
    JwtValidator,
    claim_string,
    token_scopes,
)

ISSUER = "http://127.0.0.1:4000/_local/issuers/us-east-1_AbCdEfGhI"
AUDIENCE = "client-1"
NOW = 1_800_000_000


@pytest.fixture(scope="module")
def issuer(tmp_path_factory):
    return LocalIssuer(ISSUER, [AUDIENCE], SigningKey.load_or_create(tmp_path_factory.mktemp("state")))


@pytest.fixture(scope="module")
def validator(issuer):
    return JwtValidator(
        issuer.verifier([AUDIENCE, "client-2"]), IdentitySource.parse("$request.header.Authorization")
    )


@pytest.fixture(scope="module")
def other_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def claims(issuer, **changes):
    base = issuer.claims("alice", now=NOW - 10)
    base.update(changes)
    return {key: value for key, value in base.items() if value is not None}


def signed(issuer, claims_, algorithm="RS256", key=None, kid=None):
    return jwt.encode(
        claims_, key or issuer.key.private_key, algorithm=algorithm, headers={"kid": kid or issuer.kid}
    )


def refusal(validator, header):
    headers = {"Authorization": header} if header is not None else {}
    with pytest.raises(JwtRejected) as refused:
        validator.authorize(headers, {}, now=NOW)
    return refused.value


REFUSED = {
    "missing header": lambda i, k: None,
    "empty header": lambda i, k: "   ",
    "not Bearer": lambda i, k: "Basic dXNlcjpwYXNz",
    "malformed": lambda i, k: "Bearer not-a-jwt",
    "bad signature (other key, same kid)": lambda i, k: "Bearer " + signed(i, claims(i), key=k),
    "unknown kid": lambda i, k: "Bearer " + signed(i, claims(i), key=k, kid="someone-elses"),
    "wrong iss": lambda i, k: "Bearer " + signed(i, claims(i, iss="https://evil.example.com")),
    "wrong aud": lambda i, k: "Bearer " + signed(i, claims(i, aud="someone-else")),
    "aud wins over a right client_id": lambda i, k: (
        "Bearer " + signed(i, claims(i, aud="someone-else", client_id=AUDIENCE))
    ),
    "no aud and no client_id": lambda i, k: "Bearer " + signed(i, claims(i, aud=None)),
    "expired": lambda i, k: "Bearer " + signed(i, claims(i, exp=NOW - 1)),
    "expires now": lambda i, k: "Bearer " + signed(i, claims(i, exp=NOW)),
    "no exp": lambda i, k: "Bearer " + signed(i, claims(i, exp=None)),
    "exp not finite": lambda i, k: "Bearer " + signed(i, claims(i, exp=float("inf"))),
    "exp a numeric string": lambda i, k: "Bearer " + signed(i, claims(i, exp=str(NOW + 60))),
    "aud list holding a number": lambda i, k: "Bearer " + signed(i, claims(i, aud=[AUDIENCE, 5])),
    "nbf in the future": lambda i, k: "Bearer " + signed(i, claims(i, nbf=NOW + 60)),
    "iat in the future": lambda i, k: "Bearer " + signed(i, claims(i, iat=NOW + 60)),
    "alg none": lambda i, k: (
        "Bearer " + jwt.encode(claims(i), None, algorithm="none", headers={"kid": i.kid})
    ),
    "HS256": lambda i, k: (
        "Bearer " + jwt.encode(claims(i), "secret" * 6, algorithm="HS256", headers={"kid": i.kid})
    ),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_bad_tokens_are_refused_with_401(issuer, validator, other_key, case):
    # When the request carries a bad token (or none)
    rejected = refusal(validator, REFUSED[case](issuer, other_key))

    # Then it is API Gateway's 401, with a challenge naming the reason
    assert (rejected.status, rejected.message) == (401, "Unauthorized")
    if case in ("missing header", "empty header"):
        assert rejected.challenge() == "Bearer"
    else:
        assert rejected.challenge().startswith('Bearer scope="" error="invalid_token" error_description="')


@pytest.mark.parametrize(
    ("case", "description"),
    [
        ("wrong aud", "the token does not have a valid audience"),
        ("expired", "the token has expired"),
        ("bad signature (other key, same kid)", "the token's signature is invalid"),
        ("HS256", "signing method HS256 is invalid"),
    ],
)
def test_the_challenge_says_why(issuer, validator, other_key, case, description):
    assert description in refusal(validator, REFUSED[case](issuer, other_key)).challenge()


def test_a_line_break_in_the_tokens_header_does_not_reach_the_challenge(issuer, validator):
    # Given an unsigned token whose alg holds a line break (anyone can make one)
    header = base64.urlsafe_b64encode(b'{"alg":"HS\\r\\nX-Evil: 1"}').rstrip(b"=").decode()

    # When it is refused
    challenge = refusal(validator, f"Bearer {header}.e30.c2ln").challenge()

    # Then the challenge names the alg on one line (aiohttp would drop the connection otherwise)
    assert challenge.isprintable()
    assert "signing method HS''X-Evil: 1 is invalid" in challenge


ACCEPTED = {
    "Bearer prefix": lambda i: "Bearer " + signed(i, claims(i)),
    "lower-case bearer": lambda i: "bearer " + signed(i, claims(i)),
    "no prefix": lambda i: signed(i, claims(i)),
    "aud list": lambda i: signed(i, claims(i, aud=["x", "client-2"])),
    "client_id without aud": lambda i: signed(i, claims(i, aud=None, client_id=AUDIENCE)),
    "RS384": lambda i: signed(i, claims(i), algorithm="RS384"),
    "RS512": lambda i: signed(i, claims(i), algorithm="RS512"),
    "nbf and iat now": lambda i: signed(i, claims(i, nbf=NOW, iat=NOW)),
}


@pytest.mark.parametrize("case", list(ACCEPTED))
def test_good_tokens_pass(issuer, validator, case):
    context = validator.authorize({"authorization": ACCEPTED[case](issuer)}, {}, now=NOW)
    assert context["jwt"]["claims"]["sub"] == "alice"


def test_the_function_gets_the_claims_as_strings_and_no_scopes(issuer, validator):
    token = signed(
        issuer,
        claims(issuer, **{"cognito:groups": ["admin", "users"], "email_verified": True, "ratio": 0.5}),
    )
    context = validator.authorize({"Authorization": f"Bearer {token}"}, {}, now=NOW)
    assert context["jwt"]["scopes"] is None
    received = context["jwt"]["claims"]
    assert received["exp"] == str(NOW - 10 + 3600)
    assert received["iss"] == ISSUER
    assert received["cognito:groups"] == "[admin users]"
    assert received["email_verified"] == "true"
    assert received["ratio"] == "0.5"
    assert all(isinstance(value, str) for value in received.values())


def test_a_claim_nested_too_deeply_to_pass_on_is_refused_not_a_crash(issuer, validator):
    nested: list = []
    for _ in range(600):
        nested = [nested]
    token = signed(issuer, claims(issuer, x=nested))

    assert refusal(validator, f"Bearer {token}").status == 401


def test_routes_with_scopes_need_one_of_them(issuer, validator):
    reader = signed(issuer, claims(issuer, scope="openid items/read"))
    context = validator.authorize({"Authorization": reader}, {}, ["items/read", "items/admin"], now=NOW)
    assert context["jwt"]["scopes"] == ["openid", "items/read"]
    with pytest.raises(JwtRejected) as refused:
        validator.authorize({"Authorization": signed(issuer, claims(issuer))}, {}, ["items/read"], now=NOW)
    assert (refused.value.status, refused.value.message) == (403, "Forbidden")
    assert 'error="insufficient_scope"' in refused.value.challenge(["items/read"])
    assert token_scopes({"scp": ["a", "b"]}) == ["a", "b"]


def test_a_query_string_identity_source(issuer):
    validator = JwtValidator(issuer.verifier([AUDIENCE]), IdentitySource.parse("$request.querystring.auth"))
    token = signed(issuer, claims(issuer))
    assert validator.authorize({}, {"auth": token}, now=NOW)["jwt"]["claims"]["sub"] == "alice"
    with pytest.raises(JwtRejected):
        validator.authorize({"Authorization": token}, {}, now=NOW)
    assert IdentitySource.parse("$context.identity.sourceIp") is None


def test_a_token_minted_now_passes_at_the_real_time(issuer, validator):
    token = issuer.mint("frank")
    assert validator.authorize({"Authorization": f"Bearer {token}"}, {})["jwt"]["claims"]["sub"] == "frank"
    assert int(validator.validate(token)["exp"]) > time.time()


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("s", "s"),
        (1700000000, "1700000000"),
        (1.7e9, "1700000000"),
        (True, "true"),
        (["a", "b"], "[a b]"),
        ({"b": 1, "a": "x"}, "map[a:x b:1]"),
        (None, ""),
    ],
)
def test_claim_values_become_strings_as_api_gateway_passes_them(value, text):
    assert claim_string(value) == text
