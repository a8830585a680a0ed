"""Lambda event filtering (the FilterCriteria of an event source mapping).

A record is delivered when it matches at least one filter pattern. The pattern language is
EventBridge's, as Lambda documents it: exact values (strings, numbers, booleans, null), OR
within a list, AND across keys, `prefix`, `suffix`, `equals-ignore-case`, `anything-but`
(a value, a list, or a prefix/suffix), `numeric` (=, <, <=, >, >= and ranges), `exists`,
`wildcard`, `cidr`, and `$or`. An array in the record matches if any element matches.

SQS message bodies are matched as JSON when they parse as JSON (Lambda does the same);
DynamoDB stream records are matched as they appear in the event.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

_MISSING = object()


class FilterPatternError(ValueError):
    """A FilterCriteria pattern that is not valid."""


def parse_patterns(filters: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The `Pattern` strings of FilterCriteria.Filters, parsed."""
    patterns = []
    for item in filters:
        raw = item.get("Pattern")
        try:
            pattern = json.loads(raw) if isinstance(raw, str) else raw
        except json.JSONDecodeError as error:
            raise FilterPatternError(f"filter pattern is not JSON: {raw!r}") from error
        if not isinstance(pattern, dict):
            raise FilterPatternError(f"filter pattern must be a JSON object: {raw!r}")
        patterns.append(pattern)
    return patterns


def matches_any(patterns: Sequence[Mapping[str, Any]], record: Mapping[str, Any]) -> bool:
    """True when there is no pattern or the record matches one of them."""
    return not patterns or any(matches(pattern, record) for pattern in patterns)


def sqs_filter_view(record: Mapping[str, Any]) -> dict[str, Any]:
    """What SQS filters see: the record with its body parsed when it is JSON."""
    view = dict(record)
    body = record.get("body")
    if isinstance(body, str):
        with contextlib.suppress(json.JSONDecodeError):
            view["body"] = json.loads(body)
    return view


def matches(pattern: Mapping[str, Any], event: Any) -> bool:
    if not isinstance(pattern, Mapping):
        raise FilterPatternError(f"pattern must be an object, got {pattern!r}")
    for key, expected in pattern.items():
        if key == "$or":
            if not isinstance(expected, list) or not any(matches(p, event) for p in expected):
                return False
            continue
        value = event.get(key, _MISSING) if isinstance(event, Mapping) else _MISSING
        if isinstance(expected, Mapping):
            if value is _MISSING:
                # a nested pattern on an absent object only matches "exists: false" leaves
                if not _only_absence(expected):
                    return False
                continue
            if not isinstance(value, Mapping):
                return False
            if not matches(expected, value):
                return False
        elif isinstance(expected, list):
            if not _leaf_matches(expected, value):
                return False
        else:
            raise FilterPatternError(f"pattern value for {key!r} must be an array or object: {expected!r}")
    return True


def _only_absence(pattern: Mapping[str, Any]) -> bool:
    for value in pattern.values():
        if isinstance(value, Mapping):
            if not _only_absence(value):
                return False
        elif not isinstance(value, list) or not any(
            isinstance(m, Mapping) and m.get("exists") is False for m in value
        ):
            return False
    return True


def _leaf_matches(matchers: list[Any], value: Any) -> bool:
    if not matchers:
        raise FilterPatternError("an empty array matches nothing: use exists instead")
    candidates: list[Any] = value if isinstance(value, list) else [value]
    for matcher in matchers:
        if isinstance(matcher, Mapping) and "exists" in matcher:
            present = value is not _MISSING
            if bool(matcher["exists"]) == present:
                return True
            continue
        if value is _MISSING:
            continue
        if any(_matcher_matches(matcher, candidate) for candidate in candidates):
            return True
    return False


def _matcher_matches(matcher: Any, value: Any) -> bool:  # noqa: PLR0911 - one branch per operator
    if not isinstance(matcher, Mapping):
        return _equals(matcher, value)
    if len(matcher) != 1:
        raise FilterPatternError(f"a matcher has exactly one operator: {matcher!r}")
    ((operator, operand),) = matcher.items()
    if operator in ("prefix", "suffix"):
        return _affix(operand, value, at_end=operator == "suffix")
    if operator == "equals-ignore-case":
        return isinstance(value, str) and isinstance(operand, str) and value.lower() == operand.lower()
    if operator == "anything-but":
        return _anything_but(operand, value)
    if operator == "numeric":
        return _numeric(operand, value)
    if operator == "wildcard":
        return isinstance(value, str) and _wildcard(str(operand)).fullmatch(value) is not None
    if operator == "cidr":
        return _cidr(str(operand), value)
    raise FilterPatternError(f"unsupported filter operator {operator!r}")


def _equals(expected: Any, value: Any) -> bool:
    if expected is None or isinstance(expected, bool) or isinstance(value, bool):
        return expected is value or (expected == value and type(expected) is type(value))
    if isinstance(expected, int | float) and not isinstance(value, str):
        return isinstance(value, int | float) and float(expected) == float(value)
    return bool(expected == value)


def _affix(operand: Any, value: Any, *, at_end: bool) -> bool:
    """`prefix` (or, `at_end`, `suffix`): a string operand, or {"equals-ignore-case": string}."""
    if not isinstance(value, str):
        return False
    text, affix = value, str(operand)
    if isinstance(operand, Mapping) and "equals-ignore-case" in operand:
        text, affix = value.lower(), str(operand["equals-ignore-case"]).lower()
    return text.endswith(affix) if at_end else text.startswith(affix)


def _anything_but(operand: Any, value: Any) -> bool:
    if isinstance(operand, Mapping):
        for affix in ("prefix", "suffix"):
            if affix in operand:
                return isinstance(value, str) and not _affix(operand[affix], value, at_end=affix == "suffix")
        if "equals-ignore-case" in operand:
            options = operand["equals-ignore-case"]
            options = options if isinstance(options, list) else [options]
            return isinstance(value, str) and value.lower() not in {str(o).lower() for o in options}
        raise FilterPatternError(f"unsupported anything-but operand {operand!r}")
    options = operand if isinstance(operand, list) else [operand]
    return not any(_equals(option, value) for option in options)


def _as_number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):  # DynamoDB's N values are strings
        try:
            return float(value)
        except ValueError:
            return None
    return None


_COMPARATORS = {
    "=": lambda a, b: a == b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


def _numeric(operand: Any, value: Any) -> bool:
    number = _as_number(value)
    if number is None:
        return False
    if not isinstance(operand, list) or len(operand) % 2:
        raise FilterPatternError(f"numeric needs operator/value pairs: {operand!r}")
    for index in range(0, len(operand), 2):
        comparator = _COMPARATORS.get(operand[index])
        bound = _as_number(operand[index + 1])
        if comparator is None or bound is None:
            raise FilterPatternError(f"bad numeric condition {operand!r}")
        if not comparator(number, bound):
            return False
    return True


def _wildcard(pattern: str) -> re.Pattern[str]:
    return re.compile(".*".join(re.escape(part) for part in pattern.split("*")), re.DOTALL)


def _cidr(network: str, value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        return ipaddress.ip_address(value) in ipaddress.ip_network(network, strict=False)
    except ValueError:
        return False
