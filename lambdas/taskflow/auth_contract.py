"""Names shared by infra/ (which wires authentication), the handlers and the tests.

With stage config `auth: jwt` the HTTP API has a JWT authorizer on every route and the WebSocket
API a Lambda REQUEST authorizer on $connect. Both accept the same token (issuer and audience of
the stage); its `sub` claim is the owner of every task and connection the caller creates.
"""

from collections.abc import Mapping
from typing import Any, Final, Literal

from taskflow.domain.owners import owner_or_none

AuthMode = Literal["none", "jwt"]
AUTH_NONE: Final = "none"  # no authorizers: every client sees every task (the original app)
AUTH_JWT: Final = "jwt"

# Browsers cannot set headers on a WebSocket handshake, so $connect takes the token from the
# query string: wss://.../dev?token=<JWT>.
TOKEN_QUERY_PARAMETER: Final = "token"  # noqa: S105 - a parameter name, not a secret
# The HTTP API's JWT authorizer reads the token from this header ("Bearer <JWT>").
TOKEN_HEADER: Final = "Authorization"  # noqa: S105 - a header name, not a secret
# The claim naming the caller.
OWNER_CLAIM: Final = "sub"
# Key of the owner in the $connect authorizer's context (requestContext.authorizer.owner).
OWNER_CONTEXT_KEY: Final = "owner"
# Key of the token's expiry (`exp`, epoch seconds) in the same context: the connection ends with its
# token (taskflow.services.task_notifier, handlers.ws_default).
TOKEN_EXPIRY_CONTEXT_KEY: Final = "tokenExpiresAt"  # noqa: S105 - a key name, not a secret
# Far above any real token (Cognito's are ~1 KB); bounds the work spent on garbage.
MAX_TOKEN_LENGTH: Final = 16 * 1024
# RSA algorithms, like API Gateway's JWT authorizer accepts.
TOKEN_ALGORITHMS: Final = ("RS256", "RS384", "RS512")


def authorized_owner(request_context: Mapping[str, Any]) -> str | None:
    """The owner a WebSocket connection's $connect authorizer vouched for (API Gateway hands its
    context to every route of the connection), or None."""
    authorizer = request_context.get("authorizer")
    if not isinstance(authorizer, Mapping):
        return None
    return owner_or_none(authorizer.get(OWNER_CONTEXT_KEY)) or owner_or_none(authorizer.get("principalId"))


def authorized_token_expiry(request_context: Mapping[str, Any]) -> int | None:
    """When the token that opened this WebSocket connection expires (epoch seconds), or None."""
    authorizer = request_context.get("authorizer")
    if not isinstance(authorizer, Mapping):
        return None
    value = authorizer.get(TOKEN_EXPIRY_CONTEXT_KEY)
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return int(value)
    if isinstance(value, str) and value.strip().isdigit():  # API Gateway may hand context values as strings
        return int(value)
    return None
