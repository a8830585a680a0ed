"""Route selection of an HTTP API, as API Gateway documents it.

Route keys are `METHOD /path` (path segments may be `{name}` or a final greedy `{name+}`;
METHOD may be ANY) or `$default`. The most specific match wins: a route without variables,
then with fewer variables, then a greedy one, then `$default`; a specific method beats ANY.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar
from urllib.parse import unquote

T = TypeVar("T")


@dataclass(frozen=True)
class _Compiled(Generic[T]):
    route_key: str
    method: str
    segments: tuple[str, ...]
    greedy: bool
    target: T

    @property
    def rank(self) -> tuple[int, int, int, int]:
        variables = sum(1 for s in self.segments if s.startswith("{"))
        # lower sorts first: no greedy, fewer variables, more literal segments, specific method
        literals = len(self.segments) - variables
        return (int(self.greedy), variables, -literals, int(self.method == "ANY"))


@dataclass(frozen=True)
class RouteMatch(Generic[T]):
    route_key: str
    target: T
    path_parameters: dict[str, str]


class RouteTable(Generic[T]):
    def __init__(self, routes: list[tuple[str, T]]) -> None:
        self._routes: list[_Compiled[T]] = []
        self._default: tuple[str, T] | None = None
        for route_key, target in routes:
            if route_key == "$default":
                self._default = (route_key, target)
                continue
            method, _, path = route_key.partition(" ")
            segments = tuple(s for s in path.strip("/").split("/")) if path.strip("/") else ()
            greedy = bool(segments) and segments[-1].startswith("{") and segments[-1].endswith("+}")
            self._routes.append(_Compiled(route_key, method.upper(), segments, greedy, target))
        self._routes.sort(key=lambda r: r.rank)

    def match(self, method: str, path: str) -> RouteMatch[T] | None:
        method = method.upper()
        stripped = path.strip("/")
        parts = stripped.split("/") if stripped else []
        if path.endswith("/") and stripped:
            parts.append("")  # "/tasks/" is not "/tasks"
        for route in self._routes:
            if route.method not in (method, "ANY"):
                continue
            parameters = _match_segments(route, parts)
            if parameters is not None:
                return RouteMatch(route.route_key, route.target, parameters)
        if self._default is not None:
            return RouteMatch(self._default[0], self._default[1], {})
        return None


def _match_segments(route: _Compiled[T], parts: list[str]) -> dict[str, str] | None:
    segments = route.segments
    if route.greedy:
        fixed = segments[:-1]
        if len(parts) <= len(fixed):
            return None
    elif len(parts) != len(segments):
        return None
    else:
        fixed = segments
    parameters: dict[str, str] = {}
    for segment, part in zip(fixed, parts, strict=False):
        if segment.startswith("{") and segment.endswith("}"):
            if not part:
                return None
            parameters[segment[1:-1]] = unquote(part)
        elif segment != part:
            return None
    if route.greedy:
        parameters[segments[-1][1:-2]] = unquote("/".join(parts[len(fixed) :]))
    return parameters
