"""The WebSocket $connect REQUEST authorizer: identity sources, the policy, what API Gateway answers."""

import pytest

from local.gateways.lambda_authorizer import PolicyError, decide, evaluate_policy, identity_values, method_arn
from local.runtime.pool import InvocationResult

ARN = method_arn("us-east-1", "123456789012", "a1b2c3d4e5", "live", "$connect")


def statement(effect, resource=ARN, action="execute-api:Invoke"):
    return {"Effect": effect, "Action": action, "Resource": resource}


def policy(*statements):
    return {"Version": "2012-10-17", "Statement": list(statements)}


def test_the_method_arn_names_the_api_stage_and_route():
    assert ARN == "arn:aws:execute-api:us-east-1:123456789012:a1b2c3d4e5/live/$connect"


@pytest.mark.parametrize(
    ("document", "allowed"),
    [
        (policy(statement("Allow")), True),
        (policy(statement("Deny")), False),
        (policy(), None),  # no statement: unusable
        (
            policy(statement("Allow", resource="arn:aws:execute-api:us-east-1:123456789012:a1b2c3d4e5/*/*")),
            True,
        ),
        (policy(statement("Allow", resource="arn:aws:execute-api:*:*:*")), True),
        (policy(statement("Allow", resource="*", action="execute-api:*")), True),
        (policy(statement("Allow", resource="*", action="EXECUTE-API:invoke")), True),  # actions ignore case
        (policy(statement("Allow", resource=ARN.upper())), False),  # resources do not
        (
            policy(
                statement("Allow", resource="arn:aws:execute-api:us-east-1:123456789012:a1b2c3d4e?/live/*")
            ),
            True,
        ),
        (policy(statement("Allow", resource=ARN.replace("live", "other"))), False),
        (policy(statement("Allow", action="execute-api:ManageConnections")), False),
        (
            policy(
                statement("Allow", resource=["arn:x", ARN], action=["s3:GetObject", "execute-api:Invoke"])
            ),
            True,
        ),
        (policy(statement("Allow", resource="*"), statement("Deny")), False),  # an explicit Deny wins
        (policy(statement("Deny", resource="arn:x"), statement("Allow", resource="*")), True),
        (policy({"Effect": "Allow", "NotAction": "s3:*", "Resource": ARN}), True),
        (policy({"Effect": "Allow", "Action": "*", "NotResource": ARN}), False),
        ({"Statement": statement("Allow")}, True),  # a single statement object
    ],
)
def test_policy_evaluation(document, allowed):
    if allowed is None:
        with pytest.raises(PolicyError):
            evaluate_policy(document, ARN)
    else:
        assert evaluate_policy(document, ARN) is allowed


@pytest.mark.parametrize(
    "document",
    [None, {"Statement": [{"Effect": "Maybe", "Action": "*", "Resource": "*"}]}, policy({"Effect": "Allow"})],
)
def test_unusable_policies_are_errors(document):
    with pytest.raises(PolicyError):
        evaluate_policy(document, ARN)


def ok(payload, duration=3.0):
    return InvocationResult("ok", duration, "r", payload=payload)


def failed(message, outcome="error"):
    return InvocationResult(outcome, 5.0, "r", error={"errorType": "Exception", "errorMessage": message})


def test_an_allow_passes_principal_context_and_latency():
    decision = decide(
        ok(
            {
                "principalId": "alice",
                "policyDocument": policy(statement("Allow")),
                "context": {"owner": "alice", "n": 1, "b": True},
            }
        ),
        ARN,
        12.4,
    )
    assert decision.allowed
    assert decision.context == {
        "owner": "alice",
        "n": 1,
        "b": True,
        "principalId": "alice",
        "integrationLatency": 12,
    }


@pytest.mark.parametrize(
    ("result", "status"),
    [
        (failed("Unauthorized"), 401),
        (failed("unauthorized"), 500),  # only the exact message means 401
        (failed("boom"), 500),
        (failed("Unauthorized", outcome="timeout"), 500),
        (ok({"principalId": "x", "policyDocument": policy(statement("Deny"))}), 403),
        (ok({"principalId": "x", "policyDocument": policy(statement("Allow", resource="arn:x"))}), 403),
        (ok({"policyDocument": policy(statement("Allow"))}), 500),  # no principalId
        (ok({"principalId": "x"}), 500),  # no policy
        (
            ok(
                {"principalId": "x", "policyDocument": policy(statement("Allow")), "context": {"o": {"n": 1}}}
            ),
            500,
        ),
        (ok("Allow"), 500),
    ],
)
def test_what_api_gateway_answers_for_each_outcome(result, status):
    decision = decide(result, ARN, 1.0)
    assert (decision.allowed, decision.status) == (False, status)


def test_identity_sources_are_required_and_non_empty():
    sources = ["route.request.querystring.token", "route.request.header.X-Client", "stageVariables.flavour"]
    headers = {"x-client": "web"}
    assert identity_values(sources, headers, {"token": "t"}, {"flavour": "local"}, {}) == [
        "t",
        "web",
        "local",
    ]
    assert identity_values(sources, headers, {}, {"flavour": "local"}, {}) is None
    assert identity_values(sources, headers, {"token": ""}, {"flavour": "local"}, {}) is None
    assert identity_values(sources, {}, {"token": "t"}, {"flavour": "local"}, {}) is None
    assert identity_values(["context.connectionId"], {}, {}, {}, {"connectionId": "abc="}) == ["abc="]
