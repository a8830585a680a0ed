"""Typed settings per function, read from the environment and validated once per cold start.

Each function has its own settings class listing exactly the variables infra/ gives it (names from
`taskflow.env_vars`). `load_settings(ProcessorSettings)` validates and caches; a missing or invalid
variable raises `SettingsError` naming the variable, so a misconfigured function fails loudly on
its first invocation instead of running with a hidden default.

Formats (set by infra/): booleans "true"/"false", lists comma-separated, numbers decimal strings.

Settings check form and presence, not ranges: a number is a number, a list has its items, a URL is
one. The limits of a stage value (failure rate 0..1, backoff at most 900 s, ...) are checked once,
at synth, by the stage config (infra/config.py) that produced the variable (docs/decisions.md,
"Ranges only at synth"); a second copy here would only drift from it.

Optional variables: a few variables may be absent, and their absence has one documented meaning,
given as the field's default (`field(default=..., metadata=from_env(..., optional=True))`). This is
not a hidden default: a value that is present is still validated (an invalid one raises
SettingsError), and absence is part of the contract with infra/. The one such variable is AUTH_MODE:
absent means "none". infra/ sets it only on stages with `auth: jwt`, so that a stage with
`auth: none` keeps exactly the template (and functions) it had before authentication existed:
adding AUTH_MODE=none to every function would change every none stage's template and redeploy
every function for no change in behaviour. The flip side: on a jwt stage, every function whose
settings read AUTH_MODE (the `_OwnerScoped` ones: HttpApiSettings, NotifierSettings,
WsConnectSettings, WsDefaultSettings) must get AUTH_MODE=jwt, since its absence there would mean
"no isolation"; infra/ sets it and asserts it.

The classes are frozen stdlib dataclasses, each field naming its variable and its parser
(`field(metadata=from_env(...))`), not pydantic models: most functions never build a Task model,
and pydantic (its import and first model) costs about 0.4x a bare `import boto3` of cold start
(bench/cold_start.py), a price only the HTTP API and the processor need to pay.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar
from urllib.parse import urlsplit

from taskflow import env_vars
from taskflow.auth_contract import AUTH_JWT, AUTH_NONE, AuthMode
from taskflow.observability import metrics

# Key of a field's metadata holding its Variable.
_VARIABLE: Final = "variable"


class SettingsError(RuntimeError):
    """The function's environment is missing a variable or holds an invalid value."""


@dataclass(frozen=True)
class Variable:
    """Where a settings field comes from: its environment variable, and the parser turning the
    variable's text into the field's value (raising ValueError with the reason if it cannot)."""

    name: str
    parse: Callable[[str], Any]
    # True: the variable may be absent, and then the field keeps its default (the documented
    # meaning of the absence; see the module docstring).
    optional: bool = False


def from_env(
    name: str, parse: Callable[[str], Any] | None = None, *, optional: bool = False
) -> Mapping[str, Variable]:
    """A settings field's metadata: read `name`, parse it with `parse` (default: non-empty text).
    `optional`: `name` may be absent, meaning the field's default."""
    return {_VARIABLE: Variable(name, parse or _non_empty, optional)}


# ----------------------------------------------------------------------------- parsers


def _non_empty(value: str) -> str:
    if not value:
        raise ValueError("must not be empty")
    return value


def _parse_bool(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered not in ("true", "false"):
        raise ValueError(f'expected "true" or "false", got {value!r}')
    return lowered == "true"


def _parse_comma_list(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(",") if part.strip())


def _parse_int(value: str) -> int:
    """A decimal integer; like the previous (pydantic) settings, "5.0" is 5 but "5.5" is refused."""
    try:
        return int(value)
    except ValueError:
        number = _finite(value, "expected an integer")
    if not number.is_integer():
        raise ValueError("expected an integer")
    return int(number)


def _parse_optional_int(value: str) -> int | None:
    """An empty (or blank) value means "not set": None."""
    if not value.strip():
        return None
    return _parse_int(value)


def _parse_float(value: str) -> float:
    return _finite(value, "expected a number")


def _finite(value: str, problem: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise ValueError(problem) from None
    if not math.isfinite(number):
        raise ValueError(problem)
    return number


def _items(what: str) -> Callable[[str], tuple[str, ...]]:
    """A comma-separated list of one `what` at least (the code that reads it takes the first)."""

    def parse(value: str) -> tuple[str, ...]:
        items = _parse_comma_list(value)
        if not items:
            raise ValueError(f"expected at least one {what}")
        return items

    return parse


def _callback_url(value: str) -> str:
    if not value.startswith(("https://", "http://")):
        raise ValueError(f"expected an https:// callback URL, got {value!r}")
    return value


def _auth_mode(value: str) -> AuthMode:
    if value == AUTH_JWT:
        return AUTH_JWT
    if value == AUTH_NONE:
        return AUTH_NONE
    raise ValueError(f"expected {AUTH_JWT!r} (or {AUTH_NONE!r}, the same as leaving it unset), got {value!r}")


def _issuer_url(value: str) -> str:
    """The token issuer, exactly as tokens carry it in `iss`: an https URL (http is accepted for an
    issuer on this machine, the local stack's)."""
    parts = urlsplit(value)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError(f"expected an https:// issuer URL, got {value!r}")
    if parts.query or parts.fragment:
        raise ValueError("an issuer URL has no query or fragment")
    return value


# ----------------------------------------------------------------------------- settings


@dataclass(frozen=True, kw_only=True)
class FunctionSettings:
    """Variables every function gets. The classes below are keyword-only, so the groups of
    variables several functions share are declared once and combined by inheritance."""

    stage: str = field(metadata=from_env(env_vars.STAGE))


@dataclass(frozen=True, kw_only=True)
class _TaskTable(FunctionSettings):
    task_table_name: str = field(metadata=from_env(env_vars.TASK_TABLE_NAME))
    task_list_shards: int = field(metadata=from_env(env_vars.TASK_LIST_SHARDS, _parse_int))


@dataclass(frozen=True, kw_only=True)
class _ConnectionTable(FunctionSettings):
    connection_table_name: str = field(metadata=from_env(env_vars.CONNECTION_TABLE_NAME))


@dataclass(frozen=True, kw_only=True)
class _OwnerScoped(FunctionSettings):
    """The functions that scope by owner read AUTH_MODE; absent (meaning "none") on `auth: none`
    stages (see the module docstring)."""

    auth_mode: AuthMode = field(
        default=AUTH_NONE, metadata=from_env(env_vars.AUTH_MODE, _auth_mode, optional=True)
    )


@dataclass(frozen=True, kw_only=True)
class HttpApiSettings(_TaskTable, _OwnerScoped):
    cors_origins: tuple[str, ...] = field(metadata=from_env(env_vars.CORS_ORIGINS, _items("origin")))
    cors_headers: tuple[str, ...] = field(metadata=from_env(env_vars.CORS_HEADERS, _parse_comma_list))
    allow_fault_injection: bool = field(metadata=from_env(env_vars.ALLOW_FAULT_INJECTION, _parse_bool))


@dataclass(frozen=True, kw_only=True)
class EnqueueSettings(FunctionSettings):
    task_queue_url: str = field(metadata=from_env(env_vars.TASK_QUEUE_URL))


@dataclass(frozen=True, kw_only=True)
class ProcessorSettings(_TaskTable):
    task_queue_url: str = field(metadata=from_env(env_vars.TASK_QUEUE_URL))
    failure_rate: float = field(metadata=from_env(env_vars.FAILURE_RATE, _parse_float))
    # "" means "seed from the OS" (a different sequence per cold start).
    failure_seed: int | None = field(metadata=from_env(env_vars.FAILURE_SEED, _parse_optional_int))
    allow_fault_injection: bool = field(metadata=from_env(env_vars.ALLOW_FAULT_INJECTION, _parse_bool))
    max_receive_count: int = field(metadata=from_env(env_vars.MAX_RECEIVE_COUNT, _parse_int))
    backoff_base_seconds: int = field(metadata=from_env(env_vars.BACKOFF_BASE_SECONDS, _parse_int))
    backoff_cap_seconds: int = field(metadata=from_env(env_vars.BACKOFF_CAP_SECONDS, _parse_int))


@dataclass(frozen=True, kw_only=True)
class DlqConsumerSettings(_TaskTable):
    max_receive_count: int = field(metadata=from_env(env_vars.MAX_RECEIVE_COUNT, _parse_int))


@dataclass(frozen=True, kw_only=True)
class NotifierSettings(_ConnectionTable, _OwnerScoped):
    websocket_callback_url: str = field(metadata=from_env(env_vars.WEBSOCKET_CALLBACK_URL, _callback_url))


@dataclass(frozen=True, kw_only=True)
class WsConnectSettings(_ConnectionTable, _OwnerScoped):
    connection_ttl_seconds: int = field(metadata=from_env(env_vars.CONNECTION_TTL_SECONDS, _parse_int))


@dataclass(frozen=True, kw_only=True)
class WsDefaultSettings(_TaskTable, _OwnerScoped):
    """The $default route: ping, and resume (a replay of the task changes a connection missed)."""

    websocket_callback_url: str = field(metadata=from_env(env_vars.WEBSOCKET_CALLBACK_URL, _callback_url))
    resume_max_changes: int = field(metadata=from_env(env_vars.RESUME_MAX_CHANGES, _parse_int))
    resume_window_seconds: int = field(metadata=from_env(env_vars.RESUME_WINDOW_SECONDS, _parse_int))


@dataclass(frozen=True, kw_only=True)
class WsDisconnectSettings(_ConnectionTable):
    """$disconnect: deletes the connection's row."""


@dataclass(frozen=True, kw_only=True)
class WsAuthorizerSettings(FunctionSettings):
    """The WebSocket $connect authorizer (stages with `auth: jwt` only)."""

    jwt_issuer: str = field(metadata=from_env(env_vars.JWT_ISSUER, _issuer_url))
    jwt_audience: tuple[str, ...] = field(metadata=from_env(env_vars.JWT_AUDIENCE, _items("audience")))


SettingsT = TypeVar("SettingsT", bound=FunctionSettings)


@functools.cache
def load_settings(settings_class: type[SettingsT]) -> SettingsT:
    """Validate the environment into `settings_class` (cached: once per cold start)."""
    variables = {spec.name: spec.metadata[_VARIABLE] for spec in dataclasses.fields(settings_class)}
    missing = [
        source.name for source in variables.values() if source.name not in os.environ and not source.optional
    ]
    if missing:
        raise SettingsError(
            f"{settings_class.__name__}: missing environment variable(s) {', '.join(missing)}; "
            "infra/ sets them on the function (see taskflow/env_vars.py)"
        )
    values: dict[str, Any] = {}
    problems: list[str] = []
    for field_name, source in variables.items():
        if source.name not in os.environ:
            continue  # optional and absent: the field's default is what its absence means
        text = os.environ[source.name]
        try:
            values[field_name] = source.parse(text)
        except ValueError as error:
            problems.append(f"{source.name}={text!r}: {error}")
    if problems:
        raise SettingsError(f"{settings_class.__name__}: invalid environment: {'; '.join(problems)}")
    settings = settings_class(**values)
    # Every metric carries the stage, so one account's dashboards and alarms can tell stages apart.
    if metrics.default_dimensions.get("stage") != settings.stage:
        metrics.set_default_dimensions(stage=settings.stage)
    return settings


def reset_settings() -> None:
    """Forget the cached settings (tests change the environment between cases)."""
    load_settings.cache_clear()
