"""DynamoDB reads of `GET /tasks?limit=50` with 1,000 and with 50,000 tasks stored (moto, in-process).

For each table size, in a fresh `mock_aws()`: the TaskTable is created from taskflow.table_schema
exactly as the handler tests build it (key, ByCreated keys only, ByFinished, stream on), loaded with
BatchWriteItem (25 items a call; about 10 s for 50,000 through moto), then the real HTTP handler
(taskflow.handlers.http_api.handler) gets an API Gateway HTTP API payload v2 event for the first
page, and then for the page its `Link: <...>; rel="next"` header announces.

What DynamoDB did is counted on the boto3 client the repository uses (botocore event hooks):
requests (a page is one keys-only Query per listing shard, then one BatchGetItem), items and index
entries read (ScannedCount: what DynamoDB reads, and bills, before any filter) and read capacity.
moto reports a constant ConsumedCapacity, so RCUs are computed the way DynamoDB bills: a Query or
Scan per request, ceil(bytes of the items read / 4 KiB) x 0.5 (eventually consistent), BatchGetItem
the same per item,
item sizes by DynamoDB's rules (names + values; numbers ~1 byte per 2 digits + 1; maps and lists
3 bytes + 1 per element). For contrast, a paginated Scan of the same table (its requests and
ScannedCount measured; its bytes and RCUs those of the stored items in 1 MB pages).

Goal: items read and RCUs of the first page with 50,000 tasks <= 1.1x those with 1,000.

    python -m bench.list_reads
    python -m bench.list_reads --sizes 1000 50000 --limit 50
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final
from urllib.parse import parse_qs, urlsplit

# The Lambda asset's package (taskflow): table schema, env var names, the handler itself.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "lambdas"))

import boto3
from moto import mock_aws

from local.metering.capacity import EVENTUALLY_CONSISTENT, READ_UNIT_BYTES, item_size
from taskflow import env_vars, table_schema

REGION: Final = "us-east-1"
TABLE: Final = "TaskTable"
GOAL_RATIO: Final = 1.1
BATCH_WRITE_LIMIT: Final = 25
SCAN_PAGE_BYTES: Final = 1024 * 1024  # a Query or Scan response stops at 1 MB read
_LINK_NEXT: Final = re.compile(r'<([^>]*)>\s*;\s*rel="next"')

# What infra/http_api.py gives the HttpApiFunction (dummy values), plus Powertools' variables.
FUNCTION_ENV: Final = {
    env_vars.STAGE: "bench",
    env_vars.TASK_TABLE_NAME: TABLE,
    env_vars.TASK_LIST_SHARDS: str(table_schema.DEFAULT_LIST_SHARDS),
    env_vars.CORS_ORIGINS: "https://app.example.com",
    env_vars.CORS_HEADERS: "Content-Type,Authorization",
    env_vars.ALLOW_FAULT_INJECTION: "false",
    env_vars.POWERTOOLS_SERVICE_NAME: "taskflow",
    env_vars.POWERTOOLS_METRICS_NAMESPACE: "TaskBackendBench",
    env_vars.POWERTOOLS_LOG_LEVEL: "WARNING",
}
AWS_ENV: Final = {
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
}


# --------------------------------------------------------------------------- DynamoDB sizes


def read_units(bytes_read: int) -> float:
    """RCUs of one eventually consistent Query/Scan request that read `bytes_read` (sizes and
    units by DynamoDB's rules: local/metering/capacity.py, shared with the local request meter)."""
    return math.ceil(bytes_read / READ_UNIT_BYTES) * EVENTUALLY_CONSISTENT


# --------------------------------------------------------------------------- the meter


@dataclass
class Call:
    operation: str
    items_read: int  # ScannedCount (Count when the response has none; items for BatchGetItem)
    items_returned: int
    bytes_returned: int
    rcu: float  # computed from item sizes
    reported: Any  # ConsumedCapacity as the service (moto) returned it


@dataclass
class DynamoDbMeter:
    """Records every call a boto3 DynamoDB client makes (botocore event hooks)."""

    calls: list[Call] = field(default_factory=list)

    def attach(self, client: Any) -> None:
        client.meta.events.register("provide-client-params.dynamodb.*", self._ask_for_capacity)
        client.meta.events.register("after-call.dynamodb.*", self._record)

    @staticmethod
    def _ask_for_capacity(params: dict[str, Any], model: Any, **_: Any) -> None:
        if "ReturnConsumedCapacity" in model.input_shape.members:
            params.setdefault("ReturnConsumedCapacity", "TOTAL")

    def _record(self, parsed: dict[str, Any], model: Any, **_: Any) -> None:
        if model.name == "BatchGetItem":
            # Billed per item, each rounded up to 4 KiB (not per request like a Query).
            got = [item for items in parsed.get("Responses", {}).values() for item in items]
            units = sum(read_units(item_size(item)) for item in got)
            size = sum(item_size(item) for item in got)
            self.calls.append(
                Call(model.name, len(got), len(got), size, units, parsed.get("ConsumedCapacity"))
            )
            return
        items = parsed.get("Items")
        if items is None:
            items = [parsed["Item"]] if parsed.get("Item") else []
        read = int(parsed.get("ScannedCount", parsed.get("Count", len(items))))
        if "Items" in parsed and read != len(items):
            # A FilterExpression discarded items: their sizes are unknown here (none is used).
            print(f"  note: {model.name} read {read} items but returned {len(items)}", file=sys.stderr)
        size = sum(item_size(item) for item in items)
        self.calls.append(
            Call(model.name, read, len(items), size, read_units(size), parsed.get("ConsumedCapacity"))
        )

    def take(self) -> list[Call]:
        calls, self.calls = self.calls, []
        return calls


@dataclass(frozen=True)
class Reads:
    requests: int
    items_read: int
    items_returned: int  # of BatchGetItem: the tasks of the page (Query returns index keys only)
    bytes_read: int
    rcu: float
    reported_rcu: float | None

    @classmethod
    def of(cls, calls: list[Call]) -> Reads:
        # BatchGetItem reports a list (one entry per table), Query and Scan one entry.
        entries = [entry for call in calls if call.reported for entry in _as_list(call.reported)]
        reported = [entry.get("CapacityUnits") for entry in entries]
        return cls(
            requests=len(calls),
            items_read=sum(call.items_read for call in calls),
            items_returned=sum(call.items_returned for call in calls if call.operation == "BatchGetItem"),
            bytes_read=sum(call.bytes_returned for call in calls),
            rcu=sum(call.rcu for call in calls),
            reported_rcu=sum(float(value) for value in reported) if reported else None,
        )


def _as_list(value: Any) -> list[dict[str, Any]]:
    return value if isinstance(value, list) else [value]


# --------------------------------------------------------------------------- table and tasks


def create_task_table(dynamodb: Any, name: str) -> None:
    """The TaskTable as infra/ declares it (the request tests use too: table_schema)."""
    dynamodb.create_table(**table_schema.task_table_request(name))


def task_items(count: int) -> Iterator[dict[str, Any]]:
    """`count` stored tasks as the repository writes them (TaskRepository.stored_item: listing and
    finished keys included), one microsecond apart, a third each pending, success and error."""
    from dataclasses import replace  # noqa: PLC0415

    from taskflow.domain.status import TaskStatus  # noqa: PLC0415
    from taskflow.domain.submission import TaskSubmission  # noqa: PLC0415
    from taskflow.domain.task import new_task  # noqa: PLC0415
    from taskflow.repositories.dynamodb import serialize  # noqa: PLC0415
    from taskflow.repositories.task_repository import TaskRepository  # noqa: PLC0415

    repository = TaskRepository(TABLE, client=object(), list_shards=table_schema.DEFAULT_LIST_SHARDS)

    statuses = [TaskStatus.PENDING, TaskStatus.SUCCESS, TaskStatus.ERROR]
    start = datetime(2026, 11, 25, 23, 0, tzinfo=UTC)
    for number in range(count):
        submission = TaskSubmission(answer=f"answer number {number}", payload={"n": number, "tag": "bench"})
        task = new_task(submission, f"task-{number:06d}", start + timedelta(microseconds=number))
        status = statuses[number % 3]
        if status is not TaskStatus.PENDING:
            task = replace(
                task,
                status=status,
                version=3,
                retries=2 if status is TaskStatus.ERROR else 0,
                error_message="gave up after 3 attempts" if status is TaskStatus.ERROR else None,
            )
        yield serialize(repository.stored_item(task))


def load(dynamodb: Any, items: list[dict[str, Any]]) -> None:
    for start in range(0, len(items), BATCH_WRITE_LIMIT):
        requests = [{"PutRequest": {"Item": item}} for item in items[start : start + BATCH_WRITE_LIMIT]]
        while requests:
            response = dynamodb.batch_write_item(RequestItems={TABLE: requests})
            requests = response.get("UnprocessedItems", {}).get(TABLE, [])


# --------------------------------------------------------------------------- requests


@dataclass
class LambdaContext:
    function_name: str = "HttpApiFunction"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = f"arn:aws:lambda:{REGION}:123456789012:function:HttpApiFunction"
    aws_request_id: str = "bench-request"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


def list_event(query: Mapping[str, str]) -> dict[str, Any]:
    """GET /tasks as API Gateway HTTP API (payload v2, $default stage) delivers it."""
    raw_query = "&".join(f"{name}={value}" for name, value in query.items())
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": "/tasks",
        "rawQueryString": raw_query,
        "headers": {"host": "api.example.com", "origin": "https://app.example.com", "user-agent": "bench"},
        "queryStringParameters": dict(query),
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "api123",
            "domainName": "api.example.com",
            "domainPrefix": "api",
            "http": {
                "method": "GET",
                "path": "/tasks",
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": "bench",
            },
            "requestId": "bench-request",
            "routeKey": "$default",
            "stage": "$default",
            "time": "25/Nov/2026:23:00:00 +0000",
            "timeEpoch": 1795647600000,
        },
        "isBase64Encoded": False,
    }


def next_query(response: Mapping[str, Any]) -> dict[str, str] | None:
    """The query string of the page the Link header announces (None on the last page)."""
    headers = {name.lower(): value for name, value in (response.get("headers") or {}).items()}
    match = _LINK_NEXT.search(headers.get("link", ""))
    if match is None:
        return None
    return {name: values[-1] for name, values in parse_qs(urlsplit(match.group(1)).query).items()}


@dataclass(frozen=True)
class SizeResult:
    stored: int
    load_seconds: int
    pages: list[Reads]
    scan: Reads


def measure(stored: int, limit: int, pages: int) -> SizeResult:
    """One fresh moto account: the table, `stored` tasks, `pages` pages of GET /tasks, a Scan."""
    from taskflow import lazy  # noqa: PLC0415 - imported once the environment is set
    from taskflow.clients import aws  # noqa: PLC0415
    from taskflow.handlers import http_api  # noqa: PLC0415
    from taskflow.settings import reset_settings  # noqa: PLC0415

    with mock_aws():
        lazy.reset_all()
        reset_settings()
        aws.reset_clients()
        loader = boto3.client("dynamodb", region_name=REGION)
        create_task_table(loader, TABLE)
        items = list(task_items(stored))
        started = time.perf_counter()
        load(loader, items)
        load_seconds = round(time.perf_counter() - started)
        table_count = loader.describe_table(TableName=TABLE)["Table"]["ItemCount"]
        if table_count != stored:
            raise RuntimeError(f"loaded {table_count} tasks, expected {stored}")

        meter = DynamoDbMeter()
        meter.attach(aws.client("dynamodb"))  # the client TaskRepository uses (cached per process)
        page_reads = []
        seen: set[str] = set()
        query: dict[str, str] | None = {"limit": str(limit)}
        for _ in range(pages):
            if query is None:
                break
            response = http_api.handler(list_event(query), LambdaContext())
            if response["statusCode"] != 200:
                raise RuntimeError(
                    f"GET /tasks?{query} answered {response['statusCode']}: {response['body']}"
                )
            task_ids = [task["taskId"] for task in json.loads(response["body"])]
            if seen.intersection(task_ids):
                raise RuntimeError("the next page repeats tasks of the previous one")
            seen.update(task_ids)
            returned = len(task_ids)
            reads = Reads.of(meter.take())
            if returned != reads.items_returned:
                raise RuntimeError(
                    f"the page holds {returned} tasks, DynamoDB returned {reads.items_returned}"
                )
            page_reads.append(reads)
            query = next_query(response)

        scan = scan_reads(meter, [item_size(item) for item in items])
    return SizeResult(stored, load_seconds, page_reads, scan)


def scan_reads(meter: DynamoDbMeter, stored_sizes: list[int]) -> Reads:
    """A paginated Scan of the table. It asks for counts only (moto takes minutes to serialize
    50,000 items); the bytes and RCUs are those of the stored items, cut into 1 MB pages."""
    client = boto3.client("dynamodb", region_name=REGION)
    meter.attach(client)
    for _ in client.get_paginator("scan").paginate(TableName=TABLE, Select="COUNT"):
        pass
    calls = meter.take()
    rcu, page_bytes = 0.0, 0
    for size in stored_sizes:
        if page_bytes + size > SCAN_PAGE_BYTES:
            rcu, page_bytes = rcu + read_units(page_bytes), 0
        page_bytes += size
    return Reads(
        requests=len(calls),
        items_read=sum(call.items_read for call in calls),
        items_returned=0,
        bytes_read=sum(stored_sizes),
        rcu=rcu + read_units(page_bytes),
        reported_rcu=None,
    )


# --------------------------------------------------------------------------- report


def print_report(results: list[SizeResult], limit: int) -> bool:
    """Print the figures; True if the goal is met."""
    small, large = results[0], results[-1]
    width = 14
    sizes = "".join(f"{result.stored:>{width},}" for result in results)
    print(f"{'tasks stored':<38}{sizes}{'ratio':>10}")
    print("-" * (38 + width * len(results) + 10))

    def row(label: str, values: list[float], fmt: str, ratio: bool = True) -> float:
        cells = "".join(f"{value:>{width}{fmt}}" for value in values)
        quotient = values[-1] / values[0] if values[0] else math.inf
        print(f"  {label:<36}{cells}" + (f"{quotient:>9.2f}x" if ratio else ""))
        return quotient

    ratios: list[float] = []
    page_count = min(len(result.pages) for result in results)
    for number in range(page_count):
        title = f"GET /tasks?limit={limit}" if number == 0 else f"page {number + 1} (Link rel=next cursor)"
        print(title)
        reads = [result.pages[number] for result in results]
        row("requests (Queries + BatchGetItem)", [r.requests for r in reads], "d")
        items_ratio = row("items and index entries read", [r.items_read for r in reads], ",d")
        row("bytes read", [r.bytes_read for r in reads], ",d")
        rcu_ratio = row("RCUs (eventually consistent)", [r.rcu for r in reads], ".1f")
        if number == 0:
            ratios = [items_ratio, rcu_ratio]
    print("Scan of the whole table (contrast; bytes and RCUs from the stored items)")
    row("Scan requests (1 MB pages)", [r.scan.requests for r in results], "d")
    scan_ratio = row("items read (ScannedCount)", [r.scan.items_read for r in results], ",d")
    row("bytes read", [r.scan.bytes_read for r in results], ",d")
    row("RCUs (eventually consistent)", [r.scan.rcu for r in results], ",.1f")
    print()
    reported = {page.reported_rcu for result in results for page in result.pages}
    print(
        f"moto's own ConsumedCapacity per page: {sorted(reported, key=str)} (a constant, not a measure);"
        " RCUs above are computed from the sizes of the items read."
    )
    page = large.pages[0]
    print(
        f"at {large.stored:,} tasks a Scan reads {large.scan.items_read / page.items_read:,.0f}x the"
        f" items and {large.scan.rcu / page.rcu:,.0f}x the RCUs of one page"
        f" (Scan growth {small.stored:,} -> {large.stored:,}: {scan_ratio:.1f}x)."
    )
    met = all(ratio <= GOAL_RATIO for ratio in ratios)
    verdict = "met" if met else "MISSED"
    print(
        f"goal {verdict}: first page with {large.stored:,} vs {small.stored:,} tasks:"
        f" items read {ratios[0]:.2f}x, RCUs {ratios[1]:.2f}x (goal <= {GOAL_RATIO}x)"
    )
    return met


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.list_reads", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes",
        type=int,
        nargs="+",
        default=[1_000, 50_000],
        help="tasks stored, at least two sizes (the figure is their ratio)",
    )
    parser.add_argument("--limit", type=int, default=50, help="page size asked for (?limit=)")
    parser.add_argument("--pages", type=int, default=2, help="pages to read, following the Link header")
    args = parser.parse_args(argv)
    if len(args.sizes) < 2 or min(args.sizes) < 1 or args.limit < 1 or args.pages < 1:
        parser.error("give at least two positive --sizes, a positive --limit and --pages")

    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
        os.environ.pop(name, None)
    os.environ.update({**AWS_ENV, **FUNCTION_ENV})

    results = []
    for stored in sorted(args.sizes):
        result = measure(stored, args.limit, args.pages)
        print(f"{stored:,} tasks loaded with BatchWriteItem in {result.load_seconds} s", flush=True)
        results.append(result)
    print()
    print_report(results, args.limit)
    return 0


if __name__ == "__main__":
    sys.exit(main())
