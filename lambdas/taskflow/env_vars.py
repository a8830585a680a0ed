"""Environment variable names shared by infra/ (which sets them) and lambdas/ (which reads them).

Only names live here, never values or defaults: infra/ decides the values per stage and the
handlers validate them at cold start (see taskflow.settings).
"""

from typing import Final

STAGE: Final = "STAGE"
TASK_TABLE_NAME: Final = "TASK_TABLE_NAME"
TASK_LIST_SHARDS: Final = "TASK_LIST_SHARDS"  # the listing indexes' shards per scope (table_schema)
CONNECTION_TABLE_NAME: Final = "CONNECTION_TABLE_NAME"
TASK_QUEUE_URL: Final = "TASK_QUEUE_URL"
WEBSOCKET_CALLBACK_URL: Final = "WEBSOCKET_CALLBACK_URL"
RESUME_MAX_CHANGES: Final = "RESUME_MAX_CHANGES"  # a WebSocket resume replays at most this many tasks
RESUME_WINDOW_SECONDS: Final = "RESUME_WINDOW_SECONDS"  # ... from a cursor at most this old
CORS_ORIGINS: Final = "CORS_ORIGINS"  # comma-separated list of allowed origins
CORS_HEADERS: Final = "CORS_HEADERS"  # comma-separated list of allowed request headers
FAILURE_RATE: Final = "FAILURE_RATE"  # probability in [0, 1] that the simulated step fails
FAILURE_SEED: Final = "FAILURE_SEED"  # optional integer seed for the failure RNG ("" = random)
ALLOW_FAULT_INJECTION: Final = "ALLOW_FAULT_INJECTION"  # "true" honours the per-task switch
MAX_RECEIVE_COUNT: Final = "MAX_RECEIVE_COUNT"  # the queue's redrive maxReceiveCount
BACKOFF_BASE_SECONDS: Final = "BACKOFF_BASE_SECONDS"
BACKOFF_CAP_SECONDS: Final = "BACKOFF_CAP_SECONDS"
CONNECTION_TTL_SECONDS: Final = "CONNECTION_TTL_SECONDS"

# Authentication (stage config `auth`). Set only on stages with `auth: jwt`, so a stage with
# `auth: none` keeps the template it had before auth existed; absent means "none" (see
# taskflow.auth_contract and the settings that read them).
AUTH_MODE: Final = "AUTH_MODE"  # "jwt": every request carries a verified owner (the token's sub)
JWT_ISSUER: Final = "JWT_ISSUER"  # the token issuer; its keys come from OIDC discovery
JWT_AUDIENCE: Final = "JWT_AUDIENCE"  # comma-separated accepted audiences (aud or client_id claim)

# Read by Powertools itself.
POWERTOOLS_SERVICE_NAME: Final = "POWERTOOLS_SERVICE_NAME"
POWERTOOLS_METRICS_NAMESPACE: Final = "POWERTOOLS_METRICS_NAMESPACE"
POWERTOOLS_LOG_LEVEL: Final = "POWERTOOLS_LOG_LEVEL"

# Read by pydantic itself: "__all__" skips its plugin discovery, a scan of every installed
# distribution's entry points on the first model built (no plugin is used; a cold start saves it).
PYDANTIC_DISABLE_PLUGINS: Final = "PYDANTIC_DISABLE_PLUGINS"
