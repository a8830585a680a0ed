"""TokenVerifier: a JWT -> its claims, or its owner and expiry, checked the way API Gateway's HTTP JWT
authorizer checks it, so that one token opens both APIs of a stage with `auth: jwt`. The one verifier:
the $connect authorizer's (keys by OIDC discovery, taskflow.clients.oidc_keys), and the local stack's
HTTP JWT authorizer's and issuer's (their JWK set given: `from_jwks`).

The checks (https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-jwt-authorizer.html):

* at most MAX_TOKEN_LENGTH characters; `alg` one of TOKEN_ALGORITHMS (RSA); a `kid` the issuer
  publishes; a valid signature (PyJWT);
* `iss` exactly the issuer; `aud` (a string or a list of strings) holds one of the audiences or, only
  when there is no `aud`, `client_id` is one (Cognito access tokens);
* `exp` present and in the future; `nbf` and `iat`, when present, not in the future (no leeway); each
  a JSON number (PyJWT would take "1700000000"). Checked here: PyJWT cannot be told the time.

`claims()` raises PyJWT's own errors (jwt.InvalidTokenError), worded for a 401's error_description.
`verify()` also requires a usable owner in `sub` (taskflow.domain.owners) and raises TokenRejectedError
(its `reason` is for logs and never holds the token). The issuer's keys being unreachable is not the
token's fault: that DependencyUnavailableError propagates unchanged.

Of the functions only the $connect authorizer imports this module: PyJWT is in its layer only.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import jwt

from taskflow.auth_contract import MAX_TOKEN_LENGTH, OWNER_CLAIM, TOKEN_ALGORITHMS
from taskflow.clients.oidc_keys import SigningKeys, UnknownSigningKeyError
from taskflow.domain.owners import owner_or_none

if TYPE_CHECKING:
    from jwt.types import Options

# PyJWT checks the header, the signature and that the payload is JSON; the claims are checked below.
_SIGNATURE_ONLY: Final[Options] = {
    "verify_exp": False,
    "verify_nbf": False,
    "verify_iat": False,
    "verify_aud": False,
    "verify_iss": False,
    "verify_sub": False,
    "verify_jti": False,
}


class TokenRejectedError(Exception):
    """The token is missing, malformed, not signed by the issuer or not valid for this API."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class VerifiedToken:
    owner: str  # the `sub` claim
    expires_at: int  # the `exp` claim, epoch seconds


class JwkSetKeys:
    """Signing keys given as a JWK set (`{"keys": [...]}`) in memory: no discovery, no network."""

    def __init__(self, jwks: Mapping[str, Any]) -> None:
        self._keys = jwt.PyJWKSet.from_dict(dict(jwks))

    def signing_key(self, kid: str) -> jwt.PyJWK:
        try:
            return self._keys[kid]
        except KeyError:
            raise UnknownSigningKeyError(kid) from None


class TokenVerifier:
    """Tokens of one issuer for some audiences (none: every token is refused)."""

    def __init__(self, keys: SigningKeys, *, issuer: str, audiences: Iterable[str]) -> None:
        self._keys = keys
        self.issuer = issuer
        self.audiences = frozenset(audiences)

    @classmethod
    def from_jwks(cls, jwks: Mapping[str, Any], *, issuer: str, audiences: Iterable[str]) -> TokenVerifier:
        """A verifier of the keys in a JWK set it is given."""
        return cls(JwkSetKeys(jwks), issuer=issuer, audiences=audiences)

    def owner_of(self, token: object) -> str:
        """The owner (`sub`) of a valid token; TokenRejectedError otherwise."""
        return self.verify(token).owner

    def verify(self, token: object) -> VerifiedToken:
        """The owner and expiry of a valid token; TokenRejectedError otherwise."""
        if not isinstance(token, str) or not token:
            raise TokenRejectedError("no token")
        try:
            claims = self.claims(token)
        except jwt.InvalidTokenError as error:
            raise TokenRejectedError(str(error)) from None
        owner = owner_or_none(claims.get(OWNER_CLAIM))
        if owner is None:
            raise TokenRejectedError(
                f"the {OWNER_CLAIM!r} claim is not a usable owner id "
                "(a non-empty string without leading or trailing white space)"
            )
        return VerifiedToken(owner, int(claims["exp"]))

    def claims(self, token: str, *, now: float | None = None) -> dict[str, Any]:
        """The claims of a token valid at `now` (default: now); jwt.InvalidTokenError otherwise."""
        if len(token) > MAX_TOKEN_LENGTH:
            raise jwt.DecodeError(f"the token is over {MAX_TOKEN_LENGTH} characters")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError as error:
            raise jwt.DecodeError(f"the token is not a valid JWT ({error})") from None
        algorithm = header.get("alg")
        if algorithm not in TOKEN_ALGORITHMS:
            raise jwt.InvalidAlgorithmError(
                f"signing method {str(algorithm)[:16]} is invalid ({', '.join(TOKEN_ALGORITHMS)})"
            )
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise jwt.InvalidTokenError("the token names no key (kid)")
        try:
            key = self._keys.signing_key(kid)
        except UnknownSigningKeyError as error:
            raise jwt.InvalidTokenError(str(error)) from None
        if key.key_type != "RSA":
            raise jwt.InvalidTokenError(f"key {kid[:64]!r} is not an RSA key")
        try:
            claims: dict[str, Any] = jwt.decode(
                token, key.key, algorithms=[algorithm], options=_SIGNATURE_ONLY
            )
        except jwt.InvalidSignatureError:
            raise jwt.InvalidSignatureError("the token's signature is invalid") from None
        except jwt.InvalidTokenError as error:
            raise jwt.DecodeError(f"the token is not a valid JWT ({error})") from None
        self._check_claims(claims, time.time() if now is None else now)
        return claims

    def _check_claims(self, claims: Mapping[str, Any], now: float) -> None:
        if claims.get("iss") != self.issuer:
            raise jwt.InvalidIssuerError("the token does not have a valid issuer")
        audience = claims["aud"] if "aud" in claims else claims.get("client_id")
        values = audience if isinstance(audience, list) else [audience]
        if not all(isinstance(value, str) for value in values) or self.audiences.isdisjoint(values):
            raise jwt.InvalidAudienceError("the token does not have a valid audience")
        expires, not_before, issued_at = (_date(claims, name) for name in ("exp", "nbf", "iat"))
        if expires is None:
            raise jwt.MissingRequiredClaimError("exp")
        if expires <= now:
            raise jwt.ExpiredSignatureError("the token has expired")
        if not_before is not None and not_before > now:
            raise jwt.ImmatureSignatureError("the token is not valid yet (nbf)")
        if issued_at is not None and issued_at > now:
            raise jwt.ImmatureSignatureError("the token was issued in the future (iat)")


def _date(claims: Mapping[str, Any], name: str) -> float | None:
    """A NumericDate claim, None when absent; a JSON number or the token is refused."""
    if name not in claims:
        return None
    value = claims[name]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise jwt.DecodeError(f"the token's {name} claim is not a number")
    if isinstance(value, float) and not math.isfinite(value):
        raise jwt.DecodeError(f"the token's {name} claim is not a number")
    return value
