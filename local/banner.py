"""What the local stack prints once it serves (docs/local-stack.md shows it): a dozen lines, then
LOCAL_STACK_READY; with authorizers, the local issuer and a dev token before it."""

from __future__ import annotations

import os
import sys
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from local.options import Options
from local.runtime.functions import package_version
from local.template.model import HttpRouteSpec, StackModel
from local.template.report import FindingKind, render_findings

if TYPE_CHECKING:
    from local.stack import LocalStack


def restored_summary(model: StackModel, restored: dict[str, Any] | None, closed_connections: int) -> str:
    """`restored TaskTable 2,300 items, ...; TaskQueue 118 messages (12 in flight), ...`."""
    if restored is None:
        return "new and empty"
    tables = ", ".join(
        f"{table.display_name} {restored['items'].get(table.name, 0):,} items"
        for table in model.tables.values()
    )
    queues = []
    for queue in model.queues.values():
        counts = restored["messages"].get(queue.name, {})
        in_flight = counts.get("inFlight", 0)
        queues.append(
            f"{queue.display_name} {counts.get('messages', 0):,} messages"
            + (f" ({in_flight:,} in flight)" if in_flight else "")
        )
    parts = [part for part in (tables, ", ".join(queues)) if part]
    records = sum(restored.get("streamRecords", {}).values())
    if records:
        parts.append(f"{records:,} stream records still to process")
    if closed_connections:
        s = "s" if closed_connections != 1 else ""
        parts.append(f"{closed_connections} WebSocket connection{s} of the last run closed ($disconnect)")
    return "restored " + "; ".join(parts)


def write_report(model: StackModel, path: Path) -> str:
    """The whole start report into `path`; the one line the console gets instead."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(render_findings(model.findings)) + "\n")
    counts = Counter(finding.kind for finding in set(model.findings))
    labels = {
        FindingKind.UNSUPPORTED: "unsupported",
        FindingKind.APPROXIMATED: "approximated",
        FindingKind.SATISFIED: "satisfied locally",
        FindingKind.NOT_EMULATED: "not emulated",
        FindingKind.INFO: "notes",
    }
    shown = ", ".join(f"{counts[kind]} {label}" for kind, label in labels.items() if counts[kind])
    return f"Not as on AWS: {shown or 'nothing'}; the list: {path}"


def print_banner(stack: LocalStack) -> None:
    model, console, options = stack.model, stack.console, stack.options
    console.print(f"{model.stack_name} runs locally from {stack.stack.template_path}")
    if stack.http_url:
        console.print(f"  HTTP API        {stack.http_url}")
    if stack.ws_url:
        console.print(f"  WebSocket API   {stack.ws_url}")
    console.print(f"  embedded AWS    {stack.moto_endpoint} (moto {package_version('moto')})")
    if stack.state is None:
        console.print("  state           in memory only (--in-memory): nothing survives a restart")
    else:
        summary = restored_summary(model, stack.restored, stack.closed_connections)
        console.print(f"  state           {stack.state.paths.database}: {summary}")
        for note in (stack.restored or {}).get("notes", []):
            console.print(f"                  {note}")
    watched = stack.watcher.summary() if stack.watcher is not None else []
    if watched:
        console.print(f"  code            {', '.join(watched)}: edits reach the next invocation")
    console.print(f"  logs            {options.log_dir / model.stack_name}/<Function>.log")
    console.print(
        f"Emulated: {len(model.tables)} tables, {len(model.queues)} queues, "
        f"{len(model.functions)} functions, {len(model.mappings)} event source mappings, "
        + ", ".join(
            [f"HTTP API {a.display_name} ({len(a.routes)} routes)" for a in model.http_apis]
            + [f"WebSocket API {a.display_name} ({len(a.routes)} routes)" for a in model.websocket_apis]
        )
    )
    console.print(write_report(model, stack.state_folder / "report.txt"))
    if options.time_scale != 1.0:
        console.print(
            f"Time scale {options.time_scale}: queue visibility timeouts and the SQS times functions set "
            "are scaled (whole seconds, at least 1)"
        )
    if options.failure_rate is not None:
        console.print(f"FAILURE_RATE overridden to {options.failure_rate} (--failure-rate)")
    chaos = options.chaos
    if chaos.directory is not None:
        injected = chaos.summary()
        console.print(
            "LOCAL FAULTS: "
            + ("; ".join(injected) if injected else "none injected")
            + f"; history recorded in {chaos.directory}/"
        )
    _print_auth(stack)
    console.print(
        f"LOCAL_STACK_READY http={stack.http_url or '-'} ws={stack.ws_url or '-'} moto={stack.moto_endpoint}"
    )


def _print_auth(stack: LocalStack) -> None:
    """The local issuer and a ready-to-use dev token (`LOCAL_DEV_TOKEN sub=... expires=... token=...`)."""
    auth = stack.auth
    if auth is None or auth.primary is None or auth.dev_token is None:
        return
    from local.auth.stack_auth import iso_time  # noqa: PLC0415 - loaded with StackAuth

    console = stack.console
    issuer = auth.primary
    audience = ", ".join(issuer.audience) or "-"
    console.print(f"Auth: local issuer {issuer.url} (audience {audience}, key {auth.key.path})")
    console.print(
        f"LOCAL_DEV_TOKEN sub={auth.dev_subject} expires={iso_time(auth.dev_expires)} token={auth.dev_token}"
    )
    more = f"{python_command()} -m local.token --sub alice --stack {stack.model.stack_name}"
    if stack.options.state_dir != Options().state_dir:  # only when not the default
        more += f" --state-dir {stack.options.state_dir}"
    console.print(f"  TOKEN=<the token above>, or another user's: TOKEN=$({more})")
    path = _sample_path(stack.model)
    if stack.http_url and path is not None:
        console.print(f'  curl -H "Authorization: Bearer $TOKEN" {stack.http_url}{path}')
    parameter = _ws_token_parameter(stack.model)
    if stack.ws_url and parameter is not None:
        console.print(f"  {stack.ws_url}?{parameter}=$TOKEN")


def _sample_path(model: StackModel) -> str | None:
    """For the curl hint: a GET (or ANY) route with a JWT authorizer, without variables if any."""
    if not model.http_apis:
        return None
    api = model.http_apis[0]
    routes = [r for r in api.routes if r.authorizer is not None and " " in r.route_key]
    if not routes:
        return None

    def preference(route: HttpRouteSpec) -> tuple[bool, bool, bool, int, str]:
        method, path = route.route_key.split(" ", 1)
        # the shortest path: the collection (/tasks), not a document beside it (/openapi.json)
        return (bool(route.authorization_scopes), method not in ("GET", "ANY"), "{" in path, len(path), path)

    path = min(routes, key=preference).route_key.split(" ", 1)[1]
    return ("" if api.stage_name == "$default" else f"/{api.stage_name}") + path


def _ws_token_parameter(model: StackModel) -> str | None:
    """For the WebSocket hint: the query parameter the $connect authorizer reads the token from."""
    for api in model.websocket_apis[:1]:
        route = api.routes.get("$connect")
        return route.authorizer.query_parameter if route and route.authorizer else None
    return None


def python_command() -> str:
    """The interpreter running the stack, as a command to copy: `.venv/bin/python` from the
    checkout (a bare `python` lacks the packages `make` installed there)."""
    relative = os.path.relpath(sys.executable)
    return sys.executable if relative.startswith("..") else relative
