"""WebSocket route selection and route responses, as API Gateway does them."""

import pytest

from local.gateways.websocket_api import new_connection_id, route_response_body, select_route
from local.template.model import WebSocketRouteSpec

ROUTES = {
    "$connect": WebSocketRouteSpec("$connect", "F", False),
    "$default": WebSocketRouteSpec("$default", "F", True),
    "push": WebSocketRouteSpec("push", "F", True),
}


@pytest.mark.parametrize(
    ("body", "route"),
    [
        ('{"action": "push"}', "push"),
        ('{"action": "ping"}', "$default"),
        ('{"action": "$connect"}', "$default"),
        ("not json", "$default"),
        ('{"other": 1}', "$default"),
        (b"\x00binary", "$default"),
        # bodies json.loads raises on with something else than JSONDecodeError
        pytest.param("[" * 1000 + "]" * 1000, "$default", id="nested-arrays-RecursionError"),
        pytest.param('{"action": ' * 1000 + "1" + "}" * 1000, "$default", id="nested-RecursionError"),
        pytest.param('{"action": ' + "1" * 5000 + "}", "$default", id="5000-digits-ValueError"),
    ],
)
def test_messages_go_to_the_route_their_action_names_or_default(body, route):
    assert select_route("$request.body.action", body, ROUTES) == route


@pytest.mark.parametrize(
    ("payload", "frame"),
    [
        ({"statusCode": 200, "body": '{"type": "pong"}'}, '{"type": "pong"}'),
        ({"statusCode": 200, "body": {"type": "pong"}}, '{"type": "pong"}'),
        ({"statusCode": 200}, None),
        (None, None),
        ("text", "text"),
    ],
)
def test_a_two_way_route_sends_back_the_body_of_the_result(payload, frame):
    assert route_response_body(payload) == frame


def test_connection_ids_look_like_api_gateways():
    connection_id = new_connection_id()
    assert len(connection_id) == 16
    assert connection_id.endswith("=")
    assert "/" not in connection_id
