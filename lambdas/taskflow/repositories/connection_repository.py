"""ConnectionRepository: the open WebSocket connections (ConnectionTable, TTL on expiresAt).

On stages with `auth: jwt` each connection row carries its `owner` (the $connect token's sub) and
`tokenExpiresAt` (the token's exp), and the ByOwner index (keys only, sorted by that expiry) finds
one owner's connections with their expiries, so a task change is pushed to its owner's connections
at a cost that follows that owner, not the whole table, and never past a token's expiry.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from taskflow import table_schema
from taskflow.clients import aws
from taskflow.domain.clock import utc_timestamp
from taskflow.repositories.dynamodb import serialize, translated_errors


@dataclass(frozen=True)
class OwnedConnection:
    connection_id: str
    token_expires_at: int  # epoch seconds: no frame goes to this connection from then on


class ConnectionRepository(aws.ClientUser):
    service_name = "dynamodb"

    def __init__(self, table_name: str, client: Any | None = None) -> None:
        super().__init__(client)
        self.table_name = table_name

    def add(
        self,
        connection_id: str,
        connected_at: datetime,
        ttl_seconds: int,
        owner: str | None = None,
        token_expires_at: int | None = None,
    ) -> None:
        """Store a connection (of `owner`, whose token expires at `token_expires_at`, when given);
        DynamoDB's TTL removes the row after `ttl_seconds` if no $disconnect (or 410 Gone) removed
        it before. Not at the token's expiry: the row must outlive the token, or the owner's next
        change would find no connection to send `expired` to and close (the connection itself
        stays open until API Gateway ends it)."""
        expires_at = int(connected_at.timestamp()) + ttl_seconds
        item: dict[str, Any] = {
            table_schema.CONNECTION_PK: connection_id,
            "connectedAt": utc_timestamp(connected_at),
            table_schema.CONNECTION_TTL_ATTRIBUTE: expires_at,
        }
        if owner is not None:
            if token_expires_at is None:
                raise ValueError("an owner's connection needs its token's expiry")
            item[table_schema.CONNECTION_OWNER] = owner
            item[table_schema.CONNECTION_TOKEN_EXPIRES_AT] = token_expires_at
        with translated_errors():
            self.client.put_item(TableName=self.table_name, Item=serialize(item))

    def remove(self, connection_id: str) -> None:
        with translated_errors():
            self.client.delete_item(
                TableName=self.table_name, Key=serialize({table_schema.CONNECTION_PK: connection_id})
            )

    def list_ids(self) -> list[str]:
        """Every stored connection id: one paginated Scan projecting only the key. Strongly
        consistent (twice the read units of a small table): a connection stored a moment before
        this read gets the change, so a resume that then misses it in an index that lags cannot
        leave a gap (docs/decisions.md, "Resume")."""
        ids: list[str] = []
        request: dict[str, Any] = {
            "TableName": self.table_name,
            "ConsistentRead": True,
            "ProjectionExpression": "#id",
            "ExpressionAttributeNames": {"#id": table_schema.CONNECTION_PK},
        }
        while True:
            with translated_errors():
                response = self.client.scan(**request)
            ids.extend(item[table_schema.CONNECTION_PK]["S"] for item in response.get("Items", []))
            last_key = response.get("LastEvaluatedKey")
            if not last_key:
                return ids
            request["ExclusiveStartKey"] = last_key

    def of_owner(self, owner: str) -> list[OwnedConnection]:
        """`owner`'s connections and their tokens' expiries: a paginated Query of the ByOwner index
        (keys only)."""
        found: list[OwnedConnection] = []
        request: dict[str, Any] = {
            "TableName": self.table_name,
            "IndexName": table_schema.CONNECTIONS_BY_OWNER_INDEX,
            "KeyConditionExpression": "#owner = :owner",
            "ExpressionAttributeNames": {"#owner": table_schema.CONNECTION_OWNER},
            "ExpressionAttributeValues": serialize({":owner": owner}),
        }
        while True:
            with translated_errors():
                response = self.client.query(**request)
            found.extend(
                OwnedConnection(
                    item[table_schema.CONNECTION_PK]["S"],
                    int(item[table_schema.CONNECTION_TOKEN_EXPIRES_AT]["N"]),
                )
                for item in response.get("Items", [])
            )
            last_key = response.get("LastEvaluatedKey")
            if not last_key:
                return found
            request["ExclusiveStartKey"] = last_key
