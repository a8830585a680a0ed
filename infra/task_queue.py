"""TaskQueue: the work queue and its dead-letter queue. A task's attempts are SQS receives."""

from __future__ import annotations

from typing import Any

from aws_cdk import Duration
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.config import DLQ_RETENTION_SECONDS, TASK_QUEUE_RETENTION_SECONDS, StageConfig
from infra.data_key import queue_encryption


class TaskQueue(Construct):
    def __init__(
        self, scope: Construct, construct_id: str, *, stage: StageConfig, key: kms.IKey | None = None
    ) -> None:
        super().__init__(scope, construct_id)
        # What both queues share. Both are consumed by functions whose timeout is
        # processor_timeout_seconds; AWS guidance for SQS event sources is a visibility timeout of
        # at least 6 x that.
        shared: dict[str, Any] = {
            "visibility_timeout": Duration.seconds(stage.queue_visibility_timeout_seconds),
            **queue_encryption(key),
            "enforce_ssl": True,
        }
        self.dead_letter_queue = sqs.Queue(
            self, "DeadLetterQueue", retention_period=Duration.seconds(DLQ_RETENTION_SECONDS), **shared
        )
        self.queue = sqs.Queue(
            self,
            "Default",
            retention_period=Duration.seconds(TASK_QUEUE_RETENTION_SECONDS),
            **shared,
            dead_letter_queue=sqs.DeadLetterQueue(
                max_receive_count=stage.max_receive_count, queue=self.dead_letter_queue
            ),
        )
