"""HTTP API: routes reach HttpApiFunction, CORS and throttling come from the stage, access logs on."""

from __future__ import annotations

import json

import pytest
from aws_cdk.assertions import Match
from template_queries import (
    REPO_ROOT,
    arn,
    function_id,
    has_api_stage,
    has_json_access_logs,
    integration_target,
    on_variants,
    ref,
    routes,
    throttling,
)

API = "AWS::ApiGatewayV2::Api"
INTEGRATION = "AWS::ApiGatewayV2::Integration"
ROUTE_KEYS = {
    "POST /tasks",
    "GET /tasks",
    "GET /tasks/{taskId}",
    "POST /tasks/{taskId}/retry",
    "GET /openapi.json",
}


@on_variants("dev")
def test_every_task_route_reaches_the_http_api_function(variant):
    template = variant.template
    api_routes = routes(template, variant.ids.http_api)

    assert set(api_routes) == ROUTE_KEYS
    http_function = function_id(template, "HttpApiFunction")
    for route_key, route in api_routes.items():
        assert integration_target(template, route) == http_function, route_key
        assert route["AuthorizationType"] == "NONE"


@on_variants("dev")
def test_routes_use_lambda_proxy_payload_v2(variant):
    http_api = ref(variant.ids.http_api)

    # one integration shared by the five routes
    variant.template.resource_properties_count_is(INTEGRATION, {"ApiId": http_api}, 1)
    variant.template.has_resource_properties(
        INTEGRATION, {"ApiId": http_api, "IntegrationType": "AWS_PROXY", "PayloadFormatVersion": "2.0"}
    )


@on_variants("dev")
def test_api_gateway_may_invoke_the_function_for_each_route_of_this_api_only(variant):
    template = variant.template
    http_function = function_id(template, "HttpApiFunction")
    permissions = [
        p["Properties"]
        for p in template.find_resources(
            "AWS::Lambda::Permission", {"Properties": {"FunctionName": arn(http_function)}}
        ).values()
    ]

    assert {json.dumps(p["SourceArn"]["Fn::Join"][1][-1]) for p in permissions} == {
        json.dumps("/*/*/tasks"),
        json.dumps("/*/*/tasks/{taskId}"),
        json.dumps("/*/*/tasks/{taskId}/retry"),
        json.dumps("/*/*/openapi.json"),
    }
    for permission in permissions:
        assert permission["Principal"] == "apigateway.amazonaws.com"
        assert ref(variant.ids.http_api) in permission["SourceArn"]["Fn::Join"][1]


@on_variants("dev")
def test_the_routes_are_exactly_the_operations_of_the_openapi_document(variant):
    # docs/openapi.json is generated from the function's resolver (make openapi; tests/lambdas fails
    # when it is stale): API Gateway must route every documented operation, and nothing else.
    document = json.loads((REPO_ROOT / "docs" / "openapi.json").read_text())
    documented = {
        f"{method.upper()} {path}" for path, operations in document["paths"].items() for method in operations
    }

    assert set(routes(variant.template, variant.ids.http_api)) == documented


@pytest.mark.parametrize(
    ("variant", "origins"),
    [("dev", ["http://localhost:4200"]), ("prod", ["https://app.example.com"])],
    indirect=["variant"],
)
def test_cors_preflight_allows_the_stage_origins_only(variant, origins):
    # Exactly these settings: no AllowCredentials.
    variant.template.has_resource_properties(
        API,
        {
            "ProtocolType": "HTTP",
            "CorsConfiguration": Match.object_equals(
                {
                    "AllowOrigins": origins,
                    "AllowHeaders": list(variant.stage.cors_headers),
                    "AllowMethods": ["GET", "POST", "OPTIONS"],
                    "ExposeHeaders": ["Location", "Link"],
                    "MaxAge": 3600,
                }
            ),
        },
    )


@pytest.mark.parametrize(
    ("variant", "rate", "burst"), [("dev", 50, 100), ("prod", 200, 400)], indirect=["variant"]
)
def test_default_stage_throttles_per_stage_config(variant, rate, burst):
    has_api_stage(
        variant.template,
        variant.ids.http_api,
        {"StageName": "$default", "AutoDeploy": True, "DefaultRouteSettings": throttling(rate, burst)},
    )


@on_variants("dev")
def test_default_stage_writes_json_access_logs_to_its_log_group(variant):
    has_json_access_logs(
        variant.template,
        variant.ids.http_api,
        {"requestId": "$context.requestId", "routeKey": "$context.routeKey", "status": "$context.status"},
    )


@on_variants("dev", "prod")
def test_api_is_named_after_the_stack(variant):
    variant.template.has_resource_properties(
        API, {"ProtocolType": "HTTP", "Name": f"{variant.stack.stack_name}-HttpApi"}
    )
