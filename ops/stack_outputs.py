"""Find a stage's resources: CloudFormation outputs of the deployed stack, or the outputs the
local stack (`make dev`) writes to `<state-dir>/stacks/<stack>.json` while it runs."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from local.state.running_stack import StateFileError, ignore_aws_configuration, running_stack_state

STACK_PREFIX = "TaskBackend"


class StackOutputsError(RuntimeError):
    """The stack, or one of its outputs, cannot be found."""


@dataclass
class StackOutputs:
    stack_name: str
    outputs: dict[str, str]
    where: str  # for messages: "AWS us-east-1" or "local stack at http://127.0.0.1:..."
    client_options: dict[str, Any] = field(default_factory=dict)

    def value(self, name: str) -> str:
        try:
            return self.outputs[name]
        except KeyError:
            raise StackOutputsError(
                f"{self.stack_name} has no output {name!r} (outputs: {', '.join(sorted(self.outputs))})"
            ) from None

    def client(self, service: str) -> Any:
        return boto3.client(service, **self.client_options)


def add_stack_arguments(parser: argparse.ArgumentParser, what: str) -> None:
    """--stage, --target and --state-dir: which stack an ops tool works on, and where it runs."""
    parser.add_argument("--stage", default="dev", help=f"stage to {what} (stack TaskBackend-<stage>)")
    parser.add_argument(
        "--target",
        choices=["aws", "local"],
        default="aws",
        help="aws: the deployed stack (CloudFormation outputs); local: the running `make dev` stack",
    )
    parser.add_argument("--state-dir", default=".local-state", help="where the local stack writes its state")


def resolve_outputs(stage: str, target: str, state_dir: str | Path = ".local-state") -> StackOutputs:
    stack_name = f"{STACK_PREFIX}-{stage}"
    if target == "local":
        return _local_outputs(stack_name, Path(state_dir))
    return _aws_outputs(stack_name)


def _aws_outputs(stack_name: str) -> StackOutputs:
    try:  # (a missing region or profile fails here already)
        cloudformation = boto3.client("cloudformation")
        stacks = cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
    except (BotoCoreError, ClientError) as error:
        raise StackOutputsError(
            f"cannot read stack {stack_name} from CloudFormation ({error}); is it deployed, and are "
            "AWS credentials set? For the local stack use --target local (TARGET=local)."
        ) from None
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}
    return StackOutputs(stack_name, outputs, where=f"AWS {cloudformation.meta.region_name}")


def _local_outputs(stack_name: str, state_dir: Path) -> StackOutputs:
    ignore_aws_configuration()  # the clients go to the embedded AWS with dummy credentials
    try:
        state = running_stack_state(state_dir, stack=stack_name)
    except StateFileError as error:
        raise StackOutputsError(str(error)) from None
    endpoint = state["endpoint"]
    return StackOutputs(
        stack_name,
        dict(state["outputs"]),
        where=f"local stack, embedded AWS at {endpoint}",
        client_options={
            "endpoint_url": endpoint,
            "region_name": state["region"],
            "aws_access_key_id": "local",
            "aws_secret_access_key": "local",
        },
    )
