"""The WebSocket handlers ($connect, $disconnect, $default) with API Gateway WebSocket events."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import pytest
from botocore.exceptions import EndpointConnectionError
from lambda_support import Aws, FakeLambdaContext, connection_ids, ws_event

from taskflow import table_schema
from taskflow.auth_contract import OWNER_CONTEXT_KEY, TOKEN_EXPIRY_CONTEXT_KEY
from taskflow.handlers import ws_connect, ws_default, ws_disconnect
from taskflow.repositories.connection_repository import ConnectionRepository, OwnedConnection

TOKEN_EXPIRES_AT = int(time.time()) + 600  # sooner than the connection TTL of the test settings


def reply(event: dict[str, Any], context: FakeLambdaContext) -> dict[str, Any]:
    response = ws_default.handler(event, context)
    assert response["statusCode"] == 200  # the connection always stays open
    return dict(json.loads(response["body"]))


def test_connect_stores_the_connection_with_a_ttl(
    function_env: dict[str, str], moto_aws: Aws, lambda_context: FakeLambdaContext
) -> None:
    before = int(time.time())

    response = ws_connect.handler(ws_event("CONNECT", connection_id="abc="), lambda_context)

    item = moto_aws.dynamodb.get_item(
        TableName=moto_aws.connection_table, Key={table_schema.CONNECTION_PK: {"S": "abc="}}
    )["Item"]
    expires_at = int(item[table_schema.CONNECTION_TTL_ATTRIBUTE]["N"])
    assert response == {"statusCode": 200}
    assert before + 7800 <= expires_at <= int(time.time()) + 7800
    assert item["connectedAt"]["S"].endswith("Z")


def test_disconnect_deletes_the_connection(
    function_env: dict[str, str], moto_aws: Aws, lambda_context: FakeLambdaContext
) -> None:
    ws_connect.handler(ws_event("CONNECT", connection_id="c1"), lambda_context)
    ws_connect.handler(ws_event("CONNECT", connection_id="c2"), lambda_context)

    response = ws_disconnect.handler(ws_event("DISCONNECT", connection_id="c1"), lambda_context)

    assert response == {"statusCode": 200}
    assert connection_ids(moto_aws) == {"c2"}


def test_disconnect_of_an_unknown_connection_is_fine(
    function_env: dict[str, str], lambda_context: FakeLambdaContext
) -> None:
    assert ws_disconnect.handler(ws_event("DISCONNECT", connection_id="never"), lambda_context) == {
        "statusCode": 200
    }


class _DownDynamoDB:
    def put_item(self, **_: Any) -> Any:
        raise EndpointConnectionError(endpoint_url="http://127.0.0.1:9")


def test_connect_is_refused_while_the_table_is_down(
    function_env: dict[str, str], lambda_context: FakeLambdaContext
) -> None:
    ws_connect.connections.override(ConnectionRepository("ConnectionTable", client=_DownDynamoDB()))
    assert ws_connect.handler(ws_event("CONNECT"), lambda_context) == {"statusCode": 503}


def test_ping_gets_pong(lambda_context: FakeLambdaContext) -> None:
    assert reply(ws_event("MESSAGE", body='{"action":"ping"}'), lambda_context) == {"type": "pong"}


def test_base64_ping_gets_pong(lambda_context: FakeLambdaContext) -> None:
    event = ws_event("MESSAGE", body=base64.b64encode(b'{"action":"ping"}').decode(), base64_encoded=True)
    assert reply(event, lambda_context) == {"type": "pong"}


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("not json", "not JSON"),
        ("", "not JSON"),
        ("[1, 2]", "JSON object"),
        ('"ping"', "JSON object"),
        ('{"action": "subscribe"}', "unknown action 'subscribe'"),
        ('{"action": 5}', "unknown action"),
        ("{}", "unknown action"),
        ('{"action": "ping", "pad": "' + "x" * 9000 + '"}', "limit is 8192"),
        ("[" * 8000, "not JSON"),
    ],
)
def test_anything_but_ping_gets_an_error_frame_and_the_connection_stays_open(
    lambda_context: FakeLambdaContext, body: str, expected: str
) -> None:
    answer = reply(ws_event("MESSAGE", body=body), lambda_context)
    assert answer["type"] == "error"
    assert expected in answer["message"]


def test_broken_base64_frame_gets_an_error_frame(lambda_context: FakeLambdaContext) -> None:
    answer = reply(ws_event("MESSAGE", body="%%%", base64_encoded=True), lambda_context)
    assert answer["type"] == "error"


def test_event_without_a_body_gets_an_error_frame(lambda_context: FakeLambdaContext) -> None:
    assert reply(ws_event("MESSAGE"), lambda_context)["type"] == "error"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"\xff\xfe\xfd", "not JSON"),  # invalid UTF-8
        (b"\xc3\x28", "not JSON"),  # truncated two-byte sequence
        (b'{"action": "ping", "pad": "' + b"\x00" * 9000 + b'"}', "limit is 8192"),
        (b"x" * 200_000, "limit is 8192"),  # refused before decoding
    ],
    ids=["invalid-utf8", "truncated-utf8", "over-8-kib", "over-128-kb"],
)
def test_binary_frame_that_is_not_a_small_utf8_json_object_gets_an_error_frame(
    lambda_context: FakeLambdaContext, raw: bytes, expected: str
) -> None:
    event = ws_event("MESSAGE", body=base64.b64encode(raw).decode(), base64_encoded=True)

    answer = reply(event, lambda_context)

    assert answer["type"] == "error"
    assert expected in answer["message"]


def test_text_frame_over_the_limit_in_multibyte_characters_gets_an_error_frame(
    lambda_context: FakeLambdaContext,
) -> None:
    # 3,000 characters but 9,000 bytes: the limit is on bytes, as API Gateway's frame limit is.
    body = '{"action": "ping", "pad": "' + "\u20ac" * 3000 + '"}'

    answer = reply(ws_event("MESSAGE", body=body), lambda_context)

    assert answer == {"type": "error", "message": answer["message"]}
    assert "limit is 8192" in answer["message"]


# --------------------------------------------------------------------------- $connect with auth: jwt


def stored_connection(moto_aws: Aws, connection_id: str) -> dict[str, Any] | None:
    item = moto_aws.dynamodb.get_item(
        TableName=moto_aws.connection_table, Key={table_schema.CONNECTION_PK: {"S": connection_id}}
    ).get("Item")
    return dict(item) if item else None


def test_connect_on_a_jwt_stage_stores_the_owner_the_authorizer_verified(
    jwt_env: dict[str, str], owner_scoped_aws: Aws, lambda_context: FakeLambdaContext
) -> None:
    # Given the context the $connect authorizer returned for Alice's token (API Gateway may hand
    # its numbers on as strings)
    authorizer = {
        "principalId": "alice",
        OWNER_CONTEXT_KEY: "alice",
        TOKEN_EXPIRY_CONTEXT_KEY: str(TOKEN_EXPIRES_AT),
        "integrationLatency": 12,
    }

    # When the connection is made
    response = ws_connect.handler(
        ws_event("CONNECT", connection_id="c1", authorizer=authorizer), lambda_context
    )

    # Then it is stored as Alice's with her token's expiry, and her connections are found by owner.
    # The row's TTL stays the connection's (later than the token's expiry): the owner's next change
    # must still find the connection to tell it `expired` and close it.
    assert response == {"statusCode": 200}
    stored = stored_connection(owner_scoped_aws, "c1")
    assert stored[table_schema.CONNECTION_OWNER] == {"S": "alice"}
    assert stored[table_schema.CONNECTION_TOKEN_EXPIRES_AT] == {"N": str(TOKEN_EXPIRES_AT)}
    assert int(stored[table_schema.CONNECTION_TTL_ATTRIBUTE]["N"]) > TOKEN_EXPIRES_AT
    repository = ConnectionRepository(owner_scoped_aws.connection_table, client=owner_scoped_aws.dynamodb)
    assert repository.of_owner("alice") == [OwnedConnection("c1", TOKEN_EXPIRES_AT)]
    assert repository.of_owner("bob") == []


def test_connect_on_a_jwt_stage_falls_back_to_the_principal_id(
    jwt_env: dict[str, str], owner_scoped_aws: Aws, lambda_context: FakeLambdaContext
) -> None:
    event = ws_event(
        "CONNECT",
        connection_id="c1",
        authorizer={"principalId": "alice", TOKEN_EXPIRY_CONTEXT_KEY: TOKEN_EXPIRES_AT},
    )

    assert ws_connect.handler(event, lambda_context) == {"statusCode": 200}
    assert stored_connection(owner_scoped_aws, "c1")[table_schema.CONNECTION_OWNER] == {"S": "alice"}


@pytest.mark.parametrize(
    "authorizer",
    [
        None,
        {},
        {OWNER_CONTEXT_KEY: "", TOKEN_EXPIRY_CONTEXT_KEY: 2_000_000_000},
        {"principalId": "", TOKEN_EXPIRY_CONTEXT_KEY: 2_000_000_000},
        {OWNER_CONTEXT_KEY: 7, TOKEN_EXPIRY_CONTEXT_KEY: 2_000_000_000},
        {OWNER_CONTEXT_KEY: "alice"},
        {OWNER_CONTEXT_KEY: "alice", TOKEN_EXPIRY_CONTEXT_KEY: "soon"},
    ],
    ids=[
        "no authorizer",
        "empty context",
        "empty owner",
        "empty principal",
        "not a string",
        "no token expiry",
        "expiry not a number",
    ],
)
def test_connect_on_a_jwt_stage_without_an_owner_is_refused_and_logged(
    jwt_env: dict[str, str],
    owner_scoped_aws: Aws,
    lambda_context: FakeLambdaContext,
    caplog: pytest.LogCaptureFixture,
    authorizer: dict[str, Any] | None,
) -> None:
    # Given a $connect that no authorizer vouched for (a route left without it)
    event = ws_event("CONNECT", connection_id="c1", authorizer=authorizer)

    # When it reaches the function
    response = ws_connect.handler(event, lambda_context)

    # Then it is refused, nothing is stored, and the misconfiguration is logged as an error
    assert response == {"statusCode": 403}
    assert stored_connection(owner_scoped_aws, "c1") is None
    assert [record.levelname for record in caplog.records if "connection refused" in record.getMessage()] == [
        "ERROR"
    ]


def test_connect_on_a_none_stage_stores_no_owner_whatever_the_context(
    function_env: dict[str, str], moto_aws: Aws, lambda_context: FakeLambdaContext
) -> None:
    event = ws_event("CONNECT", connection_id="c1", authorizer={OWNER_CONTEXT_KEY: "alice"})

    assert ws_connect.handler(event, lambda_context) == {"statusCode": 200}
    assert table_schema.CONNECTION_OWNER not in stored_connection(moto_aws, "c1")
