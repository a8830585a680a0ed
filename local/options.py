"""What `python -m local` was asked to run with: local/cli.py fills it (its --help says what each
option does), local/stack.py reads it."""

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
    state_dir: Path = field(default_factory=lambda: Path(".local-state"))
    faults: list[Fault] = field(default_factory=list)
    chaos: FaultOptions = field(default_factory=FaultOptions)  # the --fault-* options
    moto_patches: bool = True  # False only to measure moto as shipped (bench/)
    stats_file: Path | None = None  # a copy of stats.json (bench/)
    dev_token_lifetime: float = DEV_TOKEN_LIFETIME_SECONDS
    durable: bool = True  # False: --in-memory (state.sqlite neither read nor written)
    fresh: bool = False
    watch: list[Path] = field(default_factory=list)  # local/runtime/code_reload.py

    def __post_init__(self) -> None:
        # Absolute from the start: the functions run with their code folder as working directory,
        # so a relative path (make dev's `.local-state`, `--watch lambdas`) would point nowhere there.
        self.log_dir, self.state_dir = self.log_dir.absolute(), self.state_dir.absolute()
        self.stats_file = self.stats_file.absolute() if self.stats_file is not None else None
        self.watch = [folder.absolute() for folder in self.watch]
