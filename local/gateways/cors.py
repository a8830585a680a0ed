"""CORS as API Gateway HTTP APIs do it, from the Api's CorsConfiguration: the API answers
preflights itself (204, with the Access-Control-* headers only for an allowed origin), and on
other responses its headers replace the CORS headers the integration returned.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class CorsConfig:
    allow_origins: tuple[str, ...] = ()
    allow_methods: tuple[str, ...] = ()
    allow_headers: tuple[str, ...] = ()
    expose_headers: tuple[str, ...] = ()
    max_age: int | None = None
    allow_credentials: bool = False

    @classmethod
    def from_template(cls, value: Mapping[str, Any]) -> CorsConfig:
        def strings(key: str) -> tuple[str, ...]:
            return tuple(str(item) for item in value.get(key, []) or [])

        max_age = value.get("MaxAge")
        return cls(
            allow_origins=strings("AllowOrigins"),
            allow_methods=tuple(m.upper() for m in strings("AllowMethods")),
            allow_headers=tuple(h.lower() for h in strings("AllowHeaders")),
            expose_headers=tuple(h.lower() for h in strings("ExposeHeaders")),
            max_age=int(max_age) if max_age is not None else None,
            allow_credentials=bool(value.get("AllowCredentials", False)),
        )

    def allowed_origin(self, origin: str | None) -> str | None:
        """The Access-Control-Allow-Origin value for `origin`, or None when it is not allowed."""
        if not origin:
            return None
        for allowed in self.allow_origins:
            if allowed == "*":
                return origin if self.allow_credentials else "*"
            if "*" in allowed:
                pattern = ".*".join(re.escape(part) for part in allowed.lower().split("*"))
                if re.fullmatch(pattern, origin.lower()):
                    return origin
            elif allowed.lower() == origin.lower():
                return origin
        return None


def _get(headers: Mapping[str, str], name: str) -> str | None:
    for key, value in headers.items():
        if key.lower() == name:
            return value
    return None


def is_preflight(method: str, headers: Mapping[str, str]) -> bool:
    return (
        method.upper() == "OPTIONS"
        and _get(headers, "origin") is not None
        and _get(headers, "access-control-request-method") is not None
    )


def response_headers(config: CorsConfig, headers: Mapping[str, str]) -> dict[str, str]:
    """CORS headers added to the response of a (non-preflight) request."""
    origin = config.allowed_origin(_get(headers, "origin"))
    if origin is None:
        return {}
    result = {"access-control-allow-origin": origin}
    if config.allow_credentials:
        result["access-control-allow-credentials"] = "true"
    if config.expose_headers:
        result["access-control-expose-headers"] = ",".join(config.expose_headers)
    return result


def preflight_headers(config: CorsConfig, headers: Mapping[str, str]) -> dict[str, str]:
    """Headers of the 204 answer to a preflight request: the response headers and what may be asked."""
    result = response_headers(config, headers)
    if not result:
        return {}
    if config.allow_methods:
        result["access-control-allow-methods"] = ",".join(config.allow_methods)
    if config.allow_headers:
        result["access-control-allow-headers"] = ",".join(config.allow_headers)
    if config.max_age is not None:
        result["access-control-max-age"] = str(config.max_age)
    return result


def is_cors_header(name: str) -> bool:
    return name.lower().startswith("access-control-")
