"""Child processes that die with the local stack: no orphans, even after `kill -9` of the parent.

Every child (moto server, function workers) is started in its own session, so a Ctrl-C in the
terminal reaches only the parent, which then stops the children in order. Each child also
asks Linux (PR_SET_PDEATHSIG) to SIGKILL it when its parent dies, first thing at start, and
exits at once if the parent is already gone; so a parent killed without cleaning up leaves
nothing behind. (Done in the child rather than in a preexec_fn, which is unsafe in a process
with threads.) bootstrap.py has its own copy: it may import nothing from local/.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys

_PR_SET_PDEATHSIG = 1


def die_with_parent(parent_pid: int) -> None:
    """Called in a child: SIGKILL this process when `parent_pid` exits."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)


def kill_process_group(pid: int, sig: int = signal.SIGKILL) -> None:
    """Signal a child started with start_new_session=True and everything it started."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)
