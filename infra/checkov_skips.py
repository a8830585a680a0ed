"""checkov (v3, CloudFormation checks): the findings this app accepts, each on its resources, with why.

`make test` runs checkov on every synthesized template and fails on any failed check (`make checkov`).
What this app accepts is written into the template on the resource itself, where checkov reads it:
`Metadata: {"checkov": {"skip": [{"id": ..., "comment": <reason>}]}}`. There is no `--skip-check`
for a whole run: a check skipped here still fails on any other resource type, and on a stage where
the reason does not hold (the customer managed key ones on `customer_managed_keys` stages, PITR on
any table but the connection table). Everything else checkov checks is fixed in the constructs.
docs/security.md lists every skip; tests/infra/test_checkov_skips.py keeps the two in step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jsii
from aws_cdk import CfnResource, IAspect
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sqs as sqs
from constructs import IConstruct

from infra.config import StageConfig

METADATA_KEY = "checkov"


@dataclass(frozen=True)
class Skip:
    check_id: str  # a checkov check, "CKV_AWS_117"
    reason: str


FUNCTION_OUTSIDE_VPC = Skip(
    "CKV_AWS_117",
    "The functions call only AWS public endpoints (DynamoDB, SQS, API Gateway's @connections, CloudWatch) "
    "and, for the $connect authorizer, the token issuer over HTTPS; there is no VPC resource to reach. "
    "In a VPC they would need a NAT gateway or an endpoint per service (billed per hour and zone) to "
    "reach the same endpoints; what they may do is decided by IAM, one role per function.",
)
FUNCTION_WITHOUT_DLQ = Skip(
    "CKV_AWS_116",
    "A function's DeadLetterConfig catches failed asynchronous invocations only, and no function here "
    "is invoked asynchronously: the API functions and the authorizer answer API Gateway synchronously "
    "(the client gets the error), the queue consumers' failed messages go to the task DLQ through the "
    "queue's redrive policy, and the stream consumers' mappings retry and bisect failed records.",
)
FUNCTION_WITHOUT_RESERVED_CONCURRENCY = Skip(
    "CKV_AWS_115",
    "Reserved concurrency is a hard cap carved out of the account's pool. The processor is capped on "
    "its SQS mapping instead (MaximumConcurrency): throttles of a reserved cap hand messages back and "
    "burn their receive budget (docs/decisions.md). API functions are bounded by the API stages' "
    "throttling, stream consumers by one batch per shard. A stage that reserves the processor's "
    "(processor_reserved_concurrency) has no such skip on it.",
)
FUNCTION_ENVIRONMENT_WITHOUT_CMK = Skip(
    "CKV_AWS_173",
    "The environment holds resource names, URLs, stage flags and logging settings, no secret (the "
    "template tests pin every variable), all of them in the template anyway; Lambda encrypts it at "
    "rest with its AWS managed key. A customer managed key (KmsKeyArn) is for secrets in the "
    "environment, and there are none.",
)
LOG_GROUP_WITHOUT_CMK = Skip(
    "CKV_AWS_158",
    "CloudWatch Logs encrypts every log group at rest with its service keys. The function and access "
    "logs carry request and task ids, statuses, client IPs, timings and error messages; no task "
    "payload or token is logged (the WebSocket access log leaves out the query string that carries "
    "the token). A key of our own would need a key policy for the region's Logs service; revisit "
    "if the logs ever carry user data.",
)
TABLE_WITHOUT_CMK = Skip(
    "CKV_AWS_119",
    "Stages without customer_managed_keys only (dev): the table is encrypted with DynamoDB's AWS "
    "managed key, which is enough for throwaway data and costs nothing. The stage setting "
    "customer_managed_keys (on for prod) encrypts it with a key of the stage's own instead, and "
    "then the table carries no such skip.",
)
QUEUE_WITHOUT_CMK = Skip(
    "CKV_AWS_27",
    "Stages without customer_managed_keys only (dev): the queue is encrypted with SQS-managed SSE "
    "(SqsManagedSseEnabled, which this check does not read), free and enough for throwaway data. "
    "The stage setting customer_managed_keys (on for prod) encrypts it with a key of the stage's "
    "own instead, and then the queue carries no such skip.",
)
CONNECTION_TABLE_WITHOUT_PITR = Skip(
    "CKV_AWS_28",
    "The connection table holds live WebSocket connection ids only, each gone within 2 h (API "
    "Gateway's connection limit, then TTL); a restored row would point at a closed connection, so "
    "point-in-time recovery would bill for nothing. The task table has PITR (cdk-nag DDB3 likewise).",
)


@jsii.implements(IAspect)
class AcceptedCheckovFindings:
    """Writes the skips onto the L1 resources they answer, by resource type and stage setting (and for
    PITR, the one table). CDK visits each construct once per aspect."""

    def __init__(self, *, stage: StageConfig, connection_table: dynamodb.Table) -> None:
        self._stage = stage
        self._connection_table_path = connection_table.node.default_child.node.path  # type: ignore[union-attr]

    def visit(self, node: IConstruct) -> None:
        if isinstance(node, CfnResource):
            skips = self._skips(node)
            if skips:
                _add_skips(node, skips)

    def _skips(self, resource: CfnResource) -> list[Skip]:
        own_keys = self._stage.customer_managed_keys
        if isinstance(resource, lambda_.CfnFunction):
            skips = [FUNCTION_OUTSIDE_VPC, FUNCTION_WITHOUT_DLQ, FUNCTION_ENVIRONMENT_WITHOUT_CMK]
            if resource.reserved_concurrent_executions is None:
                skips.append(FUNCTION_WITHOUT_RESERVED_CONCURRENCY)
            return skips
        if isinstance(resource, logs.CfnLogGroup):
            return [LOG_GROUP_WITHOUT_CMK]
        if isinstance(resource, dynamodb.CfnTable):
            skips = [] if own_keys else [TABLE_WITHOUT_CMK]
            if resource.node.path == self._connection_table_path:
                skips.append(CONNECTION_TABLE_WITHOUT_PITR)
            return skips
        if isinstance(resource, sqs.CfnQueue):
            return [] if own_keys else [QUEUE_WITHOUT_CMK]
        return []


def _add_skips(resource: CfnResource, skips: list[Skip]) -> None:
    existing: dict[str, Any] = resource.get_metadata(METADATA_KEY) or {}
    entries = [*existing.get("skip", []), *({"id": s.check_id, "comment": s.reason} for s in skips)]
    resource.add_metadata(METADATA_KEY, {**existing, "skip": entries})
