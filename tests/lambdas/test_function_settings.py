"""Settings are validated once per cold start, and a missing variable fails loudly by name."""

from __future__ import annotations

import pytest

from taskflow import env_vars
from taskflow.settings import (
    HttpApiSettings,
    ProcessorSettings,
    SettingsError,
    WsConnectSettings,
    load_settings,
)


def test_settings_are_typed(offline_env: dict[str, str]) -> None:
    settings = load_settings(ProcessorSettings)
    assert settings.failure_rate == 0.0
    assert settings.failure_seed == 7
    assert settings.allow_fault_injection is True
    assert settings.max_receive_count == 3


def test_lists_are_comma_separated(offline_env: dict[str, str]) -> None:
    settings = load_settings(HttpApiSettings)
    assert settings.cors_origins == ("http://localhost:4200", "https://app.example.com")
    assert "X-Api-Key" in settings.cors_headers


def test_empty_failure_seed_means_unseeded(
    offline_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(env_vars.FAILURE_SEED, "")
    assert load_settings(ProcessorSettings).failure_seed is None


def test_missing_variable_is_named(offline_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(env_vars.TASK_TABLE_NAME)
    with pytest.raises(SettingsError, match="TASK_TABLE_NAME"):
        load_settings(HttpApiSettings)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        (env_vars.ALLOW_FAULT_INJECTION, "yes"),
        (env_vars.FAILURE_RATE, "1.5"),
        (env_vars.BACKOFF_CAP_SECONDS, "50000"),
        (env_vars.MAX_RECEIVE_COUNT, "zero"),
    ],
)
def test_invalid_value_is_named(
    offline_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError, match=name):
        load_settings(ProcessorSettings)


def test_wildcard_cors_origin_is_refused(
    offline_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(env_vars.CORS_ORIGINS, "*")
    with pytest.raises(SettingsError, match="CORS_ORIGINS"):
        load_settings(HttpApiSettings)


def test_settings_are_read_once(offline_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    first = load_settings(WsConnectSettings)
    monkeypatch.setenv(env_vars.CONNECTION_TTL_SECONDS, "999")
    assert load_settings(WsConnectSettings) is first
