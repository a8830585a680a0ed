"""What the local stack prints for a request aiohttp cannot parse: one line, no traceback."""

from __future__ import annotations

import io
import logging
import sys

from aiohttp.http_exceptions import BadHttpMessage

from local.console import Console, MalformedRequests


def record_of(error: BaseException) -> logging.LogRecord:
    try:
        raise error
    except BaseException:
        exc_info = sys.exc_info()
    return logging.LogRecord(
        "aiohttp.server", logging.ERROR, __file__, 1, "Error handling request", (), exc_info
    )


def test_a_malformed_request_is_one_console_line_and_its_traceback_is_dropped() -> None:
    output = io.StringIO()
    malformed = MalformedRequests(Console(stream=output))

    kept = malformed.filter(record_of(BadHttpMessage("Duplicate 'Content-Type' header found.")))

    assert kept is False
    line = "malformed HTTP request refused with 400: Duplicate 'Content-Type' header found."
    assert line in output.getvalue()
    assert "Traceback" not in output.getvalue()


def test_any_other_server_error_is_logged_as_it_was() -> None:
    output = io.StringIO()
    malformed = MalformedRequests(Console(stream=output))

    assert malformed.filter(record_of(RuntimeError("a bug in a route"))) is True
    assert output.getvalue() == ""
