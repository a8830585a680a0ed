"""WsConnectFunction: WebSocket $connect -> the connection is stored with a TTL."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

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
    connection_id = event["requestContext"]["connectionId"]
    try:
        connections.get().add(connection_id, datetime.now(UTC), settings.get().connection_ttl_seconds)
    except DependencyUnavailableError as error:
        logger.warning(
            "connection refused: table unavailable",
            extra={"connection_id": connection_id, "error": str(error)},
        )
        return {"statusCode": 503}
    logger.info("connected", extra={"connection_id": connection_id})
    return {"statusCode": 200}
