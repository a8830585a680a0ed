"""WsAuthorizerFunction: the Lambda REQUEST authorizer of WebSocket $connect (stages with `auth: jwt`).

Browsers cannot set headers on a WebSocket handshake, so the token comes in the query string:
wss://.../dev?token=<JWT>. It is verified like the HTTP API's JWT authorizer verifies the bearer
token (taskflow.services.token_verifier), so one token opens both APIs.

    event    {"type": "REQUEST", "methodArn": "arn:aws:execute-api:...:api/stage/$connect",
              "queryStringParameters": {"token": "<JWT>"}, "requestContext": {...}, ...}
    valid    {"principalId": sub, "policyDocument": Allow execute-api:Invoke on methodArn,
              "context": {"owner": sub, "tokenExpiresAt": exp}}
             -> every route of the connection sees requestContext.authorizer.owner (and the
                expiry: the connection ends with its token)
    invalid  the invocation fails with the message "Unauthorized": API Gateway answers 401
    issuer's keys unreachable: any other failure (logged as a dependency failure): API Gateway
             answers 500, and the client may try again

The token is never logged (nor is the event, whatever POWERTOOLS_LOGGER_LOG_EVENT says).
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.data_classes.api_gateway_authorizer_event import (
    APIGatewayAuthorizerRequestEvent,
    APIGatewayAuthorizerResponseWebSocket,
    parse_api_gateway_arn,
)
from aws_lambda_powertools.utilities.typing import LambdaContext

from taskflow.auth_contract import OWNER_CONTEXT_KEY, TOKEN_EXPIRY_CONTEXT_KEY, TOKEN_QUERY_PARAMETER
from taskflow.clients.oidc_keys import IssuerKeys
from taskflow.errors import DependencyUnavailableError
from taskflow.lazy import Lazy
from taskflow.metric_names import MetricName
from taskflow.observability import count, logger, metrics
from taskflow.services.token_verifier import TokenRejectedError, TokenVerifier
from taskflow.settings import WsAuthorizerSettings, load_settings


class UnauthorizedError(Exception):
    """Fails the invocation with exactly the message API Gateway turns into 401."""

    def __init__(self) -> None:
        super().__init__("Unauthorized")


def _build() -> TokenVerifier:
    settings = load_settings(WsAuthorizerSettings)
    # The issuer's keys are cached here for the life of the warm execution environment.
    return TokenVerifier(
        IssuerKeys(settings.jwt_issuer), issuer=settings.jwt_issuer, audiences=settings.jwt_audience
    )


verifier: Lazy[TokenVerifier] = Lazy(_build)


@metrics.log_metrics  # flushes on the way out, also when the invocation fails
@logger.inject_lambda_context(clear_state=True, log_event=False)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = APIGatewayAuthorizerRequestEvent(event)
    connection_id = (request.get("requestContext") or {}).get("connectionId")
    token = (request.get("queryStringParameters") or {}).get(TOKEN_QUERY_PARAMETER)
    try:
        verified = verifier.get().verify(token)
    except TokenRejectedError as rejected:
        logger.info(
            "connection refused: token rejected",
            extra={"connection_id": connection_id, "reason": rejected.reason},
        )
        count(MetricName.TOKENS_REJECTED)
        raise UnauthorizedError from None
    except DependencyUnavailableError as error:
        logger.error(
            "token not verified: dependency unavailable",
            extra={"connection_id": connection_id, "dependency": error.dependency, "detail": error.detail},
        )
        raise
    response = APIGatewayAuthorizerResponseWebSocket.from_route_arn(
        request.method_arn,
        principal_id=verified.owner,
        context={OWNER_CONTEXT_KEY: verified.owner, TOKEN_EXPIRY_CONTEXT_KEY: verified.expires_at},
    )
    response.allow_route(
        resource=parse_api_gateway_arn(request.method_arn, is_websocket_authorizer=True).resource
    )
    logger.info("connection authorized", extra={"connection_id": connection_id})
    return response.asdict()
