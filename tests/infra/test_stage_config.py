"""Stage configuration: cdk.json is valid, and a bad value fails synth with a readable message."""

from __future__ import annotations

import pytest
from template_queries import cdk_json_stages

from infra.config import StageConfigError, load_stages


def test_cdk_json_defines_a_valid_dev_and_prod_stage():
    stages = cdk_json_stages()

    assert set(stages) == {"dev", "prod"}
    assert stages["dev"].cors_origins == ("http://localhost:4200",)
    assert stages["dev"].removal_policy == "destroy"
    assert stages["prod"].removal_policy == "retain"
    assert not stages["prod"].allow_fault_injection


def test_comma_separated_origins_become_a_list():
    stages = load_stages({"dev": {"cors_origins": "http://localhost:4200, https://app.example.com"}})

    assert stages["dev"].cors_origins == ("http://localhost:4200", "https://app.example.com")


def test_wildcard_cors_origin_is_rejected_naming_stage_and_field():
    with pytest.raises(
        StageConfigError, match=r"stage 'dev' is invalid: cors_origins: .*'\*' is not allowed"
    ):
        load_stages({"dev": {"cors_origins": "*"}})


def test_origin_with_a_path_or_trailing_slash_is_rejected():
    with pytest.raises(StageConfigError, match=r"cors_origins: .*is not an origin like https://"):
        load_stages({"dev": {"cors_origins": "https://app.example.com/"}})


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
