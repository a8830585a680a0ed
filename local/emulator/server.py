"""The embedded-AWS process: moto's threaded WSGI server, patched and metered, in its own process
(its CPU work does not share the stack's GIL). It provisions and restores before it listens, so an
open port means a ready emulator and a restart after a crash is the same start. It prints
`MOTO_READY <port> <json>` or `MOTO_FAILED <json>` (exit 2); it serves until stdin closes or SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sqlite3
import sys
import threading
from pathlib import Path
from typing import Any

os.environ.setdefault("MOTO_DISABLE_GLOBAL_CORS", "true")  # read at import: no CORS on the AWS endpoint

from moto.core.models import DEFAULT_ACCOUNT_ID
from moto.dynamodb.models import dynamodb_backends
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import make_server
from werkzeug.test import Client

from local.emulator import CLOSE_RECEIVES, patches
from local.metering.dynamodb_cost import MotoItemStore
from local.metering.meter import RequestMeterMiddleware, camel_json
from local.metering.protocol import json_protocol_headers
from local.runtime.processes import die_with_parent
from local.state.store import StateError, StateStore


class SetupError(Exception):
    """A provisioning request failed."""


def provision(app: Any, requests: list[dict[str, Any]], region: str) -> None:
    """Send each {"service", "action", "payload"} request to `app` in-process, in order."""
    client = Client(app)
    for request in requests:
        service, action = request["service"], request["action"]
        response = client.post(
            "/",
            data=json.dumps(request["payload"]),
            headers=json_protocol_headers(service, action, region, caller="provision"),
        )
        if response.status_code >= 400:
            raise SetupError(f"{action} failed while provisioning: {response.get_data(as_text=True)[:500]}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.emulator.server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--region", default="us-east-1")
    parser.add_argument("--setup", type=Path, help="JSON list of provisioning requests to apply first")
    parser.add_argument("--state", type=Path, help="the durable state file (local/state/store.py)")
    parser.add_argument("--stack", default="", help="with --state: the stack the state belongs to")
    parser.add_argument("--no-patches", action="store_true", help="run moto as shipped (benchmarks only)")
    parser.add_argument("--parent-pid", type=int, help="exit when this process dies")
    args = parser.parse_args(argv)
    if args.parent_pid:
        die_with_parent(args.parent_pid)

    if not args.no_patches:
        patches.install()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)

    app = RequestMeterMiddleware(DomainDispatcherApplication(create_backend_app), store=MotoItemStore())
    ready: dict[str, Any] = {}
    try:
        if args.setup is not None:
            provision(app, json.loads(args.setup.read_text()), args.region)
        if args.state is not None:
            from local.state import moto_state  # noqa: PLC0415 - only with durable state

            store = StateStore.open(args.state, args.stack, durable=True)
            ready["restored"] = camel_json(moto_state.restore(store, args.region))
            app.journal = journal = moto_state.Journal(store)
            moto_state.install(journal)
        tables = dynamodb_backends[DEFAULT_ACCOUNT_ID][args.region].tables
        ready["streams"] = {  # after a restore, each stream keeps the label of before the restart
            name: f"{table.table_arn}/stream/{table.latest_stream_label}"
            for name, table in tables.items()
            if table.latest_stream_label
        }
        try:
            server = make_server(args.host, args.port, app, True, request_handler=MotoRequestHandler)
        except SystemExit:  # werkzeug's answer to a port in use: it printed why, then exit(1)
            raise OSError(f"cannot listen on {args.host}:{args.port}: the port is in use") from None
    except (OSError, ValueError, SetupError, StateError, sqlite3.Error) as error:
        message = str(error)
        if isinstance(error, sqlite3.Error):  # e.g. "database or disk is full" while restoring
            message = f"the state file {args.state} cannot be used right now: {error}"
        print("MOTO_FAILED " + json.dumps({"message": message}), flush=True)
        return 2
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(f"MOTO_READY {server.server_address[1]} {json.dumps(ready, separators=(',', ':'))}", flush=True)

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())

    def watch_stdin() -> None:
        for line in sys.stdin:  # commands from the stack, one per line
            if line.strip() == CLOSE_RECEIVES:
                patches.close_receives()
        stop.set()  # EOF: the parent closed the pipe or died

    threading.Thread(target=watch_stdin, daemon=True).start()
    stop.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
