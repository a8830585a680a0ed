"""The local stack under a chaos run (started with the run's --fault-* options; its fault
directory is `<run dir>/faults`), and the faults the runner deals it from outside: the SQS outage
(it rewrites the fault directory's control.json), kill -9 of the whole stack (its process group,
then the same stack again on the same ports and state) and of its embedded AWS alone (the stack
restarts it). At the end, what the stack and its workers recorded goes into the history.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import aiohttp

from local.chaos.history import LOST_RESPONSE, History
from local.emulator.aws_json import AwsJsonClient
from local.faults.injection import (
    CONSUMED_LOG,
    EFFECTS_LOG,
    FAULTS_LOG,
    STATS_FILE,
    read_json_lines,
    write_sqs_outage,
)
from local.launcher import LocalStackProcess
from local.state.running_stack import StateFileError, running_stack_state

if TYPE_CHECKING:
    from local.chaos.runner import ChaosConfig

Echo = Callable[[str], None]
DEPTH_ATTRIBUTES = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
START_TIMEOUT = 180.0


def stack_arguments(config: ChaosConfig, run_dir: Path) -> list[str]:
    """`python -m local` options of the run's stack: the run's own fault, log and state
    directories (its state file tells whether the stack has authorizers)."""
    arguments = (
        ["--template", str(config.template)] if config.template else ["--cdk-out", str(config.cdk_out)]
    )
    options: dict[str, object] = {
        "--stage": config.stage,
        "--time-scale": config.time_scale,
        "--failure-rate": config.failure_rate,
        "--max-concurrency": config.max_concurrency,
        "--quiet": True,
        "--log-dir": run_dir / "logs",
        "--fault-dir": run_dir / "faults",
        "--fault-kill-rate": config.kill_rate,
        "--fault-duplicate-rate": config.duplicate_rate,
        "--fault-aws-error-rate": config.aws_error_rate,
        "--fault-push-failure-rate": config.push_failure_rate,
        "--state-dir": run_dir / "state",
        "--fault-mutant": config.mutant or None,
        "--fault-seed": config.seed,
    }
    for option, value in options.items():
        if value is not None:
            arguments += [option] if value is True else [option, str(value)]
    return arguments


class ChaosStack:
    def __init__(self, config: ChaosConfig, run_dir: Path, history: History, echo: Echo) -> None:
        self.config = config
        self.fault_dir = run_dir / "faults"
        self.state_dir = run_dir / "state"
        self.arguments = stack_arguments(config, run_dir)
        self.process = LocalStackProcess(self.arguments, start_timeout=START_TIMEOUT)
        self.history = history
        self.echo = echo
        self.earlier_output: list[str] = []  # what stacks killed before this one printed
        self.killing = False  # the whole stack is being killed and started again
        self._restarting = asyncio.Lock()
        self._session: aiohttp.ClientSession | None = None
        self._aws: AwsJsonClient | None = None
        self._queue_urls = ("", "")  # TaskQueue, its DLQ
        self._faults_offset = 0
        self._fault_counts: Counter[str] = Counter()

    def start(self) -> None:
        self.echo(f"starting the local stack: python -m local {' '.join(self.arguments)}")
        self.process.start()
        self.echo(f"ready: {self.process.http_url} {self.process.ws_url}")

    def output(self) -> str:
        return "".join([*self.earlier_output, self.process.text()])

    def exited(self) -> str | None:
        """Why nothing will answer again: the stack process exited (not killed by the runner)."""
        process = self.process.process
        if process is None or process.poll() is None or self.killing:
            return None
        return f"the local stack exited (status {process.returncode}) in the middle of the run"

    async def find_queues(self, session: aiohttp.ClientSession) -> None:
        """Find TaskQueue (the queue with a redrive policy) and its DLQ in the embedded AWS."""
        self._session = session
        self._aws = aws = AwsJsonClient(session, self.process.moto_url, "us-east-1")
        urls = (await aws.sqs("ListQueues", {})).get("QueueUrls", [])
        for url in urls:
            attributes = await self._attributes(url, ["RedrivePolicy"])
            policy = attributes.get("RedrivePolicy")
            if policy:
                target = str(json.loads(policy)["deadLetterTargetArn"]).rsplit(":", 1)[-1]
                self._queue_urls = (url, next(u for u in urls if u.rsplit("/", 1)[-1] == target))
        if not self._queue_urls[0]:
            raise RuntimeError(f"no queue with a redrive policy among {urls}")

    async def _attributes(self, url: str, names: list[str]) -> dict[str, Any]:
        assert self._aws is not None
        answer = await self._aws.sqs("GetQueueAttributes", {"QueueUrl": url, "AttributeNames": names})
        return dict(answer.get("Attributes", {}))

    async def depths(self) -> tuple[int, int]:
        """Messages visible and in flight: TaskQueue, its DLQ."""
        depths = []
        for url in self._queue_urls:
            attributes = await self._attributes(url, DEPTH_ATTRIBUTES)
            depths.append(sum(int(attributes.get(name, 0)) for name in DEPTH_ATTRIBUTES))
        return depths[0], depths[1]

    def fault_counts(self) -> dict[str, int]:
        """How often each fault has fired so far (faults.log, read on from where it was left)."""
        records, self._faults_offset = read_json_lines(self.fault_dir / FAULTS_LOG, self._faults_offset)
        self._fault_counts.update(str(record.get("fault")) for record in records)
        return dict(self._fault_counts)

    async def sqs_outage(self, first_post: float) -> None:
        if self.config.sqs_outage is None:
            return
        offset, duration = self.config.sqs_outage
        await _sleep_until(first_post + offset)
        start = time.time()
        write_sqs_outage(self.fault_dir, start, start + duration)
        self.history.outage = (start, start + duration)
        self.echo(f"SQS outage: sends from functions fail for {duration:g} s")

    async def kill_stack(self, first_post: float) -> None:
        """kill -9 of the stack's whole process group, then the same stack again (same ports,
        same state dir): what `make dev` after a crash does."""
        if self.config.stack_kill_at is None:
            return
        await _sleep_until(first_post + self.config.stack_kill_at)
        async with self._restarting:
            old = self.process
            assert old.process is not None
            loop = asyncio.get_running_loop()
            stats = self.fault_dir / STATS_FILE
            if stats.exists():  # its counters (the next stack counts from zero)
                shutil.copy(stats, self.fault_dir / f"stats.{len(self.history.restarts)}.json")
            killed = time.time()
            self.killing = True
            with contextlib.suppress(ProcessLookupError):
                os.killpg(old.process.pid, signal.SIGKILL)
            await loop.run_in_executor(None, old.stop)
            self.earlier_output.append(old.text() + "=== the whole stack killed (SIGKILL) ===\n")
            http, ws = urlparse(old.http_url).port, urlparse(old.ws_url).port  # the same ports again
            arguments = [*self.arguments, "--http-port", str(http), "--ws-port", str(ws)]
            new = LocalStackProcess(arguments, start_timeout=START_TIMEOUT)
            try:
                await loop.run_in_executor(None, new.start)
            finally:
                self.killing = False
            self.process = new
            assert self._session is not None
            await self.find_queues(self._session)
            self._back("stack", killed, "the whole stack killed (SIGKILL) and started again: back after")

    async def kill_emulator(self, first_post: float) -> None:
        """kill -9 of the embedded AWS alone; the stack must restart it (its new pid shows that)."""
        if self.config.emulator_kill_at is None:
            return
        await _sleep_until(first_post + self.config.emulator_kill_at)
        async with self._restarting:
            pid = int(running_stack_state(self.state_dir)["motoPid"])
            killed = time.time()
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            while True:
                await asyncio.sleep(0.1)
                with contextlib.suppress(StateFileError, KeyError, ValueError):
                    if int(running_stack_state(self.state_dir)["motoPid"]) != pid:
                        break
                if time.time() - killed > 30:
                    self.history.notes.append("the embedded AWS was not restarted within 30 s")
                    return
            self._back("emulator", killed, "the embedded AWS killed (SIGKILL): the stack restarted it in")

    def _back(self, what: str, killed: float, told: str) -> None:
        self.history.restarts.append({"what": what, "killed": killed, "back": time.time()})
        self.echo(f"{told} {time.time() - killed:.1f} s")

    def collect(self) -> None:
        """Add what the stack and its workers recorded in the fault directory and printed."""
        history, fault_dir = self.history, self.fault_dir
        # The twins' own processing (another user's task under a run task's id) is not the run's task's
        twins = {(twin.user, twin.task_id) for twin in history.twins.values()}

        def of_run(record: dict[str, Any]) -> bool:
            return (record.get("owner"), str(record.get("taskId"))) not in twins

        records, _ = read_json_lines(fault_dir / EFFECTS_LOG)
        history.steps = [r for r in records if r.get("event") == "step" and of_run(r)]
        history.effects = [r for r in records if r.get("event") == "effect" and of_run(r)]
        faults, _ = read_json_lines(fault_dir / FAULTS_LOG)
        for record in read_json_lines(fault_dir / CONSUMED_LOG)[0]:
            with contextlib.suppress(ValueError):
                body = json.loads(str(record.get("body")))
                body = body if isinstance(body, dict) else {"body": record.get("body")}
                if of_run(body):
                    history.dlq_consumed.append(body)
        # the counters of each stack of the run (stats.<n>.json: one killed mid-run)
        every_stats = []
        for path in sorted(fault_dir.glob("stats*.json")):
            with contextlib.suppress(OSError, ValueError):
                every_stats.append(json.loads(path.read_text()))
        if not (fault_dir / STATS_FILE).exists():
            history.notes.append("no stats.json from the stack")
        mappings = [mapping for stats in every_stats for mapping in stats.get("sqsMappings", [])]
        stack_injected = [(k, v) for stats in every_stats for k, v in stats.get("injected", {}).items()]
        fired = Counter(str(f.get("fault")) for f in faults)
        outcomes = [outcome for s in history.submissions.values() for outcome in s.outcomes]
        history.injected = {
            "processing failures": sum(1 for step in history.steps if not step.get("ok")),
            "worker kills": fired["worker-kill"],
            "duplicate deliveries": sum(int(m.get("duplicateMessages", 0)) for m in mappings),
            "AWS errors": fired["aws-error"],
            "SQS outage refusals": fired["sqs-outage"],
            "push failures": sum(v for k, v in stack_injected if k.startswith("push-failure")),
            "stack kills (SIGKILL, then restarted)": sum(1 for r in history.restarts if r["what"] == "stack"),
            "emulator kills (SIGKILL)": sum(1 for r in history.restarts if r["what"] == "emulator"),
            "abrupt disconnects": sum(c.aborts for c in history.clients),
            "POST responses lost": outcomes.count(LOST_RESPONSE),
            "POST 5xx": sum(1 for outcome in outcomes if outcome.startswith("5")),
        }
        after_write = sum(1 for f in faults if str(f.get("kind", "")).endswith("after-write"))
        if after_write:
            history.injected["AWS errors after a write"] = after_write
        if fired["mutant"]:
            history.injected["MUTANT writes"] = fired["mutant"]
        exits = sum((Counter(stats.get("workerExits", {})) for stats in every_stats), Counter[str]())
        if exits:
            history.notes.append(f"worker exits seen by the runtime: {dict(exits)}")
        skipped = [line for line in self.output().splitlines() if "SKIPPED" in line]
        if skipped:
            history.notes.append(f"{len(skipped)} stream batches skipped: {skipped[:3]}")


async def _sleep_until(moment: float) -> None:
    await asyncio.sleep(max(0.0, moment - time.time()))
