"""Changing a setting in infra/ and re-synthesizing changes what the local stack does.

The variants are synthesized in-process from StageConfig (as `make synth` would after an
edit of cdk.json) into a temporary cloud assembly; nothing in local/ knows about them.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_support import Api, Frames, synth_variants, wait_for

from local.launcher import LocalStackProcess

pytestmark = pytest.mark.e2e

ONE_ATTEMPT = "e2e-once"  # max_receive_count 1: no retries
SHORT_TIMEOUT = "e2e-timeout"  # processor_timeout_seconds 2: a hang is cut after 2 s (1 s: flaky under load)


@pytest.fixture(scope="module")
def variants(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synth_variants(
        tmp_path_factory.mktemp("cdk.variants"),
        {ONE_ATTEMPT: {"max_receive_count": 1}, SHORT_TIMEOUT: {"processor_timeout_seconds": 2}},
    )


def run(assembly: Path, stage: str, *extra: str) -> LocalStackProcess:
    arguments = ["--cdk-out", str(assembly), "--stage", stage, "--time-scale", "0.1", "--failure-rate", "0"]
    return LocalStackProcess([*arguments, *extra])


@pytest.fixture
def one_attempt_stack(variants: Path) -> Iterator[LocalStackProcess]:
    with run(variants, ONE_ATTEMPT) as stack:
        yield stack


def test_a_retry_budget_of_one_fails_a_task_after_one_attempt(one_attempt_stack, api, frames):
    # Given the default stage (dev: maxReceiveCount 3) and the re-synthesized one (1)
    default_task = api.submit(simulate={"failAttempts": 100})
    variant_api, variant_frames = Api(one_attempt_stack.http_url), Frames(one_attempt_stack.ws_url)
    try:
        variant_task = variant_api.submit(simulate={"failAttempts": 100})

        # Then the variant gives up after its single attempt, the default after three
        variant_final = variant_frames.final(variant_task)
        default_final = frames.final(default_task)
    finally:
        variant_frames.close()
    assert (variant_final["status"], variant_final["retries"]) == ("error", 0)
    assert (default_final["status"], default_final["retries"]) == ("error", 2)
    processor_runs = [
        line for line in one_attempt_stack.output if "ProcessorFunction" in line and "sqs " in line
    ]
    assert len(processor_runs) == 1, processor_runs


def test_a_function_timeout_makes_the_message_come_back(variants):
    with run(variants, SHORT_TIMEOUT, "--fault", "ProcessorFunction:hang-once") as stack:
        api, frames = Api(stack.http_url), Frames(stack.ws_url)
        try:
            task_id = api.submit()
            final = frames.final(task_id)
        finally:
            frames.close()
        # the first delivery hung past the template's 2 s timeout and was killed; SQS
        # redelivered the message after its visibility timeout and the second attempt worked
        assert (final["status"], final["retries"]) == ("success", 1)
        wait_for(lambda: "timeout" in stack.text() and "ProcessorFunction" in stack.text())
        timeout_lines = [line for line in stack.output if "ProcessorFunction" in line and "timeout" in line]
        assert timeout_lines
