"""Hot partitions: the write units per second the busiest partition of the task table and of each of
its indexes would take at 1,000, 10,000 and 100,000 tasks/s.

DynamoDB serves at most about 1,000 write units per second on one partition key value (the same
bound for a GSI's partition, and a throttled GSI pushes back on the table's writes). This runs a
burst through the local stack (`--failure-rate 0`), reads the request meter's per-partition write
units (local/metering/meter.py: every write's units, placed on the partition key value of the table
and of each index entry it touched), and scales each partition's share linearly:

    WCU/s on partition p at R tasks/s = (units written to p during the burst / tasks) x R

For a key shared by many tasks (a constant or sharded listing partition, a status) that is what
the partition takes. For a key of one task (the table's own key) it is an upper bound: the task's
few writes happen within its own lifetime whatever the rate, so the real figure is lower.
Connections are not counted: their writes follow clients, not tasks.

    python -m bench scale [--tasks 1000] [--stage dev]

It ends with the line `hottest partition at 10,000 tasks/s: N WCU/s` (goal: N <= 1,000).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import aiohttp

from bench.cost_per_task import read_meter
from bench.local_throughput import listening, run_burst
from local.launcher import LocalStackProcess

RATES: Final = (1_000, 10_000, 100_000)
GOAL_RATE: Final = 10_000
PARTITION_LIMIT_WCU: Final = 1_000


@dataclass(frozen=True)
class Place:
    """A table, or one of its indexes (`Table/Index`), as the burst wrote it."""

    name: str
    partitions: int
    units: float
    hottest: str
    hottest_units: float

    def per_second(self, tasks: int, rate: int) -> float:
        return self.hottest_units / tasks * rate


def places(partition_units: dict[str, dict[str, float]], tasks: int) -> list[Place]:
    """The task table and its indexes: the table with a partition per task (at least `tasks`
    distinct keys), and every `Table/Index` of it."""
    tables = [name for name, found in partition_units.items() if "/" not in name and len(found) >= tasks]
    if not tables:
        raise SystemExit(f"no table was written with {tasks} distinct keys: is the request meter on?")
    table = max(tables, key=lambda name: len(partition_units[name]))
    found = []
    for name, units in partition_units.items():
        if name == table or name.startswith(table + "/"):
            hottest = max(units, key=lambda key: units[key])
            found.append(Place(name, len(units), sum(units.values()), hottest, units[hottest]))
    return sorted(found, key=lambda place: (place.name != table, place.name))


async def burst(http_url: str, ws_url: str, moto_url: str, tasks: int, timeout: float) -> dict[str, Any]:
    connector = aiohttp.TCPConnector(limit=32)
    async with listening(ws_url) as frames, aiohttp.ClientSession(connector=connector) as session:
        await run_burst(session, http_url, frames, 20, timeout)  # warm-up: cold starts, pools
        await asyncio.to_thread(read_meter, moto_url, "DELETE")  # count the burst alone
        result = await run_burst(session, http_url, frames, tasks, timeout)
    if result.not_final or result.failed_posts:
        raise SystemExit(
            f"the burst did not complete: {result.failed_posts} POSTs refused, "
            f"{result.not_final} tasks without a final frame"
        )
    print(f"burst of {tasks} tasks: {result.tasks_per_second:.1f} tasks/s locally", flush=True)
    return await asyncio.to_thread(read_meter, moto_url)


def report(found: list[Place], tasks: int) -> Place:
    """Print the table; the place whose hottest partition takes the most."""
    rates = "".join(f"{f'at {rate:,}/s':>13}" for rate in RATES)
    width = max(len(place.name) for place in found) + 2
    print(f"{'table / index':<{width}}{'partitions':>11}{'units/task':>11}  {'hottest partition':<24}{rates}")
    for place in found:
        hottest = place.hottest if len(place.hottest) <= 22 else place.hottest[:21] + "…"
        figures = "".join(f"{place.per_second(tasks, rate):>13,.0f}" for rate in RATES)
        per_task = place.units / tasks
        print(f"{place.name:<{width}}{place.partitions:>11,}{per_task:>11.2f}  {hottest:<24}{figures}")
    total = sum(place.units for place in found) / tasks
    print(f"write units per task (table and indexes): {total:.2f}")
    return max(found, key=lambda place: place.hottest_units)


def print_writes(operations: list[dict[str, Any]], table: str, tasks: int) -> None:
    """Which function's which write to the task table the write units come from (per task)."""
    rows = [
        op
        for op in operations
        if op["service"] == "dynamodb" and op["resource"] == table and op["writeUnits"]
    ]
    parts = [
        f"{op['caller'] or '?'} {op['operation']} {op['requests'] / tasks:.2f}"
        + (f" ({op['conditionFailed'] / tasks:.2f} refused)" if op["conditionFailed"] else "")
        for op in sorted(rows, key=lambda op: -op["requests"])
    ]
    print("task table writes per task: " + ", ".join(parts))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench scale", description=__doc__.split("\n\n")[0])
    parser.add_argument("--cdk-out", type=Path, default=Path("cdk.out"))
    parser.add_argument("--stage", default="dev")
    parser.add_argument("--tasks", type=int, default=1000, help="tasks in the measured burst (at least 100)")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for the burst")
    parser.add_argument(
        "--time-scale",
        type=float,
        default=1.0,
        help="the local stack's --time-scale (below 1, visibility timeouts shrink too and a busy burst "
        "sees redeliveries AWS would not)",
    )
    args = parser.parse_args(argv)
    if args.tasks < 100:
        parser.error("--tasks must be at least 100 (fewer tasks exaggerate a shard's share)")

    stack_args = [
        "--cdk-out", str(args.cdk_out), "--stage", args.stage, "--failure-rate", "0",
        "--time-scale", str(args.time_scale), "--quiet", "--in-memory",
    ]  # fmt: skip
    print(f"python -m local {' '.join(stack_args)}", flush=True)
    with LocalStackProcess(stack_args) as stack:
        counters = asyncio.run(burst(stack.http_url, stack.ws_url, stack.moto_url, args.tasks, args.timeout))
    found = places(counters.get("partitionWriteUnits", {}), args.tasks)
    worst = report(found, args.tasks)
    print_writes(counters.get("operations", []), found[0].name, args.tasks)
    figure = worst.per_second(args.tasks, GOAL_RATE)
    limit = f"{PARTITION_LIMIT_WCU:,} WCU/s"
    verdict = f"within the {limit} of one partition" if figure <= PARTITION_LIMIT_WCU else f"over {limit}"
    where = f"{worst.name} {worst.hottest!r}"
    print(f"hottest partition at {GOAL_RATE:,} tasks/s: {figure:,.0f} WCU/s ({where}: {verdict})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
