"""What `python -m local` was asked to run with (local/cli.py fills it, local/stack.py reads it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from local.faults.injection import FaultOptions

DEV_TOKEN_LIFETIME_SECONDS: Final = 12 * 3600.0  # the dev token printed at start


@dataclass(frozen=True)
class Fault:
    function: str  # display name or logical id
    kind: str  # "hang-once"


@dataclass
class Options:
    http_port: int = 4000
    ws_port: int = 4001
    moto_port: int = 0
    failure_rate: float | None = None
    time_scale: float = 1.0
    max_concurrency: int = 4
    region: str = "us-east-1"
    log_dir: Path = field(default_factory=lambda: Path(".local-state/logs"))
    # <state_dir>/stacks/<stack>.json: the stack's resolved Outputs and endpoints while it runs,
    # for operator tools (`make redrive TARGET=local`); removed at stop.
    state_dir: Path = field(default_factory=lambda: Path(".local-state"))
    faults: list[Fault] = field(default_factory=list)
    chaos: FaultOptions = field(default_factory=FaultOptions)  # the --fault-* options
    moto_patches: bool = True  # False only to measure moto as shipped (bench/)
    # The stack's counters (stats.json of local/faults/injection.py: invocations and handler ms per
    # function, @connections POSTs, SQS mappings), rewritten every second and at stop (bench/).
    stats_file: Path | None = None
    # Stacks with authorizers: lifetime of the dev token minted (and printed) at start.
    dev_token_lifetime: float = DEV_TOKEN_LIFETIME_SECONDS
    # <state_dir>/stacks/<stack>/state.sqlite keeps tables, queues, stream checkpoints and open
    # connections across restarts (local/state/store.py); False: in memory only, as on the old stack.
    durable: bool = True
    fresh: bool = False  # remove the stack's state first
    # Source folders whose edits reach the functions without a restart (local/runtime/code_reload.py).
    watch: list[Path] = field(default_factory=list)
