"""Stage configuration: one validated object per stage, read from cdk.json context `stages`.

cdk.json holds the values (so a stage is changed without touching code, and
`cdk synth -c stages=...` can override them); this module holds the schema, the defaults
and the checks, so a typo fails synth with a clear message instead of deploying nonsense.
"""

from __future__ import annotations

import re
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from taskflow.auth_contract import AUTH_JWT, AUTH_NONE, TOKEN_HEADER, AuthMode
from taskflow.domain.backoff import SQS_MAX_VISIBILITY_SECONDS

# Official Powertools for AWS Lambda (Python) layer, resolved at deploy time from the public
# SSM parameter Powertools publishes per version. Keep equal to requirements-dev.txt.
POWERTOOLS_VERSION = "3.37.0"

# Retention periods CloudWatch Logs accepts (days).
LOG_RETENTION_DAYS_ALLOWED = (
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653,
)  # fmt: skip
# SQS retention of the task queue. Its DLQ keeps messages 14 days: a dead-lettered message keeps its
# original enqueue time, so the DLQ must retain longer than the source queue.
TASK_QUEUE_RETENTION_SECONDS = 4 * 24 * 3600
DLQ_RETENTION_SECONDS = 14 * 24 * 3600
# DynamoDB streams keep records 24 h: the longest a stream consumer can fall behind before records are lost.
STREAM_RETENTION_SECONDS = 24 * 3600
# Deliberately loose: catches a typo or a missing @, SNS confirms the address itself.
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


# The stack's functions (their construct ids), for settings given per function.
FUNCTIONS: Final = (
    *("HttpApiFunction", "EnqueueFunction", "ProcessorFunction", "DlqConsumerFunction", "NotifierFunction"),
    *("WsConnectFunction", "WsDisconnectFunction", "WsDefaultFunction", "WsAuthorizerFunction"),
)


class StageConfigError(ValueError):
    """The stage configuration in cdk.json is missing or invalid."""


class StageConfig(BaseModel):
    """Everything that differs between stages. Defaults are the dev-friendly values."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    name: str = Field(pattern=r"^[a-z][a-z0-9-]{0,19}$")
    # CORS: the same values feed API Gateway's preflight and the handlers' response headers.
    cors_origins: tuple[str, ...] = ("http://localhost:4200",)
    cors_headers: tuple[str, ...] = (
        "Content-Type",
        "X-Amz-Date",
        "Authorization",
        "X-Amz-Security-Token",
        "X-Api-Key",
    )
    # Authentication (taskflow.auth_contract). "none": no authorizers, every client sees every task
    # (the original app; the template is as it was before auth existed). "jwt": a JWT authorizer on
    # every HTTP route and a Lambda authorizer on WebSocket $connect; each caller sees only the tasks
    # and frames it owns (owner = the token's sub).
    auth: AuthMode = AUTH_NONE
    # With auth "jwt": the token issuer (https URL; its keys come from OIDC discovery) and the
    # audiences accepted in the token's aud or client_id claim. Leave both unset to have the stack
    # create a Cognito user pool and app client and use those.
    jwt_issuer: str | None = None
    jwt_audience: tuple[str, ...] = ()
    # Tasks. Shards per scope of the listing indexes (taskflow.table_schema): each takes 1/shards of
    # a scope's index writes, and a listing page costs one Query per shard. Fixed for a table's
    # life: changing it re-keys every task (docs/operations.md).
    task_list_shards: int = Field(default=16, ge=1, le=64)
    # WebSocket resume (taskflow.services.resume): a reconnecting client gets the changes it missed,
    # at most this many tasks, from a cursor at most this old; beyond either it is told to list again.
    resume_max_changes: int = Field(default=500, ge=1, le=10_000)
    resume_window_seconds: int = Field(default=24 * 3600, ge=60, le=7 * 24 * 3600)
    # Processing.
    failure_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    allow_fault_injection: bool = False
    max_receive_count: int = Field(default=3, ge=1, le=1000)  # the retry budget, in SQS receives
    backoff_base_seconds: int = Field(default=2, ge=0, le=900)
    backoff_cap_seconds: int = Field(default=300, ge=0, le=SQS_MAX_VISIBILITY_SECONDS)
    processor_timeout_seconds: int = Field(default=30, ge=1, le=900)
    processor_batch_size: int = Field(default=10, ge=1, le=10)
    processor_max_concurrency: int = Field(default=10, ge=2, le=1000)
    enqueue_batch_size: int = Field(default=100, ge=1, le=1000)
    notifier_batch_size: int = Field(default=100, ge=1, le=1000)
    dlq_batch_size: int = Field(default=10, ge=1, le=10)
    # Both stream mappings (enqueue, notifier) gather records for up to this long before invoking:
    # fewer, fuller invocations under load, for up to this much added latency per change (0: none).
    stream_batching_window_seconds: int = Field(default=0, ge=0, le=300)
    # Bounded: a push that keeps failing is dropped (the task itself is safe in the table; the browser's
    # next GET /tasks shows it). The enqueue mapping never gives up: see infra/task_pipeline.py.
    notifier_retry_attempts: int = Field(default=10, ge=0, le=10_000)
    # Reserved concurrency of the processor. None = unreserved (the ESM's maximum concurrency caps it).
    # When set it must be >= processor_max_concurrency: a throttled invocation hands its batch back to
    # SQS, and every such return burns a receive of the retry budget.
    processor_reserved_concurrency: int | None = Field(default=None, ge=1)
    # Function sizing. The processor and the DLQ consumer use processor_timeout_seconds.
    memory_size_mb: int = Field(default=512, ge=128, le=10_240)  # every function not listed below
    # Per function (construct id), chosen by `python -m bench memory` (docs/performance.md): the
    # stream consumers wait on calls far more than they compute, so half the memory costs less.
    # In cdk.json an object {"EnqueueFunction": 256, ...}; kept as sorted pairs (the config is hashable).
    function_memory_mb: tuple[tuple[str, int], ...] = (("EnqueueFunction", 256), ("NotifierFunction", 256))
    api_timeout_seconds: int = Field(default=10, ge=1, le=29)  # HTTP + WebSocket functions (API GW: 29 s)
    # WebSocket $default (ping, resume): a resume posts up to resume_max_changes frames, then answers
    # through API Gateway, which waits at most 29 s. A ping takes milliseconds whatever this is.
    resume_timeout_seconds: int = Field(default=28, ge=3, le=29)
    stream_timeout_seconds: int = Field(default=60, ge=1, le=900)  # enqueue + notifier (stream consumers)
    # API Gateway throttling (steady requests/s and burst), HTTP and WebSocket stages.
    http_throttle_rate: int = Field(default=50, ge=1)
    http_throttle_burst: int = Field(default=100, ge=1)
    ws_throttle_rate: int = Field(default=50, ge=1)
    ws_throttle_burst: int = Field(default=100, ge=1)
    # Operations.
    log_retention_days: int = 14
    removal_policy: Literal["destroy", "retain"] = "destroy"
    # Encryption at rest of the task data (both tables, their streams, both queues): true uses one
    # customer managed KMS key of the stage's own (rotated, removed with the stage's removal_policy,
    # infra/data_key.py); false the AWS managed key of DynamoDB and SQS-managed SSE. The key costs
    # about 1 USD a month plus KMS requests (docs/decisions.md).
    customer_managed_keys: bool = False
    connection_ttl_seconds: int = Field(default=2 * 3600 + 600, ge=60)  # API GW max 2 h + margin
    # WebSocket access logs need the account-level API Gateway CloudWatch role (set once per account and
    # region, outside this app); turn them off for an account that does not have it.
    websocket_access_logs: bool = True
    # Alarms (infra/monitoring.py). Every alarm notifies the stage's alarm topic; the topic emails
    # alarm_email when one is set (SNS sends a confirmation mail first).
    alarm_email: str | None = None
    # Age of the oldest task queue message. Must exceed the total backoff of a task that retries normally.
    queue_age_alarm_seconds: int = Field(default=300, ge=60, le=TASK_QUEUE_RETENTION_SECONDS)
    # Iterator age of the stream consumers: how far enqueue/notify lag behind the table. Stream records
    # expire after 24 h, so this must fire well before that.
    stream_age_alarm_seconds: int = Field(default=300, ge=60, le=STREAM_RETENTION_SECONDS // 2)
    # Share of HTTP API requests answered 5xx over 5 minutes, in percent.
    http_5xx_alarm_percent: float = Field(default=1.0, gt=0.0, le=100.0)
    # Tasks that exhausted their retry budget within 5 minutes before the alarm fires (0: the first one).
    dead_letter_alarm_threshold: int = Field(default=0, ge=0)

    @field_validator("cors_origins", "cors_headers", "jwt_audience", mode="before")
    @classmethod
    def _split_comma_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("function_memory_mb", mode="before")
    @classmethod
    def _memory_pairs(cls, value: Any) -> Any:
        return tuple(sorted(value.items())) if isinstance(value, dict) else value

    @field_validator("function_memory_mb")
    @classmethod
    def _memory_per_known_function(cls, sizes: tuple[tuple[str, int], ...]) -> tuple[tuple[str, int], ...]:
        for name, size in sizes:
            if name not in FUNCTIONS:
                raise ValueError(f"{name!r} is not a function of the stack (one of {', '.join(FUNCTIONS)})")
            if not 128 <= size <= 10_240:
                raise ValueError(f"{name}: {size} MB is outside Lambda's 128..10240 MB")
        return sizes

    def memory_of(self, function: str) -> int:
        """The MemorySize of a function (its construct id)."""
        return dict(self.function_memory_mb).get(function, self.memory_size_mb)

    @field_validator("cors_origins")
    @classmethod
    def _origins_are_explicit(cls, origins: tuple[str, ...]) -> tuple[str, ...]:
        if not origins:
            raise ValueError("at least one CORS origin is required")
        for origin in origins:
            if origin == "*":
                raise ValueError("'*' is not allowed: list the origins explicitly")
            scheme, _, rest = origin.partition("://")
            # scheme://host[:port] only: a path, query, fragment, space or wildcard never matches
            # what a browser sends in its Origin header.
            if scheme not in ("http", "https") or not rest or any(c in rest for c in "/?#* \t@"):
                raise ValueError(f"{origin!r} is not an origin like https://app.example.com")
        return origins

    @field_validator("jwt_issuer")
    @classmethod
    def _issuer_is_https(cls, issuer: str | None) -> str | None:
        # API Gateway fetches the issuer's keys over HTTPS only.
        if issuer is not None and (not issuer.startswith("https://") or len(issuer) <= len("https://")):
            raise ValueError(f"{issuer!r} is not an https:// issuer URL like https://example.auth0.com/")
        return issuer

    @field_validator("log_retention_days")
    @classmethod
    def _retention_is_supported(cls, days: int) -> int:
        if days not in LOG_RETENTION_DAYS_ALLOWED:
            allowed = ", ".join(str(d) for d in LOG_RETENTION_DAYS_ALLOWED)
            raise ValueError(f"{days} is not a CloudWatch Logs retention; use one of {allowed}")
        return days

    @field_validator("alarm_email")
    @classmethod
    def _email_looks_like_one(cls, email: str | None) -> str | None:
        if email is not None and not _EMAIL.match(email):
            raise ValueError(f"{email!r} is not an email address like ops@example.com")
        return email

    @model_validator(mode="after")
    def _coherent(self) -> StageConfig:
        if self.auth == AUTH_NONE and (self.jwt_issuer is not None or self.jwt_audience):
            raise ValueError('jwt_issuer and jwt_audience need auth "jwt"')
        if (self.jwt_issuer is None) != (not self.jwt_audience):
            raise ValueError(
                "set jwt_issuer and jwt_audience together, or neither (the stack then creates a Cognito "
                "user pool and app client)"
            )
        if self.uses_jwt and TOKEN_HEADER.lower() not in {h.lower() for h in self.cors_headers}:
            # The browser sends the token in this header: a preflight that does not allow it fails.
            raise ValueError(f'auth "jwt" needs {TOKEN_HEADER!r} in cors_headers (the token travels in it)')
        if self.backoff_cap_seconds < self.backoff_base_seconds:
            raise ValueError("backoff_cap_seconds must be >= backoff_base_seconds")
        # Worst case a message waits one visibility timeout or one backoff per receive; it must reach
        # the DLQ before the queue's retention deletes it silently.
        worst_case = self.max_receive_count * max(
            self.backoff_cap_seconds, self.queue_visibility_timeout_seconds
        )
        if worst_case >= TASK_QUEUE_RETENTION_SECONDS:
            raise ValueError(
                "max_receive_count x max(backoff_cap_seconds, 6 x processor_timeout_seconds) = "
                f"{worst_case} s reaches the task queue retention ({TASK_QUEUE_RETENTION_SECONDS} s): "
                "messages would expire instead of reaching the DLQ"
            )
        if (
            self.processor_reserved_concurrency is not None
            and self.processor_reserved_concurrency < self.processor_max_concurrency
        ):
            raise ValueError(
                f"processor_reserved_concurrency ({self.processor_reserved_concurrency}) must be >= "
                f"processor_max_concurrency ({self.processor_max_concurrency}): throttled invocations "
                "return their messages to the queue and burn receive attempts"
            )
        if self.queue_age_alarm_seconds <= self.retry_backoff_total_seconds:
            raise ValueError(
                f"queue_age_alarm_seconds ({self.queue_age_alarm_seconds}) must exceed the "
                f"{self.retry_backoff_total_seconds} s a retrying task may wait in backoff before it is "
                "dead-lettered: the alarm would fire on healthy retries"
            )
        return self

    @property
    def queue_visibility_timeout_seconds(self) -> int:
        """AWS guidance for SQS event sources: at least 6 x the function timeout."""
        return 6 * self.processor_timeout_seconds

    @property
    def retry_backoff_total_seconds(self) -> int:
        """Longest a healthy task sleeps in the task queue between attempts before it is dead-lettered:
        the largest backoff (base * 2^(n-1) + jitter up to base, capped) after every failed receive but
        the last (the last one goes to the DLQ at once). Mirrors taskflow.domain.backoff."""
        base, cap = self.backoff_base_seconds, self.backoff_cap_seconds
        return sum(
            min((base << min(receive - 1, 30)) + base, cap) for receive in range(1, self.max_receive_count)
        )

    @property
    def uses_jwt(self) -> bool:
        """auth "jwt": authorizers, owner indexes, per-owner fan-out."""
        return self.auth == AUTH_JWT

    @property
    def creates_user_pool(self) -> bool:
        """auth "jwt" without an issuer of its own: the stack creates a Cognito user pool."""
        return self.uses_jwt and self.jwt_issuer is None

    @property
    def is_retained(self) -> bool:
        return self.removal_policy == "retain"


def load_stages(context: Any) -> dict[str, StageConfig]:
    """Validate the `stages` context value: a mapping of stage name to its settings."""
    if not isinstance(context, dict) or not context:
        raise StageConfigError(
            'cdk.json context \'stages\' must be an object like {"dev": {...}, "prod": {...}}'
        )
    stages: dict[str, StageConfig] = {}
    for name, values in context.items():
        if not isinstance(values, dict):
            raise StageConfigError(f"stage {name!r}: settings must be an object, got {values!r}")
        if "name" in values:
            raise StageConfigError(
                f"stage {name!r} is invalid: name: the stage's key is its name; remove 'name'"
            )
        try:
            stages[name] = StageConfig.model_validate({"name": name, **values})
        except ValidationError as error:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'stage'}: {e['msg']}" for e in error.errors()
            )
            raise StageConfigError(f"stage {name!r} is invalid: {problems}") from None
    return stages
