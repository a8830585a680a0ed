"""DynamoDB item sizes and capacity units, computed the way DynamoDB bills them (the write and read
rules: docs/performance.md), from items in low-level JSON form (`{"S": ...}`, `{"M": {...}}`).

* item size: attribute names (UTF-8 bytes) + values; strings in UTF-8 bytes, numbers about
  1 byte per 2 significant digits + 1, binary in raw bytes, booleans and null 1 byte, lists and
  maps 3 bytes + 1 byte per element + their contents (map keys included);
* every charge is at least 1 unit; BatchWriteItem and BatchGetItem are billed per item; index
  queries are always eventually consistent (half price);
* an index entry whose only change is a projected attribute costs ceil(larger entry / 1 KB). The
  entry is the projected item (ALL: the whole item; KEYS_ONLY: the table and index keys; INCLUDE:
  those plus the listed attributes). The 100 bytes of per-entry overhead DynamoDB adds
  for index *storage* are not counted in throughput.

On-demand tables bill the same arithmetic in write and read request units.
"""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, Final

WRITE_UNIT_BYTES: Final = 1024
READ_UNIT_BYTES: Final = 4096
EVENTUALLY_CONSISTENT: Final = 0.5

Item = Mapping[str, Mapping[str, Any]]  # one item, low-level JSON (attribute name -> AttributeValue)


def _number_size(text: str) -> int:
    try:
        digits = Decimal(text).normalize().as_tuple().digits
    except InvalidOperation:
        return len(text)
    return math.ceil(len(digits) / 2) + 1


def _binary_size(value: Any) -> int:
    if isinstance(value, bytes | bytearray):
        return len(value)
    try:
        return len(base64.b64decode(str(value), validate=True))
    except (binascii.Error, ValueError):
        return len(str(value))


def attribute_value_size(value: Mapping[str, Any]) -> int:  # noqa: PLR0911 - one return per type
    """Bytes DynamoDB counts for one AttributeValue (`{"S": ...}`, `{"M": ...}`, ...)."""
    (kind, content), *_ = value.items()
    if kind == "S":
        return len(str(content).encode("utf-8"))
    if kind == "N":
        return _number_size(str(content))
    if kind == "B":
        return _binary_size(content)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(len(str(item).encode("utf-8")) for item in content)
    if kind == "NS":
        return sum(_number_size(str(item)) for item in content)
    if kind == "BS":
        return sum(_binary_size(item) for item in content)
    if kind == "M":
        return 3 + sum(len(k.encode("utf-8")) + attribute_value_size(v) + 1 for k, v in content.items())
    if kind == "L":
        return 3 + sum(attribute_value_size(v) + 1 for v in content)
    raise ValueError(f"unknown AttributeValue type {kind!r}")


def item_size(item: Item | None) -> int:
    """Bytes of a whole item (0 for no item)."""
    if not item:
        return 0
    return sum(len(name.encode("utf-8")) + attribute_value_size(value) for name, value in item.items())


def write_units_for(size: int) -> int:
    """Write units of one item write of `size` bytes: ceil(size / 1 KB), at least 1."""
    return max(1, math.ceil(size / WRITE_UNIT_BYTES))


def read_units_for(size: int, consistent: bool) -> float:
    """Read units of one item read, or of one Query/Scan request that read `size` bytes."""
    units = max(1, math.ceil(size / READ_UNIT_BYTES))
    return units if consistent else units * EVENTUALLY_CONSISTENT


# --------------------------------------------------------------------------- table shapes


@dataclass(frozen=True)
class IndexShape:
    """A global secondary index: its key attributes and projection."""

    name: str
    key_attributes: tuple[str, ...]
    projection: str = "ALL"  # ALL | KEYS_ONLY | INCLUDE
    non_key_attributes: tuple[str, ...] = ()

    def holds(self, item: Item | None) -> bool:
        """Whether `item` has an entry here (GSIs are sparse: every key attribute must be set)."""
        return item is not None and all(name in item for name in self.key_attributes)


@dataclass(frozen=True)
class TableShape:
    key_attributes: tuple[str, ...]
    indexes: tuple[IndexShape, ...] = ()

    def key_of(self, item: Item) -> dict[str, Any] | None:
        """The table key of `item`, or None if an attribute of it is missing."""
        if not all(name in item for name in self.key_attributes):
            return None
        return {name: item[name] for name in self.key_attributes}


def index_entry(table: TableShape, index: IndexShape, item: Item | None) -> dict[str, Any] | None:
    """The entry `item` has in `index` (its projection), or None if the item is not in it
    (no item, or an index key attribute missing: GSIs are sparse)."""
    if item is None or not index.holds(item):
        return None
    if index.projection == "ALL":
        return dict(item)
    kept = set(table.key_attributes) | set(index.key_attributes)
    if index.projection == "INCLUDE":
        kept |= set(index.non_key_attributes)
    return {name: value for name, value in item.items() if name in kept}


@dataclass
class WriteUnits:
    """The write units of one write: the table's and each index's."""

    table: int = 0
    indexes: dict[str, int] = field(default_factory=dict)


def _entry(
    table: TableShape, index: IndexShape, item: Item | None, item_bytes: int
) -> tuple[Mapping[str, Any], int] | None:
    """The index entry of `item` and its size (an ALL projection reuses the item's size)."""
    if index.projection == "ALL":
        return (item, item_bytes) if item is not None and index.holds(item) else None
    entry = index_entry(table, index, item)
    return None if entry is None else (entry, item_size(entry))


def index_write_units(
    table: TableShape,
    index: IndexShape,
    old: Item | None,
    new: Item | None,
    sizes: tuple[int, int] | None = None,
) -> int:
    """Write units `index` consumes when `old` becomes `new` (`sizes`: their item sizes, if known)."""
    old_bytes, new_bytes = sizes if sizes is not None else (item_size(old), item_size(new))
    before = _entry(table, index, old, old_bytes)
    after = _entry(table, index, new, new_bytes)
    if before is None and after is None:
        return 0
    if before is None:
        assert after is not None
        return write_units_for(after[1])
    if after is None:
        return write_units_for(before[1])
    old_key = [before[0][name] for name in index.key_attributes]
    new_key = [after[0][name] for name in index.key_attributes]
    if old_key != new_key:  # the entry moves: delete the old one, put the new one
        return write_units_for(before[1]) + write_units_for(after[1])
    if before[0] == after[0]:
        return 0
    return write_units_for(max(before[1], after[1]))


def write_units(
    table: TableShape, old: Item | None, new: Item | None, *, condition_failed: bool = False
) -> WriteUnits:
    """Units of one item write that turned `old` into `new` (None: no item before / after).
    With `condition_failed` the write did not happen: the existing item's size, no index."""
    if condition_failed:
        return WriteUnits(table=write_units_for(item_size(old)))
    sizes = (item_size(old), item_size(new))
    units = WriteUnits(table=write_units_for(max(sizes)))
    for index in table.indexes:
        cost = index_write_units(table, index, old, new, sizes)
        if cost:
            units.indexes[index.name] = cost
    return units


def partition_writes(
    table: TableShape, name: str, old: Item | None, new: Item | None, units: WriteUnits
) -> dict[tuple[str, str], float]:
    """Where the units of one write land: (`name`, or `name/Index`, partition key value) -> units.
    An index entry that moved to another partition splits its units between the two."""
    landed: dict[tuple[str, str], float] = {}
    item = new or old
    if item and table.key_attributes and table.key_attributes[0] in item:
        landed[(name, _scalar(item[table.key_attributes[0]]))] = float(units.table)
    for index in table.indexes:
        cost = units.indexes.get(index.name)
        if not cost:
            continue
        partitions = {
            _scalar(entry[index.key_attributes[0]]) for entry in (old, new) if entry and index.holds(entry)
        }
        for partition in partitions:
            landed[(f"{name}/{index.name}", partition)] = cost / len(partitions)
    return landed


def _scalar(value: Mapping[str, Any]) -> str:
    """A key attribute's value ({"S": "x"}, {"N": "1"}, {"B": ...}) as text."""
    return str(next(iter(value.values()), ""))
