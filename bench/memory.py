"""Lambda memory per function: the size with the lowest modelled cost, from what the local stack
measures per invocation.

Lambda bills GB-s (billed duration x MemorySize) and gives a function CPU in proportion to its
memory: one full vCPU at 1,769 MB, a share of one below. A handler's time is CPU (imports aside,
JSON, botocore, pydantic) plus waiting (DynamoDB, SQS, API Gateway calls). The local stack
measures both per invocation (wall time, and the worker's CPU time: local/runtime/bootstrap.py)
and the worker's peak resident memory (Max Memory Used). For a size M this models

    duration(M) = waiting + CPU x max(1, 1769 / M)        GB-s(M) = M / 1024 x duration(M)

so the waiting part costs in proportion to M, the CPU part the same at any M below 1,769 MB.
A cold start's init (the imports and first clients: CPU) stretches the same way; Lambda bills it
too, spread here over the invocations each cold start served in the burst. A size is eligible when
the peak memory fits with half again as headroom, its modelled cold start stays under
MAX_COLD_START_S, and, for a function a client waits on (the HTTP API, the WebSocket routes and the
authorizer), its modelled mean duration stays within LATENCY_SLACK of its duration at one full
vCPU: the cheapest eligible size wins. A function invoked fewer than MIN_INVOCATIONS times keeps
the stage default (too few samples; its first call also builds its clients). Local CPU is not a
Lambda vCPU (this machine's cores may be faster or slower), so this picks
the shape, not the exact figure: confirm on a deployed stage with AWS Lambda Power Tuning.

    python -m bench memory [--tasks 300] [--failure-rate 0.3]

It prints, per function: invocations, mean wall and CPU ms, peak memory, the modelled duration and
cost per million invocations at each size, and the size chosen; then the stage setting to use.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import aiohttp

from bench.cost_per_task import PRICES
from bench.local_throughput import listening, run_burst
from local.launcher import LocalStackProcess

SIZES: Final = (128, 256, 512, 1024, 1769)
FULL_VCPU_MB: Final = 1769
HEADROOM: Final = 1.5  # peak memory x this must fit
LATENCY_SLACK: Final = 1.25  # request-path functions: at most this x their duration at one vCPU
MAX_COLD_START_S: Final = 3.0  # a modelled init above this is not eligible (a stuck-looking cold start)
MIN_INVOCATIONS: Final = 20
# Functions a client waits on (the rest run behind a queue or a stream).
REQUEST_PATH: Final = (
    *("HttpApiFunction", "WsConnectFunction", "WsDisconnectFunction", "WsDefaultFunction"),
    "WsAuthorizerFunction",
)


@dataclass(frozen=True)
class Measured:
    function: str
    invocations: int
    wall_ms: float  # mean per invocation
    cpu_ms: float  # mean per invocation
    peak_mb: float
    init_ms: float  # CPU per cold start (the worker's start and imports)
    cold_starts: int

    def duration_ms(self, memory_mb: int) -> float:
        waiting = max(0.0, self.wall_ms - self.cpu_ms)
        return waiting + self.cpu_ms * _stretch(memory_mb)

    def init_s(self, memory_mb: int) -> float:
        return self.init_ms * _stretch(memory_mb) / 1000

    def dollars_per_million(self, memory_mb: int) -> float:
        """Per million invocations: requests, billed durations, and the cold starts' inits."""
        billed_ms = max(1.0, round(self.duration_ms(memory_mb)))
        billed_ms += self.cold_starts * self.init_s(memory_mb) * 1000 / self.invocations
        return 1e6 * (
            memory_mb / 1024 * billed_ms / 1000 * PRICES["lambda_gb_second"] + PRICES["lambda_request"]
        )

    def eligible(self, memory_mb: int) -> bool:
        if self.peak_mb * HEADROOM > memory_mb or self.init_s(memory_mb) > MAX_COLD_START_S:
            return False
        if self.function in REQUEST_PATH:
            return self.duration_ms(memory_mb) <= LATENCY_SLACK * self.duration_ms(FULL_VCPU_MB)
        return True

    def choice(self) -> int | None:
        """The cheapest eligible size; None: too few invocations to say."""
        if self.invocations < MIN_INVOCATIONS:
            return None
        sizes = [size for size in SIZES if self.eligible(size)] or [max(SIZES)]
        return min(sizes, key=lambda size: (self.dollars_per_million(size), size))


def _stretch(memory_mb: int) -> float:
    """How much longer CPU work takes at `memory_mb` than on one full vCPU."""
    return max(1.0, FULL_VCPU_MB / memory_mb)


async def burst(http_url: str, ws_url: str, tasks: int, timeout: float) -> None:
    connector = aiohttp.TCPConnector(limit=32)
    async with listening(ws_url) as frames, aiohttp.ClientSession(connector=connector) as session:
        result = await run_burst(session, http_url, frames, tasks, timeout)
        for _ in range(3):  # reads too: the frontend lists after a burst
            async with session.get(f"{http_url}/tasks?limit=50") as response:
                await response.read()
    if result.not_final or result.failed_posts:
        raise SystemExit(f"the burst did not complete: {result.not_final} tasks without a final frame")


def measured(stats: dict[str, Any]) -> list[Measured]:
    rows = []
    cold_starts = stats.get("coldStarts", {})
    for function, row in sorted(stats.get("invocations", {}).items()):
        count = int(row.get("invocations", 0))
        if count:
            starts = max(1, int(cold_starts.get(function, 1)))
            rows.append(
                Measured(
                    function,
                    count,
                    float(row["durationMs"]) / count,
                    float(row.get("cpuMs", 0.0)) / count,
                    float(row.get("maxMemoryMb", 0.0)),
                    float(row.get("initCpuMs", 0.0)) / starts,
                    starts,
                )
            )
    return rows


def report(rows: list[Measured]) -> dict[str, int]:
    sizes = "".join(f"{f'{size} MB':>16}" for size in SIZES)
    print(
        f"{'function':<22}{'calls':>7}{'wall ms':>9}{'cpu ms':>8}{'peak MB':>9}{'init cpu':>9}{sizes}  chosen"
    )
    chosen = {}
    for row in rows:
        cells = "".join(
            f"{f'{row.duration_ms(size):.0f}ms ${row.dollars_per_million(size):.2f}':>16}"
            if row.eligible(size)
            else f"{'-':>16}"
            for size in SIZES
        )
        size = row.choice()
        if size is not None:
            chosen[row.function] = size
        print(
            f"{row.function:<22}{row.invocations:>7}{row.wall_ms:>9.1f}{row.cpu_ms:>8.1f}{row.peak_mb:>9.0f}"
            f"{row.init_ms:>9.0f}{cells}  " + (f"{size} MB" if size else "too few calls: stage default")
        )
    print(
        "(per size: modelled mean billed duration and $ per million invocations, cold starts' inits"
        " included; - : not eligible)"
    )
    return chosen


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench memory", description=__doc__.split("\n\n")[0])
    parser.add_argument("--cdk-out", type=Path, default=Path("cdk.out"))
    parser.add_argument("--stage", default="dev")
    parser.add_argument("--tasks", type=int, default=300)
    parser.add_argument("--failure-rate", type=float, default=0.3)
    parser.add_argument("--timeout", type=float, default=600.0)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch:
        stats_file = Path(scratch) / "stats.json"
        stack_args = [
            "--cdk-out",
            str(args.cdk_out),
            "--stage",
            args.stage,
            "--failure-rate",
            str(args.failure_rate),
            "--time-scale",
            "0.1",
            "--quiet",
            "--in-memory",
            "--stats-file",
            str(stats_file),
        ]
        print(f"python -m local {' '.join(stack_args)}", flush=True)
        with LocalStackProcess(stack_args) as stack:
            asyncio.run(burst(stack.http_url, stack.ws_url, args.tasks, args.timeout))
            written = time.time()
            deadline = written + 30
            while time.time() < deadline:  # the stack rewrites its stats file every second or so
                stats = json.loads(stats_file.read_text()) if stats_file.exists() else {}
                if float(stats.get("writtenAt", 0)) > written:
                    break
                time.sleep(0.2)
            else:
                raise SystemExit(f"the stack did not write {stats_file} after the burst")
    chosen = report(measured(stats))
    print('stage setting (cdk.json): "function_memory_mb": ' + json.dumps(chosen, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
