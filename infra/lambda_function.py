"""The one place Lambda defaults are set: runtime, architecture, logging, layer, code, common env.

`LambdaDefaults` is created once per stack (one code asset, one Powertools layer reference);
every function is a `TaskFunction` built from it, so no function repeats those settings.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from aws_cdk import Duration
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_ssm as ssm
from constructs import Construct

from infra.config import POWERTOOLS_VERSION, StageConfig
from infra.retention import log_group
from taskflow import env_vars

LAMBDAS_DIR = Path(__file__).resolve().parent.parent / "lambdas"
ASSET_EXCLUDE = ["**/__pycache__", "**/*.pyc"]

# Public parameter Powertools publishes per runtime/architecture/version; CloudFormation resolves it
# at deploy time, so synth needs neither network nor AWS credentials.
POWERTOOLS_LAYER_PARAMETER = f"/aws/service/powertools/python/arm64/python3.14/{POWERTOOLS_VERSION}"

SERVICE_NAME = "taskflow"
METRICS_NAMESPACE = "TaskBackend"
LOG_LEVEL = "INFO"


class LambdaDefaults(Construct):
    """Settings shared by every function of one stack: the code asset, the layer, common env."""

    def __init__(self, scope: Construct, construct_id: str, *, stage: StageConfig) -> None:
        super().__init__(scope, construct_id)
        self.stage = stage
        # One asset for all functions: the package `taskflow` at the root of lambdas/.
        self.code = lambda_.Code.from_asset(str(LAMBDAS_DIR), exclude=ASSET_EXCLUDE)
        self.powertools_layer = lambda_.LayerVersion.from_layer_version_arn(
            self,
            "PowertoolsLayer",
            ssm.StringParameter.value_for_string_parameter(self, POWERTOOLS_LAYER_PARAMETER),
        )
        self.environment: Mapping[str, str] = {
            env_vars.STAGE: stage.name,
            env_vars.POWERTOOLS_SERVICE_NAME: SERVICE_NAME,
            env_vars.POWERTOOLS_METRICS_NAMESPACE: METRICS_NAMESPACE,
            env_vars.POWERTOOLS_LOG_LEVEL: LOG_LEVEL,
            env_vars.PYDANTIC_DISABLE_PLUGINS: "__all__",
        }


class TaskFunction(Construct):
    """A Python 3.14 arm64 function with its own role and log group.

    The role starts with write access to the function's own log group only (no
    AWSLambdaBasicExecutionRole, whose logs actions are on `*`); callers add what the handler uses.
    `layers` come after the shared Powertools layer (for a function that needs more libraries).
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        defaults: LambdaDefaults,
        handler: str,
        timeout_seconds: int,
        environment: Mapping[str, str] | None = None,
        reserved_concurrency: int | None = None,
        layers: Sequence[lambda_.ILayerVersion] = (),
    ) -> None:
        super().__init__(scope, construct_id)
        stage = defaults.stage
        self.log_group = log_group(self, "LogGroup", stage)
        self.role = iam.Role(self, "Role", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"))
        self.log_group.grant_write(self.role)
        # Id "Default" keeps the logical id short (<Parent><ConstructId><hash>) and makes the
        # function this construct's default child.
        self.function = lambda_.Function(
            self,
            "Default",
            runtime=lambda_.Runtime.PYTHON_3_14,
            architecture=lambda_.Architecture.ARM_64,
            handler=handler,
            code=defaults.code,
            layers=[defaults.powertools_layer, *layers],
            timeout=Duration.seconds(timeout_seconds),
            memory_size=stage.memory_of(construct_id),
            role=self.role,
            log_group=self.log_group,
            logging_format=lambda_.LoggingFormat.JSON,
            environment={**defaults.environment, **(environment or {})},
            reserved_concurrent_executions=reserved_concurrency,
        )
        # Function depends on its whole role construct (so the role's policy exists before the
        # function and its event source mappings); the DependsOn on the Role itself is redundant
        # with the GetAtt, which cfn-lint reports as W3005. Silence that one check on this resource.
        cfn_function = self.function.node.default_child
        assert isinstance(cfn_function, lambda_.CfnFunction)
        cfn_function.add_metadata("cfn-lint", {"config": {"ignore_checks": ["W3005"]}})


def api_function(
    scope: Construct,
    construct_id: str,
    *,
    defaults: LambdaDefaults,
    handler: str,
    environment: Mapping[str, str] | None = None,
    layers: Sequence[lambda_.ILayerVersion] = (),
    timeout_seconds: int | None = None,
) -> TaskFunction:
    """A function API Gateway invokes and waits for (an HTTP route, a WebSocket route, an
    authorizer): it gets the stage's API timeout (or `timeout_seconds`); both stay within API
    Gateway's 29 s (infra/config.py)."""
    return TaskFunction(
        scope,
        construct_id,
        defaults=defaults,
        handler=handler,
        timeout_seconds=timeout_seconds or defaults.stage.api_timeout_seconds,
        environment=environment,
        layers=layers,
    )


def only_event_source_mapping(function: lambda_.Function) -> lambda_.CfnEventSourceMapping:
    """The L1 mapping of a function that has exactly one event source (for properties L2 cannot set)."""
    mappings = [child for child in function.node.children if isinstance(child, lambda_.EventSourceMapping)]
    assert len(mappings) == 1, f"{function.node.path} has {len(mappings)} event source mappings"
    cfn_mapping = mappings[0].node.default_child
    assert isinstance(cfn_mapping, lambda_.CfnEventSourceMapping)
    return cfn_mapping


def stream_source(
    table: dynamodb.ITable,
    stage: StageConfig,
    *,
    batch_size: int,
    retry_attempts: int,
    filters: Sequence[Mapping[str, Any]],
) -> sources.DynamoEventSource:
    """A mapping from the table's stream, as every stream consumer reads it: from TRIM_HORIZON (a
    record written between table and mapping creation is still read), bisecting a failing batch and
    retrying only the records the partial batch response names. The batching window is the stage's
    `stream_batching_window_seconds`; none when 0, so the template keeps Lambda's default instead
    of stating it."""
    window = stage.stream_batching_window_seconds
    return sources.DynamoEventSource(
        table,
        starting_position=lambda_.StartingPosition.TRIM_HORIZON,
        batch_size=batch_size,
        max_batching_window=Duration.seconds(window) if window else None,
        retry_attempts=retry_attempts,
        bisect_batch_on_error=True,
        report_batch_item_failures=True,
        filters=filters,
    )


def flag(value: bool) -> str:
    """Booleans in the environment are "true"/"false"."""
    return "true" if value else "false"


def comma_list(values: tuple[str, ...]) -> str:
    return ",".join(values)
