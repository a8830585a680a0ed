"""An HTTP API JWT authorizer, as API Gateway runs one (docs/local-stack.md, "Authentication").

The token is checked by taskflow.services.token_verifier.TokenVerifier, the code the WebSocket
$connect authorizer runs, holding the local issuer's keys (local/auth/issuer.py,
`LocalIssuer.verifier`): the gateway runs in the issuer's process, so it need not fetch the JWKS.
The identity source may also be another header or a query parameter; a request without any token
gets a bare `Bearer` challenge (RFC 6750 3.1); claims are flattened to strings as API Gateway
does (numbers in decimal, lists as `[a b]`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import jwt

if TYPE_CHECKING:  # local/auth/issuer.py puts the Lambda code on sys.path and builds the verifier
    from taskflow.services.token_verifier import TokenVerifier


class JwtRejected(Exception):
    """The authorizer refuses the request."""

    def __init__(self, description: str | None, status: int = 401, error: str = "invalid_token") -> None:
        super().__init__(description or "no token")
        self.description = description
        self.status = status
        self.error = error

    @property
    def message(self) -> str:
        return "Forbidden" if self.status == 403 else "Unauthorized"

    def challenge(self, scopes: Sequence[str] = ()) -> str:
        """The www-authenticate header value."""
        if self.description is None:
            return "Bearer"
        # The description may quote the token's header (its alg): no quote or control character
        # of it may reach the header, where a line break would make aiohttp drop the connection.
        description = "".join(c if c.isprintable() and c != '"' else "'" for c in self.description)
        return f'Bearer scope="{" ".join(scopes)}" error="{self.error}" error_description="{description}"'


@dataclass(frozen=True)
class IdentitySource:
    """Where the token is: `$request.header.NAME` or `$request.querystring.NAME`."""

    kind: str  # "header" | "querystring"
    name: str

    @classmethod
    def parse(cls, expression: str) -> IdentitySource | None:
        for kind in ("header", "querystring"):
            prefix = f"$request.{kind}."
            if expression.startswith(prefix) and len(expression) > len(prefix):
                return cls(kind, expression[len(prefix) :])
        return None

    def token(self, headers: Mapping[str, str], query: Mapping[str, str]) -> str | None:
        if self.kind == "header":
            wanted = self.name.lower()
            values = [value for key, value in headers.items() if key.lower() == wanted]
            value = ",".join(values) if values else None
        else:
            value = query.get(self.name)
        if value is None or not value.strip():
            return None
        value = value.strip()
        if value[:7].lower() == "bearer ":
            value = value[7:].strip()
        return value


class JwtValidator:
    """One JWT authorizer: the verifier of its issuer and audiences, and where it finds the token."""

    def __init__(self, verifier: TokenVerifier, identity_source: IdentitySource) -> None:
        self.verifier = verifier
        self.identity_source = identity_source

    @property
    def issuer(self) -> str:
        return self.verifier.issuer

    def authorize(
        self,
        headers: Mapping[str, str],
        query: Mapping[str, str],
        scopes: Sequence[str] = (),
        now: float | None = None,
    ) -> dict[str, Any]:
        """The `requestContext.authorizer` of an accepted request; raises JwtRejected."""
        token = self.identity_source.token(headers, query)
        if token is None:
            raise JwtRejected(None)
        claims = self.validate(token, now)
        granted = token_scopes(claims)
        if scopes and not set(scopes) & set(granted):
            raise JwtRejected(
                f"expected scopes: [{' '.join(scopes)}]", status=403, error="insufficient_scope"
            )
        try:
            passed = {str(name): claim_string(value) for name, value in claims.items()}
        except RecursionError:  # a claim nested hundreds of levels deep (needs the issuer's key)
            raise JwtRejected("the token's claims are nested too deeply") from None
        return {"jwt": {"claims": passed, "scopes": granted if scopes else None}}

    def validate(self, token: str, now: float | None = None) -> dict[str, Any]:
        """The token's claims when it is valid for this authorizer; raises JwtRejected."""
        try:
            return self.verifier.claims(token, now=now)
        except jwt.InvalidTokenError as error:
            raise JwtRejected(str(error)) from None


def token_scopes(claims: Mapping[str, Any]) -> list[str]:
    """The scopes a token grants: `scope` (space-separated) or `scp` (a list or a string)."""
    for name in ("scope", "scp"):
        value = claims.get(name)
        if isinstance(value, str):
            return value.split()
        if isinstance(value, list):
            return [str(item) for item in value]
    return []


def claim_string(value: Any) -> str:  # noqa: PLR0911 - one answer per JSON type
    """A claim as API Gateway passes it to the function: always a string.

    Numbers in decimal (`1700000000`, not `1.7e+09`), booleans `true`/`false`, lists flattened
    to `[a b]` (how `cognito:groups` reaches a handler), objects as `map[k:v]`, null as "".
    """
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, list):
        return "[" + " ".join(claim_string(item) for item in value) + "]"
    if isinstance(value, dict):
        return "map[" + " ".join(f"{key}:{claim_string(value[key])}" for key in sorted(value)) + "]"
    if value is None:
        return ""
    return json.dumps(value)
