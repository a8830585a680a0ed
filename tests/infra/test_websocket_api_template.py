"""WebSocket API: $connect/$disconnect/$default, the two-way default route, stage, notifier wiring."""

from __future__ import annotations

import pytest
from aws_cdk.assertions import Match
from template_queries import (
    function_id,
    function_ids,
    has_api_stage,
    has_environment,
    has_json_access_logs,
    integration_target,
    on_variants,
    ref,
    routes,
    throttling,
)

API = "AWS::ApiGatewayV2::Api"
ROUTE = "AWS::ApiGatewayV2::Route"
LOG_GROUP = "AWS::Logs::LogGroup"
ROUTE_FUNCTIONS = {
    "$connect": "WsConnectFunction",
    "$disconnect": "WsDisconnectFunction",
    "$default": "WsDefaultFunction",
}


@on_variants("dev")
def test_each_route_reaches_its_function(variant):
    template = variant.template
    api_routes = routes(template, variant.ids.websocket_api)

    assert set(api_routes) == set(ROUTE_FUNCTIONS)
    for route_key, construct_id in ROUTE_FUNCTIONS.items():
        target = integration_target(template, api_routes[route_key])
        assert target == function_id(template, construct_id), route_key


@on_variants("dev")
def test_api_selects_routes_by_the_action_field(variant):
    variant.template.has_resource_properties(
        API,
        {
            "ProtocolType": "WEBSOCKET",
            "RouteSelectionExpression": "$request.body.action",
            "Name": f"{variant.stack.stack_name}-WebSocketApi",
        },
    )


@on_variants("dev")
def test_only_the_default_route_sends_the_handler_body_back(variant):
    template, websocket_api = variant.template, ref(variant.ids.websocket_api)
    default_route = template.get_resource_id(
        ROUTE, {"Properties": {"ApiId": websocket_api, "RouteKey": "$default"}}
    )

    template.resource_count_is("AWS::ApiGatewayV2::RouteResponse", 1)
    template.has_resource_properties(
        "AWS::ApiGatewayV2::RouteResponse", {"RouteId": ref(default_route), "RouteResponseKey": "$default"}
    )
    template.has_resource_properties(
        ROUTE,
        {"ApiId": websocket_api, "RouteKey": "$default", "RouteResponseSelectionExpression": "$default"},
    )
    template.has_resource_properties(
        ROUTE,
        {"ApiId": websocket_api, "RouteKey": "$connect", "RouteResponseSelectionExpression": Match.absent()},
    )


@pytest.mark.parametrize(
    ("variant", "rate", "burst"), [("dev", 50, 100), ("prod", 200, 400)], indirect=["variant"]
)
def test_stage_is_named_after_the_stage_auto_deploys_and_throttles(variant, rate, burst):
    has_api_stage(
        variant.template,
        variant.ids.websocket_api,
        {
            "StageName": variant.stage.name,
            "AutoDeploy": True,
            "DefaultRouteSettings": throttling(rate, burst),
        },
    )


@on_variants("dev")
def test_stage_writes_json_access_logs(variant):
    has_json_access_logs(
        variant.template,
        variant.ids.websocket_api,
        {"connectionId": "$context.connectionId", "eventType": "$context.eventType"},
    )


@on_variants("dev_without_websocket_access_logs")
def test_access_logs_can_be_turned_off_for_accounts_without_the_api_gateway_logs_role(variant):
    template = variant.template

    has_api_stage(template, variant.ids.websocket_api, {"AccessLogSettings": Match.absent()})
    # one log group per function, and the HTTP API stage's
    template.resource_count_is(LOG_GROUP, len(function_ids(template)) + 1)


@on_variants("dev")
def test_notifier_posts_to_this_stage_callback_url(variant):
    has_environment(
        variant.template,
        "NotifierFunction",
        {
            "WEBSOCKET_CALLBACK_URL": {
                "Fn::Join": [
                    "",
                    [
                        "https://",
                        ref(variant.ids.websocket_api),
                        ".execute-api.",
                        ref("AWS::Region"),
                        ".",
                        ref("AWS::URLSuffix"),
                        f"/{variant.stage.name}",
                    ],
                ]
            }
        },
    )
