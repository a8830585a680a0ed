"""WsDisconnectFunction: WebSocket $disconnect -> the connection row is deleted."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from taskflow.lazy import Lazy
from taskflow.observability import logger
from taskflow.repositories.connection_repository import ConnectionRepository
from taskflow.settings import WsDisconnectSettings, load_settings

connections: Lazy[ConnectionRepository] = Lazy(
    lambda: ConnectionRepository(load_settings(WsDisconnectSettings).connection_table_name)
)


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    connection_id = event["requestContext"]["connectionId"]
    # If this fails the row stays until its TTL, or until a post to it answers 410 Gone.
    connections.get().remove(connection_id)
    logger.info("disconnected", extra={"connection_id": connection_id})
    return {"statusCode": 200}
