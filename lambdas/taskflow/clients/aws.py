"""Lazily created boto3 clients, and the translation of botocore errors into taskflow errors.

boto3 is imported on the first client request, not when a handler module is imported: a cold
start pays for it only in the functions that talk to AWS (ws_default never does). Clients are
cached per (service, endpoint) for the life of the execution environment; boto3 clients are
thread-safe, so the notifier's worker threads share one.

Endpoints: boto3 honours AWS_ENDPOINT_URL (the local stack points it at its moto server);
an explicit `endpoint_url` (the WebSocket callback URL) takes precedence.
"""

from __future__ import annotations

import threading
from typing import Any, ClassVar, Final

from taskflow.deadline import raise_if_out_of_time
from taskflow.errors import DependencyUnavailableError

_lock = threading.Lock()
_clients: dict[tuple[str, str | None], Any] = {}
_session: Any = None

# Short timeouts and few retries: a Lambda should fail fast (503 / redelivery) rather than hang.
CONNECT_TIMEOUT_SECONDS: Final = 2
READ_TIMEOUT_SECONDS: Final = 5
MAX_ATTEMPTS: Final = 3
MAX_POOL_CONNECTIONS: Final = 32  # the notifier posts from up to this many threads

# Error codes that mean "the service is busy or down, try again later".
RETRYABLE_ERROR_CODES: Final = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottled",
        "RequestThrottledException",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "RequestLimitExceeded",
        "LimitExceededException",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "InternalServerError",
        "InternalFailure",
        "InternalError",
        "SlowDown",
    }
)


def client(service_name: str, *, endpoint_url: str | None = None) -> Any:
    """The cached boto3 client for `service_name` (created on first use)."""
    key = (service_name, endpoint_url)
    with _lock:
        if key not in _clients:
            _clients[key] = _create(service_name, endpoint_url)
        return _clients[key]


def _create(service_name: str, endpoint_url: str | None) -> Any:
    global _session  # noqa: PLW0603 - one boto3 session per execution environment
    import boto3  # noqa: PLC0415 - deferred: see the module docstring
    from botocore.config import Config  # noqa: PLC0415

    if _session is None:
        _session = boto3.session.Session()
    config = Config(
        connect_timeout=CONNECT_TIMEOUT_SECONDS,
        read_timeout=READ_TIMEOUT_SECONDS,
        retries={"mode": "standard", "max_attempts": MAX_ATTEMPTS},
        max_pool_connections=MAX_POOL_CONNECTIONS,
    )
    created = _session.client(service_name, endpoint_url=endpoint_url, config=config)
    # No attempt and no retry past an armed invocation deadline (taskflow.deadline).
    # needs-retry: first, so that botocore's own handler takes no retry quota for a refused retry.
    created.meta.events.register("before-send", raise_if_out_of_time)
    service = created.meta.service_model.service_id.hyphenize()
    created.meta.events.register_first(f"needs-retry.{service}", raise_if_out_of_time)
    return created


class ClientUser:
    """Base of the classes that call one AWS service: they use the client they were given (tests:
    moto or a fake), else the cached one of `client()`, created on first use, not at construction."""

    service_name: ClassVar[str]
    endpoint_url: str | None = None  # None: boto3's own (AWS_ENDPOINT_URL locally)

    def __init__(self, injected: Any | None) -> None:
        self._client = injected

    @property
    def client(self) -> Any:
        return self._client or client(self.service_name, endpoint_url=self.endpoint_url)


def reset_clients() -> None:
    """Forget the cached clients (tests: each test gets clients inside its own moto mock)."""
    global _session  # noqa: PLW0603
    with _lock:
        _clients.clear()
        _session = None


def error_code(error: BaseException) -> str | None:
    """The AWS error code of a botocore ClientError, else None."""
    response = getattr(error, "response", None)
    if isinstance(response, dict):
        code = response.get("Error", {}).get("Code")
        return str(code) if code is not None else None
    return None


def http_status(error: BaseException) -> int | None:
    """The HTTP status of a botocore ClientError, else None."""
    response = getattr(error, "response", None)
    if isinstance(response, dict):
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return status if isinstance(status, int) else None
    return None


def as_dependency_error(error: BaseException, dependency: str) -> DependencyUnavailableError | None:
    """A DependencyUnavailableError if `error` means the dependency is down, throttling or
    unreachable (retryable ClientError codes, HTTP 5xx, connection errors and timeouts)."""
    from botocore.exceptions import (  # noqa: PLC0415 - only needed once something failed
        ClientError,
        HTTPClientError,
    )
    from botocore.exceptions import ConnectionError as BotoConnectionError  # noqa: PLC0415

    if isinstance(error, ClientError):
        code = error_code(error) or ""
        status = http_status(error) or 0
        if code in RETRYABLE_ERROR_CODES or status >= 500:
            return DependencyUnavailableError(dependency, code or f"HTTP {status}")
        return None
    if isinstance(error, BotoConnectionError | HTTPClientError):
        return DependencyUnavailableError(dependency, type(error).__name__)
    return None
