"""Entry point of the embedded-AWS process: `python -m local.moto_process --port 0`.

Runs moto's threaded server (its own process, so its CPU work does not share the local
stack's GIL) with the patches of local.moto_patches, prints `MOTO_READY <port>` on stdout
and serves until stdin closes or it gets SIGTERM/SIGINT.

Every request goes through local.request_meter's middleware, which counts it by caller,
service and operation (with DynamoDB capacity units computed from the items):
`GET /_local/requests` on this port returns the counters, `DELETE /_local/requests` returns
and resets them.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading

os.environ.setdefault("MOTO_DISABLE_GLOBAL_CORS", "true")  # read at import: no CORS on the AWS endpoint

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from moto.server import ThreadedMotoServer
from werkzeug.serving import make_server

from local import moto_patches
from local.processes import die_with_parent
from local.request_meter import MotoItemStore, RequestMeterMiddleware


class MeteredMotoServer(ThreadedMotoServer):
    """moto's ThreadedMotoServer with the request meter in front of its WSGI app."""

    def _server_entry(self) -> None:
        app = RequestMeterMiddleware(DomainDispatcherApplication(create_backend_app), store=MotoItemStore())
        self._server = make_server(
            self._ip_address, self._port, app, True, request_handler=MotoRequestHandler
        )
        self._server_ready_event.set()
        self._server.serve_forever()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.moto_process")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--no-patches", action="store_true", help="run moto as shipped (benchmarks only)")
    parser.add_argument("--parent-pid", type=int, help="exit when this process dies")
    args = parser.parse_args(argv)
    if args.parent_pid:
        die_with_parent(args.parent_pid)

    if not args.no_patches:
        moto_patches.install()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)

    server = MeteredMotoServer(ip_address=args.host, port=args.port, verbose=False)
    server.start()
    _, port = server.get_host_and_port()
    print(f"MOTO_READY {port}", flush=True)

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())

    def watch_stdin() -> None:
        sys.stdin.read()  # returns at EOF: the parent closed the pipe or died
        stop.set()

    threading.Thread(target=watch_stdin, daemon=True).start()
    stop.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
