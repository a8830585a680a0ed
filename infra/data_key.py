"""DataKey: the customer managed KMS key of a stage's task data (stage setting `customer_managed_keys`).

One key encrypts both tables (and so their streams and backups) and both queues. Without the
setting the tables use DynamoDB's AWS managed key and the queues SQS-managed SSE, and no function
needs a KMS permission. With it, each role that reads or writes that data is allowed exactly the
KMS actions the service calls on its behalf, on this key only: the helpers below sit next to each
table or queue permission, so a new grant cannot forget the key.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.config import StageConfig
from infra.retention import removal_policy

# DynamoDB decrypts the table key with the caller's permissions (cached per caller for 5 minutes);
# writes also encrypt under it. No ReEncrypt or wildcard: re-keying a table is CloudFormation's job.
TABLE_READ_KEY_ACTIONS = ("kms:Decrypt", "kms:DescribeKey")
TABLE_WRITE_KEY_ACTIONS = (*TABLE_READ_KEY_ACTIONS, "kms:Encrypt", "kms:GenerateDataKey")
_TABLE_WRITES = frozenset(
    {"dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:BatchWriteItem"}
)
# SQS: a producer generates the message's data key (and may reuse it); consumers only decrypt
# (the event source mappings' grants add kms:Decrypt themselves).
QUEUE_SEND_KEY_ACTIONS = ("kms:GenerateDataKey", "kms:Decrypt")
QUEUE_SEND_ACTIONS = ("sqs:SendMessage", "sqs:GetQueueAttributes", "sqs:GetQueueUrl")


class DataKey(Construct):
    """A rotated symmetric key. It goes with the stage's removal policy: a retained table stays
    readable after the stack is deleted only while its key exists."""

    def __init__(self, scope: Construct, construct_id: str, *, stage: StageConfig) -> None:
        super().__init__(scope, construct_id)
        self.key = kms.Key(
            self,
            "Default",
            description=f"Task data of stage {stage.name}: task and connection tables, task queue and DLQ",
            enable_key_rotation=True,
            removal_policy=removal_policy(stage),
        )


def allow_table(
    role: iam.IRole, table: dynamodb.ITable, actions: Sequence[str], resources: Sequence[str]
) -> None:
    """Allow DynamoDB `actions` on `resources` (the table or its indexes), and the table's key if it
    has a customer managed one."""
    role.add_to_principal_policy(iam.PolicyStatement(actions=list(actions), resources=list(resources)))
    if table.encryption_key is not None:
        writes = any(action in _TABLE_WRITES for action in actions)
        table.encryption_key.grant(role, *(TABLE_WRITE_KEY_ACTIONS if writes else TABLE_READ_KEY_ACTIONS))


def allow_send(role: iam.IRole, queue: sqs.IQueue) -> None:
    """What `queue.grant_send_messages` allows, without its kms:GenerateDataKey* and kms:ReEncrypt*
    wildcards on a customer managed key."""
    role.add_to_principal_policy(
        iam.PolicyStatement(actions=list(QUEUE_SEND_ACTIONS), resources=[queue.queue_arn])
    )
    if queue.encryption_master_key is not None:
        queue.encryption_master_key.grant(role, *QUEUE_SEND_KEY_ACTIONS)


def table_encryption(key: kms.IKey | None) -> dict[str, Any]:
    """Table props: the stage's key, or DynamoDB's AWS managed key."""
    if key is None:
        return {"encryption": dynamodb.TableEncryption.AWS_MANAGED}
    return {"encryption": dynamodb.TableEncryption.CUSTOMER_MANAGED, "encryption_key": key}


def queue_encryption(key: kms.IKey | None) -> dict[str, Any]:
    """Queue props: the stage's key, or SQS-managed SSE."""
    if key is None:
        return {"encryption": sqs.QueueEncryption.SQS_MANAGED}
    return {"encryption": sqs.QueueEncryption.KMS, "encryption_master_key": key}
