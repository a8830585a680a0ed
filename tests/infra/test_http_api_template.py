"""HTTP API: routes reach HttpApiFunction, CORS and throttling come from the stage, access logs on."""

from __future__ import annotations

import json

import pytest
from template_queries import REPO_ROOT, arn, function_id, integration_target, properties, resources, routes

ROUTE_KEYS = {
    "POST /tasks",
    "GET /tasks",
    "GET /tasks/{taskId}",
    "POST /tasks/{taskId}/retry",
    "GET /openapi.json",
}


def test_every_task_route_reaches_the_http_api_function(dev_template, dev_ids):
    api_routes = routes(dev_template, dev_ids.http_api)

    assert set(api_routes) == ROUTE_KEYS
    http_function = function_id(dev_template, "HttpApiFunction")
    for route_key, route in api_routes.items():
        assert integration_target(dev_template, route) == http_function, route_key
        assert route["AuthorizationType"] == "NONE"


def test_routes_use_lambda_proxy_payload_v2(dev_template, dev_ids):
    integrations = resources(dev_template, "AWS::ApiGatewayV2::Integration")
    http_integrations = [
        i["Properties"]
        for i in integrations.values()
        if i["Properties"]["ApiId"] == {"Ref": dev_ids.http_api}
    ]

    assert len(http_integrations) == 1  # one integration shared by the five routes
    assert http_integrations[0]["IntegrationType"] == "AWS_PROXY"
    assert http_integrations[0]["PayloadFormatVersion"] == "2.0"


def test_api_gateway_may_invoke_the_function_for_each_route_of_this_api_only(dev_template, dev_ids):
    http_function = function_id(dev_template, "HttpApiFunction")
    permissions = [
        p["Properties"]
        for p in resources(dev_template, "AWS::Lambda::Permission").values()
        if p["Properties"]["FunctionName"] == arn(http_function)
    ]

    assert {json.dumps(p["SourceArn"]["Fn::Join"][1][-1]) for p in permissions} == {
        json.dumps("/*/*/tasks"),
        json.dumps("/*/*/tasks/{taskId}"),
        json.dumps("/*/*/tasks/{taskId}/retry"),
        json.dumps("/*/*/openapi.json"),
    }
    for permission in permissions:
        assert permission["Principal"] == "apigateway.amazonaws.com"
        assert {"Ref": dev_ids.http_api} in permission["SourceArn"]["Fn::Join"][1]


def test_the_routes_are_exactly_the_operations_of_the_openapi_document(dev_template, dev_ids):
    # docs/openapi.json is generated from the function's resolver (make openapi; tests/lambdas fails
    # when it is stale): API Gateway must route every documented operation, and nothing else.
    document = json.loads((REPO_ROOT / "docs" / "openapi.json").read_text())
    documented = {
        f"{method.upper()} {path}" for path, operations in document["paths"].items() for method in operations
    }

    assert set(routes(dev_template, dev_ids.http_api)) == documented


@pytest.mark.parametrize(
    ("stage_name", "origins"),
    [("dev", ["http://localhost:4200"]), ("prod", ["https://app.example.com"])],
)
def test_cors_preflight_allows_the_stage_origins_only(request, stage_name, origins):
    template = request.getfixturevalue(f"{stage_name}_template")
    ids = request.getfixturevalue(f"{stage_name}_ids")
    stage = request.getfixturevalue(f"{stage_name}_stage")

    cors = properties(template, ids.http_api)["CorsConfiguration"]

    assert cors == {
        "AllowOrigins": origins,
        "AllowHeaders": list(stage.cors_headers),
        "AllowMethods": ["GET", "POST", "OPTIONS"],
        "ExposeHeaders": ["Location", "Link"],
        "MaxAge": 3600,
    }
    assert "AllowCredentials" not in cors


@pytest.mark.parametrize(("stage_name", "rate", "burst"), [("dev", 50, 100), ("prod", 200, 400)])
def test_default_stage_throttles_per_stage_config(request, stage_name, rate, burst):
    template = request.getfixturevalue(f"{stage_name}_template")
    ids = request.getfixturevalue(f"{stage_name}_ids")

    stage = properties(template, ids.http_stage)

    assert stage["StageName"] == "$default"
    assert stage["AutoDeploy"] is True
    assert stage["DefaultRouteSettings"] == {"ThrottlingRateLimit": rate, "ThrottlingBurstLimit": burst}


def test_default_stage_writes_json_access_logs_to_its_log_group(dev_template, dev_ids):
    settings = properties(dev_template, dev_ids.http_stage)["AccessLogSettings"]

    log_group_id = settings["DestinationArn"]["Fn::GetAtt"][0]
    assert dev_template.to_json()["Resources"][log_group_id]["Type"] == "AWS::Logs::LogGroup"
    fields = json.loads(settings["Format"])
    assert fields["requestId"] == "$context.requestId"
    assert fields["routeKey"] == "$context.routeKey"
    assert fields["status"] == "$context.status"


def test_api_is_named_after_the_stack(dev_template, dev_ids, prod_template, prod_ids):
    assert properties(dev_template, dev_ids.http_api)["Name"] == "TaskBackend-dev-HttpApi"
    assert properties(prod_template, prod_ids.http_api)["Name"] == "TaskBackend-prod-HttpApi"
