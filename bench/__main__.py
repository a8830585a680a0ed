"""`python -m bench` (`make bench`): every benchmark in sequence, or one of them.

    python -m bench                        # every benchmark below, in this order
    python -m bench --quick                # the same with smaller sizes (about 15 minutes here)
    python -m bench cold-start [OPTIONS]   # bench/cold_start.py     (python -m bench cold-start -h)
    python -m bench list-reads [OPTIONS]   # bench/list_reads.py
    python -m bench throughput [OPTIONS]   # bench/local_throughput.py
    python -m bench cost [OPTIONS]         # bench/cost_per_task.py
    python -m bench dev-loop [OPTIONS]     # bench/dev_loop.py: crash and restart, edit to live
    python -m bench scale [OPTIONS]        # bench/scale.py: the hottest partition at 1k-100k tasks/s
    python -m bench memory [OPTIONS]       # bench/memory.py: Lambda memory per function, modelled

`python -m bench --bursts ...` / `--unpatched-moto` (options starting with `-`) still run the
throughput benchmark alone.
Each benchmark prints its own figures; docs/performance.md records them with their commands.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Final

# name -> (module, arguments of the full run, arguments of --quick)
BENCHMARKS: Final[dict[str, tuple[str, list[str], list[str]]]] = {
    "cold-start": ("bench.cold_start", [], ["--runs", "5"]),
    "list-reads": ("bench.list_reads", [], ["--sizes", "1000", "10000"]),
    "throughput": ("bench.local_throughput", [], ["--bursts", "100", "500"]),
    "cost": ("bench.cost_per_task", [], ["--tasks", "100", "--paced-tasks", "20"]),
    "dev-loop": ("bench.dev_loop", [], ["--tasks", "50", "--edits", "3"]),
    "scale": ("bench.scale", [], ["--tasks", "300"]),
    "memory": ("bench.memory", [], ["--tasks", "100"]),
}


def run(name: str, arguments: Sequence[str]) -> int:
    """One benchmark in its own process (each sets its own environment and imports)."""
    module = BENCHMARKS[name][0]
    if any(argument in ("-h", "--help") for argument in arguments):
        return subprocess.call([sys.executable, "-m", module, *arguments])  # its help, unframed
    command = " ".join(["python -m", module, *arguments])
    print(f"\n=== {name}: {command}  ({time.strftime('%Y-%m-%d %H:%M:%S %Z')}) ===", flush=True)
    started = time.perf_counter()
    code = subprocess.call([sys.executable, "-m", module, *arguments])
    print(f"=== {name}: {time.perf_counter() - started:.0f} s, exit {code} ===", flush=True)
    return code


def main(argv: Sequence[str]) -> int:
    arguments = list(argv)
    if arguments and arguments[0] in BENCHMARKS:
        return run(arguments[0], arguments[1:])
    if arguments and arguments[0] in ("-h", "--help"):
        print(__doc__)
        return 0
    if arguments and not arguments[0].startswith("-"):
        print(f"python -m bench: no benchmark named {arguments[0]!r}; one of: {', '.join(BENCHMARKS)}")
        return 2
    if arguments and arguments != ["--quick"]:
        return run("throughput", arguments)  # the options of `python -m bench` before there were several
    quick = arguments == ["--quick"]
    started = time.perf_counter()
    codes = {
        name: run(name, quick_args if quick else full_args)
        for name, (_, full_args, quick_args) in BENCHMARKS.items()
    }
    failed = [name for name, code in codes.items() if code]
    print(
        f"\nall benchmarks: {time.perf_counter() - started:.0f} s"
        + (f"; FAILED: {', '.join(failed)}" if failed else "")
    )
    return 1 if failed else 0


sys.exit(main(sys.argv[1:]))
