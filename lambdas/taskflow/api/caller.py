"""Who is calling: the verified owner of a request on stages with `auth: jwt`.

API Gateway's JWT authorizer guards every route of such a stage (identity source: the
Authorization header) and hands the function the token's verified claims, every value flattened
to a string (payload v2):

    event["requestContext"]["authorizer"]["jwt"]["claims"]["sub"]   -> the owner

Flattened, a `sub` of 123, ["alice"] or {"id": "alice"} would look like a string. So the owner is
taken under the one rule of taskflow.domain.owners (a string, non-empty, no leading or trailing
white space) from the `sub` of the token itself, the same token API Gateway verified (read from
the Authorization header, not verified again), and must equal the authorizer's claim. A request
without them (a route left without the authorizer, a token whose `sub` breaks the rule) is refused
with 401 (UnauthenticatedError, through the error map): the API fails closed instead of serving a
request it cannot attribute to an owner.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from typing import Any

from taskflow.auth_contract import MAX_TOKEN_LENGTH, OWNER_CLAIM, TOKEN_HEADER
from taskflow.domain.owners import owner_or_none
from taskflow.errors import UnauthenticatedError

_BEARER = "bearer "


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _token_claim(headers: Mapping[str, Any], name: str) -> object:
    """Claim `name` as the token in the Authorization header states it (JSON type kept), or None.
    Only read: API Gateway's authorizer verified this token before the function ran."""
    header = next((v for k, v in headers.items() if k.lower() == TOKEN_HEADER.lower()), None)
    if not isinstance(header, str) or len(header) > len(_BEARER) + MAX_TOKEN_LENGTH:
        return None
    token = header[len(_BEARER) :] if header[: len(_BEARER)].lower() == _BEARER else header
    parts = token.strip().split(".")
    if len(parts) != 3:  # header.payload.signature
        return None
    try:
        payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (binascii.Error, ValueError):
        return None
    return payload.get(name) if isinstance(payload, dict) else None


def verified_owner(event: Mapping[str, Any]) -> str:
    """The `sub` the JWT authorizer verified, if it is a usable owner; UnauthenticatedError if not."""
    authorizer = _mapping(_mapping(event.get("requestContext")).get("authorizer"))
    claims = _mapping(_mapping(authorizer.get("jwt")).get("claims"))
    owner = owner_or_none(_token_claim(_mapping(event.get("headers")), OWNER_CLAIM))
    if owner is None or owner != claims.get(OWNER_CLAIM):
        raise UnauthenticatedError(
            f"this request carries no verified caller: send {TOKEN_HEADER}: Bearer <JWT>, "
            f"a token of this API's issuer whose {OWNER_CLAIM!r} claim is a non-empty string "
            "without leading or trailing white space"
        )
    return owner
