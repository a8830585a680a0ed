"""The running stack's state file, `<state-dir>/stacks/<stack>.json`: written by local/stack.py
while the stack runs (its outputs, endpoints, pid and, with authorizers, its issuer), read by the
tools that act on a running stack (`python -m local.token`, ops/redrive.py with TARGET=local)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


class StateFileError(Exception):
    """No running stack matches, or its state file cannot be read."""


def state_file_path(state_dir: Path, stack_name: str) -> Path:
    return Path(state_dir) / "stacks" / f"{stack_name}.json"


def running_stack_state(
    state_dir: Path = Path(".local-state"), *, stage: str | None = None, stack: str | None = None
) -> dict[str, Any]:
    """The state of the running stack that matches.

    `stack` names it exactly; otherwise `stage` picks the stack named `*-<stage>`; with neither,
    there must be exactly one. Raises StateFileError when none runs (or its process is gone).
    """
    folder = Path(state_dir) / "stacks"
    files = sorted(folder.glob("*.json")) if folder.is_dir() else []
    names = {path.name.removesuffix(".json"): path for path in files}
    if stack is not None:
        wanted = [stack] if stack in names else []
    elif stage is not None:
        wanted = [name for name in names if name == stage or name.endswith(f"-{stage}")]
    else:
        wanted = list(names)
    what = f"stack {stack}" if stack else (f"stage {stage!r}" if stage else "stack")
    if not wanted:
        running = f" (running: {', '.join(names)})" if names else ""
        how = f"make dev STAGE={stage}" if stage and not stack else "make dev"
        raise StateFileError(
            f"no local {what} is running with state dir {state_dir}{running}; start one "
            f"(`{how}`, or `.venv/bin/python -m local --stage STAGE --state-dir DIR`)"
        )
    if len(wanted) > 1:
        raise StateFileError(
            f"{len(wanted)} local stacks run in {state_dir} ({', '.join(wanted)}): pass --stage"
        )
    path = names[wanted[0]]
    try:
        state: dict[str, Any] = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise StateFileError(f"cannot read {path}: {error}") from None
    if not process_alive(int(state.get("pid", 0))):
        raise StateFileError(f"the local stack that wrote {path} is no longer running; start it again")
    return state


def process_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# The shell's AWS configuration: a profile that does not exist (or one with an endpoint, a role to
# assume, a credential process) would break or redirect every boto3 client of the local stack and of
# the tools acting on it, which talk only to the embedded AWS with dummy credentials.
def ignore_aws_configuration() -> None:
    """Make this process's boto3 clients ignore the user's AWS profile and config files."""
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE"):
        os.environ.pop(name, None)
    os.environ["AWS_CONFIG_FILE"] = os.devnull
    os.environ["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
