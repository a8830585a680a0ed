"""WebSocket API: $connect/$disconnect/$default, the two-way default route, stage, notifier wiring."""

from __future__ import annotations

import json

import pytest
from template_queries import (
    changed,
    function_id,
    integration_target,
    properties,
    ref,
    resources,
    routes,
    synth,
)

ROUTE_FUNCTIONS = {
    "$connect": "WsConnectFunction",
    "$disconnect": "WsDisconnectFunction",
    "$default": "WsDefaultFunction",
}


def test_each_route_reaches_its_function(dev_template, dev_ids):
    api_routes = routes(dev_template, dev_ids.websocket_api)

    assert set(api_routes) == set(ROUTE_FUNCTIONS)
    for route_key, construct_id in ROUTE_FUNCTIONS.items():
        target = integration_target(dev_template, api_routes[route_key])
        assert target == function_id(dev_template, construct_id), route_key


def test_api_selects_routes_by_the_action_field(dev_template, dev_ids):
    api = properties(dev_template, dev_ids.websocket_api)

    assert api["ProtocolType"] == "WEBSOCKET"
    assert api["RouteSelectionExpression"] == "$request.body.action"
    assert api["Name"] == "TaskBackend-dev-WebSocketApi"


def test_only_the_default_route_sends_the_handler_body_back(dev_template, dev_ids):
    api_routes = routes(dev_template, dev_ids.websocket_api)
    route_responses = resources(dev_template, "AWS::ApiGatewayV2::RouteResponse")

    (response,) = route_responses.values()
    route_id = response["Properties"]["RouteId"]["Ref"]
    assert properties(dev_template, route_id)["RouteKey"] == "$default"
    assert response["Properties"]["RouteResponseKey"] == "$default"
    assert api_routes["$default"]["RouteResponseSelectionExpression"] == "$default"
    assert "RouteResponseSelectionExpression" not in api_routes["$connect"]


@pytest.mark.parametrize(("stage_name", "rate", "burst"), [("dev", 50, 100), ("prod", 200, 400)])
def test_stage_is_named_after_the_stage_auto_deploys_and_throttles(request, stage_name, rate, burst):
    template = request.getfixturevalue(f"{stage_name}_template")
    ids = request.getfixturevalue(f"{stage_name}_ids")

    stage = properties(template, ids.websocket_stage)

    assert stage["StageName"] == stage_name
    assert stage["AutoDeploy"] is True
    assert stage["DefaultRouteSettings"] == {"ThrottlingRateLimit": rate, "ThrottlingBurstLimit": burst}


def test_stage_writes_json_access_logs(dev_template, dev_ids):
    settings = properties(dev_template, dev_ids.websocket_stage)["AccessLogSettings"]

    assert dev_template.to_json()["Resources"][settings["DestinationArn"]["Fn::GetAtt"][0]]["Type"] == (
        "AWS::Logs::LogGroup"
    )
    fields = json.loads(settings["Format"])
    assert fields["connectionId"] == "$context.connectionId"
    assert fields["eventType"] == "$context.eventType"


def test_access_logs_can_be_turned_off_for_accounts_without_the_api_gateway_logs_role(dev_stage):
    template = synth(changed(dev_stage, websocket_access_logs=False))

    stages = resources(template, "AWS::ApiGatewayV2::Stage").values()
    ws_stage = next(s["Properties"] for s in stages if s["Properties"]["StageName"] == "dev")
    assert "AccessLogSettings" not in ws_stage
    assert len(resources(template, "AWS::Logs::LogGroup")) == 8 + 1


def test_notifier_posts_to_this_stage_callback_url(dev_template, dev_ids):
    notifier = function_id(dev_template, "NotifierFunction")

    callback_url = properties(dev_template, notifier)["Environment"]["Variables"]["WEBSOCKET_CALLBACK_URL"]

    assert callback_url == {
        "Fn::Join": [
            "",
            [
                "https://",
                ref(dev_ids.websocket_api),
                ".execute-api.",
                ref("AWS::Region"),
                ".",
                ref("AWS::URLSuffix"),
                "/dev",
            ],
        ]
    }
