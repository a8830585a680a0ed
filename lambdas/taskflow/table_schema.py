"""Key schema of the two DynamoDB tables, shared by infra/ (CDK) and the repositories.

Tests build their moto tables from these constants too, so a key rename cannot leave the
template, the code and the tests disagreeing. The design and its alternatives:
docs/decisions.md, "Task table keys, one design for scale, resume and per-owner ids".

Task keys. A task is identified by its id within a *scope*: the owner (the token's sub) on
`auth: jwt` stages, SCOPE_ALL on `auth: none` stages. So two owners can use the same taskId.
  pk          taskId (auth: none) or <owner>#<taskId> (auth: jwt): one hash key per task
  listKey     <scope>#<shard>: ByCreated, written once at create (keys only)
  finishedKey <scope>#<status>#<shard>, finishedAt: ByFinished, set by the final transitions
              (success, dead-lettered) and removed by a retry, so only finished tasks are in it
`shard` = CRC32(taskId) mod the stage's listShards: no index partition takes more than
1/listShards of a scope's writes. taskId cannot contain `#` (TASK_ID_PATTERN), so every key
splits unambiguously from the right whatever the owner.
"""

from __future__ import annotations

import zlib
from typing import Any, Final

# Task table: one item per task.
TASK_PK: Final = "pk"
TASK_ID: Final = "taskId"  # an attribute of every item (what the API calls the task)
TASK_OWNER: Final = "owner"  # auth: jwt stages only
SCOPE_ALL: Final = "*"  # the scope of every task on auth: none stages
KEY_SEPARATOR: Final = "#"

# GSI listing a scope's tasks newest first: listShards partitions per scope, keys only. A page is
# one Query per shard, merged, then one BatchGetItem (TaskRepository.list_page).
TASKS_BY_CREATED_INDEX: Final = "ByCreated"
TASKS_BY_CREATED_PK: Final = "listKey"
TASKS_BY_CREATED_SK: Final = "createdAt"

# Sparse GSI of finished tasks (success, error), most recently finished first: GET /tasks?status=
# success|error. Projection ALL: a finished item does not change until it is retried.
TASKS_BY_FINISHED_INDEX: Final = "ByFinished"
TASKS_BY_FINISHED_PK: Final = "finishedKey"
TASKS_BY_FINISHED_SK: Final = "finishedAt"

# The stage setting listShards when a caller does not say (dev's default; infra/config.py).
DEFAULT_LIST_SHARDS: Final = 16

# Stored values of a task's `leaseState` (TaskRepository.claim): the notifier's stream filter
# (infra/websocket_api.py) matches them, so that writes nobody can see never invoke it.
TASK_LEASE_STATE: Final = "leaseState"
LEASE_RUNNING: Final = "running"  # a claim: the holder runs the step
LEASE_BACKING_OFF: Final = "backing-off"  # a failed attempt (retries and errorMessage changed)
LEASE_RELEASED: Final = "released"  # an invocation that could not complete gave the lease back

# Connection table: one item per open WebSocket connection.
CONNECTION_PK: Final = "connectionId"
CONNECTION_TTL_ATTRIBUTE: Final = "expiresAt"  # epoch seconds; DynamoDB TTL deletes stale rows
# Stages with `auth: jwt` only: the connection's owner and its token's expiry, and an index (keys
# only, sorted by the expiry) to find one owner's connections, so a task change is pushed to its
# owner's connections, not to all, and never to one whose token has expired.
CONNECTION_OWNER: Final = "owner"
CONNECTION_TOKEN_EXPIRES_AT: Final = "tokenExpiresAt"  # noqa: S105 - epoch seconds, the token's `exp`
CONNECTIONS_BY_OWNER_INDEX: Final = "ByOwner"


def scope_of(owner: str | None) -> str:
    """The scope of an owner's tasks: the owner itself, or SCOPE_ALL without one."""
    return SCOPE_ALL if owner is None else owner


def task_key(task_id: str, owner: str | None) -> str:
    """The table key `pk` of (owner, taskId)."""
    return task_id if owner is None else f"{owner}{KEY_SEPARATOR}{task_id}"


def shard_of(task_id: str, shards: int) -> int:
    """The listing shard of a task: stable for its life (CRC32, not Python's salted hash)."""
    return zlib.crc32(task_id.encode("utf-8")) % shards


def list_key(scope: str, shard: int) -> str:
    return f"{scope}{KEY_SEPARATOR}{shard}"


def finished_key(scope: str, status: str, shard: int) -> str:
    return f"{scope}{KEY_SEPARATOR}{status}{KEY_SEPARATOR}{shard}"


def task_table_request(name: str) -> dict[str, Any]:
    """CreateTable parameters of the TaskTable as infra/ declares it (the same on every stage):
    what tests and benchmarks create on moto."""

    def index(index_name: str, partition: str, sort: str, projection: str) -> dict[str, Any]:
        return {
            "IndexName": index_name,
            "KeySchema": [
                {"AttributeName": partition, "KeyType": "HASH"},
                {"AttributeName": sort, "KeyType": "RANGE"},
            ],
            "Projection": {"ProjectionType": projection},
        }

    key_attributes = (
        TASK_PK,
        TASKS_BY_CREATED_PK,
        TASKS_BY_CREATED_SK,
        TASKS_BY_FINISHED_PK,
        TASKS_BY_FINISHED_SK,
    )
    return {
        "TableName": name,
        "BillingMode": "PAY_PER_REQUEST",
        "KeySchema": [{"AttributeName": TASK_PK, "KeyType": "HASH"}],
        "AttributeDefinitions": [{"AttributeName": key, "AttributeType": "S"} for key in key_attributes],
        "GlobalSecondaryIndexes": [
            index(TASKS_BY_CREATED_INDEX, TASKS_BY_CREATED_PK, TASKS_BY_CREATED_SK, "KEYS_ONLY"),
            index(TASKS_BY_FINISHED_INDEX, TASKS_BY_FINISHED_PK, TASKS_BY_FINISHED_SK, "ALL"),
        ],
        "StreamSpecification": {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    }


def connection_table_request(name: str, *, owner_scoped: bool = False) -> dict[str, Any]:
    """CreateTable parameters of the ConnectionTable (TTL is set separately, as on AWS).
    `owner_scoped`: the table of an `auth: jwt` stage, with the ByOwner index (keys only: owner,
    then the token's expiry)."""
    request: dict[str, Any] = {
        "TableName": name,
        "BillingMode": "PAY_PER_REQUEST",
        "KeySchema": [{"AttributeName": CONNECTION_PK, "KeyType": "HASH"}],
        "AttributeDefinitions": [{"AttributeName": CONNECTION_PK, "AttributeType": "S"}],
    }
    if owner_scoped:
        request["AttributeDefinitions"] += [
            {"AttributeName": CONNECTION_OWNER, "AttributeType": "S"},
            {"AttributeName": CONNECTION_TOKEN_EXPIRES_AT, "AttributeType": "N"},
        ]
        request["GlobalSecondaryIndexes"] = [
            {
                "IndexName": CONNECTIONS_BY_OWNER_INDEX,
                "KeySchema": [
                    {"AttributeName": CONNECTION_OWNER, "KeyType": "HASH"},
                    {"AttributeName": CONNECTION_TOKEN_EXPIRES_AT, "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "KEYS_ONLY"},
            }
        ]
    return request
