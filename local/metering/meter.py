"""Counts every request the embedded AWS (moto) serves, by caller, service and operation.

A WSGI middleware in front of moto's server app (installed by local/emulator/server.py). Per
request it records:

* the service and operation: from `X-Amz-Target` (`DynamoDB_20120810.PutItem`,
  `AmazonSQS.ReceiveMessage`, `DynamoDBStreams_20120810.GetRecords`), else the service of the
  SigV4 credential scope in `Authorization` and the `Action` parameter (query protocol);
* the resource: the table (`TableName`), the queue (last segment of `QueueUrl`) or the stream's
  table (`StreamArn`), when the request names one;
* the caller: the local stack's own calls carry `X-Local-Caller` (`esm-sqs/<Function>`,
  `esm-stream/<Function>`, `ttl-sweeper`, `depth-monitor`, `provision`; see local/emulator/aws_json.py);
  a function's boto3 calls carry `app/<Function>` in their User-Agent (the stack sets
  `AWS_SDK_UA_APP_ID` in each function's environment); anything else is `sdk` (boto3 without an
  app id) or `other`;
* errors (HTTP status >= 400) and, for DynamoDB, conditional-check failures;
* SQS billed requests: every 64 KB of payload (the larger of request and response) is one;
* DynamoDB capacity, as DynamoDB bills it (local/metering/capacity.py), since moto's own
  ConsumedCapacity is a constant. Writes: the items before and after the request are read from
  moto's tables while holding the DynamoDB lock of local/emulator/patches.py around the request (so
  no other write interleaves), which gives the table units and, for every index, whether its
  entry was put, deleted, moved (key change: delete + put) or updated. Reads: GetItem and
  BatchGetItem size the stored item; Query and Scan size each item read by looking it up by the
  table key it carries (so a projection does not shrink it); items a filter dropped, or items
  returned without their table key, cannot be sized and are counted as `unsizedItems`.
  Transactions and PartiQL are counted as requests with `uncosted` capacity (none are used).

`GET /_local/requests` on the moto port returns the counters as JSON; `DELETE /_local/requests`
returns them and starts counting from zero. Nothing else about the request changes: the body is
read once and handed to moto unchanged.
"""

from __future__ import annotations

import io
import json
import math
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any, Final, Protocol
from urllib.parse import parse_qs

from local.metering.capacity import (
    IndexShape,
    TableShape,
    index_entry,
    item_size,
    partition_writes,
    query_read_units,
    read_units_for,
    write_units,
)

METER_PATH: Final = "/_local/requests"
CALLER_HEADER: Final = "X-Local-Caller"
SQS_CHUNK_BYTES: Final = 64 * 1024
# Distinct partition key values counted per table and index (a long session stays bounded); writes
# to further partitions are summed under OTHER_PARTITIONS.
MAX_PARTITIONS: Final = 200_000
OTHER_PARTITIONS: Final = "(other partitions)"

_TARGET_SERVICES: Final = {
    "DynamoDB_20120810": "dynamodb",
    "DynamoDBStreams_20120810": "dynamodbstreams",
    "AmazonSQS": "sqs",
}
# Credential=<key>/<date>/<region>/<service>/aws4_request
_CREDENTIAL_SCOPE: Final = re.compile(r"Credential=[^/,\s]+/\d+/([^/]+)/([^/]+)/aws4_request")
_APP_ID: Final = re.compile(r"(?:^|\s)app/(\S+)")
_STREAM_TABLE: Final = re.compile(r":table/([^/]+)/stream/")

_SET_TYPES: Final = frozenset({"SS", "NS", "BS"})

DYNAMODB_WRITES: Final = frozenset({"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem"})
# Writes whose items are read before and after (for the capacity, and for the journal of the
# durable state, local/state/moto_state.py); PartiQL writes name no keys and are neither.
ITEM_WRITES: Final = DYNAMODB_WRITES | {"TransactWriteItems"}
DYNAMODB_READS: Final = frozenset({"GetItem", "BatchGetItem", "Query", "Scan"})
DYNAMODB_UNCOSTED: Final = frozenset(
    {
        "TransactWriteItems",
        "TransactGetItems",
        "ExecuteStatement",
        "BatchExecuteStatement",
        "ExecuteTransaction",
    }
)

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
Key = tuple[str, str]  # (table name, canonical JSON of the key)


# --------------------------------------------------------------------------- classification


def classify(headers: Mapping[str, str], query_string: str = "", body: bytes = b"") -> tuple[str, str]:
    """(service, operation) of an AWS request, from its headers, query string and form body."""
    target = headers.get("x-amz-target", "")
    if target:
        prefix, _, operation = target.rpartition(".")
        return _TARGET_SERVICES.get(prefix, prefix.lower() or "unknown"), operation or "unknown"
    scope = _CREDENTIAL_SCOPE.search(headers.get("authorization", ""))
    service = scope.group(2) if scope else "unknown"
    action = parse_qs(query_string).get("Action")
    if not action and body and "x-www-form-urlencoded" in headers.get("content-type", ""):
        action = parse_qs(body.decode("utf-8", "replace")).get("Action")
    return service, (action[0] if action else "unknown")


def caller_of(headers: Mapping[str, str]) -> str:
    """Who made the request: the stack component (X-Local-Caller), `function:<Name>`
    (a function's boto3, by its User-Agent app id), `sdk` or `other`."""
    explicit = headers.get(CALLER_HEADER.lower(), "").strip()
    if explicit:
        return explicit
    agent = headers.get("user-agent", "")
    app = _APP_ID.search(agent)
    if app:
        return f"function:{app.group(1)}"
    if "Boto3/" in agent or "Botocore/" in agent:
        return "sdk"
    return "other"


def resource_of(payload: Mapping[str, Any]) -> str:
    if isinstance(payload.get("TableName"), str):
        return str(payload["TableName"])
    if isinstance(payload.get("QueueUrl"), str):
        return str(payload["QueueUrl"]).rstrip("/").rsplit("/", 1)[-1]
    if isinstance(payload.get("StreamArn"), str):
        match = _STREAM_TABLE.search(payload["StreamArn"])
        return match.group(1) if match else ""
    if isinstance(payload.get("RequestItems"), dict) and len(payload["RequestItems"]) == 1:
        return str(next(iter(payload["RequestItems"])))
    return ""


def sqs_billed_requests(request_bytes: int, response_bytes: int) -> int:
    """SQS bills every 64 KB chunk of a request's payload as one request."""
    return max(1, math.ceil(max(request_bytes, response_bytes) / SQS_CHUNK_BYTES))


_TARGET_PREFIXES: Final = {service: prefix for prefix, service in _TARGET_SERVICES.items()}


def json_protocol_headers(service: str, action: str, region: str, caller: str = "") -> dict[str, str]:
    """The headers of an AWS JSON-protocol request as the local stack sends them to moto: the
    target, a credential scope naming the region and service (no real signature), the caller."""
    scope = "dynamodb" if service == "dynamodbstreams" else service
    headers = {
        "Content-Type": "application/x-amz-json-1.0",
        "X-Amz-Target": f"{_TARGET_PREFIXES[service]}.{action}",
        "Authorization": (
            f"AWS4-HMAC-SHA256 Credential=local/20260101/{region}/{scope}/aws4_request, "
            "SignedHeaders=host, Signature=0"
        ),
    }
    if caller:
        headers[CALLER_HEADER] = caller
    return headers


# --------------------------------------------------------------------------- counters


@dataclass
class OperationCount:
    requests: int = 0
    errors: int = 0
    condition_failed: int = 0
    billed_requests: int = 0  # SQS: 64 KB chunks; others: requests
    write_units: float = 0.0  # table + indexes
    index_write_units: dict[str, float] = field(default_factory=dict)
    read_units: float = 0.0
    unsized_items: int = 0  # read but not sized (filtered out, or returned without the table key)
    uncosted: int = 0  # DynamoDB requests whose capacity is not computed

    def to_json(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "errors": self.errors,
            "conditionFailed": self.condition_failed,
            "billedRequests": self.billed_requests,
            "writeUnits": self.write_units,
            "indexWriteUnits": dict(self.index_write_units),
            "readUnits": self.read_units,
            "unsizedItems": self.unsized_items,
            "uncosted": self.uncosted,
        }


@dataclass(frozen=True)
class Observation:
    """What one request cost, as recorded."""

    caller: str
    service: str
    operation: str
    resource: str = ""
    error: bool = False
    condition_failed: bool = False
    billed_requests: int = 1
    table_write_units: float = 0.0
    index_write_units: Mapping[str, float] = field(default_factory=dict)
    # (table or table/Index, partition key value) -> write units: what `bench scale` reads
    partition_write_units: Mapping[tuple[str, str], float] = field(default_factory=dict)
    read_units: float = 0.0
    unsized_items: int = 0
    uncosted: bool = False


class RequestMeter:
    """Thread-safe counters keyed by (caller, service, operation, resource)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, str, str, str], OperationCount] = {}
        self._partitions: dict[str, dict[str, float]] = {}  # table or table/Index -> partition -> units
        self._since = clock()

    def record(self, observation: Observation) -> None:
        key = (observation.caller, observation.service, observation.operation, observation.resource)
        with self._lock:
            count = self._counts.get(key)
            if count is None:
                count = self._counts[key] = OperationCount()
            count.requests += 1
            count.errors += int(observation.error)
            count.condition_failed += int(observation.condition_failed)
            count.billed_requests += observation.billed_requests
            count.write_units += observation.table_write_units + sum(observation.index_write_units.values())
            for index, units in observation.index_write_units.items():
                count.index_write_units[index] = count.index_write_units.get(index, 0.0) + units
            count.read_units += observation.read_units
            count.unsized_items += observation.unsized_items
            count.uncosted += int(observation.uncosted)
            for (where, partition), units in observation.partition_write_units.items():
                partitions = self._partitions.setdefault(where, {})
                if partition in partitions or len(partitions) < MAX_PARTITIONS:
                    partitions[partition] = partitions.get(partition, 0.0) + units
                else:
                    partitions[OTHER_PARTITIONS] = partitions.get(OTHER_PARTITIONS, 0.0) + units

    def snapshot(self, reset: bool = False) -> dict[str, Any]:
        with self._lock:
            now = self._clock()
            document = {
                "since": self._since,
                "now": now,
                "operations": [
                    {"caller": caller, "service": service, "operation": operation, "resource": resource}
                    | count.to_json()
                    for (caller, service, operation, resource), count in sorted(self._counts.items())
                ],
                "partitionWriteUnits": {n: dict(p) for n, p in sorted(self._partitions.items())},
            }
            if reset:
                self._counts = {}
                self._partitions = {}
                self._since = now
            return document


# --------------------------------------------------------------------------- DynamoDB items


class ItemStore(Protocol):
    """Read access to the stored items (moto's tables; a dict in the tests)."""

    def lock(self) -> AbstractContextManager[Any]: ...

    def shape(self, region: str, table: str) -> TableShape | None: ...

    def get(self, region: str, table: str, key: Mapping[str, Any]) -> dict[str, Any] | None:
        """The item, as a copy later writes to the table do not change."""
        ...


def _key_id(table: str, key: Mapping[str, Any]) -> Key:
    return table, json.dumps(key, sort_keys=True, default=repr)


def _write_keys(
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
                    keys += _write_keys(store, region, f"{kind}Item", {**action, "TableName": name})
        return keys
    table = str(payload.get("TableName", ""))
    if operation == "PutItem":
        shape = store.shape(region, table)
        put_key = shape.key_of(payload.get("Item") or {}) if shape is not None else None
        return [(table, put_key)] if put_key else []
    key = payload.get("Key")
    return [(table, key)] if isinstance(key, dict) else []


def _read_items(
    store: ItemStore, region: str, keys: list[tuple[str, Mapping[str, Any]]]
) -> dict[Key, dict[str, Any] | None]:
    """The stored items by (table, key id); ItemStore.get returns items nothing else holds."""
    return {_key_id(table, key): store.get(region, table, key) for table, key in keys}


def _item_read_units(
    store: ItemStore, region: str, table: str, keys: Iterable[Mapping[str, Any]], consistent: bool
) -> float:
    return sum(read_units_for(item_size(store.get(region, table, key)), consistent) for key in keys)


def _index_of(shape: TableShape | None, name: Any) -> IndexShape | None:
    if shape is None or not isinstance(name, str):
        return None
    return next((index for index in shape.indexes if index.name == name), None)


def _query_units(
    store: ItemStore, region: str, payload: Mapping[str, Any], response: Mapping[str, Any]
) -> tuple[float, int]:
    """(read units, unsized items) of a Query or Scan."""
    table = str(payload.get("TableName", ""))
    shape = store.shape(region, table)
    index = _index_of(shape, payload.get("IndexName"))
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
    return query_read_units(sizes, consistent), unsized


@dataclass
class DynamoDbCost:
    table_write_units: float = 0.0
    index_write_units: dict[str, float] = field(default_factory=dict)
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
        self._lock = patches.dynamodb_lock()
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


# --------------------------------------------------------------------------- the middleware


def _headers(environ: Mapping[str, Any]) -> dict[str, str]:
    headers = {
        name[5:].replace("_", "-").lower(): str(value)
        for name, value in environ.items()
        if name.startswith("HTTP_")
    }
    if environ.get("CONTENT_TYPE"):
        headers["content-type"] = str(environ["CONTENT_TYPE"])
    return headers


def _region(headers: Mapping[str, str], default: str) -> str:
    match = _CREDENTIAL_SCOPE.search(headers.get("authorization", ""))
    return match.group(1) if match else default


def _json(data: bytes) -> dict[str, Any]:
    if not data:
        return {}
    try:
        value = json.loads(data)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


@dataclass(frozen=True)
class _Exchange:
    """One request and its answer, as the meter needs them."""

    headers: Mapping[str, str]
    service: str
    operation: str
    payload: Mapping[str, Any]
    region: str
    status: int
    body: bytes
    response: bytes
    before: Mapping[Key, dict[str, Any] | None]
    after: Mapping[Key, dict[str, Any] | None]


class Journal(Protocol):
    """Where the durable state records a request's changes (local/state/moto_state.py)."""

    def unit(self) -> AbstractContextManager[Any]: ...

    def items_written(self, after: Mapping[Key, dict[str, Any] | None]) -> None: ...

    def settle(self) -> None: ...


class RequestMeterMiddleware:
    """WSGI middleware: serves METER_PATH, counts every other request (see the module docstring).

    With a `journal`, each request runs in one of its units of work (a successful item write
    hands it the items' images, and the unit is handed over while the DynamoDB lock is held), and
    the response waits until the journal has everything handed over so far on disk."""

    def __init__(
        self,
        app: WsgiApp,
        meter: RequestMeter | None = None,
        store: ItemStore | None = None,
        default_region: str = "us-east-1",
        journal: Journal | None = None,
    ) -> None:
        self.app = app
        self.meter = meter or RequestMeter()
        self.store = store
        self.default_region = default_region
        self.journal = journal

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == METER_PATH:
            return self._serve_counters(environ, start_response)
        body = self._read_body(environ)
        headers = _headers(environ)
        service, operation = classify(headers, str(environ.get("QUERY_STRING", "")), body)
        payload = _json(body) if service in ("dynamodb", "dynamodbstreams", "sqs") else {}
        region = _region(headers, self.default_region)
        status: list[int] = []

        def capture(status_line: str, response_headers: Any, exc_info: Any = None) -> Any:
            status.append(int(status_line.split(" ", 1)[0]))
            return start_response(status_line, response_headers, exc_info)

        store = self.store
        is_write = service == "dynamodb" and operation in ITEM_WRITES and store is not None
        named: list[tuple[str, Mapping[str, Any]]] = []
        before: dict[Key, dict[str, Any] | None] = {}
        after: dict[Key, dict[str, Any] | None] = {}
        guard: AbstractContextManager[Any] = store.lock() if is_write and store is not None else nullcontext()
        journal = self.journal
        with guard, journal.unit() if journal is not None else nullcontext():
            if is_write and store is not None:
                named = _write_keys(store, region, operation, payload)
                before = _read_items(store, region, named)
            result = self.app(environ, capture)
            try:
                chunks = list(result)
            finally:
                close = getattr(result, "close", None)
                if callable(close):
                    close()
            if is_write and store is not None:
                after = _read_items(store, region, named)
                if journal is not None and status and status[0] < 400:
                    journal.items_written(after)
        if journal is not None:
            journal.settle()  # nothing this response shows may be lost by a crash after it
        exchange = _Exchange(
            headers, service, operation, payload, region, status[0] if status else 500, body,
            b"".join(chunks), before, after,
        )  # fmt: skip
        try:
            self._record(exchange)
        except Exception as error:  # counting must never break a request
            print(f"request meter: {error!r}", flush=True)
        return [exchange.response]

    @staticmethod
    def _read_body(environ: dict[str, Any]) -> bytes:
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length <= 0:
            return b""
        body: bytes = environ["wsgi.input"].read(length)
        environ["wsgi.input"] = io.BytesIO(body)
        return body

    def _record(self, exchange: _Exchange) -> None:
        service, operation, status = exchange.service, exchange.operation, exchange.status
        ok = status < 400
        condition_failed = False
        cost = DynamoDbCost()
        if service == "dynamodb":
            # The body matters only for a failure's type and a Query's or Scan's items.
            answer = _json(exchange.response) if not ok or operation in ("Query", "Scan") else {}
            condition_failed = not ok and "ConditionalCheckFailed" in str(answer.get("__type", ""))
            if self.store is not None:
                cost = dynamodb_cost(
                    self.store, exchange.region, operation, exchange.payload, answer,
                    ok=ok, condition_failed=condition_failed, before=exchange.before, after=exchange.after,
                )  # fmt: skip
        self.meter.record(
            Observation(
                caller=caller_of(exchange.headers),
                service=service,
                operation=operation,
                resource=resource_of(exchange.payload),
                error=not ok,
                condition_failed=condition_failed,
                billed_requests=(
                    sqs_billed_requests(len(exchange.body), len(exchange.response)) if service == "sqs" else 1
                ),
                table_write_units=cost.table_write_units,
                index_write_units=cost.index_write_units,
                partition_write_units=cost.partition_write_units,
                read_units=cost.read_units,
                unsized_items=cost.unsized_items,
                uncosted=cost.uncosted,
            )
        )

    def _serve_counters(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        if method not in ("GET", "DELETE"):
            start_response("405 Method Not Allowed", [("Allow", "GET, DELETE")])
            return [b""]
        document = self.meter.snapshot(reset=method == "DELETE")
        data = json.dumps(document).encode()
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
        return [data]
