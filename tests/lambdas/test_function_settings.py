"""Settings are validated once per cold start, and a missing variable fails loudly by name."""

from __future__ import annotations

from typing import Any

import pytest

from taskflow import env_vars
from taskflow.auth_contract import AUTH_JWT, AUTH_NONE
from taskflow.settings import (
    HttpApiSettings,
    NotifierSettings,
    ProcessorSettings,
    SettingsError,
    WsAuthorizerSettings,
    WsConnectSettings,
    WsDefaultSettings,
    load_settings,
)

# The functions that scope by owner, so read AUTH_MODE.
OWNER_SCOPED = [HttpApiSettings, NotifierSettings, WsConnectSettings, WsDefaultSettings]


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
        (env_vars.FAILURE_RATE, "often"),
        (env_vars.FAILURE_RATE, "nan"),
        (env_vars.BACKOFF_CAP_SECONDS, "5.5"),
        (env_vars.MAX_RECEIVE_COUNT, "zero"),
    ],
)
def test_value_of_the_wrong_type_is_named(
    offline_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError, match=f"{name}={value!r}: expected "):
        load_settings(ProcessorSettings)


def test_ranges_are_left_to_the_stage_config(
    offline_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given values of the right type that no stage config accepts (tests/infra/test_stage_config.py
    # shows synth refusing them): the function takes them as infra/ gave them.
    monkeypatch.setenv(env_vars.BACKOFF_BASE_SECONDS, "5000")
    monkeypatch.setenv(env_vars.FAILURE_RATE, "1.5")

    settings = load_settings(ProcessorSettings)

    assert (settings.backoff_base_seconds, settings.failure_rate) == (5000, 1.5)


@pytest.mark.parametrize("value", ["", " , "])
def test_cors_origins_without_an_origin_are_refused(
    offline_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    # The HTTP API's CORS configuration needs one origin at least.
    monkeypatch.setenv(env_vars.CORS_ORIGINS, value)
    with pytest.raises(SettingsError, match=r"CORS_ORIGINS=.*expected at least one origin"):
        load_settings(HttpApiSettings)


def test_settings_are_read_once(offline_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    first = load_settings(WsConnectSettings)
    monkeypatch.setenv(env_vars.CONNECTION_TTL_SECONDS, "999")
    assert load_settings(WsConnectSettings) is first


# --------------------------------------------------------------------------- authentication


@pytest.mark.parametrize("settings_class", OWNER_SCOPED)
def test_absent_auth_mode_means_none(offline_env: dict[str, str], settings_class: type[Any]) -> None:
    # An `auth: none` stage's functions get no AUTH_MODE at all (their template is unchanged).
    assert env_vars.AUTH_MODE not in offline_env

    assert load_settings(settings_class).auth_mode == AUTH_NONE


@pytest.mark.parametrize("settings_class", OWNER_SCOPED)
@pytest.mark.parametrize("value", [AUTH_JWT, AUTH_NONE])
def test_auth_mode_is_read_when_present(
    offline_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, settings_class: type[Any], value: str
) -> None:
    monkeypatch.setenv(env_vars.AUTH_MODE, value)

    assert load_settings(settings_class).auth_mode == value


@pytest.mark.parametrize("value", ["", "JWT", "oidc", "none "])
def test_invalid_auth_mode_is_named(
    offline_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv(env_vars.AUTH_MODE, value)

    with pytest.raises(SettingsError, match="AUTH_MODE"):
        load_settings(HttpApiSettings)


def test_authorizer_settings_are_typed(offline_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(env_vars.JWT_ISSUER, "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_abc")
    monkeypatch.setenv(env_vars.JWT_AUDIENCE, " web-client , mobile-client ,")

    settings = load_settings(WsAuthorizerSettings)

    assert settings.jwt_issuer == "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_abc"
    assert settings.jwt_audience == ("web-client", "mobile-client")


def test_a_local_http_issuer_is_accepted(
    offline_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(env_vars.JWT_ISSUER, "http://127.0.0.1:4002/issuer")

    assert load_settings(WsAuthorizerSettings).jwt_issuer == "http://127.0.0.1:4002/issuer"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        (env_vars.JWT_ISSUER, "issuer.example.com"),
        (env_vars.JWT_ISSUER, "ftp://issuer.example.com"),
        (env_vars.JWT_ISSUER, "https://"),
        (env_vars.JWT_ISSUER, "https://issuer.example.com/?x=1"),
        (env_vars.JWT_AUDIENCE, ""),
        (env_vars.JWT_AUDIENCE, " , "),
    ],
)
def test_invalid_authorizer_setting_is_named(
    offline_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)

    with pytest.raises(SettingsError, match=name):
        load_settings(WsAuthorizerSettings)


@pytest.mark.parametrize("name", [env_vars.JWT_ISSUER, env_vars.JWT_AUDIENCE])
def test_authorizer_without_its_issuer_or_audience_fails_loudly(
    offline_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    monkeypatch.delenv(name)

    with pytest.raises(SettingsError, match=name):
        load_settings(WsAuthorizerSettings)
