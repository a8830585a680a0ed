"""`python -m local.token --sub alice`: a token for a running local stack with authorizers.

Signs with the running stack's local issuer (its key in STATE_DIR/auth/, its issuer URL and
audience from STATE_DIR/stacks/<stack>.json) and prints the token alone, for

    TOKEN=$(.venv/bin/python -m local.token --sub alice)
    curl -H "Authorization: Bearer $TOKEN" http://127.0.0.1:4000/tasks
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def _claim(value: str) -> tuple[str, Any]:
    name, separator, raw = value.partition("=")
    if not separator or not name:
        raise argparse.ArgumentTypeError("expected NAME=VALUE")
    try:
        return name, json.loads(raw)
    except json.JSONDecodeError:
        return name, raw


def _subject(value: str) -> str:
    """A sub the stack accepts as an owner (non-empty, no white space around it, at most 1 KB)."""
    import local.auth.issuer  # noqa: F401, PLC0415 - puts lambdas/ on sys.path, for taskflow's owner rule
    from taskflow.domain.owners import MAX_OWNER_BYTES, owner_or_none  # noqa: PLC0415

    if owner_or_none(value) != value:
        raise argparse.ArgumentTypeError(
            f"{value!r} is no owner: a non-empty subject without white space around it, at most "
            f"{MAX_OWNER_BYTES} bytes (the stack would answer its token 401)"
        )
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m local.token",
        description="Mint a token for a running local stack with authorizers (stage config `auth: jwt`).",
    )
    parser.add_argument("--sub", required=True, type=_subject, help="the token's subject (the user)")
    parser.add_argument(
        "--expires-in",
        type=int,
        default=3600,
        metavar="SECONDS",
        help="lifetime in seconds (default 3600; negative: an already expired token)",
    )
    parser.add_argument(
        "--state-dir", type=Path, default=Path(".local-state"), help="the stack's --state-dir (.local-state)"
    )
    parser.add_argument("--stage", help="the stack named *-STAGE (needed when several stacks run)")
    parser.add_argument("--stack", help="the stack's exact name (instead of --stage)")
    parser.add_argument("--audience", help="aud (client_id for --token-use access); default: the stack's")
    parser.add_argument(
        "--token-use",
        choices=("id", "access"),
        default="id",
        help="id: aud is the audience (default); access: client_id is, with a scope claim",
    )
    parser.add_argument("--scope", help="the scope claim (space-separated scopes)")
    parser.add_argument(
        "--claim",
        type=_claim,
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="an extra claim (VALUE parsed as JSON when it is JSON, else a string); repeatable",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from local.auth.issuer import AuthError, load_issuer  # noqa: PLC0415 - after argparse: --help stays fast

    try:
        issuer = load_issuer(args.state_dir, stage=args.stage, stack=args.stack)
        token = issuer.mint(
            args.sub,
            expires_in=args.expires_in,
            audience=args.audience,
            token_use=args.token_use,
            scope=args.scope,
            claims=dict(args.claim),
        )
    except AuthError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(token)
    return 0


if __name__ == "__main__":
    sys.exit(main())
