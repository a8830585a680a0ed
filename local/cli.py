"""`python -m local`: run a synthesized stack on 127.0.0.1."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import os
import re
import signal
import sys
from pathlib import Path

from local.console import Console
from local.faults.injection import DEFAULT_FAULT_DIR, MUTANTS, FaultOptions, SqsOutage, parse_outage
from local.options import DEV_TOKEN_LIFETIME_SECONDS, Fault, Options
from local.runtime.processes import die_with_parent
from local.stack import LocalStack
from local.state.running_stack import ignore_aws_configuration
from local.state.store import StateError
from local.template.cdk_out import TemplateError, find_stack, load_stack

DESCRIPTION = """\
Run the whole serverless backend of a synthesized CDK stack on this machine: an embedded AWS
(moto) with the template's tables and queues, every function in warm worker processes, the
SQS and DynamoDB-stream event source mappings, a TTL sweeper, the HTTP API and the WebSocket
API (with its @connections endpoint). No AWS account, no Docker. Stop with Ctrl-C.
"""

EPILOG = """\
Prints the two URLs, then one line per invocation and the queue depths every few seconds.
Once serving it prints a machine-readable line:
  LOCAL_STACK_READY http=http://127.0.0.1:PORT ws=ws://127.0.0.1:PORT/STAGE moto=http://127.0.0.1:PORT

A stack with authorizers (stage config `auth: jwt`) runs a local token issuer in place of its
Cognito user pool (or external issuer), keyed by STATE_DIR/auth/signing-key.pem, and prints a dev
token just before that line:
  LOCAL_DEV_TOKEN sub=local-dev-user expires=2030-01-01T12:00:00Z token=eyJ...
More tokens for the running stack: .venv/bin/python -m local.token --sub alice (see its --help).

Fault injection (local only, for chaos runs; `python -m local.chaos` drives them and checks the
history): any --fault-* option records the history in --fault-dir (effects.log: every run of the
processing step and every success it committed; faults.log: each fault that fired; stats.json:
the event source mappings' counters; control.json: the SQS outage window, which a runner may
rewrite at run time). See docs/local-stack.md and local/faults/injection.py.
"""


def _fault(value: str) -> Fault:
    function, _, kind = value.partition(":")
    if kind != "hang-once" or not function:
        raise argparse.ArgumentTypeError("expected FUNCTION:hang-once")
    return Fault(function, kind)


def ratio(value: str) -> float:
    number = float(value)
    if not 0.0 <= number <= 1.0:
        raise argparse.ArgumentTypeError("must be between 0 and 1")
    return number


def scale(value: str) -> float:
    number = float(value)
    if not 0.0 < number <= 1.0:
        raise argparse.ArgumentTypeError("must be in (0, 1]")
    return number


def _seconds(value: str) -> int:
    number = int(value)
    if number <= 0:
        raise argparse.ArgumentTypeError("must be a positive number of seconds")
    return number


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return number


def _port(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = -1
    if not 0 <= number <= 65535:
        raise argparse.ArgumentTypeError("must be a port number from 0 (any free port) to 65535")
    return number


def _region(value: str) -> str:
    if not re.fullmatch(r"[a-z]{2}(-[a-z]+)+-\d+", value):
        raise argparse.ArgumentTypeError(f"{value!r} is not an AWS region name (e.g. us-east-1)")
    return value


def _folder(value: str) -> Path:
    path = Path(value)
    if not path.is_dir():
        raise argparse.ArgumentTypeError(f"{value}: no such folder")
    return path


def _new_file(value: str) -> Path:
    """A file the stack may write: not a folder, in a folder that exists."""
    path = Path(value)
    if path.is_dir() or not path.name:
        raise argparse.ArgumentTypeError(
            f"{value}: is a folder; give a file name in it (e.g. {path / 'stats.json'})"
        )
    if not path.absolute().parent.is_dir():
        raise argparse.ArgumentTypeError(f"{value}: its folder {path.absolute().parent} does not exist")
    return path


def outage(value: str) -> SqsOutage:
    try:
        return parse_outage(value)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _add_fault_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("local fault injection (chaos runs)")
    rates = {  # each a probability P
        "--fault-kill-rate": "after a commit write of the processing step succeeded, the worker dies "
        "(os._exit) with probability P; the runtime restarts it and SQS redelivers the batch's "
        "unacknowledged messages",
        "--fault-duplicate-rate": "the SQS pollers deliver a fraction P of the received messages a second "
        "time, concurrently",
        "--fault-aws-error-rate": "a fraction P of the functions' DynamoDB and SQS calls fail: 500 "
        "InternalServerError, 400 ThrottlingException or ProvisionedThroughputExceededException before "
        "sending (per attempt, botocore retries), or a 500 after a write was applied (1/4 of them, not "
        "retried)",
    }
    for flag, text in rates.items():
        group.add_argument(flag, type=ratio, default=0.0, metavar="P", help=text)
    group.add_argument(
        "--fault-sqs-outage",
        type=outage,
        metavar="START:DURATION",
        help=(
            "SendMessage/SendMessageBatch from functions raise connection errors from START to "
            "START+DURATION seconds after ready (a runner can also rewrite FAULT_DIR/control.json)"
        ),
    )
    group.add_argument(
        "--fault-push-failure-rate",
        type=ratio,
        default=0.0,
        metavar="P",
        help="the @connections endpoint answers a fraction P of POSTs with 500 (half after sending)",
    )
    group.add_argument(
        "--fault-mutant",
        choices=MUTANTS,
        help="a deliberately BROKEN processor (UpdateItem conditions always hold), to see the checker fail",
    )
    group.add_argument(
        "--fault-dir",
        type=Path,
        help=f"where the chaos history files go (default with any --fault-* option: {DEFAULT_FAULT_DIR})",
    )
    group.add_argument("--fault-seed", type=int, help="seed of the fault decisions (default: random)")


def fault_options(args: argparse.Namespace) -> FaultOptions:
    """FaultOptions from the --fault-* options: `--fault-X` sets the field X."""
    names = [field.name for field in dataclasses.fields(FaultOptions) if field.name != "directory"]
    options = FaultOptions(**{name: getattr(args, f"fault_{name}") for name in names})
    if args.fault_dir is not None or options.summary():
        options.directory = args.fault_dir or DEFAULT_FAULT_DIR
    return options


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m local",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--stage", default="dev", help="stage to run: the stack named *-STAGE (default: dev)")
    parser.add_argument("--cdk-out", type=Path, default=Path("cdk.out"), help="synthesized cloud assembly")
    parser.add_argument("--template", type=Path, help="run this template file instead of finding STAGE's")
    parser.add_argument("--http-port", type=_port, default=4000, help="HTTP API port (0: any free port)")
    parser.add_argument("--ws-port", type=_port, default=4001, help="WebSocket API port (0: any free port)")
    parser.add_argument(
        "--moto-port", type=_port, default=0, help="embedded AWS (moto) port (0: any free port)"
    )
    parser.add_argument(
        "--failure-rate",
        type=ratio,
        help="set FAILURE_RATE of every function that has it (e.g. 0 for a run without simulated failures)",
    )
    parser.add_argument(
        "--time-scale",
        type=scale,
        default=1.0,
        help=(
            "scale SQS time (e.g. 0.01): queue VisibilityTimeout/DelaySeconds at provisioning and the "
            "visibility/delay functions set through boto3, rounded up to whole seconds (min 1 unless 0)"
        ),
    )
    parser.add_argument(
        "--max-concurrency",
        type=_positive,
        default=4,
        help="most concurrent invocations of one function, and SQS batches per mapping (default 4)",
    )
    parser.add_argument(
        "--fault",
        type=_fault,
        action="append",
        default=[],
        metavar="FUNCTION:hang-once",
        help="local-only fault: the function's next invocation hangs until its timeout (repeatable)",
    )
    parser.add_argument(
        "--region",
        type=_region,
        default=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
        help="region of the local resources and AWS_REGION of the functions (default: $AWS_DEFAULT_REGION)",
    )
    parser.add_argument("--log-dir", type=Path, default=Path(".local-state/logs"), help="function log folder")
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=Path(".local-state"),
        help="where the stack keeps its state (stacks/<stack>/state.sqlite: tables, queues, stream "
        "checkpoints, connections) and, while it runs, stacks/<stack>.json (its outputs, for "
        "make redrive TARGET=local)",
    )
    parser.add_argument(
        "--dev-token-lifetime",
        type=_seconds,
        default=DEV_TOKEN_LIFETIME_SECONDS,
        metavar="SECONDS",
        help="stacks with authorizers: lifetime of the dev token printed at start (default 43200: 12 h)",
    )
    parser.add_argument(
        "--fresh",
        action="store_true",
        help="start empty: delete this stack's state (STATE_DIR/stacks/<stack>/state.sqlite) first",
    )
    parser.add_argument(
        "--in-memory",
        action="store_true",
        help="keep tables and queues in memory only: nothing survives a restart (benchmarks' baseline)",
    )
    parser.add_argument(
        "--watch",
        type=_folder,
        action="append",
        default=[],
        metavar="DIR",
        help="run the functions whose asset is a copy of DIR from DIR itself, and reload them when a file "
        "in it changes (make dev: --watch lambdas)",
    )
    parser.add_argument("--quiet", action="store_true", help="no per-invocation lines")
    parser.add_argument(
        "--stats-file",
        type=_new_file,
        help="write the stack's counters (invocations and handler ms per function, @connections POSTs, "
        "SQS mappings) to this JSON file every second and at stop (bench/cost_per_task.py reads it)",
    )
    _add_fault_options(parser)
    parser.add_argument("--unpatched-moto", action="store_true", help=argparse.SUPPRESS)  # bench/ only
    parser.add_argument("--parent-pid", type=int, help=argparse.SUPPRESS)  # local.launcher: die with it
    return parser


async def _serve(stack: LocalStack) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stack.start()
    except BaseException:
        await stack.stop()
        raise
    waits = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(stack.failed.wait())]
    await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    for wait in waits:
        wait.cancel()
    stack.console.print("stopping... (Ctrl-C again stops at once)")

    def stop_at_once() -> None:  # a second Ctrl-C during shutdown: every process ends now
        print(
            "stopped at once: the work in progress was cut short; nothing is lost (each message in "
            "flight comes back after its visibility timeout on the next start)",
            file=sys.stderr,
            flush=True,
        )
        os._exit(130)

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop_at_once)
    try:  # a failed stack has 5 s to exit (a dead emulator makes nothing wait long)
        await asyncio.wait_for(stack.stop(), 3 if stack.failure else 15)
    except TimeoutError:
        stack.console.warn("shutdown took too long; killing what is left")
    if stack.failure is not None:
        print(f"error: {stack.failure}", file=sys.stderr, flush=True)
        return 1
    stack.console.print(f"stopped ({stack.console.invocations} invocations)")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    ignore_aws_configuration()  # the embedded AWS and every client of it need none of it
    if args.parent_pid:
        die_with_parent(args.parent_pid)
    console = Console(quiet=args.quiet)
    try:
        synthesized = load_stack(args.template) if args.template else find_stack(args.cdk_out, args.stage)
    except TemplateError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    same = "http_port ws_port moto_port failure_rate time_scale region log_dir state_dir stats_file fresh"
    options = Options(
        **{name: getattr(args, name) for name in [*same.split(), "watch"]},  # named as the field
        max_concurrency=args.max_concurrency,
        faults=args.fault,
        chaos=fault_options(args),
        moto_patches=not args.unpatched_moto,
        dev_token_lifetime=float(args.dev_token_lifetime),
        durable=not (args.in_memory or args.unpatched_moto),  # the journal needs the patched SQS
    )
    try:
        stack = LocalStack(synthesized, options, console)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    try:
        return asyncio.run(_serve(stack))
    except StateError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except (OSError, ValueError, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        with contextlib.suppress(Exception):
            print("interrupted", file=sys.stderr)
        return 130
