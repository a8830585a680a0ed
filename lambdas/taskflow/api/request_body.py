"""Reading a JSON request body safely: size, content type and encoding, base64, UTF-8, JSON, object.

The checks run in that order and each has its own status, so nothing a client sends can reach
the route as an exception Powertools would turn into a 500.

The body is read strictly, so that what is stored is what was sent, and so that any other JSON
parser (a proxy, a log pipeline) reads the body the same way: a charset other than UTF-8 is a
415, a key twice in one object is a 400, and a number with a fraction or an exponent that a
64-bit float (a JSON number in JavaScript) cannot give back as written is a 422, never silently
rounded: up to 15 significant digits always can.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections import Counter
from decimal import Decimal
from http import HTTPStatus
from typing import Any, Final, TypeVar

from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2
from pydantic import BaseModel, ValidationError

from taskflow.api.errors import HttpError, field_errors, validation_failed
from taskflow.domain.limits import MAX_NUMBER_DIGITS, MAX_PAYLOAD_DEPTH

ModelT = TypeVar("ModelT", bound=BaseModel)

MAX_BODY_BYTES: Final = 32 * 1024
JSON_MEDIA_TYPE: Final = "application/json"


# Integers longer than this are refused while parsing: Python's own int() limit is 4,300 digits
# (its error names sys.set_int_max_str_digits), and DynamoDB holds MAX_NUMBER_DIGITS anyway.
MAX_PARSED_INT_DIGITS: Final = 1000


class _UnstorableNumberError(ValueError):
    """Valid JSON, but a number no field can hold as sent."""


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _bounded_int(text: str) -> int:
    digits = len(text.lstrip("-"))
    if digits > MAX_PARSED_INT_DIGITS:
        raise _UnstorableNumberError(
            f"holds an integer of {digits} digits; numbers have at most {MAX_NUMBER_DIGITS}"
        )
    return int(text)


def _exact_float(text: str) -> float:
    """A float, refusing one that is not the number sent: `1e-400` would silently become 0, and
    `0.12345678901234567890` 0.12345678901234568. (A float out of range is refused later, naming
    its field.)"""
    value = float(text)
    if value == 0.0 and any(digit in "123456789" for digit in text.lower().partition("e")[0]):
        raise _UnstorableNumberError(
            f"holds the number {text[:40]}, too small to store (it would become 0); "
            "a number other than 0 is between 1e-130 and 9.9e125 in magnitude"
        )
    if math.isfinite(value) and Decimal(repr(value)) != Decimal(text):
        raise _UnstorableNumberError(
            f"holds the number {text[:40]}, which a JSON number (a 64-bit float, as in JavaScript) "
            f"cannot keep exactly: it would be stored as {value!r}; send at most 15 significant "
            "digits, or the number as a string"
        )
    return value


class _DuplicateKeyError(ValueError):
    """Valid JSON, but an object names one key twice (parsers disagree on which value wins)."""


def _object_without_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    value = dict(pairs)
    if len(value) != len(pairs):
        twice = next(key for key, times in Counter(key for key, _ in pairs).items() if times > 1)
        raise _DuplicateKeyError(f"the body's JSON names the key {twice[:64]!r} twice in one object")
    return value


def read_json_object(event: APIGatewayProxyEventV2) -> dict[str, Any]:
    raw = event.body or ""
    # Length first, before any decoding: base64 inflates by 4/3.
    limit = MAX_BODY_BYTES * 4 // 3 + 4 if event.is_base64_encoded else MAX_BODY_BYTES
    if len(raw) > limit:
        raise _too_large(len(raw))

    media_type, *parameters = (event.headers.get("content-type") or "").split(";")
    media_type = media_type.strip().lower()
    if media_type != JSON_MEDIA_TYPE:
        shown = f"got {media_type!r}" if media_type else "got no Content-Type"
        raise HttpError(
            HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
            f"the body must be JSON (Content-Type: {JSON_MEDIA_TYPE}); {shown}",
        )
    charset = _charset(parameters)
    if charset not in (None, "utf-8", "utf8"):
        raise HttpError(
            HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
            f"the body must be UTF-8 JSON; charset {charset[:32]!r} is not supported",
        )
    encoding = (event.headers.get("content-encoding") or "").strip().lower()
    if encoding not in ("", "identity"):
        # API Gateway passes the body through as sent; nothing here inflates it.
        raise HttpError(
            HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
            f"the body must be sent uncompressed; Content-Encoding {encoding[:32]!r} is not supported",
        )

    if event.is_base64_encoded:
        try:
            data = base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError):
            raise HttpError(
                HTTPStatus.BAD_REQUEST, "the body is marked base64-encoded but is not base64"
            ) from None
    else:
        data = raw.encode("utf-8", errors="surrogatepass")
    if len(data) > MAX_BODY_BYTES:
        raise _too_large(len(data))

    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise HttpError(HTTPStatus.BAD_REQUEST, f"the body is not UTF-8 text: {error.reason}") from None
    if not text.strip():
        raise HttpError(HTTPStatus.BAD_REQUEST, "the body is empty; expected a JSON object")
    value = _parse(text)
    if not isinstance(value, dict):
        raise validation_failed([{"field": "body", "reason": "must be a JSON object"}])
    return value


def _charset(parameters: list[str]) -> str | None:
    """The `charset` of a Content-Type's parameters (lower case, unquoted), None if absent."""
    for parameter in parameters:
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset":
            return value.strip().strip('"').lower()
    return None


def _parse(text: str) -> Any:
    try:
        value = json.loads(
            text,
            parse_constant=_reject_constant,
            parse_int=_bounded_int,
            parse_float=_exact_float,
            object_pairs_hook=_object_without_duplicates,
        )
    except json.JSONDecodeError as error:
        raise HttpError(
            HTTPStatus.BAD_REQUEST,
            f"the body is not valid JSON: {error.msg} (line {error.lineno}, column {error.colno})",
        ) from None
    except _UnstorableNumberError as error:  # valid JSON, but no field can hold it
        raise validation_failed([{"field": "body", "reason": str(error)}]) from None
    except _DuplicateKeyError as error:
        raise HttpError(HTTPStatus.BAD_REQUEST, str(error)) from None
    except RecursionError:
        raise HttpError(
            HTTPStatus.BAD_REQUEST,
            f"the body's JSON is nested too deeply to parse (a payload allows {MAX_PAYLOAD_DEPTH} levels)",
        ) from None
    except ValueError as error:  # NaN/Infinity
        raise HttpError(HTTPStatus.BAD_REQUEST, f"the body is not valid JSON: {error}") from None
    return value


def _too_large(size: int) -> HttpError:
    return HttpError(
        HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
        f"the body is {size} bytes; the limit is {MAX_BODY_BYTES} bytes",
        details={"limitBytes": MAX_BODY_BYTES},
    )


def read_model(event: APIGatewayProxyEventV2, model: type[ModelT]) -> ModelT:
    """The JSON object body validated into `model`; 422 with every invalid field otherwise."""
    body = read_json_object(event)
    try:
        return model.model_validate(body)
    except ValidationError as error:
        raise validation_failed(field_errors(error)) from None
