"""Key schema of the two DynamoDB tables, shared by infra/ (CDK) and the repositories.

Tests build their moto tables from these constants too, so a key rename cannot leave the
template, the code and the tests disagreeing.
"""

from typing import Any, Final

# Task table: one item per task.
TASK_PK: Final = "taskId"

# GSI listing every task newest-first: a constant partition, sorted by creation time.
# Reads are a Query with Limit, proportional to the page (never a Scan).
TASKS_BY_CREATED_INDEX: Final = "ByCreatedAt"
TASKS_BY_CREATED_PK: Final = "listPartition"
TASKS_BY_CREATED_SK: Final = "createdAt"
LIST_PARTITION_VALUE: Final = "TASK"

# GSI listing tasks of one status newest-first (GET /tasks?status=...).
TASKS_BY_STATUS_INDEX: Final = "ByStatus"
TASKS_BY_STATUS_PK: Final = "status"
TASKS_BY_STATUS_SK: Final = "createdAt"

# Stages with `auth: jwt` only (taskflow.auth_contract): every task carries its owner (the
# token's sub) and is listed from this index, newest first, one partition per owner. Such stages
# have no ByCreatedAt index (nobody lists every owner's tasks; its constant partition would be the
# hot key) and keep ByStatus (operations find stuck tasks across owners: ops/redrive.py).
TASK_OWNER: Final = "owner"
TASKS_BY_OWNER_INDEX: Final = "ByOwner"
TASKS_BY_OWNER_PK: Final = TASK_OWNER
TASKS_BY_OWNER_SK: Final = "createdAt"

# Stored values of a task's `leaseState` (TaskRepository.claim): the notifier's stream filter
# (infra/websocket_api.py) matches them, so that writes nobody can see never invoke it.
TASK_LEASE_STATE: Final = "leaseState"
LEASE_RUNNING: Final = "running"  # a claim: the holder runs the step
LEASE_BACKING_OFF: Final = "backing-off"  # a failed attempt (retries and errorMessage changed)
LEASE_RELEASED: Final = "released"  # an invocation that could not complete gave the lease back

# Connection table: one item per open WebSocket connection.
CONNECTION_PK: Final = "connectionId"
CONNECTION_TTL_ATTRIBUTE: Final = "expiresAt"  # epoch seconds; DynamoDB TTL deletes stale rows
# Stages with `auth: jwt` only: the connection's owner, and an index (keys only) to find one
# owner's connections, so a task change is pushed to its owner's connections, not to all.
CONNECTION_OWNER: Final = "owner"
CONNECTIONS_BY_OWNER_INDEX: Final = "ByOwner"


def task_table_request(name: str, *, owner_scoped: bool = False) -> dict[str, Any]:
    """CreateTable parameters of the TaskTable as infra/ declares it (key, GSIs with projection
    ALL, stream with both images): what tests and benchmarks create on moto. `owner_scoped`: the
    table of an `auth: jwt` stage (ByOwner + ByStatus instead of ByCreatedAt + ByStatus)."""

    def index(index_name: str, partition: str, sort: str) -> dict[str, Any]:
        return {
            "IndexName": index_name,
            "KeySchema": [
                {"AttributeName": partition, "KeyType": "HASH"},
                {"AttributeName": sort, "KeyType": "RANGE"},
            ],
            "Projection": {"ProjectionType": "ALL"},
        }

    listing = (
        index(TASKS_BY_OWNER_INDEX, TASKS_BY_OWNER_PK, TASKS_BY_OWNER_SK)
        if owner_scoped
        else index(TASKS_BY_CREATED_INDEX, TASKS_BY_CREATED_PK, TASKS_BY_CREATED_SK)
    )
    listing_partition = TASKS_BY_OWNER_PK if owner_scoped else TASKS_BY_CREATED_PK
    return {
        "TableName": name,
        "BillingMode": "PAY_PER_REQUEST",
        "KeySchema": [{"AttributeName": TASK_PK, "KeyType": "HASH"}],
        "AttributeDefinitions": [
            {"AttributeName": attribute, "AttributeType": "S"}
            for attribute in (TASK_PK, listing_partition, TASKS_BY_CREATED_SK, TASKS_BY_STATUS_PK)
        ],
        "GlobalSecondaryIndexes": [
            listing,
            index(TASKS_BY_STATUS_INDEX, TASKS_BY_STATUS_PK, TASKS_BY_STATUS_SK),
        ],
        "StreamSpecification": {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    }


def connection_table_request(name: str, *, owner_scoped: bool = False) -> dict[str, Any]:
    """CreateTable parameters of the ConnectionTable (TTL is set separately, as on AWS).
    `owner_scoped`: the table of an `auth: jwt` stage, with the ByOwner index (keys only)."""
    request: dict[str, Any] = {
        "TableName": name,
        "BillingMode": "PAY_PER_REQUEST",
        "KeySchema": [{"AttributeName": CONNECTION_PK, "KeyType": "HASH"}],
        "AttributeDefinitions": [{"AttributeName": CONNECTION_PK, "AttributeType": "S"}],
    }
    if owner_scoped:
        request["AttributeDefinitions"].append({"AttributeName": CONNECTION_OWNER, "AttributeType": "S"})
        request["GlobalSecondaryIndexes"] = [
            {
                "IndexName": CONNECTIONS_BY_OWNER_INDEX,
                "KeySchema": [{"AttributeName": CONNECTION_OWNER, "KeyType": "HASH"}],
                "Projection": {"ProjectionType": "KEYS_ONLY"},
            }
        ]
    return request
