"""DynamoDB item sizes and capacity units, as DynamoDB bills them (local/metering/capacity.py)."""

from __future__ import annotations

import base64

import pytest

from local.metering.capacity import (
    IndexShape,
    TableShape,
    item_size,
    partition_writes,
    read_units_for,
    write_units,
)

# The TaskTable's shape: key taskId; ByCreatedAt (listPartition, createdAt) and ByStatus
# (status, createdAt), both projecting ALL.
TASKS = TableShape(
    ("taskId",),
    (
        IndexShape("ByCreatedAt", ("listPartition", "createdAt")),
        IndexShape("ByStatus", ("status", "createdAt")),
    ),
)


def task(status: str = "pending", **extra: dict) -> dict:
    item = {
        "taskId": {"S": "t-1"},
        "listPartition": {"S": "TASK"},
        "createdAt": {"S": "2026-11-26T00:00:00.000000Z"},
        "status": {"S": status},
        "version": {"N": "1"},
    }
    item.update(extra)
    return item


def test_sizes_count_names_and_values_by_dynamodbs_rules():
    assert item_size({"ab": {"S": "héllo"}}) == 2 + 6  # UTF-8 bytes
    assert item_size({"n": {"N": "12345"}}) == 1 + 4  # ceil(5 digits / 2) + 1
    assert item_size({"n": {"N": "100.00"}}) == 1 + 2  # significant digits only
    assert item_size({"b": {"BOOL": True}, "z": {"NULL": True}}) == 2 + 2
    assert item_size({"b": {"B": base64.b64encode(b"12345").decode()}}) == 1 + 5  # raw bytes, not base64
    assert item_size({"m": {"M": {"k": {"S": "v"}}}}) == 1 + 3 + (1 + 1 + 1)  # 3 + per element name+value+1
    assert item_size({"l": {"L": [{"S": "ab"}, {"N": "1"}]}}) == 1 + 3 + (2 + 1) + (2 + 1)
    assert item_size(None) == 0


def test_a_new_task_writes_the_table_and_both_indexes():
    units = write_units(TASKS, None, task())

    assert units.table == 1
    assert units.indexes == {"ByCreatedAt": 1, "ByStatus": 1}


def test_a_status_change_moves_the_bystatus_entry_a_delete_and_a_put():
    units = write_units(TASKS, task("pending"), task("success", version={"N": "2"}))

    assert units.table == 1
    assert units.indexes == {"ByCreatedAt": 1, "ByStatus": 2}


def test_each_write_lands_on_the_partitions_of_its_keys_and_a_move_splits_between_two():
    created = write_units(TASKS, None, task())
    finished_old, finished_new = task("pending"), task("success", version={"N": "2"})
    finished = write_units(TASKS, finished_old, finished_new)

    assert partition_writes(TASKS, "Tasks", None, task(), created) == {
        ("Tasks", "t-1"): 1.0,
        ("Tasks/ByCreatedAt", "TASK"): 1.0,
        ("Tasks/ByStatus", "pending"): 1.0,
    }
    assert partition_writes(TASKS, "Tasks", finished_old, finished_new, finished) == {
        ("Tasks", "t-1"): 1.0,
        ("Tasks/ByCreatedAt", "TASK"): 1.0,
        ("Tasks/ByStatus", "pending"): 1.0,  # the delete
        ("Tasks/ByStatus", "success"): 1.0,  # the put
    }


def test_a_change_of_projected_attributes_only_rewrites_each_entry_once():
    units = write_units(TASKS, task(), task(leaseOwner={"S": "message-1"}))

    assert units.indexes == {"ByCreatedAt": 1, "ByStatus": 1}


def test_an_index_that_projects_keys_only_is_not_written_when_only_other_attributes_change():
    keys_only = TableShape(("taskId",), (IndexShape("ByStatus", ("status",), projection="KEYS_ONLY"),))

    assert write_units(keys_only, task(), task(leaseOwner={"S": "m"})).indexes == {}
    assert write_units(keys_only, task(), task("error")).indexes == {"ByStatus": 2}


def test_a_sparse_index_costs_a_put_when_the_key_appears_and_a_delete_when_it_goes():
    sparse = TableShape(("taskId",), (IndexShape("ByLease", ("leaseOwner",)),))
    leased = task(leaseOwner={"S": "m"})

    assert write_units(sparse, task(), leased).indexes == {"ByLease": 1}
    assert write_units(sparse, leased, task()).indexes == {"ByLease": 1}
    assert write_units(sparse, task(), task(version={"N": "2"})).indexes == {}


def test_items_over_1_kb_cost_a_unit_per_started_kb_and_the_larger_image_counts():
    big = task(answer={"S": "x" * 1500})

    assert write_units(TASKS, None, big).table == 2
    assert write_units(TASKS, big, task()).table == 2  # the larger of before and after
    assert write_units(TASKS, big, None).indexes == {"ByCreatedAt": 2, "ByStatus": 2}  # a delete removes both


def test_a_failed_condition_costs_the_existing_item_and_writes_no_index():
    units = write_units(TASKS, task(answer={"S": "x" * 1500}), None, condition_failed=True)

    assert units.table == 2
    assert units.indexes == {}
    assert write_units(TASKS, None, None, condition_failed=True).table == 1  # at least one unit


@pytest.mark.parametrize(
    ("size", "consistent", "expected"),
    [(0, True, 1), (4096, True, 1), (4097, True, 2), (4097, False, 1.0), (100, False, 0.5)],
)
def test_reads_cost_a_unit_per_started_4_kb_half_when_eventually_consistent(size, consistent, expected):
    assert read_units_for(size, consistent) == expected


def test_a_query_rounds_the_sum_of_the_items_read_not_each_item():
    assert read_units_for(300 * 50, consistent=False) == 2.0  # 15,000 bytes -> 4 units x 0.5
    assert read_units_for(0, consistent=False) == 0.5
