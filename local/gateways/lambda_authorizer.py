"""A WebSocket API's Lambda REQUEST authorizer on `$connect`, as API Gateway runs it: the identity
sources, the authorizer event, and what API Gateway makes of the function's answer (401, 403,
500, or the `requestContext.authorizer` of the connection's events). The rules, as the gateway
applies them: docs/local-stack.md, "Authentication".
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from local.runtime.pool import InvocationResult

INVOKE_ACTION = "execute-api:Invoke"


def method_arn(region: str, account_id: str, api_id: str, stage: str, route_key: str) -> str:
    return f"arn:aws:execute-api:{region}:{account_id}:{api_id}/{stage}/{route_key}"


def identity_values(
    sources: Sequence[str],
    headers: Mapping[str, str],
    query: Mapping[str, str],
    stage_variables: Mapping[str, str],
    context: Mapping[str, Any],
) -> list[str] | None:
    """The identity sources' values, or None when one is missing or empty (-> 401)."""
    lowered = {key.lower(): value for key, value in headers.items()}
    values = []
    for source in sources:
        value: Any = None
        if source.startswith("route.request.header."):
            value = lowered.get(source.removeprefix("route.request.header.").lower())
        elif source.startswith("route.request.querystring."):
            value = query.get(source.removeprefix("route.request.querystring."))
        elif source.startswith("stageVariables."):
            value = stage_variables.get(source.removeprefix("stageVariables."))
        elif source.startswith("context."):
            value = context.get(source.removeprefix("context."))
        if value is None or str(value) == "":
            return None
        values.append(str(value))
    return values


def authorizer_event(
    *,
    arn: str,
    headers: Mapping[str, str],
    multi_headers: Mapping[str, list[str]],
    query: Mapping[str, str],
    multi_query: Mapping[str, list[str]],
    stage_variables: Mapping[str, str],
    request_context: Mapping[str, Any],
) -> dict[str, Any]:
    """The event of a WebSocket REQUEST authorizer, as API Gateway sends it."""
    return {
        "type": "REQUEST",
        "methodArn": arn,
        "headers": dict(headers),
        "multiValueHeaders": {name: list(values) for name, values in multi_headers.items()},
        "queryStringParameters": dict(query),
        "multiValueQueryStringParameters": {name: list(values) for name, values in multi_query.items()},
        "stageVariables": dict(stage_variables),
        "requestContext": dict(request_context),
    }


class PolicyError(ValueError):
    """An authorizer result API Gateway cannot use (it answers 500)."""


def _pattern(value: str, case_sensitive: bool) -> re.Pattern[str]:
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in value)
    return re.compile(regex, 0 if case_sensitive else re.IGNORECASE | re.DOTALL)


def _strings(statement: Mapping[str, Any], key: str) -> list[str]:
    value = statement[key]
    items = value if isinstance(value, list) else [value]
    if not items or not all(isinstance(item, str) for item in items):
        raise PolicyError(f"{key} must be a string or a list of strings")
    return items


def _matches(statement: Mapping[str, Any], name: str, value: str, case_sensitive: bool) -> bool:
    """Action/NotAction or Resource/NotResource of a statement against one value."""
    if name in statement:
        return any(_pattern(p, case_sensitive).fullmatch(value) for p in _strings(statement, name))
    negated = f"Not{name}"
    if negated in statement:
        return not any(_pattern(p, case_sensitive).fullmatch(value) for p in _strings(statement, negated))
    raise PolicyError(f"a statement has neither {name} nor Not{name}")


def evaluate_policy(policy: Any, resource: str, action: str = INVOKE_ACTION) -> bool:
    """True when the policy allows `action` on `resource`: an Allow matches and no Deny does."""
    if not isinstance(policy, Mapping):
        raise PolicyError("policyDocument is not an object")
    statements = policy.get("Statement")
    if isinstance(statements, Mapping):
        statements = [statements]
    if not isinstance(statements, list) or not statements:
        raise PolicyError("policyDocument has no Statement")
    allowed = False
    for statement in statements:
        if not isinstance(statement, Mapping):
            raise PolicyError("a Statement is not an object")
        effect = statement.get("Effect")
        if effect not in ("Allow", "Deny"):
            raise PolicyError(f"Effect {effect!r} is neither Allow nor Deny")
        applies = _matches(statement, "Action", action, case_sensitive=False) and _matches(
            statement, "Resource", resource, case_sensitive=True
        )
        if applies and effect == "Deny":
            return False
        allowed = allowed or applies
    return allowed


@dataclass
class AuthorizerDecision:
    status: int  # 200: allowed; 401, 403 or 500: the handshake is refused with it
    reason: str
    context: dict[str, Any] = field(default_factory=dict)  # requestContext.authorizer when allowed

    @property
    def allowed(self) -> bool:
        return self.status == 200


def decide(result: InvocationResult, arn: str, latency_ms: float) -> AuthorizerDecision:  # noqa: PLR0911
    """What API Gateway makes of the authorizer function's result (`latency_ms`: its call)."""
    if not result.ok:
        message = (result.error or {}).get("errorMessage")
        if result.outcome != "timeout" and message == "Unauthorized":
            return AuthorizerDecision(401, "Unauthorized")
        return AuthorizerDecision(500, result.error_summary() or result.outcome)
    payload = result.payload
    if not isinstance(payload, dict):
        return AuthorizerDecision(500, "the result is not an object")
    principal = payload.get("principalId")
    if not isinstance(principal, str | int | float) or isinstance(principal, bool):
        return AuthorizerDecision(500, "the result has no principalId")
    try:
        allowed = evaluate_policy(payload.get("policyDocument"), arn)
    except PolicyError as error:
        return AuthorizerDecision(500, f"unusable policyDocument: {error}")
    context = payload.get("context") or {}
    if not isinstance(context, dict):
        return AuthorizerDecision(500, "context is not an object")
    nested = [key for key, value in context.items() if isinstance(value, dict | list)]
    if nested:
        return AuthorizerDecision(500, f"context values must be strings, numbers or booleans: {nested}")
    if not allowed:
        return AuthorizerDecision(403, f"the policy does not allow {INVOKE_ACTION} on {arn}")
    return AuthorizerDecision(
        200,
        "allowed",
        {
            **context,
            "principalId": principal,
            "integrationLatency": round(latency_ms),
        },
    )
