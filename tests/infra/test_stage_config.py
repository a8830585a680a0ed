"""Stage configuration: cdk.json is valid, and a bad value fails synth with a readable message."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys

import pytest
from template_queries import REPO_ROOT, cdk_json_stages

from infra.config import StageConfigError, load_stages
from taskflow.domain.backoff import retry_delay_seconds


def test_cdk_json_defines_a_valid_dev_and_prod_stage():
    stages = cdk_json_stages()

    assert set(stages) == {"dev", "prod"}
    assert stages["dev"].cors_origins == ("http://localhost:4200",)
    assert stages["dev"].removal_policy == "destroy"
    assert stages["prod"].removal_policy == "retain"
    assert not stages["prod"].allow_fault_injection


def test_cdk_json_dev_is_open_and_prod_authenticates_with_its_own_user_pool():
    stages = cdk_json_stages()

    assert stages["dev"].auth == "none"
    assert not stages["dev"].creates_user_pool
    assert stages["prod"].auth == "jwt"
    assert stages["prod"].creates_user_pool
    assert (stages["prod"].jwt_issuer, stages["prod"].jwt_audience) == (None, ())


def test_comma_separated_origins_become_a_list():
    stages = load_stages({"dev": {"cors_origins": "http://localhost:4200, https://app.example.com"}})

    assert stages["dev"].cors_origins == ("http://localhost:4200", "https://app.example.com")


def test_wildcard_cors_origin_is_rejected_naming_stage_and_field():
    with pytest.raises(
        StageConfigError, match=r"stage 'dev' is invalid: cors_origins: .*'\*' is not allowed"
    ):
        load_stages({"dev": {"cors_origins": "*"}})


@pytest.mark.parametrize(
    "origin",
    [
        "https://app.example.com/",
        "http://localhost:4200/app",
        "https://app.example.com?x=1",
        "https://*.example.com",
        "https://app example.com",
        "ftp://app.example.com",
        "https://",
    ],
)
def test_an_origin_that_is_not_scheme_host_port_is_rejected(origin):
    with pytest.raises(StageConfigError, match=r"cors_origins: .*is not an origin like https://"):
        load_stages({"dev": {"cors_origins": [origin]}})


def test_an_origin_with_a_port_is_accepted():
    assert load_stages({"dev": {"cors_origins": ["http://localhost:4200"]}})["dev"].cors_origins == (
        "http://localhost:4200",
    )


def test_a_name_inside_a_stage_is_refused():
    # The key names the stage (and its stack); a second name could synthesize another stack.
    with pytest.raises(StageConfigError, match="stage 'dev' is invalid: name: the stage's key is its name"):
        load_stages({"dev": {"name": "other"}})


def test_backoff_cap_below_base_is_rejected():
    with pytest.raises(StageConfigError, match="backoff_cap_seconds must be >= backoff_base_seconds"):
        load_stages({"prod": {"backoff_base_seconds": 60, "backoff_cap_seconds": 10}})


def test_retry_budget_that_outlives_the_queue_retention_is_rejected():
    # 100 receives x 12 h backoff would let SQS expire the message before it reaches the DLQ.
    with pytest.raises(StageConfigError, match="messages would expire instead of reaching the DLQ"):
        load_stages({"dev": {"max_receive_count": 100, "backoff_cap_seconds": 43_200}})


def test_log_retention_cloudwatch_does_not_offer_is_rejected():
    with pytest.raises(StageConfigError, match=r"log_retention_days: .*10 is not a CloudWatch Logs"):
        load_stages({"dev": {"log_retention_days": 10}})


def test_misspelled_setting_is_rejected_by_name():
    with pytest.raises(StageConfigError, match="max_recieve_count"):
        load_stages({"dev": {"max_recieve_count": 3}})


def test_out_of_range_batch_size_is_rejected():
    with pytest.raises(StageConfigError, match="processor_batch_size"):
        load_stages({"dev": {"processor_batch_size": 11}})


# The stage values the functions read as numbers: the stage config is the one place that checks
# their ranges (the functions' settings check only that a number is a number).
@pytest.mark.parametrize(
    ("setting", "value", "limit"),
    [
        ("backoff_base_seconds", 901, "less than or equal to 900"),
        ("backoff_base_seconds", -1, "greater than or equal to 0"),
        ("backoff_cap_seconds", 43_201, "less than or equal to 43200"),
        ("failure_rate", 1.5, "less than or equal to 1"),
        ("max_receive_count", 0, "greater than or equal to 1"),
        ("task_list_shards", 0, "greater than or equal to 1"),
        ("connection_ttl_seconds", 59, "greater than or equal to 60"),
        ("resume_max_changes", 0, "greater than or equal to 1"),
        ("resume_window_seconds", 59, "greater than or equal to 60"),
        ("resume_timeout_seconds", 30, "less than or equal to 29"),  # API Gateway waits 29 s at most
    ],
)
def test_a_function_setting_out_of_range_fails_synth_naming_it(setting, value, limit):
    # Given cdk.json's dev stage with one value out of its range: synth (app.py) loads the stages
    # with load_stages before it builds any stack.
    context = json.loads((REPO_ROOT / "cdk.json").read_text())["context"]["stages"]
    context["dev"][setting] = value

    expected = rf"stage 'dev' is invalid: {setting}: Input should be {limit}"
    with pytest.raises(StageConfigError, match=expected):
        load_stages(context)


@pytest.mark.parametrize("context", [None, {}, ["dev"]])
def test_missing_or_malformed_stages_context_is_rejected(context):
    with pytest.raises(StageConfigError, match="context 'stages' must be an object"):
        load_stages(context)


def test_stage_settings_that_are_not_an_object_are_rejected():
    with pytest.raises(StageConfigError, match="stage 'dev': settings must be an object"):
        load_stages({"dev": "cors_origins=http://localhost:4200"})


def test_queue_visibility_timeout_is_six_times_the_processor_timeout():
    stage = load_stages({"dev": {"processor_timeout_seconds": 45}})["dev"]

    assert stage.queue_visibility_timeout_seconds == 270


def test_reserved_processor_concurrency_below_the_poller_concurrency_is_rejected():
    # Throttled invocations return their batch to SQS and burn receive attempts of the retry budget.
    with pytest.raises(
        StageConfigError,
        match=r"processor_reserved_concurrency \(5\) must be >= processor_max_concurrency \(10\)",
    ):
        load_stages({"prod": {"processor_max_concurrency": 10, "processor_reserved_concurrency": 5}})


@pytest.mark.parametrize("reserved", [None, 10, 50])
def test_reserved_processor_concurrency_at_or_above_the_poller_concurrency_is_accepted(reserved):
    stage = load_stages(
        {"prod": {"processor_max_concurrency": 10, "processor_reserved_concurrency": reserved}}
    )

    assert stage["prod"].processor_reserved_concurrency == reserved


def test_cdk_json_stages_name_no_alarm_email_and_prod_waits_longer_for_the_queue():
    stages = cdk_json_stages()

    assert stages["dev"].alarm_email is None
    assert stages["prod"].alarm_email is None
    assert stages["dev"].queue_age_alarm_seconds == 300
    assert stages["prod"].queue_age_alarm_seconds == 600


@pytest.mark.parametrize("email", ["ops", "ops@", "@example.com", "ops@example", "ops team@example.com"])
def test_alarm_email_that_is_not_an_address_is_rejected(email):
    with pytest.raises(StageConfigError, match=r"alarm_email: .*is not an email address"):
        load_stages({"prod": {"alarm_email": email}})


def test_alarm_email_is_kept_as_given():
    assert load_stages({"prod": {"alarm_email": "ops+alarms@example.com"}})["prod"].alarm_email == (
        "ops+alarms@example.com"
    )


def test_queue_age_alarm_below_the_backoff_of_a_healthy_retry_is_rejected():
    # 6 receives with base 30 s: 60 + 90 + 150 + 270 + 300 (cap) = 870 s of backoff before the DLQ.
    with pytest.raises(StageConfigError, match=r"queue_age_alarm_seconds \(600\) must exceed the 870 s"):
        load_stages(
            {
                "prod": {
                    "max_receive_count": 6,
                    "backoff_base_seconds": 30,
                    "backoff_cap_seconds": 300,
                    "queue_age_alarm_seconds": 600,
                }
            }
        )


class _MaxJitter(random.Random):
    def randint(self, a: int, b: int) -> int:
        return b


@pytest.mark.parametrize("stage_name", ["dev", "prod"])
def test_backoff_total_matches_the_processors_longest_backoffs(stage_name):
    stage = cdk_json_stages()[stage_name]

    longest = sum(
        retry_delay_seconds(
            receive,
            base_seconds=stage.backoff_base_seconds,
            cap_seconds=stage.backoff_cap_seconds,
            max_receive_count=stage.max_receive_count,
            rng=_MaxJitter(),
        )
        for receive in range(1, stage.max_receive_count + 1)
    )

    assert stage.retry_backoff_total_seconds == longest
    assert stage.queue_age_alarm_seconds > longest


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("queue_age_alarm_seconds", 30),
        ("stream_age_alarm_seconds", 13 * 3600),  # must leave time before the stream's 24 h expire
        ("http_5xx_alarm_percent", 0),
        ("http_5xx_alarm_percent", 101),
        ("dead_letter_alarm_threshold", -1),
        ("notifier_retry_attempts", -1),  # only the enqueue mapping retries forever
    ],
)
def test_out_of_range_alarm_and_retry_settings_are_rejected(setting, value):
    with pytest.raises(StageConfigError, match=setting):
        load_stages({"dev": {setting: value}})


def test_auth_is_none_unless_configured():
    stage = load_stages({"dev": {}})["dev"]

    assert (stage.auth, stage.jwt_issuer, stage.jwt_audience) == ("none", None, ())
    assert not stage.creates_user_pool


def test_jwt_stage_with_issuer_and_comma_separated_audiences_uses_them_and_creates_no_pool():
    stage = load_stages(
        {
            "prod": {
                "auth": "jwt",
                "jwt_issuer": "https://example.auth0.com/",
                "jwt_audience": "web-client, mobile-client",
            }
        }
    )["prod"]

    assert stage.jwt_issuer == "https://example.auth0.com/"
    assert stage.jwt_audience == ("web-client", "mobile-client")
    assert not stage.creates_user_pool


def test_jwt_stage_without_issuer_creates_a_user_pool():
    assert load_stages({"prod": {"auth": "jwt"}})["prod"].creates_user_pool


def test_unknown_auth_mode_is_rejected():
    with pytest.raises(StageConfigError, match=r"stage 'dev' is invalid: auth: "):
        load_stages({"dev": {"auth": "basic"}})


@pytest.mark.parametrize(
    "settings",
    [
        {"jwt_issuer": "https://example.auth0.com/"},
        {"jwt_audience": "web-client"},
    ],
    ids=["issuer only", "audience only"],
)
def test_issuer_or_audience_without_the_other_is_rejected(settings):
    with pytest.raises(StageConfigError, match="set jwt_issuer and jwt_audience together, or neither"):
        load_stages({"prod": {"auth": "jwt", **settings}})


def test_issuer_and_audience_without_jwt_auth_are_rejected():
    with pytest.raises(StageConfigError, match='jwt_issuer and jwt_audience need auth "jwt"'):
        load_stages({"dev": {"jwt_issuer": "https://example.auth0.com/", "jwt_audience": "web-client"}})


@pytest.mark.parametrize("issuer", ["http://example.auth0.com/", "example.auth0.com", "https://"])
def test_issuer_that_is_not_an_https_url_is_rejected(issuer):
    with pytest.raises(StageConfigError, match=r"jwt_issuer: .*is not an https:// issuer URL"):
        load_stages({"prod": {"auth": "jwt", "jwt_issuer": issuer, "jwt_audience": "web-client"}})


def test_jwt_stage_whose_cors_headers_leave_out_authorization_is_rejected():
    # The browser sends the token in the Authorization header; a preflight that does not allow it
    # would fail every authenticated request.
    with pytest.raises(StageConfigError, match=r"auth \"jwt\" needs 'Authorization' in cors_headers"):
        load_stages({"prod": {"auth": "jwt", "cors_headers": "Content-Type"}})


def test_cors_headers_without_authorization_are_fine_without_auth():
    assert load_stages({"dev": {"cors_headers": "Content-Type"}})["dev"].cors_headers == ("Content-Type",)


@pytest.mark.parametrize(
    ("sizes", "message"),
    [
        ({"NoSuchFunction": 256}, r"'NoSuchFunction' is not a function of the stack"),
        ({"ProcessorFunction": 64}, r"ProcessorFunction: 64 MB is outside Lambda's 128..10240 MB"),
    ],
)
def test_memory_of_an_unknown_function_or_outside_lambdas_range_is_rejected(sizes, message):
    with pytest.raises(StageConfigError, match=message):
        load_stages({"dev": {"function_memory_mb": sizes}})


def test_synth_with_a_bad_stage_value_ends_in_one_line_naming_it(tmp_path):
    # Given cdk.json's stages with one value out of range, as the CDK CLI hands them to app.py
    context = json.loads((REPO_ROOT / "cdk.json").read_text())["context"]
    context["stages"]["dev"]["failure_rate"] = 5
    environment = {
        **os.environ,
        "CDK_CONTEXT_JSON": json.dumps(context),
        "CDK_OUTDIR": str(tmp_path),
        "JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION": "1",
    }

    synth = subprocess.run(
        [sys.executable, "app.py"],
        check=False,
        cwd=REPO_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )

    assert synth.returncode == 1
    assert (
        "error: cdk.json: stage 'dev' is invalid: failure_rate: Input should be less than or equal to 1"
        in (synth.stderr)
    )
    assert "Traceback" not in synth.stderr
