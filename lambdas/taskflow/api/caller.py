"""Who is calling: the verified owner of a request on stages with `auth: jwt`.

API Gateway's JWT authorizer guards every route of such a stage and hands the function the token's
verified claims (payload v2, every value a string):

    event["requestContext"]["authorizer"]["jwt"]["claims"]["sub"]   -> the owner

A request without them (a route left without the authorizer, a token without `sub`) is refused with
401 (UnauthenticatedError, through the error map): the API fails closed instead of serving a request
it cannot attribute to an owner.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from taskflow.auth_contract import OWNER_CLAIM, TOKEN_HEADER
from taskflow.domain.owners import owner_or_none
from taskflow.errors import UnauthenticatedError


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def verified_owner(event: Mapping[str, Any]) -> str:
    """The `sub` claim the JWT authorizer verified; UnauthenticatedError if there is none."""
    authorizer = _mapping(_mapping(event.get("requestContext")).get("authorizer"))
    claims = _mapping(_mapping(authorizer.get("jwt")).get("claims"))
    owner = owner_or_none(claims.get(OWNER_CLAIM))
    if owner is None:
        raise UnauthenticatedError(
            f"this request carries no verified caller: send {TOKEN_HEADER}: Bearer <JWT>, "
            f"a token of this API's issuer with a {OWNER_CLAIM!r} claim"
        )
    return owner
