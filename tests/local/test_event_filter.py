"""Lambda's event filtering language: what matches, what is dropped."""

import json

import pytest

from local.sources.event_filter import (
    FilterPatternError,
    matches,
    matches_any,
    parse_patterns,
    sqs_filter_view,
)

RECORD = {
    "eventName": "MODIFY",
    "dynamodb": {
        "NewImage": {"status": {"S": "pending"}, "retries": {"N": "2"}, "tags": {"L": []}},
        "OldImage": {"status": {"S": "error"}},
    },
    "size": 12,
    "labels": ["a", "b"],
    "nothing": None,
}


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ({"eventName": ["MODIFY"]}, True),
        ({"eventName": ["INSERT"]}, False),
        ({"eventName": ["INSERT", "MODIFY"]}, True),
        (
            {
                "dynamodb": {
                    "NewImage": {"status": {"S": ["pending"]}},
                    "OldImage": {"status": {"S": ["error"]}},
                }
            },
            True,
        ),
        (
            {
                "dynamodb": {
                    "NewImage": {"status": {"S": ["pending"]}},
                    "OldImage": {"status": {"S": ["success"]}},
                }
            },
            False,
        ),
        ({"eventName": [{"prefix": "MOD"}]}, True),
        ({"eventName": [{"prefix": "INS"}]}, False),
        ({"eventName": [{"suffix": "IFY"}]}, True),
        ({"eventName": [{"equals-ignore-case": "modify"}]}, True),
        ({"eventName": [{"anything-but": "REMOVE"}]}, True),
        ({"eventName": [{"anything-but": ["MODIFY", "REMOVE"]}]}, False),
        ({"eventName": [{"anything-but": {"prefix": "MOD"}}]}, False),
        ({"dynamodb": {"OldImage": {"status": [{"exists": True}]}}}, True),
        ({"dynamodb": {"OldImage": {"missing": [{"exists": False}]}}}, True),
        ({"dynamodb": {"OldImage": {"status": [{"exists": False}]}}}, False),
        ({"absent": {"deeper": [{"exists": False}]}}, True),
        ({"size": [{"numeric": [">", 10, "<=", 12]}]}, True),
        ({"size": [{"numeric": ["<", 10]}]}, False),
        ({"size": [12]}, True),
        ({"size": ["12"]}, False),
        ({"dynamodb": {"NewImage": {"retries": {"N": [{"numeric": [">=", 2]}]}}}}, True),
        ({"labels": ["b"]}, True),
        ({"labels": ["c"]}, False),
        ({"nothing": [None]}, True),
        ({"eventName": [{"wildcard": "M*Y"}]}, True),
        ({"$or": [{"eventName": ["INSERT"]}, {"size": [12]}]}, True),
        ({}, True),
    ],
)
def test_pattern_matching(pattern, expected):
    assert matches(pattern, RECORD) is expected


def test_records_match_if_any_filter_matches_and_everything_matches_without_filters():
    patterns = parse_patterns(
        [{"Pattern": json.dumps({"eventName": ["INSERT"]})}, {"Pattern": '{"size": [12]}'}]
    )
    assert matches_any(patterns, RECORD)
    assert not matches_any(patterns[:1], RECORD)
    assert matches_any([], RECORD)


def test_the_enqueue_mapping_filters_of_the_stack_pass_inserts_and_retries_only():
    patterns = parse_patterns(
        [
            {"Pattern": '{"eventName":["INSERT"]}'},
            {
                "Pattern": '{"eventName":["MODIFY"],"dynamodb":{"NewImage":{"status":{"S":["pending"]}},'
                '"OldImage":{"status":{"S":["error"]}}}}'
            },
        ]
    )
    success = {
        "eventName": "MODIFY",
        "dynamodb": {"NewImage": {"status": {"S": "success"}}, "OldImage": {"status": {"S": "pending"}}},
    }
    assert matches_any(patterns, {"eventName": "INSERT", "dynamodb": {}})
    assert matches_any(patterns, RECORD)
    assert not matches_any(patterns, success)
    assert not matches_any(patterns, {"eventName": "REMOVE", "dynamodb": {}})


def test_sqs_bodies_are_matched_as_json_when_they_are_json():
    record = {"body": json.dumps({"kind": "task", "n": 3}), "messageId": "1"}
    assert matches({"body": {"kind": ["task"], "n": [{"numeric": [">", 2]}]}}, sqs_filter_view(record))
    assert matches({"body": ["plain text"]}, sqs_filter_view({"body": "plain text"}))


@pytest.mark.parametrize(
    "filters",
    [[{"Pattern": "not json"}], [{"Pattern": "[1, 2]"}]],
)
def test_invalid_patterns_are_rejected(filters):
    with pytest.raises(FilterPatternError):
        parse_patterns(filters)


def test_unknown_operators_are_rejected():
    with pytest.raises(FilterPatternError):
        matches({"eventName": [{"regex": ".*"}]}, RECORD)
