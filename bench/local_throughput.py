"""End-to-end throughput of the local stack: POST /tasks -> the task's final WebSocket frame.

Starts `python -m local` on free ports (failure rate 0, --quiet), connects one WebSocket
client, warms the functions up, then submits bursts of tasks (default 100, then 2,000, in
the same run) as fast as a pool of HTTP connections allows. For each burst it prints:

* tasks/s: burst size / (last final frame - first POST);
* latency p50 / p99: POST sent -> that task's final frame (status success or error);

and the ratio tasks/s(largest) / tasks/s(smallest), which must stay >= 0.5: throughput that
falls with the backlog means some per-message cost grows with queue depth (see
local/emulator/patches.py for the one moto had).

It measures the stack twice in the same run, with durable state (the default: every change
fsynced to its state file before the response) and with `--in-memory` (the baseline), and
prints durable / in-memory per burst, which must stay >= 0.8.

    python -m bench throughput                       # (make bench runs it with the others)
    python -m bench throughput --bursts 100 500      # other sizes
    python -m bench throughput --modes durable       # one mode only
    python -m bench throughput --unpatched-moto      # moto as shipped (in memory): the before/after figure
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import websockets

from local.launcher import LocalStackProcess

FINAL = {"success", "error"}
MODES = {"durable": [], "in-memory": ["--in-memory"]}  # extra `python -m local` options


@dataclass
class BurstResult:
    size: int
    seconds: float
    latencies: list[float]
    failed_posts: int
    not_final: int

    @property
    def tasks_per_second(self) -> float:
        return self.size / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def websocket_frames(url: str, connected: asyncio.Event) -> AsyncIterator[dict[str, Any]]:
    """The decoded frames of one WebSocket connection to `url`; `connected` is set once it is open."""
    async with websockets.connect(url, max_size=2**20) as socket:
        connected.set()
        async for raw in socket:
            yield json.loads(raw)


class FrameCollector:
    """Records when each task's final frame arrives on one WebSocket connection."""

    def __init__(self) -> None:
        self.final_at: dict[str, float] = {}
        self.frames = 0
        self._waiters: dict[str, asyncio.Future[None]] = {}

    async def run(self, url: str, connected: asyncio.Event) -> None:
        async for frame in websocket_frames(url, connected):
            self.frames += 1
            task_id = frame.get("taskId")
            if frame.get("status") in FINAL and task_id and task_id not in self.final_at:
                self.final_at[task_id] = time.perf_counter()
                waiter = self._waiters.pop(task_id, None)
                if waiter is not None and not waiter.done():
                    waiter.set_result(None)

    def wait_for(self, task_id: str) -> asyncio.Future[None]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if task_id in self.final_at:
            future.set_result(None)
        else:
            self._waiters[task_id] = future
        return future


async def run_burst(
    session: aiohttp.ClientSession, http_url: str, frames: FrameCollector, size: int, timeout: float
) -> BurstResult:
    task_ids = [str(uuid.uuid4()) for _ in range(size)]
    sent_at: dict[str, float] = {}
    failed_posts = 0
    waiters = [frames.wait_for(task_id) for task_id in task_ids]

    async def submit(task_id: str) -> None:
        nonlocal failed_posts
        body = {"taskId": task_id, "answer": "bench", "status": "pending", "retries": 0}
        sent_at[task_id] = time.perf_counter()
        async with session.post(f"{http_url}/tasks", json=body) as response:
            await response.read()
            if response.status != 202:
                failed_posts += 1

    started = time.perf_counter()
    await asyncio.gather(*(submit(task_id) for task_id in task_ids))
    _, pending = await asyncio.wait(waiters, timeout=timeout)
    for future in pending:
        future.cancel()
    finished = [frames.final_at[t] for t in task_ids if t in frames.final_at]
    elapsed = (max(finished) if finished else time.perf_counter()) - started
    latencies = [frames.final_at[t] - sent_at[t] for t in task_ids if t in frames.final_at]
    return BurstResult(size, elapsed, latencies, failed_posts, len(pending))


@contextlib.asynccontextmanager
async def listening(ws_url: str) -> AsyncIterator[FrameCollector]:
    """A WebSocket client collecting frames, connected before the body runs (every benchmark's
    burst waits for its tasks' final frames)."""
    frames = FrameCollector()
    connected = asyncio.Event()
    listener = asyncio.create_task(frames.run(ws_url, connected))
    try:
        await asyncio.wait_for(connected.wait(), 60)
        yield frames
    finally:
        listener.cancel()
        await asyncio.gather(listener, return_exceptions=True)


async def bench(
    http_url: str, ws_url: str, bursts: list[int], connections: int, timeout: float
) -> list[BurstResult]:
    results = []
    connector = aiohttp.TCPConnector(limit=connections)
    async with listening(ws_url) as frames, aiohttp.ClientSession(connector=connector) as session:
        await run_burst(session, http_url, frames, 20, timeout)  # warm-up: cold starts, pools
        for size in bursts:
            result = await run_burst(session, http_url, frames, size, timeout)
            results.append(result)
            print(
                f"burst {size:>5}: {result.tasks_per_second:7.1f} tasks/s  "
                f"({result.seconds:6.1f} s)  latency p50 {result.percentile(0.5):6.2f} s  "
                f"p99 {result.percentile(0.99):6.2f} s"
                + (f"  [{result.not_final} without final frame]" if result.not_final else "")
                + (f"  [{result.failed_posts} POSTs not 202]" if result.failed_posts else ""),
                flush=True,
            )
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench throughput", description=__doc__.split("\n\n")[0])
    parser.add_argument("--cdk-out", type=Path, default=Path("cdk.out"))
    parser.add_argument("--stage", default="dev")
    parser.add_argument("--bursts", type=int, nargs="+", default=[100, 2000])
    parser.add_argument("--connections", type=int, default=32, help="concurrent HTTP connections")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for one burst")
    parser.add_argument("--max-concurrency", type=int, default=None, help="passed to the local stack")
    parser.add_argument(
        "--unpatched-moto", action="store_true", help="moto without local/emulator/patches.py"
    )
    parser.add_argument(
        "--modes",
        nargs="+",
        choices=list(MODES),
        default=list(MODES),
        help="durable state, in memory, or both in this run (default: both, and their ratio)",
    )
    args = parser.parse_args(argv)

    stack_args = [
        "--cdk-out", str(args.cdk_out), "--stage", args.stage,
        "--failure-rate", "0", "--time-scale", "0.01", "--quiet",
    ]  # fmt: skip
    if args.max_concurrency:
        stack_args += ["--max-concurrency", str(args.max_concurrency)]
    modes = ["in-memory"] if args.unpatched_moto else args.modes
    if args.unpatched_moto:
        stack_args.append("--unpatched-moto")
    results: dict[str, list[BurstResult]] = {}
    for mode in modes:
        mode_args = [*stack_args, *MODES[mode]]
        print(f"{mode}: python -m local {' '.join(mode_args)}", flush=True)
        with LocalStackProcess(mode_args) as stack:
            results[mode] = asyncio.run(
                bench(stack.http_url, stack.ws_url, args.bursts, args.connections, args.timeout)
            )
        bursts = results[mode]
        if len(bursts) >= 2:
            ratio = bursts[-1].tasks_per_second / bursts[0].tasks_per_second
            verdict = "OK" if ratio >= 0.5 else "BELOW 0.5: throughput degrades with the backlog"
            print(
                f"{mode}: ratio tasks/s burst {bursts[-1].size} / burst {bursts[0].size}: "
                f"{ratio:.2f} ({verdict})"
            )
    if {"durable", "in-memory"} <= results.keys():
        for durable, memory in zip(results["durable"], results["in-memory"], strict=True):
            ratio = durable.tasks_per_second / memory.tasks_per_second
            verdict = "OK" if ratio >= 0.8 else "BELOW 0.8: durability costs too much"
            print(f"burst {durable.size}: durable / in-memory tasks/s {ratio:.2f} ({verdict})")
    incomplete = sum(r.not_final for bursts in results.values() for r in bursts)
    return 1 if incomplete else 0


if __name__ == "__main__":
    sys.exit(main())
