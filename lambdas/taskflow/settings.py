"""Typed settings per function, read from the environment and validated once per cold start.

Each function has its own settings class listing exactly the variables infra/ gives it (names from
`taskflow.env_vars`). `load_settings(ProcessorSettings)` validates and caches; a missing or invalid
variable raises `SettingsError` naming the variable, so a misconfigured function fails loudly on
its first invocation instead of running with a hidden default.

Formats (set by infra/): booleans "true"/"false", lists comma-separated, numbers decimal strings.
"""

from __future__ import annotations

import functools
import os
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator

from taskflow import env_vars
from taskflow.observability import metrics


class SettingsError(RuntimeError):
    """The function's environment is missing a variable or holds an invalid value."""


def _parse_bool(value: Any) -> Any:
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered not in ("true", "false"):
            raise ValueError(f'expected "true" or "false", got {value!r}')
        return lowered == "true"
    return value


def _parse_comma_list(value: Any) -> Any:
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    return value


def _parse_optional_int(value: Any) -> Any:
    if isinstance(value, str) and not value.strip():
        return None
    return value


EnvBool = Annotated[bool, BeforeValidator(_parse_bool)]
EnvList = Annotated[tuple[str, ...], BeforeValidator(_parse_comma_list)]
NonEmptyStr = Annotated[str, Field(min_length=1)]


class FunctionSettings(BaseModel):
    """Variables every function gets."""

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    stage: NonEmptyStr = Field(alias=env_vars.STAGE)


class HttpApiSettings(FunctionSettings):
    task_table_name: NonEmptyStr = Field(alias=env_vars.TASK_TABLE_NAME)
    cors_origins: EnvList = Field(alias=env_vars.CORS_ORIGINS, min_length=1)
    cors_headers: EnvList = Field(alias=env_vars.CORS_HEADERS)
    allow_fault_injection: EnvBool = Field(alias=env_vars.ALLOW_FAULT_INJECTION)

    @field_validator("cors_origins")
    @classmethod
    def _no_wildcard(cls, origins: tuple[str, ...]) -> tuple[str, ...]:
        if "*" in origins:
            raise ValueError("'*' is not allowed: list the origins explicitly")
        return origins


class EnqueueSettings(FunctionSettings):
    task_queue_url: NonEmptyStr = Field(alias=env_vars.TASK_QUEUE_URL)


class ProcessorSettings(FunctionSettings):
    task_table_name: NonEmptyStr = Field(alias=env_vars.TASK_TABLE_NAME)
    task_queue_url: NonEmptyStr = Field(alias=env_vars.TASK_QUEUE_URL)
    failure_rate: float = Field(alias=env_vars.FAILURE_RATE, ge=0.0, le=1.0)
    # "" means "seed from the OS" (a different sequence per cold start).
    failure_seed: Annotated[int | None, BeforeValidator(_parse_optional_int)] = Field(
        alias=env_vars.FAILURE_SEED
    )
    allow_fault_injection: EnvBool = Field(alias=env_vars.ALLOW_FAULT_INJECTION)
    max_receive_count: int = Field(alias=env_vars.MAX_RECEIVE_COUNT, ge=1)
    backoff_base_seconds: int = Field(alias=env_vars.BACKOFF_BASE_SECONDS, ge=0, le=43_200)
    # SQS visibility timeouts are at most 12 hours.
    backoff_cap_seconds: int = Field(alias=env_vars.BACKOFF_CAP_SECONDS, ge=0, le=43_200)


class DlqConsumerSettings(FunctionSettings):
    task_table_name: NonEmptyStr = Field(alias=env_vars.TASK_TABLE_NAME)
    max_receive_count: int = Field(alias=env_vars.MAX_RECEIVE_COUNT, ge=1)


class NotifierSettings(FunctionSettings):
    connection_table_name: NonEmptyStr = Field(alias=env_vars.CONNECTION_TABLE_NAME)
    websocket_callback_url: NonEmptyStr = Field(alias=env_vars.WEBSOCKET_CALLBACK_URL)

    @field_validator("websocket_callback_url")
    @classmethod
    def _is_url(cls, url: str) -> str:
        if not url.startswith(("https://", "http://")):
            raise ValueError(f"expected an https:// callback URL, got {url!r}")
        return url


class WsConnectSettings(FunctionSettings):
    connection_table_name: NonEmptyStr = Field(alias=env_vars.CONNECTION_TABLE_NAME)
    connection_ttl_seconds: int = Field(alias=env_vars.CONNECTION_TTL_SECONDS, ge=60)


class WsDisconnectSettings(FunctionSettings):
    connection_table_name: NonEmptyStr = Field(alias=env_vars.CONNECTION_TABLE_NAME)


SettingsT = TypeVar("SettingsT", bound=FunctionSettings)


@functools.cache
def load_settings(settings_class: type[SettingsT]) -> SettingsT:
    """Validate the environment into `settings_class` (cached: once per cold start)."""
    names = [field.alias for field in settings_class.model_fields.values() if field.alias]
    missing = [name for name in names if name not in os.environ]
    if missing:
        raise SettingsError(
            f"{settings_class.__name__}: missing environment variable(s) {', '.join(missing)}; "
            "infra/ sets them on the function (see taskflow/env_vars.py)"
        )
    values = {name: os.environ[name] for name in names}
    try:
        settings = settings_class.model_validate(values)
    except ValidationError as error:
        problems = "; ".join(
            f"{e['loc'][0]}={values.get(str(e['loc'][0]), '')!r}: {e['msg']}" for e in error.errors()
        )
        raise SettingsError(f"{settings_class.__name__}: invalid environment: {problems}") from None
    # Every metric carries the stage, so one account's dashboards and alarms can tell stages apart.
    if metrics.default_dimensions.get("stage") != settings.stage:
        metrics.set_default_dimensions(stage=settings.stage)
    return settings


def reset_settings() -> None:
    """Forget the cached settings (tests change the environment between cases)."""
    load_settings.cache_clear()
