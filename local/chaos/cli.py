"""`python -m local.chaos`: a chaos run against the local stack, with its figures and exit code."""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from dataclasses import asdict
from pathlib import Path

from local.chaos.runner import ChaosConfig, run_chaos
from local.cli import outage, ratio, scale
from local.faults.injection import MUTANTS

DESCRIPTION = """\
Start the local stack with faults (processing failures, worker kills, duplicate SQS deliveries,
DynamoDB/SQS API errors and throttles, an SQS outage during the burst of submissions, push
failures, kill -9 of the whole stack and later of its embedded AWS during the burst) and WebSocket
clients that disconnect abruptly; submit N tasks like the frontend does,
retrying "maybe accepted" POSTs with the same taskId; record every response and frame; drain;
then check the history and print the figures. Exit code 1 if any invariant is violated.

A stage with authorizers (`auth: jwt`, found in the running stack's state file, not from the
stage's name) is driven by --users users (default 4), each with a token from the stack's local
issuer: they submit the tasks round-robin, each WebSocket client connects as one of them, and
every user must see only their own tasks and frames.
"""

EPILOG = """\
Invariants (see local/chaos/checker.py): lost 0, duplicated effects 0, regressions 0,
unexpected 0, DLQ consumed = error count, missed final frames 0 (clients that stayed connected),
no rejected submission, queues empty at the end. With authorizers also foreign frames 0 (no
client receives a frame of another user's task; "missed final frames" then counts each client's
own user's tasks) and foreign reads 0 (no HTTP read shows another user's task). Results:
<run dir>/report.json, history.json, stack.log, logs/, state/. See docs/local-stack.md.
"""

# clamped, not refused
AT_LEAST = {"concurrency": 1, "clients": 1, "stay": 0, "users": 1, "max_concurrency": 1}


def _moment(value: str) -> float | None:
    if value.lower() in ("none", "off"):
        return None
    with contextlib.suppress(ValueError):
        if not (seconds := float(value)) < 0:
            return seconds
    raise argparse.ArgumentTypeError("expected seconds after the first POST, or none")


def _outage(value: str) -> tuple[float, float] | None:
    if value.lower() in ("none", "off", "0"):
        return None
    window = outage(value)
    return window.start, window.duration


def build_parser() -> argparse.ArgumentParser:
    """Options named after ChaosConfig's fields (their `dest`), with its defaults."""
    parser = argparse.ArgumentParser(
        prog="python -m local.chaos",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.set_defaults(**asdict(ChaosConfig()))
    add = parser.add_argument
    add("--tasks", type=int, help="tasks to submit (default 1000)")
    add("--concurrency", type=int, help="POSTs in flight")
    add("--clients", type=int, help="WebSocket clients (default 6; with authorizers 3 per user)")
    add("--stay", type=int, help="of them, stay connected all run (default 3; with authorizers 2 per user)")
    add(
        "--users",
        type=int,
        help="stages with authorizers: users, each with a token, submitting round-robin (default 4)",
    )
    add("--failure-rate", type=ratio, help="FAILURE_RATE")
    for fault in ("kill", "duplicate", "aws-error", "push-failure"):
        add(f"--{fault}-rate", type=ratio, help=f"--fault-{fault}-rate")
    add(
        "--sqs-outage",
        type=_outage,
        metavar="START:DURATION|none",
        help="SQS sends fail from START s after the first POST, for DURATION s (default 2:10)",
    )
    add(
        "--stack-kill",
        dest="stack_kill_at",
        type=_moment,
        metavar="AT|none",
        help="kill -9 the whole local stack AT s after the first POST and start it again (default 5)",
    )
    add(
        "--emulator-kill",
        dest="emulator_kill_at",
        type=_moment,
        metavar="AT|none",
        help="kill -9 the embedded AWS (moto) AT s after the first POST; the stack restarts it (default 12)",
    )
    add(
        "--lost-response-rate",
        type=ratio,
        help="the client ignores this fraction of 202s and retries, as after a timeout (default 0.05)",
    )
    add("--mutant", choices=MUTANTS, help="run a deliberately broken processor")
    add(
        "--no-resume",
        dest="resume",
        action="store_false",
        help="reconnecting clients do not resume (the mutant check of the resume: the run must FAIL)",
    )
    add(
        "--twin-rate",
        type=ratio,
        help="stages with authorizers: this fraction of the tasks gets a twin, another user's task "
        "under the same taskId, held to isolation (default 0.1)",
    )
    add("--time-scale", type=scale, help="default 0.01")
    add("--drain-timeout", type=float, help="seconds to wait for the drain")
    add("--frame-grace", type=float, help="seconds to wait for last frames")
    add("--seed", type=int, help="seed of the runner's and the stack's random choices")
    add("--cdk-out", type=Path, help="cloud assembly (cdk.out)")
    add("--stage", help="stage (default dev)")
    add("--template", type=Path, help="a template file instead of --cdk-out/--stage")
    add("--run-dir", type=Path, help="results folder (default .local-state/chaos/<time>)")
    add("--max-concurrency", type=int, help="the stack's --max-concurrency")
    add("--quiet", action="store_true", help="no progress lines")
    return parser


def main(argv: list[str] | None = None) -> int:
    settings = vars(build_parser().parse_args(argv))
    quiet = settings.pop("quiet")
    for name, least in AT_LEAST.items():
        if settings[name] is not None:
            settings[name] = max(least, settings[name])
    config = ChaosConfig(**settings)

    def echo(line: str) -> None:
        if not quiet:
            print(line, flush=True)

    started = time.time()
    try:
        result = run_chaos(config, echo)
    except (OSError, RuntimeError, TimeoutError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    notes = [f"note             {note}" for note in result.history.notes]
    print("\n".join(["=" * 78, *result.report.lines(), *notes]))
    print(f"total time       {time.time() - started:.1f} s (stack start and stop included)")
    print(f"results          {result.run_dir}")
    return 0 if result.report.ok else 1
