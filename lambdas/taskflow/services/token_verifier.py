"""TokenVerifier: a JWT -> its owner (the `sub` claim) and expiry, verified the way API Gateway's HTTP JWT
authorizer verifies it, so that one token opens both APIs of a stage with `auth: jwt`.

The checks (https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-jwt-authorizer.html):

* header: `alg` one of TOKEN_ALGORITHMS (RSA), a `kid` the issuer publishes (taskflow.clients.oidc_keys);
* signature: valid for that key;
* `iss`: exactly the configured issuer;
* `aud` (a string or a list) holds one of the configured audiences; a token without `aud` must
  have a `client_id` that is one of them (Cognito access tokens). When both are present `aud`
  decides, as API Gateway does;
* `exp`: present and in the future; `nbf` and `iat`, when present, not in the future (no leeway);
  each a JSON number (PyJWT alone would also take a numeric string such as "1700000000");
* `sub`: present, a usable owner id (taskflow.domain.owners).

Anything wrong with the token raises TokenRejectedError (its `reason` is for logs and never holds
the token). The issuer's keys being unreachable is not the token's fault: that
DependencyUnavailableError propagates unchanged.

Used only by the $connect authorizer: this module imports PyJWT, which only that function has.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import jwt

from taskflow.auth_contract import MAX_TOKEN_LENGTH, OWNER_CLAIM, TOKEN_ALGORITHMS
from taskflow.clients.oidc_keys import SigningKeys, UnknownSigningKeyError
from taskflow.domain.owners import owner_or_none

REQUIRED_CLAIMS: Final = ("exp", "iss", OWNER_CLAIM)
DATE_CLAIMS: Final = ("exp", "nbf", "iat")


class TokenRejectedError(Exception):
    """The token is missing, malformed, not signed by the issuer or not valid for this API."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class VerifiedToken:
    owner: str  # the `sub` claim
    expires_at: int  # the `exp` claim, epoch seconds


class TokenVerifier:
    def __init__(self, keys: SigningKeys, *, issuer: str, audiences: Sequence[str]) -> None:
        if not audiences:
            raise ValueError("at least one audience is required")
        self._keys = keys
        self._issuer = issuer
        self._audiences = frozenset(audiences)

    def owner_of(self, token: object) -> str:
        """The owner (`sub`) of a valid token; TokenRejectedError otherwise."""
        return self.verify(token).owner

    def verify(self, token: object) -> VerifiedToken:
        """The owner and expiry of a valid token; TokenRejectedError otherwise."""
        if not isinstance(token, str) or not token:
            raise TokenRejectedError("no token")
        if len(token) > MAX_TOKEN_LENGTH:
            raise TokenRejectedError(f"the token is over {MAX_TOKEN_LENGTH} characters")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as error:
            raise TokenRejectedError(f"malformed token: {error}") from None
        algorithm = header.get("alg")
        if algorithm not in TOKEN_ALGORITHMS:
            raise TokenRejectedError(f"algorithm {str(algorithm)[:16]!r} is not accepted")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise TokenRejectedError("the token names no key (kid)")
        try:
            key = self._keys.signing_key(kid)
        except UnknownSigningKeyError as error:
            raise TokenRejectedError(str(error)) from None
        if key.key_type != "RSA":
            raise TokenRejectedError(f"key {kid[:64]!r} is not an RSA key")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key.key,
                algorithms=[algorithm],
                issuer=self._issuer,
                options={"require": list(REQUIRED_CLAIMS), "verify_aud": False},
            )
        except jwt.PyJWTError as error:
            raise TokenRejectedError(f"{type(error).__name__}: {error}") from None
        _check_numeric_dates(claims)
        self._check_audience(claims)
        owner = owner_or_none(claims.get(OWNER_CLAIM))
        if owner is None:
            raise TokenRejectedError(
                f"the {OWNER_CLAIM!r} claim is not a usable owner id "
                "(a non-empty string without leading or trailing white space)"
            )
        return VerifiedToken(owner, int(claims["exp"]))

    def _check_audience(self, claims: dict[str, Any]) -> None:
        if "aud" in claims:
            audience = claims["aud"]
            values = [audience] if isinstance(audience, str) else audience
            if not isinstance(values, list) or not all(isinstance(value, str) for value in values):
                raise TokenRejectedError("the 'aud' claim is neither a string nor a list of strings")
            if self._audiences.isdisjoint(values):
                raise TokenRejectedError("the token is for another audience ('aud')")
            return
        client_id = claims.get("client_id")
        if not isinstance(client_id, str) or client_id not in self._audiences:
            raise TokenRejectedError("the token has no accepted 'aud' or 'client_id'")


def _check_numeric_dates(claims: dict[str, Any]) -> None:
    for name in DATE_CLAIMS:
        value = claims.get(name)
        if name in claims and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise TokenRejectedError(f"the {name!r} claim is not a number")
