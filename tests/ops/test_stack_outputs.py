"""ops.stack_outputs: which stack an ops tool acts on, whatever the shell's AWS configuration."""

from __future__ import annotations

import boto3
import pytest

from local.state.running_stack import ignore_aws_configuration
from ops.stack_outputs import StackOutputsError, resolve_outputs


@pytest.mark.parametrize(
    ("variable", "value", "said"),
    [("AWS_PROFILE", "nosuch", "could not be found"), ("AWS_DEFAULT_REGION", "", "region")],
)
def test_a_deployed_stack_with_a_broken_aws_configuration_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, said: str
) -> None:
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    if value:
        monkeypatch.setenv(variable, value)
        monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")

    with pytest.raises(StackOutputsError) as refused:
        resolve_outputs("dev", "aws")

    assert said in str(refused.value)
    assert "TaskBackend-dev" in str(refused.value)


def test_the_local_stacks_clients_ignore_a_profile_that_does_not_exist(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # (each variable is registered with monkeypatch, so the test leaves the environment as it was)
    for name in ("AWS_DEFAULT_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_PROFILE", "nosuch")

    ignore_aws_configuration()
    client = boto3.client(
        "sqs",
        endpoint_url="http://127.0.0.1:9",
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )

    assert client.meta.region_name == "us-east-1"
