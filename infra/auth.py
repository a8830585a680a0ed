"""Auth: who may call the APIs on a stage with `auth: jwt` (the stack creates it on those stages only).

One token for both APIs, from the stage's issuer for the stage's audiences: the HTTP API checks it
with its built-in JWT authorizer (header `Authorization: Bearer <JWT>`), the WebSocket API with a
Lambda REQUEST authorizer on `$connect` (query string `?token=<JWT>`: browsers cannot set headers
on a WebSocket handshake). The token's `sub` is the owner of everything the caller creates
(taskflow.auth_contract).

The issuer is either configured (`jwt_issuer`, `jwt_audience`: any OIDC provider) or, when the
stage names none, a Cognito user pool created here with one app client for the browser app.
"""

from __future__ import annotations

from pathlib import Path

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_cognito as cognito
from aws_cdk import aws_lambda as lambda_
from aws_cdk.aws_apigatewayv2_authorizers import HttpJwtAuthorizer, WebSocketLambdaAuthorizer
from constructs import Construct

from infra.lambda_function import ASSET_EXCLUDE, LambdaDefaults, api_function, comma_list
from infra.retention import removal_policy
from taskflow import auth_contract, env_vars

# The authorizer's PyJWT layer, built by `make install` from infra/layers/jwt-requirements.txt for
# Lambda's platform: a folder holding `python/` (the layout Lambda expects of a Python layer).
JWT_LAYER_DIR = Path(__file__).resolve().parent.parent / "build" / "layers" / "jwt"
# Not layer content: the Makefile's marker file, and pip's console scripts (python/bin), whose shebang
# names this machine's virtualenv and would make the asset hash differ from one checkout to the next.
JWT_LAYER_EXCLUDE = [*ASSET_EXCLUDE, ".installed", "python/bin"]

# The HTTP API's JWT authorizer reads "Bearer <JWT>" from this header.
HTTP_IDENTITY_SOURCE = f"$request.header.{auth_contract.TOKEN_HEADER}"
# The WebSocket authorizer gets the token from the $connect URL's query string.
WEBSOCKET_IDENTITY_SOURCE = f"route.request.querystring.{auth_contract.TOKEN_QUERY_PARAMETER}"

# Tokens of the created user pool: short-lived id/access tokens, a refresh token for a working day.
TOKEN_VALIDITY = Duration.hours(1)
REFRESH_TOKEN_VALIDITY = Duration.days(1)
# Admin-created users get a temporary password by email and must change it within this many days.
TEMPORARY_PASSWORD_VALIDITY = Duration.days(3)
MIN_PASSWORD_LENGTH = 12


class JwtLayerMissingError(RuntimeError):
    """The JWT layer's content has not been built (build/layers/jwt/python)."""


class Auth(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, defaults: LambdaDefaults) -> None:
        super().__init__(scope, construct_id)
        stage = defaults.stage
        assert stage.uses_jwt, f"stage {stage.name} has auth {stage.auth!r}"

        self.user_pool: cognito.UserPool | None = None
        self.user_pool_client: cognito.UserPoolClient | None = None
        if stage.creates_user_pool:
            self.user_pool, self.user_pool_client = self._user_pool(stage_removal=removal_policy(stage))
            # GetAtt ProviderURL: https://cognito-idp.<region>.amazonaws.com/<pool id>, the `iss` of
            # the pool's tokens. (The local stack maps this attribute to its own issuer.)
            self.issuer: str = self.user_pool.user_pool_provider_url
            self.audience: tuple[str, ...] = (self.user_pool_client.user_pool_client_id,)
        else:
            assert stage.jwt_issuer is not None  # StageConfig: issuer and audience come together
            self.issuer = stage.jwt_issuer
            self.audience = stage.jwt_audience

        # Every HTTP route (HttpApi's default authorizer). API Gateway fetches the issuer's keys through
        # OIDC discovery and checks signature, expiry, iss, and aud or client_id.
        self.http_authorizer = HttpJwtAuthorizer(
            "JwtAuthorizer",
            self.issuer,
            jwt_audience=list(self.audience),
            identity_source=[HTTP_IDENTITY_SOURCE],
        )

        self.jwt_layer = lambda_.LayerVersion(
            self,
            "JwtLayer",
            code=lambda_.Code.from_asset(str(_jwt_layer_dir()), exclude=JWT_LAYER_EXCLUDE),
            compatible_runtimes=[lambda_.Runtime.PYTHON_3_14],
            compatible_architectures=[lambda_.Architecture.ARM_64],
            description="PyJWT and cryptography for the WebSocket $connect authorizer",
            # Code rebuilt from pinned requirements: nothing to keep once the stack is gone.
            removal_policy=RemovalPolicy.DESTROY,
        )
        # Verifies the same token as the HTTP authorizer and hands its sub to $connect as the owner.
        # Its role holds only its own log group: the issuer's keys are fetched over public HTTPS.
        self.ws_authorizer_function = api_function(
            self,
            "WsAuthorizerFunction",
            defaults=defaults,
            handler="taskflow.handlers.ws_authorizer.handler",
            environment={
                env_vars.JWT_ISSUER: self.issuer,
                env_vars.JWT_AUDIENCE: comma_list(self.audience),
            },
            layers=(self.jwt_layer,),
        )
        self.ws_authorizer = WebSocketLambdaAuthorizer(
            "WsAuthorizer",
            self.ws_authorizer_function.function,
            identity_source=[WEBSOCKET_IDENTITY_SOURCE],
        )

    def _user_pool(self, *, stage_removal: RemovalPolicy) -> tuple[cognito.UserPool, cognito.UserPoolClient]:
        user_pool = cognito.UserPool(
            self,
            "UserPool",
            # Admins create the users (AdminCreateUser); nobody signs up on their own.
            self_sign_up_enabled=False,
            sign_in_aliases=cognito.SignInAliases(email=True),
            sign_in_case_sensitive=False,
            standard_attributes=cognito.StandardAttributes(
                email=cognito.StandardAttribute(required=True, mutable=True)
            ),
            auto_verify=cognito.AutoVerifiedAttrs(email=True),
            account_recovery=cognito.AccountRecovery.EMAIL_ONLY,
            password_policy=cognito.PasswordPolicy(
                min_length=MIN_PASSWORD_LENGTH,
                require_lowercase=True,
                require_uppercase=True,
                require_digits=True,
                require_symbols=True,
                temp_password_validity=TEMPORARY_PASSWORD_VALIDITY,
            ),
            # Users may add an authenticator app (TOTP); SMS would need an SNS role and costs per message.
            mfa=cognito.Mfa.OPTIONAL,
            mfa_second_factor=cognito.MfaSecondFactor(otp=True, sms=False),
            # Lite has everything used here (SRP sign-in, admin-created users, TOTP); Essentials and
            # Plus cost more per monthly active user for features this app does not use.
            feature_plan=cognito.FeaturePlan.LITE,
            deletion_protection=stage_removal == RemovalPolicy.RETAIN,
            removal_policy=stage_removal,
        )
        # The browser app: a public client (no secret), SRP sign-in only, no hosted UI / OAuth flows.
        client = user_pool.add_client(
            "WebClient",
            generate_secret=False,
            auth_flows=cognito.AuthFlow(user_srp=True),
            disable_o_auth=True,
            supported_identity_providers=[cognito.UserPoolClientIdentityProvider.COGNITO],
            prevent_user_existence_errors=True,
            enable_token_revocation=True,
            id_token_validity=TOKEN_VALIDITY,
            access_token_validity=TOKEN_VALIDITY,
            refresh_token_validity=REFRESH_TOKEN_VALIDITY,
        )
        return user_pool, client


def _jwt_layer_dir() -> Path:
    if not (JWT_LAYER_DIR / "python").is_dir():
        raise JwtLayerMissingError(
            f"The JWT layer of the WebSocket authorizer is not built ({JWT_LAYER_DIR}/python is "
            "missing): run `make install` (it installs infra/layers/jwt-requirements.txt there), "
            "then synthesize again."
        )
    return JWT_LAYER_DIR
