"""Authentication (stage config `auth`): on `auth: jwt` stages a JWT authorizer guards every HTTP route
and a Lambda authorizer WebSocket $connect, with a Cognito user pool when the stage names no issuer;
on `auth: none` stages none of it exists.

Two jwt stages derived from dev (template_queries.STAGE_VARIANTS): `jwt_pool` creates its user pool,
`jwt_issuer` names an external issuer (EXTERNAL_ISSUER, EXTERNAL_AUDIENCE). prod (cdk.json) is a jwt
stage with a pool; `prod_auth_none` is prod with `auth: none`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Capture, Match, Template
from template_queries import (
    ALL_HANDLERS,
    EXTERNAL_AUDIENCE,
    EXTERNAL_ISSUER,
    arn,
    environment,
    function_id,
    function_ids,
    has_environment,
    on_variants,
    only,
    properties,
    ref,
    resources,
    routes,
)

import infra.auth
from infra.auth import JwtLayerMissingError
from infra.stack import TaskBackendStack, stack_name_for
from taskflow import auth_contract, table_schema
from taskflow.metric_names import MetricName

JWT_STAGES = ("jwt_pool", "jwt_issuer")
AUTH_NONE_STAGES = ("dev", "prod_auth_none")
HTTP_ROUTE_KEYS = {
    "POST /tasks",
    "GET /tasks",
    "GET /tasks/{taskId}",
    "POST /tasks/{taskId}/retry",
    "GET /openapi.json",
}
AUTH_ENV = {"AUTH_MODE", "JWT_ISSUER", "JWT_AUDIENCE"}
AUTHORIZER = "AWS::ApiGatewayV2::Authorizer"
ROUTE = "AWS::ApiGatewayV2::Route"
FUNCTION = "AWS::Lambda::Function"
LAYER = "AWS::Lambda::LayerVersion"
USER_POOL = "AWS::Cognito::UserPool"
USER_POOL_CLIENT = "AWS::Cognito::UserPoolClient"


def _issuer_and_audience(variant) -> tuple[Any, list[Any]]:
    """What tokens are checked against: the created pool's issuer and client, or the configured ones."""
    if not variant.stage.creates_user_pool:
        return variant.stage.jwt_issuer, list(variant.stage.jwt_audience)
    user_pool = only(resources(variant.template, USER_POOL))
    client = only(resources(variant.template, USER_POOL_CLIENT))
    return arn(user_pool, "ProviderURL"), [ref(client)]


def _authorizer(template: Template, api_id: str) -> str:
    return only(template.find_resources(AUTHORIZER, {"Properties": {"ApiId": ref(api_id)}}))


# --- HTTP API ------------------------------------------------------------------------------------


@on_variants(*JWT_STAGES)
def test_http_api_verifies_a_bearer_jwt_of_the_stage_issuer_and_audience(variant):
    issuer, audience = _issuer_and_audience(variant)

    variant.template.has_resource_properties(
        AUTHORIZER,
        Match.object_equals(
            {
                "ApiId": ref(variant.ids.http_api),
                "AuthorizerType": "JWT",
                "IdentitySource": ["$request.header.Authorization"],
                "JwtConfiguration": {"Issuer": issuer, "Audience": audience},
                "Name": "JwtAuthorizer",
            }
        ),
    )


@on_variants(*JWT_STAGES)
def test_every_http_route_requires_the_jwt_the_openapi_document_included(variant):
    template, http_api = variant.template, variant.ids.http_api
    authorizer = _authorizer(template, http_api)

    template.resource_properties_count_is(ROUTE, {"ApiId": ref(http_api)}, len(HTTP_ROUTE_KEYS))
    for route_key in HTTP_ROUTE_KEYS:
        template.has_resource_properties(
            ROUTE,
            {
                "ApiId": ref(http_api),
                "RouteKey": route_key,
                "AuthorizationType": "JWT",
                "AuthorizerId": ref(authorizer),
            },
        )


@on_variants(*JWT_STAGES)
def test_cors_preflight_is_answered_by_api_gateway_without_a_token(variant):
    # API Gateway answers OPTIONS itself, before any authorizer, when CORS is configured and no route
    # matches OPTIONS: so there must be no OPTIONS (or ANY, or $default) route.
    api_routes = routes(variant.template, variant.ids.http_api)
    cors = properties(variant.template, variant.ids.http_api)["CorsConfiguration"]

    assert not [key for key in api_routes if key.split()[0] in {"OPTIONS", "ANY", "$default"}]
    assert "OPTIONS" in cors["AllowMethods"]
    # The browser sends the token in this header: the preflight must allow it.
    assert auth_contract.TOKEN_HEADER in cors["AllowHeaders"]


# --- WebSocket API -------------------------------------------------------------------------------


@on_variants(*JWT_STAGES)
def test_websocket_connect_is_admitted_by_the_authorizer_function_from_the_token_parameter(variant):
    template = variant.template
    uri = Capture()

    template.has_resource_properties(
        AUTHORIZER,
        {
            "ApiId": ref(variant.ids.websocket_api),
            "AuthorizerType": "REQUEST",
            # the parameter the authorizer function reads the token from
            "IdentitySource": [f"route.request.querystring.{auth_contract.TOKEN_QUERY_PARAMETER}"],
            "AuthorizerUri": {"Fn::Join": ["", uri]},
        },
    )
    assert arn(function_id(template, "WsAuthorizerFunction")) in uri.as_array()
    assert uri.as_array()[-1] == "/invocations"


@on_variants(*JWT_STAGES)
def test_only_websocket_connect_is_authorized_the_admitted_connection_needs_nothing_more(variant):
    template, websocket_api = variant.template, variant.ids.websocket_api

    template.has_resource_properties(
        ROUTE,
        {
            "ApiId": ref(websocket_api),
            "RouteKey": "$connect",
            "AuthorizationType": "CUSTOM",
            "AuthorizerId": ref(_authorizer(template, websocket_api)),
        },
    )
    for route_key in ("$disconnect", "$default"):
        template.has_resource_properties(
            ROUTE,
            {
                "ApiId": ref(websocket_api),
                "RouteKey": route_key,
                "AuthorizationType": "NONE",
                "AuthorizerId": Match.absent(),
            },
        )


@on_variants(*JWT_STAGES)
def test_api_gateway_may_invoke_the_authorizer_function_for_this_authorizer_only(variant):
    template, websocket_api = variant.template, variant.ids.websocket_api
    authorizer_function = arn(function_id(template, "WsAuthorizerFunction"))
    source = Capture()

    template.resource_properties_count_is("AWS::Lambda::Permission", {"FunctionName": authorizer_function}, 1)
    template.has_resource_properties(
        "AWS::Lambda::Permission",
        {
            "FunctionName": authorizer_function,
            "Action": "lambda:InvokeFunction",
            "Principal": "apigateway.amazonaws.com",
            "SourceArn": {"Fn::Join": ["", source]},
        },
    )
    assert source.as_array()[-3:] == [
        ref(websocket_api),
        "/authorizers/",
        ref(_authorizer(template, websocket_api)),
    ]


# --- The authorizer function and its layer -------------------------------------------------------


@on_variants(*JWT_STAGES)
def test_authorizer_function_checks_the_same_issuer_and_audience_as_the_http_api(variant):
    issuer, audience = _issuer_and_audience(variant)

    variant.template.has_resource_properties(
        FUNCTION,
        {
            "Handler": ALL_HANDLERS["WsAuthorizerFunction"],
            "Environment": {
                "Variables": {
                    "JWT_ISSUER": issuer,
                    # A comma list of audiences: the created client's id, or the configured ones.
                    "JWT_AUDIENCE": audience[0] if variant.stage.creates_user_pool else ",".join(audience),
                    "AUTH_MODE": Match.absent(),
                }
            },
            "Timeout": variant.stage.api_timeout_seconds,
            "Runtime": "python3.14",
            "Architectures": ["arm64"],
        },
    )


@on_variants(*JWT_STAGES)
def test_authorizer_function_gets_powertools_and_the_jwt_layer(variant):
    template = variant.template
    powertools = Capture()
    template.has_resource_properties(
        FUNCTION, {"Handler": ALL_HANDLERS["HttpApiFunction"], "Layers": [powertools]}
    )

    template.has_resource_properties(
        FUNCTION,
        {
            "Handler": ALL_HANDLERS["WsAuthorizerFunction"],
            "Layers": [powertools.as_object(), ref(only(resources(template, LAYER)))],
        },
    )
    assert "Ref" in powertools.as_object()  # the Powertools SSM parameter


@on_variants("jwt_pool")
def test_only_the_authorizer_function_gets_the_jwt_layer(variant):
    with_layer = {"Layers": Match.array_with([ref(only(resources(variant.template, LAYER)))])}

    variant.template.resource_properties_count_is(FUNCTION, with_layer, 1)
    variant.template.has_resource_properties(
        FUNCTION, {"Handler": ALL_HANDLERS["WsAuthorizerFunction"], **with_layer}
    )


@on_variants("jwt_pool")
def test_jwt_layer_is_built_for_the_authorizers_runtime_and_architecture(variant):
    variant.template.resource_count_is(LAYER, 1)
    variant.template.has_resource_properties(
        LAYER, {"CompatibleRuntimes": ["python3.14"], "CompatibleArchitectures": ["arm64"]}
    )


@on_variants("jwt_pool")
def test_jwt_layer_asset_holds_only_the_python_packages(variant):
    # Lambda unpacks a layer into /opt: the packages must be under python/ at the asset's root.
    (layer,) = resources(variant.template, LAYER).values()
    outdir = Path(variant.stack.node.root.outdir)

    staged = outdir / f"asset.{layer['Properties']['Content']['S3Key'].removesuffix('.zip')}"

    assert (staged / "python" / "jwt" / "__init__.py").is_file()
    assert (staged / "python" / "cryptography").is_dir()
    assert sorted(p.name for p in staged.iterdir()) == ["python"]  # no .installed marker
    # No console scripts: their shebang names this machine's virtualenv (a hash differing per checkout).
    assert not (staged / "python" / "bin").exists()


@on_variants("jwt_pool")
def test_missing_jwt_layer_fails_synth_and_says_to_run_make_install(monkeypatch, tmp_path, variant):
    monkeypatch.setattr(infra.auth, "JWT_LAYER_DIR", tmp_path / "layers" / "jwt")

    with pytest.raises(JwtLayerMissingError, match=r"run `make install`"):
        TaskBackendStack(cdk.App(), stack_name_for(variant.stage), stage=variant.stage)


@on_variants("dev")
def test_stage_without_auth_does_not_need_the_jwt_layer(monkeypatch, tmp_path, variant):
    monkeypatch.setattr(infra.auth, "JWT_LAYER_DIR", tmp_path / "layers" / "jwt")

    stack = TaskBackendStack(cdk.App(), stack_name_for(variant.stage), stage=variant.stage)

    Template.from_stack(stack).resource_count_is(LAYER, 0)


# --- Which functions know about auth -------------------------------------------------------------


@on_variants(*JWT_STAGES, "prod")
def test_auth_mode_is_set_on_the_functions_that_scope_by_owner_only(variant):
    owner_scoped = ("HttpApiFunction", "WsConnectFunction", "WsDefaultFunction", "NotifierFunction")

    variant.template.resource_properties_count_is(
        FUNCTION, {"Environment": {"Variables": {"AUTH_MODE": Match.any_value()}}}, len(owner_scoped)
    )
    for construct_id in owner_scoped:
        has_environment(variant.template, construct_id, {"AUTH_MODE": auth_contract.AUTH_JWT})


# --- The Cognito user pool (created when the stage names no issuer) ------------------------------


@on_variants("jwt_pool")
def test_created_user_pool_admits_only_admin_created_users_with_strong_passwords(variant):
    minimum_length = Capture()

    variant.template.has_resource_properties(
        USER_POOL,
        {
            "AdminCreateUserConfig": {"AllowAdminCreateUserOnly": True},
            "UsernameAttributes": ["email"],
            "UsernameConfiguration": {"CaseSensitive": False},
            "AutoVerifiedAttributes": ["email"],
            "AccountRecoverySetting": {"RecoveryMechanisms": [{"Name": "verified_email", "Priority": 1}]},
            "Policies": {
                "PasswordPolicy": {
                    "MinimumLength": minimum_length,
                    "RequireLowercase": True,
                    "RequireUppercase": True,
                    "RequireNumbers": True,
                    "RequireSymbols": True,
                    "TemporaryPasswordValidityDays": 3,
                }
            },
            "MfaConfiguration": "OPTIONAL",
            "EnabledMfas": ["SOFTWARE_TOKEN_MFA"],
            "UserPoolTier": "LITE",
        },
    )
    assert minimum_length.as_number() >= 12


@on_variants("jwt_pool")
def test_web_client_is_a_public_srp_client_with_one_hour_tokens(variant):
    user_pool = only(resources(variant.template, USER_POOL))

    variant.template.resource_count_is(USER_POOL_CLIENT, 1)
    variant.template.has_resource_properties(
        USER_POOL_CLIENT,
        Match.object_equals(
            {
                "UserPoolId": ref(user_pool),
                "GenerateSecret": False,  # a browser app cannot keep a secret
                "ExplicitAuthFlows": ["ALLOW_USER_SRP_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"],
                "AllowedOAuthFlowsUserPoolClient": False,  # no hosted UI, no OAuth redirects to allow
                "SupportedIdentityProviders": ["COGNITO"],
                "PreventUserExistenceErrors": "ENABLED",
                "EnableTokenRevocation": True,
                "IdTokenValidity": 60,
                "AccessTokenValidity": 60,
                "RefreshTokenValidity": 1440,
                "TokenValidityUnits": {
                    "IdToken": "minutes",
                    "AccessToken": "minutes",
                    "RefreshToken": "minutes",
                },
            }
        ),
    )


@on_variants("prod")
def test_user_pool_of_a_retained_stage_is_retained_and_protected_from_deletion(variant):
    variant.template.resource_count_is(USER_POOL, 1)
    variant.template.has_resource(
        USER_POOL,
        {
            "DeletionPolicy": "Retain",
            "UpdateReplacePolicy": "Retain",
            "Properties": {"DeletionProtection": "ACTIVE"},
        },
    )


@on_variants("jwt_pool")
def test_user_pool_of_a_destroyed_stage_goes_with_the_stack(variant):
    variant.template.resource_count_is(USER_POOL, 1)
    variant.template.has_resource(
        USER_POOL, {"DeletionPolicy": "Delete", "Properties": {"DeletionProtection": "INACTIVE"}}
    )


@on_variants("jwt_issuer")
def test_stage_with_an_external_issuer_creates_no_user_pool(variant):
    variant.template.resource_count_is(USER_POOL, 0)
    variant.template.resource_count_is(USER_POOL_CLIENT, 0)


# --- Outputs -------------------------------------------------------------------------------------


@on_variants("jwt_pool")
def test_created_user_pool_publishes_its_ids_issuer_and_audience(variant):
    template = variant.template
    user_pool = only(resources(template, USER_POOL))
    client = only(resources(template, USER_POOL_CLIENT))

    template.has_output("UserPoolId", {"Value": ref(user_pool)})
    template.has_output("UserPoolClientId", {"Value": ref(client)})
    template.has_output("JwtIssuer", {"Value": arn(user_pool, "ProviderURL")})
    template.has_output("JwtAudience", {"Value": ref(client)})


@on_variants("jwt_issuer")
def test_external_issuer_stage_publishes_issuer_and_audience_but_no_pool_ids(variant):
    template = variant.template

    template.has_output("JwtIssuer", {"Value": EXTERNAL_ISSUER})
    template.has_output("JwtAudience", {"Value": ",".join(EXTERNAL_AUDIENCE)})
    assert template.find_outputs("UserPoolId") == {}
    assert template.find_outputs("UserPoolClientId") == {}


# --- `auth: none`: the template as it was before authentication existed ---------------------------


@on_variants(*AUTH_NONE_STAGES)
def test_stage_without_auth_has_no_authorizer_user_pool_layer_or_authorizer_function(variant):
    template = variant.template

    for resource_type in (AUTHORIZER, USER_POOL, USER_POOL_CLIENT, LAYER):
        template.resource_count_is(resource_type, 0)
    assert "WsAuthorizerFunction" not in function_ids(template)
    assert not [name for name in template.find_outputs("*") if name.startswith(("UserPool", "Jwt"))]


@on_variants(*AUTH_NONE_STAGES)
def test_stage_without_auth_mentions_nothing_of_auth_anywhere_in_its_template(variant):
    # The template of an `auth: none` stage is what it was before auth existed: no authorizer,
    # pool, owner index, auth variable, auth metric or output leaks into any resource or widget.
    text = json.dumps(variant.template.to_json())

    for trace in (
        "Authorizer",
        "Cognito",
        "Jwt",
        "JWT_",
        "AUTH_MODE",
        table_schema.CONNECTIONS_BY_OWNER_INDEX,
        f'"{table_schema.TASK_OWNER}"',
        MetricName.TOKENS_REJECTED,
    ):
        assert trace not in text, trace


@on_variants(*AUTH_NONE_STAGES)
def test_stage_without_auth_sets_no_auth_variable_on_any_function(variant):
    template = variant.template

    for name, fn in function_ids(template).items():
        assert not AUTH_ENV & set(environment(template, fn)), name


@on_variants(*AUTH_NONE_STAGES)
def test_stage_without_auth_leaves_every_route_open(variant):
    assert resources(variant.template, ROUTE)
    variant.template.all_resources_properties(
        ROUTE, {"AuthorizationType": "NONE", "AuthorizerId": Match.absent()}
    )
