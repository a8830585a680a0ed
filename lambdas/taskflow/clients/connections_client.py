"""ConnectionsClient: posts frames to WebSocket connections (API Gateway Management API)."""

from __future__ import annotations

import contextlib
from typing import Any, Final, Protocol

from taskflow.clients import aws

HTTP_GONE: Final = 410


class ConnectionGoneError(Exception):
    """The connection no longer exists (410 GoneException): delete it."""

    def __init__(self, connection_id: str) -> None:
        super().__init__(f"connection {connection_id!r} is gone")
        self.connection_id = connection_id


class FramePoster(Protocol):
    """What the notifier needs; tests pass an in-memory fake."""

    def post(self, connection_id: str, data: bytes) -> None: ...

    def close(self, connection_id: str) -> None: ...


def close_with(poster: FramePoster, connection_id: str, last_frame: bytes) -> None:
    """Send the connection its last frame (one already gone is fine), then close it. Other
    failures propagate."""
    with contextlib.suppress(ConnectionGoneError):
        poster.post(connection_id, last_frame)
    poster.close(connection_id)


class ConnectionsClient(aws.ClientUser):
    service_name = "apigatewaymanagementapi"

    def __init__(self, endpoint_url: str, client: Any | None = None) -> None:
        super().__init__(client)
        self.endpoint_url = endpoint_url  # the stage's callback URL (aws.client caches per endpoint)

    def post(self, connection_id: str, data: bytes) -> None:
        """Send one frame. Raises ConnectionGoneError on 410; other errors propagate."""
        try:
            self.client.post_to_connection(ConnectionId=connection_id, Data=data)
        except Exception as error:
            if aws.error_code(error) == "GoneException" or aws.http_status(error) == HTTP_GONE:
                raise ConnectionGoneError(connection_id) from error
            raise

    def close(self, connection_id: str) -> None:
        """End the connection (@connections DELETE); one already gone is fine."""
        try:
            self.client.delete_connection(ConnectionId=connection_id)
        except Exception as error:
            if aws.error_code(error) == "GoneException" or aws.http_status(error) == HTTP_GONE:
                return
            raise
