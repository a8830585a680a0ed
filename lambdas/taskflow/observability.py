"""Logger and Metrics, created once for every handler (Powertools reads the service name, the
metrics namespace and the log level from POWERTOOLS_* variables set by infra/).

No Tracer: importing it (and the X-Ray SDK) costs about half a second of cold start.
"""

from __future__ import annotations

import warnings
from enum import StrEnum

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

logger = Logger()
metrics = Metrics()

# An invocation that records no metric (a GET, an acked duplicate) is normal here, not a mistake.
warnings.filterwarnings("ignore", message="No application metrics to publish")


class MetricName(StrEnum):
    TASK_SUBMITTED = "TaskSubmitted"  # POST /tasks created a task (replays are not counted)
    TASK_SUCCEEDED = "TaskSucceeded"  # the processing step succeeded and was committed
    TASK_FAILED = "TaskFailed"  # one attempt failed (it will be retried or dead-lettered)
    TASK_RETRIED = "TaskRetried"  # POST /tasks/{id}/retry re-ran a task in error
    TASK_DEAD_LETTERED = "TaskDeadLettered"  # the DLQ consumer marked a task error
    NOTIFICATIONS_SENT = "NotificationsSent"  # frames delivered to WebSocket connections
    CONNECTIONS_GONE = "ConnectionsGone"  # connections deleted after 410 Gone


def count(name: MetricName, value: int = 1) -> None:
    """Add `value` to a count metric (flushed by the handler's @metrics.log_metrics)."""
    if value:
        metrics.add_metric(name=name.value, unit=MetricUnit.Count, value=value)
