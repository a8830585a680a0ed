"""Owners: who a task or a connection belongs to on stages with `auth: jwt` (taskflow.auth_contract).

The owner is the verified token's `sub` claim, taken as is. It is stored as a DynamoDB key (the
ByOwner indexes), so it must be a non-empty string DynamoDB can index: at most MAX_OWNER_BYTES of
UTF-8 (an index partition key allows 2048 bytes). Anything else is no owner at all, and the caller
is refused (fail closed), never served as someone else or as nobody.
"""

from __future__ import annotations

from typing import Final

MAX_OWNER_BYTES: Final = 1024


def owner_or_none(value: object) -> str | None:
    """`value` if it is a usable owner id, else None."""
    if not isinstance(value, str) or not value:
        return None
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:  # an unpaired surrogate: not storable
        return None
    return value if size <= MAX_OWNER_BYTES else None
