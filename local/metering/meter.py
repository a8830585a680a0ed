"""Counts every request the embedded AWS (moto) serves, by caller, service, operation and resource
(docs/local-stack.md, "Request metering").

A WSGI middleware in front of moto's server app (installed by local/emulator/server.py). Per
request it records who asked for what (local/metering/protocol.py), errors, DynamoDB
conditional-check failures, SQS billed requests and DynamoDB capacity
(local/metering/dynamodb_cost.py). Nothing else about the request changes: the body is read once
and handed to moto unchanged.
"""

from __future__ import annotations

import io
import json
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict, dataclass, field
from typing import Any, Final, Protocol

from local.metering.dynamodb_cost import (
    ITEM_WRITES,
    DynamoDbCost,
    ItemStore,
    Key,
    dynamodb_cost,
    read_items,
    write_keys,
)
from local.metering.protocol import caller_of, classify, region_of, resource_of, sqs_billed_requests

METER_PATH: Final = "/_local/requests"
# Distinct partition key values counted per table and index (a long session stays bounded); writes
# to further partitions are summed under OTHER_PARTITIONS.
MAX_PARTITIONS: Final = 200_000
OTHER_PARTITIONS: Final = "(other partitions)"

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def camel_json(counts: Any, omit: tuple[str, ...] = ()) -> dict[str, Any]:
    """A dataclass of counters as the stack's JSON documents write it: each field (a copy) under its
    camelCase name, in field order."""
    return {
        re.sub(r"_([a-z])", lambda m: m.group(1).upper(), name): value
        for name, value in asdict(counts).items()
        if name not in omit
    }


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
    cost: DynamoDbCost = field(default_factory=DynamoDbCost)


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
        cost = observation.cost
        with self._lock:
            count = self._counts.get(key)
            if count is None:
                count = self._counts[key] = OperationCount()
            count.requests += 1
            count.errors += int(observation.error)
            count.condition_failed += int(observation.condition_failed)
            count.billed_requests += observation.billed_requests
            count.write_units += cost.table_write_units + sum(cost.index_write_units.values())
            for index, units in cost.index_write_units.items():
                count.index_write_units[index] = count.index_write_units.get(index, 0.0) + units
            count.read_units += cost.read_units
            count.unsized_items += cost.unsized_items
            count.uncosted += int(cost.uncosted)
            for (where, partition), units in cost.partition_write_units.items():
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
                    | camel_json(count)
                    for (caller, service, operation, resource), count in sorted(self._counts.items())
                ],
                "partitionWriteUnits": {n: dict(p) for n, p in sorted(self._partitions.items())},
            }
            if reset:
                self._counts = {}
                self._partitions = {}
                self._since = now
            return document


def _headers(environ: Mapping[str, Any]) -> dict[str, str]:
    headers = {
        name[5:].replace("_", "-").lower(): str(value)
        for name, value in environ.items()
        if name.startswith("HTTP_")
    }
    if environ.get("CONTENT_TYPE"):
        headers["content-type"] = str(environ["CONTENT_TYPE"])
    return headers


def _json(data: bytes) -> dict[str, Any]:
    if not data:
        return {}
    try:
        value = json.loads(data)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


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
        region = region_of(headers, self.default_region)
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
                named = write_keys(store, region, operation, payload)
                before = read_items(store, region, named)
            result = self.app(environ, capture)
            try:
                chunks = list(result)
            finally:
                close = getattr(result, "close", None)
                if callable(close):
                    close()
            if is_write and store is not None:
                after = read_items(store, region, named)
                if journal is not None and status and status[0] < 400:
                    journal.items_written(after)
        if journal is not None:
            journal.settle()  # nothing this response shows may be lost by a crash after it
        response = b"".join(chunks)
        try:
            ok = bool(status) and status[0] < 400
            condition_failed = False
            cost = DynamoDbCost()
            if service == "dynamodb":
                # The body matters only for a failure's type and a Query's or Scan's items.
                answer = _json(response) if not ok or operation in ("Query", "Scan") else {}
                condition_failed = not ok and "ConditionalCheckFailed" in str(answer.get("__type", ""))
                if store is not None:
                    cost = dynamodb_cost(
                        store, region, operation, payload, answer,
                        ok=ok, condition_failed=condition_failed, before=before, after=after,
                    )  # fmt: skip
            billed = sqs_billed_requests(len(body), len(response)) if service == "sqs" else 1
            observation = Observation(
                caller_of(headers), service, operation, resource_of(payload), error=not ok,
                condition_failed=condition_failed, billed_requests=billed, cost=cost,
            )  # fmt: skip
            self.meter.record(observation)
        except Exception as error:  # counting must never break a request
            print(f"request meter: {error!r}", flush=True)
        return [response]

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

    def _serve_counters(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        if method not in ("GET", "DELETE"):
            start_response("405 Method Not Allowed", [("Allow", "GET, DELETE")])
            return [b""]
        document = self.meter.snapshot(reset=method == "DELETE")
        data = json.dumps(document).encode()
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
        return [data]
