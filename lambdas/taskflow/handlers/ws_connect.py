"""WsConnectFunction: WebSocket $connect -> the connection is stored with a TTL.

With `auth: jwt` a Lambda REQUEST authorizer (taskflow.handlers.ws_authorizer) has verified the
`?token=` before this runs, and API Gateway hands its context to this function:

    event["requestContext"]["authorizer"]["owner"]        -> the owner (the token's sub)
    event["requestContext"]["authorizer"]["principalId"]  -> the same, used if "owner" is missing
    event["requestContext"]["authorizer"]["tokenExpiresAt"] -> the token's exp (epoch seconds)

The connection is stored with its owner and its token's expiry, so the notifier pushes it that
owner's task changes only, and none after the token expired (it closes the connection instead).
Without an owner the connection is refused (403, logged as an error: the route lacks its
authorizer): fail closed rather than store a connection nobody's frames could be routed to.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from taskflow.auth_contract import AUTH_JWT, authorized_owner, authorized_token_expiry
from taskflow.errors import DependencyUnavailableError
from taskflow.lazy import Lazy
from taskflow.observability import logger
from taskflow.repositories.connection_repository import ConnectionRepository
from taskflow.settings import WsConnectSettings, load_settings

settings: Lazy[WsConnectSettings] = Lazy(lambda: load_settings(WsConnectSettings))
connections: Lazy[ConnectionRepository] = Lazy(
    lambda: ConnectionRepository(settings.get().connection_table_name)
)


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request_context = event["requestContext"]
    connection_id = request_context["connectionId"]
    function_settings = settings.get()
    owner = token_expires_at = None
    if function_settings.auth_mode == AUTH_JWT:
        owner = authorized_owner(request_context)
        token_expires_at = authorized_token_expiry(request_context)
        if owner is None or token_expires_at is None:
            logger.error(
                "connection refused: no owner or token expiry from the $connect authorizer "
                "(is the route authorized?)",
                extra={"connection_id": connection_id},
            )
            return {"statusCode": 403}
    try:
        connections.get().add(
            connection_id,
            datetime.now(UTC),
            function_settings.connection_ttl_seconds,
            owner=owner,
            token_expires_at=token_expires_at,
        )
    except DependencyUnavailableError as error:
        logger.warning(
            "connection refused: table unavailable",
            extra={"connection_id": connection_id, "error": str(error)},
        )
        return {"statusCode": 503}
    logger.info("connected", extra={"connection_id": connection_id})
    return {"statusCode": 200}
