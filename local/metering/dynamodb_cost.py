"""The DynamoDB capacity of one request, computed from the items (moto's ConsumedCapacity is a constant).

The arithmetic is local/metering/capacity.py's. Writes: the items before and after the request are
read from moto's tables while holding the DynamoDB lock of local/emulator/patches.py around the
request (so no other write interleaves), which gives the table units and, for every index,
whether its entry was put, deleted, moved (key change: delete + put) or updated. Reads: GetItem
and BatchGetItem size the stored item; Query and Scan size each item read by looking it up by
the table key it carries (so a projection does not shrink it); items a filter dropped, or items
returned without their table key, cannot be sized and are counted as `unsizedItems`.
Transactions and PartiQL are counted as requests with `uncosted` capacity (none are used).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from local.metering.capacity import (
    IndexShape,
    TableShape,
    index_entry,
    item_size,
    partition_writes,
    read_units_for,
    write_units,
)

_SET_TYPES: Final = frozenset({"SS", "NS", "BS"})

DYNAMODB_WRITES: Final = frozenset({"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem"})
# Writes whose items are read before and after (for the capacity, and for the journal of the
# durable state, local/state/moto_state.py); PartiQL writes name no keys and are neither.
ITEM_WRITES: Final = DYNAMODB_WRITES | {"TransactWriteItems"}
DYNAMODB_READS: Final = frozenset({"GetItem", "BatchGetItem", "Query", "Scan"})
_PARTIQL: Final = ("ExecuteStatement", "BatchExecuteStatement", "ExecuteTransaction")
DYNAMODB_UNCOSTED: Final = frozenset({"TransactWriteItems", "TransactGetItems", *_PARTIQL})

Key = tuple[str, str]  # (table name, canonical JSON of the key)


class ItemStore(Protocol):
    """Read access to the stored items (moto's tables; a dict in the tests)."""

    def lock(self) -> AbstractContextManager[Any]: ...

    def shape(self, region: str, table: str) -> TableShape | None: ...

    def get(self, region: str, table: str, key: Mapping[str, Any]) -> dict[str, Any] | None:
        """The item, as a copy later writes to the table do not change."""
        ...


def _key_id(table: str, key: Mapping[str, Any]) -> Key:
    return table, json.dumps(key, sort_keys=True, default=repr)


def write_keys(
    store: ItemStore, region: str, operation: str, payload: Mapping[str, Any]
) -> list[tuple[str, Mapping[str, Any]]]:
    """(table, key) of every item a write request names."""
    keys: list[tuple[str, Mapping[str, Any]]] = []
    if operation == "BatchWriteItem":
        for table, requests in (payload.get("RequestItems") or {}).items():
            shape = store.shape(region, table)
            for request in requests or []:
                if "PutRequest" in request and shape is not None:
                    key = shape.key_of(request["PutRequest"].get("Item") or {})
                elif "DeleteRequest" in request:
                    key = request["DeleteRequest"].get("Key")
                else:
                    key = None
                if key:
                    keys.append((table, key))
        return keys
    if operation == "TransactWriteItems":
        for entry in payload.get("TransactItems") or []:
            for kind in ("Put", "Update", "Delete"):
                action = entry.get(kind) if isinstance(entry, dict) else None
                if isinstance(action, dict):
                    name = str(action.get("TableName", ""))
                    keys += write_keys(store, region, f"{kind}Item", {**action, "TableName": name})
        return keys
    table = str(payload.get("TableName", ""))
    if operation == "PutItem":
        shape = store.shape(region, table)
        put_key = shape.key_of(payload.get("Item") or {}) if shape is not None else None
        return [(table, put_key)] if put_key else []
    key = payload.get("Key")
    return [(table, key)] if isinstance(key, dict) else []


def read_items(
    store: ItemStore, region: str, keys: list[tuple[str, Mapping[str, Any]]]
) -> dict[Key, dict[str, Any] | None]:
    """The stored items by (table, key id); ItemStore.get returns items nothing else holds."""
    return {_key_id(table, key): store.get(region, table, key) for table, key in keys}


def _item_read_units(
    store: ItemStore, region: str, table: str, keys: Iterable[Mapping[str, Any]], consistent: bool
) -> float:
    return sum(read_units_for(item_size(store.get(region, table, key)), consistent) for key in keys)


def _query_units(
    store: ItemStore, region: str, payload: Mapping[str, Any], response: Mapping[str, Any]
) -> tuple[float, int]:
    """(read units, unsized items) of a Query or Scan."""
    table = str(payload.get("TableName", ""))
    shape = store.shape(region, table)
    indexes = shape.indexes if shape is not None else ()
    index = next((index for index in indexes if index.name == payload.get("IndexName")), None)
    items = response.get("Items") or []
    # A base-table read without a projection returns whole items: size them as returned.
    whole = shape is not None and index is None and not payload.get("ProjectionExpression")
    whole = whole and not payload.get("AttributesToGet")
    sizes = []
    unsized = 0
    for returned in items:
        if whole:
            sizes.append(item_size(returned))
            continue
        key = shape.key_of(returned) if shape is not None else None
        stored = store.get(region, table, key) if key is not None else None
        if stored is None:
            unsized += int(key is None)
            sizes.append(item_size(returned))
        elif index is not None and shape is not None:
            sizes.append(item_size(index_entry(shape, index, stored)))
        else:
            sizes.append(item_size(stored))
    scanned = response.get("ScannedCount", response.get("Count", len(items)))
    if isinstance(scanned, int) and scanned > len(items):
        unsized += scanned - len(items)
    consistent = bool(payload.get("ConsistentRead")) and index is None
    return read_units_for(sum(sizes), consistent), unsized  # per request, not per item


@dataclass
class DynamoDbCost:
    table_write_units: float = 0.0
    index_write_units: dict[str, float] = field(default_factory=dict)
    # (table or table/Index, partition key value) -> write units: what `bench scale` reads
    partition_write_units: dict[tuple[str, str], float] = field(default_factory=dict)
    read_units: float = 0.0
    unsized_items: int = 0
    uncosted: bool = False


def dynamodb_cost(
    store: ItemStore,
    region: str,
    operation: str,
    payload: Mapping[str, Any],
    response: Mapping[str, Any],
    *,
    ok: bool,
    condition_failed: bool,
    before: Mapping[Key, dict[str, Any] | None] | None = None,
    after: Mapping[Key, dict[str, Any] | None] | None = None,
) -> DynamoDbCost:
    """The capacity of one DynamoDB request (`before`/`after`: the items a write names)."""
    cost = DynamoDbCost()
    if operation in DYNAMODB_UNCOSTED:
        cost.uncosted = True
        return cost
    if operation in DYNAMODB_WRITES:
        if not ok and not condition_failed:
            return cost
        for item_key, old in (before or {}).items():
            shape = store.shape(region, item_key[0])
            if shape is not None:
                new = (after or {}).get(item_key) if ok else old
                _add_write(cost, shape, item_key[0], old, new, condition_failed=condition_failed)
        return cost
    if not ok or operation not in DYNAMODB_READS:
        return cost
    if operation == "GetItem":
        read_key = payload.get("Key")
        if isinstance(read_key, dict):
            table = str(payload.get("TableName", ""))
            cost.read_units = _item_read_units(
                store, region, table, [read_key], bool(payload.get("ConsistentRead"))
            )
    elif operation == "BatchGetItem":
        for table, request in (payload.get("RequestItems") or {}).items():
            keys = request.get("Keys") or []
            cost.read_units += _item_read_units(
                store, region, table, keys, bool(request.get("ConsistentRead"))
            )
    else:
        cost.read_units, cost.unsized_items = _query_units(store, region, payload, response)
    return cost


def _add_write(
    cost: DynamoDbCost,
    shape: TableShape,
    table: str,
    old: dict[str, Any] | None,
    new: dict[str, Any] | None,
    *,
    condition_failed: bool,
) -> None:
    units = write_units(shape, old, new, condition_failed=condition_failed)
    cost.table_write_units += units.table
    for name, value in units.indexes.items():
        cost.index_write_units[name] = cost.index_write_units.get(name, 0.0) + value
    for partition, landed in partition_writes(shape, table, old, new, units).items():
        cost.partition_write_units[partition] = cost.partition_write_units.get(partition, 0.0) + landed


class MotoItemStore:
    """The items of moto's in-process DynamoDB backend (used inside the moto server process)."""

    def __init__(self, account_id: str | None = None) -> None:
        from moto.core.models import DEFAULT_ACCOUNT_ID  # noqa: PLC0415 - moto only in its own process
        from moto.dynamodb.models import dynamodb_backends  # noqa: PLC0415

        from local.emulator import patches  # noqa: PLC0415

        self._backends = dynamodb_backends
        self._account = account_id or DEFAULT_ACCOUNT_ID
        self._lock = patches.DYNAMODB_LOCK
        self._shapes: dict[tuple[int, int], TableShape] = {}

    def lock(self) -> AbstractContextManager[Any]:
        return self._lock

    def _table(self, region: str, table: str) -> Any:
        try:
            return self._backends[self._account][region].get_table(table)
        except Exception:  # unknown table or region: nothing to size
            return None

    def shape(self, region: str, table: str) -> TableShape | None:
        found = self._table(region, table)
        if found is None:
            return None
        cache_key = (id(found), len(found.global_indexes or []) + len(found.indexes or []))
        cached = self._shapes.get(cache_key)
        if cached is None:
            cached = self._shapes[cache_key] = self._shape_of(found)
        return cached

    @staticmethod
    def _shape_of(found: Any) -> TableShape:
        keys = tuple(name for name in (found.hash_key_attr, found.range_key_attr) if name)
        indexes = tuple(
            IndexShape(
                name=index.name,
                key_attributes=tuple(index.schema_key_attrs),
                projection=str((index.projection or {}).get("ProjectionType", "ALL")),
                non_key_attributes=tuple((index.projection or {}).get("NonKeyAttributes", []) or []),
            )
            for index in [*(found.global_indexes or []), *(found.indexes or [])]
        )
        return TableShape(keys, indexes)

    def get(self, region: str, table: str, key: Mapping[str, Any]) -> dict[str, Any] | None:
        from moto.dynamodb.models.dynamo_type import DynamoType  # noqa: PLC0415

        found = self._table(region, table)
        if found is None or found.hash_key_attr not in key:
            return None
        try:
            hash_key = DynamoType(key[found.hash_key_attr])
            range_key = DynamoType(key[found.range_key_attr]) if found.range_key_attr else None
            item = found.get_item(hash_key, range_key)
        except Exception:  # a malformed key: moto answers the request with its own error
            return None
        if item is None:
            return None
        # to_json builds fresh dicts (maps and lists included); only set values are moto's own
        # lists, which an ADD may extend in place: copy those.
        attributes: dict[str, Any] = {
            name: {kind: list(value)} if kind in _SET_TYPES else {kind: value}
            for name, attribute in item.to_json()["Attributes"].items()
            for kind, value in attribute.items()
        }
        return attributes
