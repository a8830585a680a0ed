"""Shared DynamoDB plumbing for the repositories: (de)serialization and error translation."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from decimal import Decimal
from typing import Any, Final

from taskflow.clients import aws
from taskflow.domain.limits import json_number

CONDITIONAL_CHECK_FAILED: Final = "ConditionalCheckFailedException"


class ConditionFailedError(Exception):
    """A conditional write was refused; `item` is the current item (None if absent)."""

    def __init__(self, item: dict[str, Any] | None) -> None:
        super().__init__("condition failed")
        self.item = item


def _to_dynamodb_value(value: Any) -> Any:
    """Python JSON values -> what boto3's TypeSerializer accepts (floats become Decimals)."""
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, dict):
        return {key: _to_dynamodb_value(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_to_dynamodb_value(item) for item in value]
    return value


def _from_dynamodb_value(value: Any) -> Any:
    """Deserialized DynamoDB values -> plain JSON values (Decimals become int or float)."""
    if isinstance(value, Decimal):
        return json_number(value)
    if isinstance(value, dict):
        return {key: _from_dynamodb_value(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_from_dynamodb_value(item) for item in value]
    return value


def serialize(values: Mapping[str, Any]) -> dict[str, Any]:
    """{"name": python value} -> {"name": AttributeValue}."""
    from boto3.dynamodb.types import TypeSerializer  # noqa: PLC0415 - boto3 is loaded lazily

    serializer = TypeSerializer()
    return {key: serializer.serialize(_to_dynamodb_value(value)) for key, value in values.items()}


def deserialize(item: Mapping[str, Any]) -> dict[str, Any]:
    """{"name": AttributeValue} -> {"name": plain JSON value}."""
    from boto3.dynamodb.types import TypeDeserializer  # noqa: PLC0415 - boto3 is loaded lazily

    deserializer = TypeDeserializer()
    return {key: _from_dynamodb_value(deserializer.deserialize(value)) for key, value in item.items()}


@contextmanager
def translated_errors(dependency: str = "DynamoDB") -> Iterator[None]:
    """Turn a refused condition into ConditionFailedError (with the current item, when the call
    asked for ReturnValuesOnConditionCheckFailure=ALL_OLD) and outages into
    DependencyUnavailableError; anything else propagates unchanged."""
    try:
        yield
    except Exception as error:
        if aws.error_code(error) == CONDITIONAL_CHECK_FAILED:
            raw_item = getattr(error, "response", {}).get("Item")
            raise ConditionFailedError(deserialize(raw_item) if raw_item else None) from None
        dependency_error = aws.as_dependency_error(error, dependency)
        if dependency_error is not None:
            raise dependency_error from error
        raise
