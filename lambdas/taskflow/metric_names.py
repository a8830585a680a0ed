"""Metric names shared by the handlers (which emit them) and infra/ (alarms, dashboard).

Dependency-free on purpose, like env_vars.py: importing it creates no Powertools objects.
"""

from enum import StrEnum


class MetricName(StrEnum):
    TASK_SUBMITTED = "TaskSubmitted"  # POST /tasks created a task (replays are not counted)
    TASK_SUCCEEDED = "TaskSucceeded"  # the processing step succeeded and was committed
    TASK_FAILED = "TaskFailed"  # one attempt failed (it will be retried or dead-lettered)
    TASK_RETRIED = "TaskRetried"  # POST /tasks/{id}/retry re-ran a task in error
    TASK_DEAD_LETTERED = "TaskDeadLettered"  # the DLQ consumer marked a task error
    NOTIFICATIONS_SENT = "NotificationsSent"  # frames delivered to WebSocket connections
    CONNECTIONS_GONE = "ConnectionsGone"  # connections deleted after 410 Gone
    CONNECTIONS_EXPIRED = "ConnectionsExpired"  # connections closed because their token expired
    # The WebSocket $connect authorizer refused a token (API Gateway answered 401). Such a refusal
    # fails the invocation (that is how an authorizer asks for a 401), so the authorizer's Errors
    # alarm subtracts this count: it fires on real failures only (infra/monitoring.py).
    TOKENS_REJECTED = "TokensRejected"
