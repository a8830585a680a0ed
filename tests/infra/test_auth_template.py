"""Authentication (stage config `auth`): on `auth: jwt` stages a JWT authorizer guards every HTTP route
and a Lambda authorizer WebSocket $connect, with a Cognito user pool when the stage names no issuer;
on `auth: none` stages none of it exists.

Two jwt stages derived from dev (conftest): `jwt_pool` creates its user pool, `jwt_issuer` names an
external issuer (EXTERNAL_ISSUER, EXTERNAL_AUDIENCE). prod (cdk.json) is a jwt stage with a pool.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Match, Template
from template_queries import (
    ALL_HANDLERS,
    EXTERNAL_AUDIENCE,
    EXTERNAL_ISSUER,
    REPO_ROOT,
    arn,
    build_stack,
    environment,
    function_id,
    function_ids,
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

JWT_STAGES = ["jwt_pool", "jwt_issuer"]
HTTP_ROUTE_KEYS = {
    "POST /tasks",
    "GET /tasks",
    "GET /tasks/{taskId}",
    "POST /tasks/{taskId}/retry",
    "GET /openapi.json",
}
AUTH_ENV = {"AUTH_MODE", "JWT_ISSUER", "JWT_AUDIENCE"}


def _fixtures(request, stage_name: str) -> tuple[Template, Any]:
    return (
        request.getfixturevalue(f"{stage_name}_template"),
        request.getfixturevalue(f"{stage_name}_ids"),
    )


def _issuer_and_audience(template: Template, stage_name: str) -> tuple[Any, list[Any]]:
    """What tokens are checked against: the created pool's issuer and client, or the configured ones."""
    if stage_name == "jwt_issuer":
        return EXTERNAL_ISSUER, list(EXTERNAL_AUDIENCE)
    user_pool = only(resources(template, "AWS::Cognito::UserPool"))
    client = only(resources(template, "AWS::Cognito::UserPoolClient"))
    return arn(user_pool, "ProviderURL"), [ref(client)]


def _authorizer(template: Template, api_id: str) -> str:
    return only(
        template.find_resources("AWS::ApiGatewayV2::Authorizer", {"Properties": {"ApiId": ref(api_id)}})
    )


# --- HTTP API ------------------------------------------------------------------------------------


@pytest.mark.parametrize("stage_name", JWT_STAGES)
def test_http_api_verifies_a_bearer_jwt_of_the_stage_issuer_and_audience(request, stage_name):
    template, ids = _fixtures(request, stage_name)
    issuer, audience = _issuer_and_audience(template, stage_name)

    authorizer = properties(template, _authorizer(template, ids.http_api))

    assert authorizer == {
        "ApiId": ref(ids.http_api),
        "AuthorizerType": "JWT",
        "IdentitySource": ["$request.header.Authorization"],
        "JwtConfiguration": {"Issuer": issuer, "Audience": audience},
        "Name": "JwtAuthorizer",
    }


@pytest.mark.parametrize("stage_name", JWT_STAGES)
def test_every_http_route_requires_the_jwt_the_openapi_document_included(request, stage_name):
    template, ids = _fixtures(request, stage_name)
    authorizer = _authorizer(template, ids.http_api)

    api_routes = routes(template, ids.http_api)

    assert set(api_routes) == HTTP_ROUTE_KEYS
    for route_key, route in api_routes.items():
        assert route["AuthorizationType"] == "JWT", route_key
        assert route["AuthorizerId"] == ref(authorizer), route_key


@pytest.mark.parametrize("stage_name", JWT_STAGES)
def test_cors_preflight_is_answered_by_api_gateway_without_a_token(request, stage_name):
    # API Gateway answers OPTIONS itself, before any authorizer, when CORS is configured and no route
    # matches OPTIONS: so there must be no OPTIONS (or ANY, or $default) route.
    template, ids = _fixtures(request, stage_name)

    api_routes = routes(template, ids.http_api)
    cors = properties(template, ids.http_api)["CorsConfiguration"]

    assert not [key for key in api_routes if key.split()[0] in {"OPTIONS", "ANY", "$default"}]
    assert "OPTIONS" in cors["AllowMethods"]
    # The browser sends the token in this header: the preflight must allow it.
    assert auth_contract.TOKEN_HEADER in cors["AllowHeaders"]


# --- WebSocket API -------------------------------------------------------------------------------


@pytest.mark.parametrize("stage_name", JWT_STAGES)
def test_websocket_connect_is_admitted_by_the_authorizer_function_from_the_token_parameter(
    request, stage_name
):
    template, ids = _fixtures(request, stage_name)
    authorizer_function = function_id(template, "WsAuthorizerFunction")

    authorizer = properties(template, _authorizer(template, ids.websocket_api))

    assert authorizer["AuthorizerType"] == "REQUEST"
    assert authorizer["IdentitySource"] == ["route.request.querystring.token"]
    assert auth_contract.TOKEN_QUERY_PARAMETER == "token"
    uri = authorizer["AuthorizerUri"]["Fn::Join"][1]
    assert arn(authorizer_function) in uri
    assert uri[-1] == "/invocations"


@pytest.mark.parametrize("stage_name", JWT_STAGES)
def test_only_websocket_connect_is_authorized_the_admitted_connection_needs_nothing_more(request, stage_name):
    template, ids = _fixtures(request, stage_name)
    authorizer = _authorizer(template, ids.websocket_api)

    api_routes = routes(template, ids.websocket_api)

    assert api_routes["$connect"]["AuthorizationType"] == "CUSTOM"
    assert api_routes["$connect"]["AuthorizerId"] == ref(authorizer)
    for route_key in ("$disconnect", "$default"):
        assert api_routes[route_key]["AuthorizationType"] == "NONE", route_key
        assert "AuthorizerId" not in api_routes[route_key], route_key


@pytest.mark.parametrize("stage_name", JWT_STAGES)
def test_api_gateway_may_invoke_the_authorizer_function_for_this_authorizer_only(request, stage_name):
    template, ids = _fixtures(request, stage_name)
    authorizer_function = function_id(template, "WsAuthorizerFunction")

    permissions = [
        p["Properties"]
        for p in resources(template, "AWS::Lambda::Permission").values()
        if p["Properties"]["FunctionName"] == arn(authorizer_function)
    ]

    (permission,) = permissions
    assert permission["Action"] == "lambda:InvokeFunction"
    assert permission["Principal"] == "apigateway.amazonaws.com"
    source = permission["SourceArn"]["Fn::Join"][1]
    assert source[-3:] == [
        ref(ids.websocket_api),
        "/authorizers/",
        ref(_authorizer(template, ids.websocket_api)),
    ]


# --- The authorizer function and its layer -------------------------------------------------------


@pytest.mark.parametrize("stage_name", JWT_STAGES)
def test_authorizer_function_checks_the_same_issuer_and_audience_as_the_http_api(request, stage_name):
    template, _ = _fixtures(request, stage_name)
    stage = request.getfixturevalue(f"{stage_name}_stage")
    issuer, audience = _issuer_and_audience(template, stage_name)

    fn = properties(template, function_id(template, "WsAuthorizerFunction"))

    variables = fn["Environment"]["Variables"]
    assert variables["JWT_ISSUER"] == issuer
    # A comma list of audiences: the created client's id, or the configured ones.
    assert variables["JWT_AUDIENCE"] == (audience[0] if stage_name == "jwt_pool" else ",".join(audience))
    assert "AUTH_MODE" not in variables
    assert fn["Timeout"] == stage.api_timeout_seconds
    assert (fn["Runtime"], fn["Architectures"]) == ("python3.14", ["arm64"])


@pytest.mark.parametrize("stage_name", JWT_STAGES)
def test_authorizer_function_gets_powertools_and_the_jwt_layer(request, stage_name):
    template, _ = _fixtures(request, stage_name)
    layer = only(resources(template, "AWS::Lambda::LayerVersion"))
    powertools = properties(template, function_id(template, "HttpApiFunction"))["Layers"]

    layers = properties(template, function_id(template, "WsAuthorizerFunction"))["Layers"]

    assert layers == [*powertools, ref(layer)]
    assert len(powertools) == 1
    assert "Ref" in powertools[0]  # the Powertools SSM parameter


def test_only_the_authorizer_function_gets_the_jwt_layer(jwt_pool_template):
    layer = ref(only(resources(jwt_pool_template, "AWS::Lambda::LayerVersion")))

    with_layer = {
        name
        for name, fn in function_ids(jwt_pool_template).items()
        if layer in properties(jwt_pool_template, fn)["Layers"]
    }

    assert with_layer == {"WsAuthorizerFunction"}


def test_jwt_layer_is_built_for_the_authorizers_runtime_and_architecture(jwt_pool_template):
    (layer,) = resources(jwt_pool_template, "AWS::Lambda::LayerVersion").values()

    assert layer["Properties"]["CompatibleRuntimes"] == ["python3.14"]
    assert layer["Properties"]["CompatibleArchitectures"] == ["arm64"]


def test_jwt_layer_asset_holds_only_the_python_packages(jwt_pool_stage, jwt_pool_template):
    # Lambda unpacks a layer into /opt: the packages must be under python/ at the asset's root.
    (layer,) = resources(jwt_pool_template, "AWS::Lambda::LayerVersion").values()
    outdir = Path(build_stack(jwt_pool_stage).node.root.outdir)

    staged = outdir / f"asset.{layer['Properties']['Content']['S3Key'].removesuffix('.zip')}"

    assert (staged / "python" / "jwt" / "__init__.py").is_file()
    assert (staged / "python" / "cryptography").is_dir()
    assert sorted(p.name for p in staged.iterdir()) == ["python"]  # no .installed marker
    # No console scripts: their shebang names this machine's virtualenv (a hash differing per checkout).
    assert not (staged / "python" / "bin").exists()


def test_missing_jwt_layer_fails_synth_and_says_to_run_make_install(monkeypatch, tmp_path, jwt_pool_stage):
    monkeypatch.setattr(infra.auth, "JWT_LAYER_DIR", tmp_path / "layers" / "jwt")

    with pytest.raises(JwtLayerMissingError, match=r"run `make install`"):
        TaskBackendStack(cdk.App(), stack_name_for(jwt_pool_stage), stage=jwt_pool_stage)


def test_stage_without_auth_does_not_need_the_jwt_layer(monkeypatch, tmp_path, dev_stage):
    monkeypatch.setattr(infra.auth, "JWT_LAYER_DIR", tmp_path / "layers" / "jwt")

    stack = TaskBackendStack(cdk.App(), stack_name_for(dev_stage), stage=dev_stage)

    assert resources(Template.from_stack(stack), "AWS::Lambda::LayerVersion") == {}


def _module_defines(path: Path, name: str) -> bool:
    """The module at path defines `name` at top level (a function or an assignment)."""
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == name:
            return True
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == name for t in node.targets):
            return True
    return False


@pytest.mark.parametrize("construct_id", sorted(ALL_HANDLERS))
def test_function_handler_names_a_handler_of_the_lambda_package(construct_id):
    # A typo in a handler string would deploy a function that fails on every invocation.
    module, attribute = ALL_HANDLERS[construct_id].rsplit(".", 1)
    path = REPO_ROOT / "lambdas" / Path(*module.split(".")).with_suffix(".py")

    assert path.is_file(), f"{path} does not exist"
    assert _module_defines(path, attribute), f"{path} defines no {attribute}"


# --- Which functions know about auth -------------------------------------------------------------


@pytest.mark.parametrize("stage_name", [*JWT_STAGES, "prod"])
def test_auth_mode_is_set_on_the_functions_that_scope_by_owner_only(request, stage_name):
    template = request.getfixturevalue(f"{stage_name}_template")

    with_auth_mode = {
        name: environment(template, fn)["AUTH_MODE"]
        for name, fn in function_ids(template).items()
        if "AUTH_MODE" in environment(template, fn)
    }

    assert with_auth_mode == {
        "HttpApiFunction": auth_contract.AUTH_JWT,
        "WsConnectFunction": auth_contract.AUTH_JWT,
        "WsDefaultFunction": auth_contract.AUTH_JWT,
        "NotifierFunction": auth_contract.AUTH_JWT,
    }


# --- The Cognito user pool (created when the stage names no issuer) ------------------------------


def test_created_user_pool_admits_only_admin_created_users_with_strong_passwords(jwt_pool_template):
    jwt_pool_template.has_resource_properties(
        "AWS::Cognito::UserPool",
        {
            "AdminCreateUserConfig": {"AllowAdminCreateUserOnly": True},
            "UsernameAttributes": ["email"],
            "UsernameConfiguration": {"CaseSensitive": False},
            "AutoVerifiedAttributes": ["email"],
            "AccountRecoverySetting": {"RecoveryMechanisms": [{"Name": "verified_email", "Priority": 1}]},
            "Policies": {
                "PasswordPolicy": {
                    "MinimumLength": Match.any_value(),
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
    (pool,) = resources(jwt_pool_template, "AWS::Cognito::UserPool").values()
    assert pool["Properties"]["Policies"]["PasswordPolicy"]["MinimumLength"] >= 12


def test_web_client_is_a_public_srp_client_with_one_hour_tokens(jwt_pool_template):
    user_pool = only(resources(jwt_pool_template, "AWS::Cognito::UserPool"))

    (client,) = resources(jwt_pool_template, "AWS::Cognito::UserPoolClient").values()

    assert client["Properties"] == {
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
        "TokenValidityUnits": {"IdToken": "minutes", "AccessToken": "minutes", "RefreshToken": "minutes"},
    }


def test_user_pool_of_a_retained_stage_is_retained_and_protected_from_deletion(prod_template):
    (pool,) = resources(prod_template, "AWS::Cognito::UserPool").values()

    assert (pool["DeletionPolicy"], pool["UpdateReplacePolicy"]) == ("Retain", "Retain")
    assert pool["Properties"]["DeletionProtection"] == "ACTIVE"


def test_user_pool_of_a_destroyed_stage_goes_with_the_stack(jwt_pool_template):
    (pool,) = resources(jwt_pool_template, "AWS::Cognito::UserPool").values()

    assert pool["DeletionPolicy"] == "Delete"
    assert pool["Properties"]["DeletionProtection"] == "INACTIVE"


def test_stage_with_an_external_issuer_creates_no_user_pool(jwt_issuer_template):
    assert resources(jwt_issuer_template, "AWS::Cognito::UserPool") == {}
    assert resources(jwt_issuer_template, "AWS::Cognito::UserPoolClient") == {}


# --- Outputs -------------------------------------------------------------------------------------


def test_created_user_pool_publishes_its_ids_issuer_and_audience(jwt_pool_template):
    outputs = {name: o["Value"] for name, o in jwt_pool_template.to_json()["Outputs"].items()}
    user_pool = only(resources(jwt_pool_template, "AWS::Cognito::UserPool"))
    client = only(resources(jwt_pool_template, "AWS::Cognito::UserPoolClient"))

    assert outputs["UserPoolId"] == ref(user_pool)
    assert outputs["UserPoolClientId"] == ref(client)
    assert outputs["JwtIssuer"] == arn(user_pool, "ProviderURL")
    assert outputs["JwtAudience"] == ref(client)


def test_external_issuer_stage_publishes_issuer_and_audience_but_no_pool_ids(jwt_issuer_template):
    outputs = {name: o["Value"] for name, o in jwt_issuer_template.to_json()["Outputs"].items()}

    assert outputs["JwtIssuer"] == EXTERNAL_ISSUER
    assert outputs["JwtAudience"] == ",".join(EXTERNAL_AUDIENCE)
    assert "UserPoolId" not in outputs
    assert "UserPoolClientId" not in outputs


# --- `auth: none`: the template as it was before authentication existed ---------------------------


@pytest.mark.parametrize("stage_name", ["dev", "prod_auth_none"])
def test_stage_without_auth_has_no_authorizer_user_pool_layer_or_authorizer_function(request, stage_name):
    template = request.getfixturevalue(f"{stage_name}_template")

    for resource_type in (
        "AWS::ApiGatewayV2::Authorizer",
        "AWS::Cognito::UserPool",
        "AWS::Cognito::UserPoolClient",
        "AWS::Lambda::LayerVersion",
    ):
        assert resources(template, resource_type) == {}, resource_type
    assert "WsAuthorizerFunction" not in function_ids(template)
    assert not {name for name in template.to_json()["Outputs"] if name.startswith(("UserPool", "Jwt"))}


@pytest.mark.parametrize("stage_name", ["dev", "prod_auth_none"])
def test_stage_without_auth_mentions_nothing_of_auth_anywhere_in_its_template(request, stage_name):
    # The template of an `auth: none` stage is what it was before auth existed: no authorizer,
    # pool, owner index, auth variable, auth metric or output leaks into any resource or widget.
    text = json.dumps(request.getfixturevalue(f"{stage_name}_template").to_json())

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


@pytest.mark.parametrize("stage_name", ["dev", "prod_auth_none"])
def test_stage_without_auth_sets_no_auth_variable_on_any_function(request, stage_name):
    template = request.getfixturevalue(f"{stage_name}_template")

    for name, fn in function_ids(template).items():
        assert not AUTH_ENV & set(environment(template, fn)), name


@pytest.mark.parametrize("stage_name", ["dev", "prod_auth_none"])
def test_stage_without_auth_leaves_every_route_open(request, stage_name):
    template = request.getfixturevalue(f"{stage_name}_template")

    for route in resources(template, "AWS::ApiGatewayV2::Route").values():
        assert route["Properties"]["AuthorizationType"] == "NONE"
        assert "AuthorizerId" not in route["Properties"]
