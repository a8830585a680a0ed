"""Local-only fault injection, chosen per run (`python -m local --fault-*`), and the files a chaos
run records in the fault directory (`--fault-dir`, read by `python -m local.chaos`).

The faults, where each fires and the rates `make chaos` uses: docs/local-stack.md, "Fault
injection and chaos runs". The stack injects duplicate SQS deliveries (local/sources/sqs.py) and
@connections push failures (local/gateways/websocket_api.py); the function workers the rest
(local/faults/worker_hooks.py, configured by FaultOptions.worker_config).

The files in the fault directory (docs/local-stack.md, same section) are cleared when a stack
starts with a new state (prepare_directory); a stack restored from its state appends to them.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from local.metering.meter import camel_json

EFFECTS_LOG = "effects.log"
FAULTS_LOG = "faults.log"
CONSUMED_LOG = "consumed.log"
CONTROL_FILE = "control.json"
STATS_FILE = "stats.json"
# The instrumented processing step (the ONE function users replace; see lambdas/taskflow/domain).
STEP = "taskflow.domain.processing:process_task"
MUTANTS = ("unconditional-writes",)
DEFAULT_FAULT_DIR = Path(".local-state/faults")


@dataclass(frozen=True)
class SqsOutage:
    start: float  # seconds after the stack is ready
    duration: float


def parse_outage(value: str) -> SqsOutage:
    start, sep, duration = value.partition(":")
    with contextlib.suppress(ValueError):
        outage = SqsOutage(float(start), float(duration))
        if sep and not (outage.start < 0 or outage.duration <= 0):
            return outage
    raise ValueError("expected START:DURATION in seconds, e.g. 5:10")


@dataclass
class FaultOptions:
    directory: Path | None = None  # None: no chaos recording, no faults
    kill_rate: float = 0.0
    duplicate_rate: float = 0.0
    aws_error_rate: float = 0.0
    push_failure_rate: float = 0.0
    sqs_outage: SqsOutage | None = None
    mutant: str | None = None
    seed: int | None = None

    @property
    def active(self) -> bool:
        return self.directory is not None

    def summary(self) -> list[str]:
        """What is injected, for the banner."""
        parts = []
        if self.kill_rate:
            parts.append(f"worker kills after {self.kill_rate:g} of the commits")
        if self.duplicate_rate:
            parts.append(f"{self.duplicate_rate:g} of SQS messages delivered twice")
        if self.aws_error_rate:
            parts.append(f"{self.aws_error_rate:g} of DynamoDB/SQS calls fail")
        if self.push_failure_rate:
            parts.append(f"{self.push_failure_rate:g} of @connections POSTs answer 500")
        if self.sqs_outage:
            outage = self.sqs_outage
            parts.append(f"SQS sends refused {outage.start:g} s after ready for {outage.duration:g} s")
        if self.mutant:
            parts.append(f"MUTANT {self.mutant}")
        return parts

    def worker_config(self, function_name: str) -> str:
        """The JSON the bootstrap's --faults gets (local/faults/worker_hooks.py reads it)."""
        assert self.directory is not None
        directory = self.directory.resolve()
        return json.dumps(
            {
                "function": function_name,
                "effectsLog": str(directory / EFFECTS_LOG),
                "faultsLog": str(directory / FAULTS_LOG),
                "controlFile": str(directory / CONTROL_FILE),
                "killRate": self.kill_rate,
                "awsErrorRate": self.aws_error_rate,
                "mutant": self.mutant,
                "seed": self.seed,
                "step": STEP,
            },
            separators=(",", ":"),
        )


def prepare_directory(directory: Path) -> None:
    """Create the fault directory and remove the files of an earlier run."""
    directory.mkdir(parents=True, exist_ok=True)
    for name in (EFFECTS_LOG, FAULTS_LOG, CONSUMED_LOG, CONTROL_FILE, STATS_FILE):
        with contextlib.suppress(FileNotFoundError):
            (directory / name).unlink()


def write_json_atomically(path: Path, value: Any) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(value, separators=(",", ":")))
    os.replace(temporary, path)


def write_control_window(directory: Path, name: str, start: float, until: float) -> None:
    """Open the control window `name` from `start` to `until` (epoch seconds), keeping the others.
    Windows: `sqsOutage` (SQS sends from functions fail), `processingOutage` (every processing
    step fails; switch it off by closing the window, e.g. until = now)."""
    path = directory / CONTROL_FILE
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError):
        document = {}
    if not isinstance(document, dict):
        document = {}
    document[name] = {"from": start, "until": until}
    write_json_atomically(path, document)


def write_sqs_outage(directory: Path, start: float, until: float) -> None:
    """SQS sends from functions fail from `start` to `until` (epoch seconds)."""
    write_control_window(directory, "sqsOutage", start, until)


def read_json_lines(path: Path, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
    """The complete JSON lines of `path` from byte `offset`, and the offset after them."""
    try:
        with path.open("rb") as file:
            file.seek(offset)
            data = file.read()
    except FileNotFoundError:
        return [], offset
    end = data.rfind(b"\n") + 1
    records = []
    for line in data[:end].splitlines():
        with contextlib.suppress(ValueError):
            record = json.loads(line)
            if isinstance(record, dict):
                records.append(record)
    return records, offset + end


class Dice:
    """The stack's own fault decisions (duplicate deliveries, push failures)."""

    def __init__(self, seed: int | None) -> None:
        self._rng = random.Random(seed)

    def roll(self, probability: float) -> bool:
        return probability > 0 and self._rng.random() < probability

    def uniform(self, low: float, high: float) -> float:
        return self._rng.uniform(low, high)


@dataclass
class SqsMappingStats:
    """What one SQS event source mapping did (always counted; cheap)."""

    function: str
    queue: str
    dead_letter_queue: bool
    batches: int = 0
    messages: int = 0
    deleted: int = 0
    duplicate_invocations: int = 0
    duplicate_messages: int = 0
    consumed_log: Path | None = None  # dead-letter queues in a chaos run: CONSUMED_LOG

    def consumed(self, bodies: list[str]) -> None:
        """Record the bodies of messages the function processed (before they are deleted)."""
        if self.consumed_log is None or not bodies:
            return
        lines = "".join(json.dumps({"queue": self.queue, "body": body}) + "\n" for body in bodies)
        descriptor = os.open(self.consumed_log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(descriptor, lines.encode())
        finally:
            os.close(descriptor)

    def to_json(self) -> dict[str, Any]:
        return camel_json(self, omit=("consumed_log",))


@dataclass
class StackFaultCounters:
    """Faults the stack itself injected (the workers log theirs to faults.log)."""

    counts: Counter[str] = field(default_factory=Counter)

    def add(self, name: str, amount: int = 1) -> None:
        self.counts[name] += amount
