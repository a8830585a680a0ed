"""What the local stack prints: the banner, one line per invocation, queue depths, warnings."""

from __future__ import annotations

import logging
import sys
import threading
import time
from typing import TextIO

from aiohttp.http_exceptions import HttpProcessingError

from local.runtime.pool import InvocationResult

# Control characters as visible escapes: a line about a request shows its path, and a path may
# hold a (percent-encoded) newline or terminal escape, which would otherwise print a forged line.
_VISIBLE: dict[int, str] = {
    code: repr(chr(code))[1:-1] for code in [*range(0x20), *range(0x7F, 0xA0)] if code != ord("\t")
}


def one_line(text: str) -> str:
    """`text` with its control characters escaped (\\n, \\x1b): one line on any terminal."""
    return text.translate(_VISIBLE)


class Console:
    def __init__(self, quiet: bool = False, stream: TextIO | None = None) -> None:
        self.quiet = quiet
        self._stream = stream or sys.stdout
        self._lock = threading.Lock()
        self.invocations = 0
        self.failures = 0

    def print(self, text: str = "") -> None:
        with self._lock:
            self._stream.write(text + "\n")
            self._stream.flush()

    def _stamp(self) -> str:
        now = time.time()
        return time.strftime("%H:%M:%S", time.localtime(now)) + f".{int(now * 1000) % 1000:03d}"

    def invocation(self, function: str, result: InvocationResult, outcome: str, detail: str) -> None:
        """One line per invocation: function, duration, outcome, what triggered it (a request's
        path, for one: control characters escaped, like every `detail` line)."""
        self.invocations += 1
        if outcome != "ok":
            self.failures += 1
        if self.quiet:
            return
        line = f"{function:<22} {result.duration_ms:>7.0f} ms  {outcome:<18} {detail}"
        self.print(f"{self._stamp()}  {one_line(line)}")

    def detail(self, text: str) -> None:
        """A time-stamped line that --quiet leaves out (e.g. a request an authorizer refused)."""
        if not self.quiet:
            self.print(f"{self._stamp()}  {one_line(text)}")

    def event(self, text: str) -> None:
        """Something worth a line even in --quiet mode (dead-lettering, skipped records...)."""
        self.print(f"{self._stamp()}  {text}")

    def warn(self, text: str) -> None:
        self.print(f"{self._stamp()}  WARNING {text}")


class MalformedRequests(logging.Filter):
    """For the `aiohttp.server` logger: a request aiohttp cannot parse (a duplicate Content-Type, a
    space in the request line, a header over 8 KB) is answered 400 in plain text, as API Gateway
    refuses it before any route too. aiohttp logs it with a traceback, which reads like a crash:
    this turns it into one console line instead."""

    def __init__(self, console: Console) -> None:
        super().__init__()
        self._console = console

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, HttpProcessingError):
            self._console.detail(f"malformed HTTP request refused with 400: {error.message}")
            return False
        return True
