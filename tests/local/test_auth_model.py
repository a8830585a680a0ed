"""Authorizers, Cognito and layers read from the template; the local issuers the stack builds from them."""

import copy
import re

import jwt
import pytest
from local_support import FIXTURE_ASSEMBLY

from local.auth.stack_auth import build_stack_auth
from local.gateways.jwt_authorizer import JwtRejected
from local.template.cdk_out import find_stack
from local.template.intrinsics import PseudoParameters
from local.template.model import JwtAuthorizerSpec, RequestAuthorizerSpec
from local.template.reader import build_stack_model, layer_packages, layer_summary
from local.template.report import FindingKind, render_findings
from local.template.values import LocalValues, check_resolvable

BASE = "http://127.0.0.1:4000/_local/issuers"


@pytest.fixture(scope="module")
def auth_stack():
    return find_stack(FIXTURE_ASSEMBLY, "auth")


def build(template, region="us-east-1"):
    return build_stack_model(
        template, "Fixture-auth", FIXTURE_ASSEMBLY, PseudoParameters(region=region, stack_name="Fixture-auth")
    )


@pytest.fixture(scope="module")
def model(auth_stack):
    return build(auth_stack.template)


def findings(model, kind):
    return [str(f) for f in model.findings if f.kind is kind]


def test_the_http_jwt_authorizer_is_attached_to_its_routes(model):
    (api,) = model.http_apis
    routes = {route.route_key: route for route in api.routes}
    echo, scoped, public = routes["ANY /echo/{proxy+}"], routes["GET /scoped"], routes["GET /public"]
    assert isinstance(echo.authorizer, JwtAuthorizerSpec)
    assert echo.authorizer.identity_source == "$request.header.Authorization"
    assert echo.authorizer.issuer == {"Fn::GetAtt": ["UserPool6BA7E5F2", "ProviderURL"]}
    assert echo.authorizer.audience == [{"Ref": "UserPoolWebClient2F5918F7"}]
    assert echo.authorization_scopes == ()
    assert scoped.authorizer is echo.authorizer
    assert scoped.authorization_scopes == ("items/read", "items/admin")
    assert public.authorizer is None
    assert list(model.jwt_authorizers) == ["HttpAuthorizerF1E2D3C4"]


def test_the_websocket_request_authorizer_guards_connect_only(model):
    (api,) = model.websocket_apis
    authorizer = api.routes["$connect"].authorizer
    assert isinstance(authorizer, RequestAuthorizerSpec)
    assert authorizer.function_id == "AuthorizerFunction1234ABCD"
    assert authorizer.identity_sources == ("route.request.querystring.token",)
    assert api.routes["$default"].authorizer is None
    assert api.routes["$disconnect"].authorizer is None
    assert api.stage_variables == {"flavour": "local"}


def test_nothing_of_the_auth_stack_is_unsupported(model):
    assert findings(model, FindingKind.UNSUPPORTED) == []
    (approximated,) = findings(model, FindingKind.APPROXIMATED)
    assert approximated.startswith("Cognito user pool UserPool (app client WebClient): only its token issuer")
    assert "python -m local.token" in approximated
    assert model.has_auth


def test_cognito_intrinsics_resolve_to_the_local_issuer(model):
    values = LocalValues(model, "http://127.0.0.1:5555")
    resolver = model.resolver(values)
    pool_id = values.ref("UserPool6BA7E5F2")
    assert re.fullmatch(r"us-east-1_[A-Za-z0-9]{9}", pool_id)
    assert pool_id == LocalValues(build(model.template), "http://x").ref("UserPool6BA7E5F2")  # stable
    client_id = values.ref("UserPoolWebClient2F5918F7")
    assert re.fullmatch(r"[a-z0-9]{26}", client_id)
    assert values.get_att("UserPool6BA7E5F2", "ProviderURL") == f"{BASE}/{pool_id}"
    assert values.get_att("UserPool6BA7E5F2", "ProviderName") == f"127.0.0.1:4000/_local/issuers/{pool_id}"
    assert values.get_att("UserPool6BA7E5F2", "Arn") == (
        f"arn:aws:cognito-idp:us-east-1:123456789012:userpool/{pool_id}"
    )
    assert values.get_att("UserPoolWebClient2F5918F7", "ClientId") == client_id
    environment = resolver.resolve(model.functions["AuthorizerFunction1234ABCD"].environment)
    assert environment == {"JWT_ISSUER": f"{BASE}/{pool_id}", "JWT_AUDIENCE": client_id}
    other_base = LocalValues(model, "http://x", issuer_base="http://127.0.0.1:9999/_local/issuers/")
    assert other_base.issuer_url("UserPool6BA7E5F2") == f"http://127.0.0.1:9999/_local/issuers/{pool_id}"
    assert (
        LocalValues(build(model.template, "eu-west-1"), "http://x")
        .ref("UserPool6BA7E5F2")
        .startswith("eu-west-1_")
    )
    check_resolvable(model, values)
    assert findings(model, FindingKind.UNSUPPORTED) == []


def test_the_local_jwt_layer_is_satisfied_by_the_venv(model):
    assert "layer JwtLayer (local asset)" in (layer_summary(model) or "")
    assert layer_packages(model.layers["JwtLayer0A1B2C3D"]) == [("PyJWT", "2.15.1")]
    assert values_ref_layer(model).startswith("arn:aws:lambda:us-east-1:123456789012:layer:")


def values_ref_layer(model):
    return LocalValues(model, "http://x").ref("JwtLayer0A1B2C3D")


def test_what_the_authorizers_cannot_do_locally_is_reported(auth_stack):
    # Given authorizer features the local gateways do not run
    template = copy.deepcopy(auth_stack.template)
    resources = template["Resources"]
    ws_authorizer = resources["WsAuthorizer9A8B7C6D"]["Properties"]
    ws_authorizer["AuthorizerResultTtlInSeconds"] = 300
    ws_authorizer["IdentityValidationExpression"] = "^x"
    resources["WsConnectRoute"]["Properties"]["AuthorizationScopes"] = ["a"]
    resources["OtherJwt"] = {
        "Type": "AWS::ApiGatewayV2::Authorizer",
        "Properties": {
            "ApiId": {"Ref": "HttpApi55556666"},
            "AuthorizerType": "JWT",
            "IdentitySource": ["$context.identity.sourceIp"],
            "JwtConfiguration": {"Issuer": "https://x.example.com", "Audience": ["a"]},
        },
    }
    resources["RoutePublic"]["Properties"].update(AuthorizationType="JWT", AuthorizerId={"Ref": "OtherJwt"})
    resources["UserPool6BA7E5F2"]["Properties"]["LambdaConfig"] = {"PreTokenGeneration": "arn:x"}

    # When the template is read
    text = "\n".join(render_findings(build(template).findings))

    # Then each is reported precisely
    assert "AuthorizerResultTtlInSeconds 300: results are not cached" in text
    assert "IdentityValidationExpression is not applied" in text
    assert "route $connect: AuthorizationScopes are not applied" in text
    assert "authorizer OtherJwt: IdentitySource ['$context.identity.sourceIp'] is not emulated" in text
    assert "route GET /public: AuthorizationType JWT: its authorizer is not run" in text
    assert "Lambda triggers (e.g. pre token generation) are not run" in text


def test_the_stack_plays_the_user_pool_with_a_local_issuer(model, tmp_path):
    # Given the auth fixture's values
    values = LocalValues(model, "http://127.0.0.1:5555")
    pool_id = values.ref("UserPool6BA7E5F2")
    client_id = values.ref("UserPoolWebClient2F5918F7")

    # When its authentication is set up
    auth = build_stack_auth(model, values, tmp_path, dev_token_lifetime=600, now=1_800_000_000)

    # Then the pool is an issuer at its ProviderURL, and the dev token passes the HTTP authorizer
    assert list(auth.issuers) == [pool_id]
    issuer = auth.primary
    assert issuer is auth.issuers[pool_id]
    assert (issuer.url, issuer.audience) == (f"{BASE}/{pool_id}", (client_id,))
    assert set(auth.replacements.values()) == {issuer.url}  # only other spellings of the pool's issuer
    validator = auth.validators["HttpAuthorizerF1E2D3C4"]
    claims = validator.authorize({"Authorization": f"Bearer {auth.dev_token}"}, {}, now=1_800_000_001)
    assert claims["jwt"]["claims"]["sub"] == "local-dev-user"
    assert claims["jwt"]["claims"]["exp"] == "1800000600"
    with pytest.raises(JwtRejected, match="expired"):
        validator.authorize({"Authorization": f"Bearer {auth.dev_token}"}, {}, now=1_800_000_600)
    state = auth.state()
    assert state["issuer"] == issuer.url
    assert state["audience"] == [client_id]
    assert state["jwksUrl"] == f"{issuer.url}/.well-known/jwks.json"
    assert (state["devSubject"], state["devToken"]) == ("local-dev-user", auth.dev_token)
    assert state["devTokenExpires"] == "2027-01-15T08:10:00Z"
    assert state["keyFile"] == str((tmp_path / "auth" / "signing-key.pem").resolve())


def test_an_external_issuer_is_played_locally_and_replaced_in_the_functions_environment(auth_stack, tmp_path):
    # Given a stage configured with its own issuer (no user pool)
    template = copy.deepcopy(auth_stack.template)
    resources = template["Resources"]
    for name in ("UserPool6BA7E5F2", "UserPoolWebClient2F5918F7"):
        del resources[name]
    external = "https://issuer.example.com/"
    resources["HttpAuthorizerF1E2D3C4"]["Properties"]["JwtConfiguration"] = {
        "Issuer": external,
        "Audience": ["api://tasks", "spa"],
    }
    resources["AuthorizerFunction1234ABCD"]["Properties"]["Environment"]["Variables"] = {
        "JWT_ISSUER": external,
        "JWT_AUDIENCE": "api://tasks,spa",
    }
    model = build(template)

    # When the stack sets up its authentication
    auth = build_stack_auth(model, LocalValues(model, "http://x"), tmp_path, dev_token_lifetime=600)

    # Then a local issuer plays the external one, and the functions are pointed at it
    local_url = f"{BASE}/issuer.example.com"
    assert auth.primary is not None
    assert (auth.primary.url, auth.primary.audience) == (local_url, ("api://tasks", "spa"))
    assert auth.environment_value(external) == local_url
    assert auth.environment_value("https://issuer.example.com") == local_url
    assert auth.environment_value("api://tasks,spa") == "api://tasks,spa"
    assert jwt.decode(auth.dev_token, options={"verify_signature": False})["iss"] == local_url
    assert auth.state()["issuers"][0]["templateIssuer"] == external
    approximated = findings(model, FindingKind.APPROXIMATED)
    assert any(
        line.startswith(f"JWT issuer {external}: played by the local issuer {local_url}")
        for line in approximated
    )
    assert findings(model, FindingKind.UNSUPPORTED) == []


def test_stacks_without_authorizers_need_no_issuer(tmp_path):
    dev = find_stack(FIXTURE_ASSEMBLY, "dev")
    model = build_stack_model(dev.template, dev.stack_name, dev.cdk_out)
    assert not model.has_auth
    assert model.jwt_authorizers == model.request_authorizers == model.user_pools == {}


def test_a_pool_issuer_spelled_as_cognitos_url_is_the_pools_local_issuer(auth_stack, tmp_path):
    # Given the issuer built the way CDK's HttpUserPoolAuthorizer builds it, in the authorizer and env
    template = copy.deepcopy(auth_stack.template)
    resources = template["Resources"]
    cognito_url = {
        "Fn::Join": [
            "",
            ["https://cognito-idp.", {"Ref": "AWS::Region"}, ".amazonaws.com/", {"Ref": "UserPool6BA7E5F2"}],
        ]
    }
    resources["HttpAuthorizerF1E2D3C4"]["Properties"]["JwtConfiguration"]["Issuer"] = cognito_url
    resources["AuthorizerFunction1234ABCD"]["Properties"]["Environment"]["Variables"]["JWT_ISSUER"] = (
        cognito_url
    )
    model = build(template)
    values = LocalValues(model, "http://x")
    pool_id = values.ref("UserPool6BA7E5F2")

    # When the stack sets up its authentication
    auth = build_stack_auth(model, values, tmp_path, dev_token_lifetime=600)

    # Then the pool's local issuer checks the tokens, and the function is pointed at it
    assert auth.primary is auth.issuers[pool_id]
    assert auth.validators["HttpAuthorizerF1E2D3C4"].issuer == f"{BASE}/{pool_id}"
    assert (
        auth.environment_value(f"https://cognito-idp.us-east-1.amazonaws.com/{pool_id}")
        == f"{BASE}/{pool_id}"
    )
    assert findings(model, FindingKind.APPROXIMATED) == [
        line for line in findings(model, FindingKind.APPROXIMATED) if line.startswith("Cognito user pool")
    ]
