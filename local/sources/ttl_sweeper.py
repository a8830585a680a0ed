"""DynamoDB TTL, which moto does not implement: expired items are deleted periodically.

For every table with TimeToLiveSpecification enabled, items whose TTL attribute is a number
below the current epoch second are deleted through moto (so the table's stream sees REMOVE
records, as with DynamoDB's own TTL deletions). DynamoDB deletes within days; locally within
one sweep interval.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from local.console import Console
from local.emulator.aws_json import AwsError, AwsJsonClient, EmulatorRestarting

SWEEP_INTERVAL_SECONDS = 5.0


@dataclass(frozen=True)
class TtlTable:
    name: str
    key_attributes: tuple[str, ...]
    ttl_attribute: str


@dataclass(eq=False)
class TtlSweeper:
    tables: list[TtlTable]
    aws: AwsJsonClient
    console: Console
    interval: float = SWEEP_INTERVAL_SECONDS
    deleted: int = field(default=0, init=False)
    _task: asyncio.Task[None] | None = field(default=None, init=False)

    def start(self) -> None:
        if self.tables:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.sweep_once()
            except asyncio.CancelledError:
                raise
            except EmulatorRestarting:
                continue  # the next sweep waits until it is back
            except Exception as error:
                self.console.warn(f"TTL sweeper: {error!r}")

    async def sweep_once(self, now: float | None = None) -> int:
        """Delete every expired item now; returns how many were deleted."""
        deleted = 0
        for table in self.tables:
            count = await self._sweep_table(table, int(now if now is not None else time.time()))
            if count:
                self.console.event(f"TTL: deleted {count} expired item(s) from {table.name}")
            deleted += count
        self.deleted += deleted
        return deleted

    async def _sweep_table(self, table: TtlTable, now: int) -> int:
        names = {"#ttl": table.ttl_attribute}
        names.update({f"#k{i}": key for i, key in enumerate(table.key_attributes)})
        values = {":now": {"N": str(now)}}
        request: dict[str, Any] = {
            "TableName": table.name,
            "FilterExpression": "#ttl < :now",
            "ProjectionExpression": ", ".join(f"#k{i}" for i in range(len(table.key_attributes))),
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
        }
        expired: list[dict[str, Any]] = []
        while True:
            page = await self.aws.dynamodb("Scan", request)
            expired.extend(page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                break
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        deleted = 0
        for key in expired:
            try:
                await self.aws.dynamodb(
                    "DeleteItem",
                    {
                        "TableName": table.name,
                        "Key": key,
                        "ConditionExpression": "#ttl < :now",  # not refreshed in the meantime
                        "ExpressionAttributeNames": {"#ttl": table.ttl_attribute},
                        "ExpressionAttributeValues": values,
                    },
                )
                deleted += 1
            except AwsError as error:
                if error.code != "ConditionalCheckFailedException":
                    raise
        return deleted
