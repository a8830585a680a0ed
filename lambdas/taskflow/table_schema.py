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

# Connection table: one item per open WebSocket connection.
CONNECTION_PK: Final = "connectionId"
CONNECTION_TTL_ATTRIBUTE: Final = "expiresAt"  # epoch seconds; DynamoDB TTL deletes stale rows


def task_table_request(name: str) -> dict[str, Any]:
    """CreateTable parameters of the TaskTable as infra/ declares it (key, both GSIs with
    projection ALL, stream with both images): what tests and benchmarks create on moto."""

    def index(index_name: str, partition: str, sort: str) -> dict[str, Any]:
        return {
            "IndexName": index_name,
            "KeySchema": [
                {"AttributeName": partition, "KeyType": "HASH"},
                {"AttributeName": sort, "KeyType": "RANGE"},
            ],
            "Projection": {"ProjectionType": "ALL"},
        }

    return {
        "TableName": name,
        "BillingMode": "PAY_PER_REQUEST",
        "KeySchema": [{"AttributeName": TASK_PK, "KeyType": "HASH"}],
        "AttributeDefinitions": [
            {"AttributeName": attribute, "AttributeType": "S"}
            for attribute in (TASK_PK, TASKS_BY_CREATED_PK, TASKS_BY_CREATED_SK, TASKS_BY_STATUS_PK)
        ],
        "GlobalSecondaryIndexes": [
            index(TASKS_BY_CREATED_INDEX, TASKS_BY_CREATED_PK, TASKS_BY_CREATED_SK),
            index(TASKS_BY_STATUS_INDEX, TASKS_BY_STATUS_PK, TASKS_BY_STATUS_SK),
        ],
        "StreamSpecification": {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    }
