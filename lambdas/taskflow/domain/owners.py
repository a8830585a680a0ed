"""Owners: who a task or a connection belongs to on stages with `auth: jwt` (taskflow.auth_contract).

The owner is the verified token's `sub` claim, taken as is, under one rule on every door (the HTTP
API's caller, the WebSocket authorizer, the stored rows): a non-empty string without leading or
trailing white space, at most MAX_OWNER_BYTES of UTF-8 (it is part of DynamoDB keys: the task key
and the connections' ByOwner index). Anything else (a number, a list, an object, "alice ") is no
owner at all, and the caller is refused with 401 (fail closed), never served as someone else or as
nobody.
"""

from __future__ import annotations

from typing import Final

MAX_OWNER_BYTES: Final = 1024


def owner_or_none(value: object) -> str | None:
    """`value` if it is a usable owner id, else None."""
    if not isinstance(value, str) or not value or value != value.strip():
        return None
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:  # an unpaired surrogate: not storable
        return None
    return value if size <= MAX_OWNER_BYTES else None
