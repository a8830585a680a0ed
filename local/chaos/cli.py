"""`python -m local.chaos`: a chaos run against the local stack, with its figures and exit code."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from local.chaos.runner import ChaosConfig, run_chaos
from local.cli import _ratio, _scale
from local.faults.injection import MUTANTS, parse_outage

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


def _moment(value: str) -> float | None:
    if value.lower() in ("none", "off"):
        return None
    try:
        seconds = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError("expected seconds after the first POST, or none") from None
    if seconds < 0:
        raise argparse.ArgumentTypeError("expected seconds after the first POST, or none")
    return seconds


def _outage(value: str) -> tuple[float, float] | None:
    if value.lower() in ("none", "off", "0"):
        return None
    try:
        outage = parse_outage(value)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return outage.start, outage.duration


def build_parser() -> argparse.ArgumentParser:
    defaults = ChaosConfig()
    parser = argparse.ArgumentParser(
        prog="python -m local.chaos",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--tasks", type=int, default=defaults.tasks, help="tasks to submit (default 1000)")
    parser.add_argument("--concurrency", type=int, default=defaults.concurrency, help="POSTs in flight")
    parser.add_argument(
        "--clients",
        type=int,
        default=defaults.clients,
        help="WebSocket clients (default 6; with authorizers 3 per user)",
    )
    parser.add_argument(
        "--stay",
        type=int,
        default=defaults.stay,
        help="of them, stay connected all run (default 3; with authorizers 2 per user)",
    )
    parser.add_argument(
        "--users",
        type=int,
        default=defaults.users,
        help="stages with authorizers: users, each with a token, submitting round-robin (default 4)",
    )
    parser.add_argument("--failure-rate", type=_ratio, default=defaults.failure_rate, help="FAILURE_RATE")
    parser.add_argument("--kill-rate", type=_ratio, default=defaults.kill_rate, help="--fault-kill-rate")
    parser.add_argument(
        "--duplicate-rate", type=_ratio, default=defaults.duplicate_rate, help="--fault-duplicate-rate"
    )
    parser.add_argument(
        "--aws-error-rate", type=_ratio, default=defaults.aws_error_rate, help="--fault-aws-error-rate"
    )
    parser.add_argument(
        "--push-failure-rate",
        type=_ratio,
        default=defaults.push_failure_rate,
        help="--fault-push-failure-rate",
    )
    parser.add_argument(
        "--sqs-outage",
        type=_outage,
        default=defaults.sqs_outage,
        metavar="START:DURATION|none",
        help="SQS sends fail from START s after the first POST, for DURATION s (default 2:10)",
    )
    parser.add_argument(
        "--stack-kill",
        type=_moment,
        default=defaults.stack_kill_at,
        metavar="AT|none",
        help="kill -9 the whole local stack AT s after the first POST and start it again (default 5)",
    )
    parser.add_argument(
        "--emulator-kill",
        type=_moment,
        default=defaults.emulator_kill_at,
        metavar="AT|none",
        help="kill -9 the embedded AWS (moto) AT s after the first POST; the stack restarts it (default 12)",
    )
    parser.add_argument(
        "--lost-response-rate",
        type=_ratio,
        default=defaults.lost_response_rate,
        help="the client ignores this fraction of 202s and retries, as after a timeout (default 0.05)",
    )
    parser.add_argument("--mutant", choices=MUTANTS, help="run a deliberately broken processor")
    parser.add_argument(
        "--no-resume",
        action="store_true",
        help="reconnecting clients do not resume (the mutant check of the resume: the run must FAIL)",
    )
    parser.add_argument(
        "--twin-rate",
        type=_ratio,
        default=defaults.twin_rate,
        help="stages with authorizers: this fraction of the tasks gets a twin, another user's task "
        "under the same taskId, held to isolation (default 0.1)",
    )
    parser.add_argument("--time-scale", type=_scale, default=defaults.time_scale, help="default 0.01")
    parser.add_argument(
        "--drain-timeout", type=float, default=defaults.drain_timeout, help="seconds to wait for the drain"
    )
    parser.add_argument(
        "--frame-grace", type=float, default=defaults.frame_grace, help="seconds to wait for last frames"
    )
    parser.add_argument("--seed", type=int, help="seed of the runner's and the stack's random choices")
    parser.add_argument("--cdk-out", type=Path, default=defaults.cdk_out, help="cloud assembly (cdk.out)")
    parser.add_argument("--stage", default=defaults.stage, help="stage (default dev)")
    parser.add_argument("--template", type=Path, help="a template file instead of --cdk-out/--stage")
    parser.add_argument("--run-dir", type=Path, help="results folder (default .local-state/chaos/<time>)")
    parser.add_argument(
        "--max-concurrency", type=int, default=defaults.max_concurrency, help="the stack's --max-concurrency"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    config = ChaosConfig(
        tasks=args.tasks,
        concurrency=max(1, args.concurrency),
        clients=None if args.clients is None else max(1, args.clients),
        stay=None if args.stay is None else max(0, args.stay),
        users=None if args.users is None else max(1, args.users),
        failure_rate=args.failure_rate,
        kill_rate=args.kill_rate,
        duplicate_rate=args.duplicate_rate,
        aws_error_rate=args.aws_error_rate,
        push_failure_rate=args.push_failure_rate,
        sqs_outage=args.sqs_outage,
        stack_kill_at=args.stack_kill,
        emulator_kill_at=args.emulator_kill,
        lost_response_rate=args.lost_response_rate,
        mutant=args.mutant,
        resume=not args.no_resume,
        twin_rate=args.twin_rate,
        time_scale=args.time_scale,
        drain_timeout=args.drain_timeout,
        frame_grace=args.frame_grace,
        seed=args.seed,
        cdk_out=args.cdk_out,
        stage=args.stage,
        template=args.template,
        run_dir=args.run_dir,
        max_concurrency=max(1, args.max_concurrency),
    )

    def echo(line: str) -> None:
        if not args.quiet:
            print(line, flush=True)

    started = time.time()
    try:
        result = run_chaos(config, echo)
    except (OSError, RuntimeError, TimeoutError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print("=" * 78)
    for line in result.report.lines():
        print(line)
    for note in result.history.notes:
        print(f"note             {note}")
    print(f"total time       {time.time() - started:.1f} s (stack start and stop included)")
    print(f"results          {result.run_dir}")
    return 0 if result.report.ok else 1
