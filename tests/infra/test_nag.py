"""cdk-nag (AwsSolutions pack) on every stage: nothing is found that infra/nag_suppressions.py does not
accept, each acknowledgment sits on exactly one L1 resource, and each one answers a real finding.

cdk-nag 3 is a CDK policy-validation plugin: app.py registers it for `cdk synth`; here the same pack
walks each stage's construct tree directly (`validate_scope`), once per stage.
"""

from __future__ import annotations

import functools

import aws_cdk as cdk
import pytest
from aws_cdk import CfnResource, Validations
from aws_cdk import aws_iam as iam
from aws_cdk.assertions import Annotations, Match
from cdk_nag import AwsSolutionsChecks
from template_queries import (
    REPO_ROOT,
    STAGE_VARIANTS,
    Variant,
    cdk_json_stages,
    on_variants,
    stage_variant,
)

import infra.stack
from infra import nag_suppressions
from infra.config import StageConfig
from infra.stack import TaskBackendStack, stack_name_for

# Every stage variant (template_queries.STAGE_VARIANTS): the stages as deployed (dev: `auth: none`, prod:
# `auth: jwt` with a created user pool), plus the settings that change which resources exist.
EVERY_VARIANT = sorted(STAGE_VARIANTS)


@functools.cache
def _findings(name: str) -> list[str]:
    """Unacknowledged AwsSolutions findings of a stage variant, one line each: severity rule path."""
    stack = stage_variant(name).stack  # synthesized as the template tests see it: nag sees the finished tree
    report = AwsSolutionsChecks(verbose=True).validate_scope(stack)
    return [
        f"{violation.severity} {violation.rule_name} {resource.construct_path}"
        for violation in report.violations
        for resource in violation.violating_resources
    ]


@on_variants(*EVERY_VARIANT)
def test_stage_has_no_unacknowledged_nag_errors_or_warnings(variant):
    findings = _findings(variant.name)

    assert findings == [], "cdk-nag AwsSolutions findings:\n" + "\n".join(findings)


@on_variants("dev", "prod", "jwt_issuer")
def test_stage_synthesizes_without_cdk_warnings_or_errors(variant):
    annotations = Annotations.from_stack(variant.stack)

    messages = [
        f"{m.id}: {m.entry.data}"
        for m in [
            *annotations.find_warning("*", Match.any_value()),
            *annotations.find_error("*", Match.any_value()),
        ]
    ]

    assert messages == []


def _acknowledged(stack: TaskBackendStack) -> dict[str, set[str]]:
    """Construct path (below the stack) -> rule ids acknowledged on it, read from the construct tree."""
    found: dict[str, set[str]] = {}
    for construct in stack.node.find_all():
        for entry in construct.node.metadata:
            if entry.type == Validations.ACKNOWLEDGED_RULES_METADATA_KEY:
                assert isinstance(construct, CfnResource), f"{construct.node.path} is not one L1 resource"
                path = construct.node.path.removeprefix(f"{stack.node.path}/")
                found.setdefault(path, set()).update(rule.removeprefix("Annotation::") for rule in entry.data)
    return found


def _connections_findings(stack: TaskBackendStack, stage: StageConfig) -> set[str]:
    """POST everywhere; DELETE too on `auth: jwt` stages (a connection ends with its token)."""
    api = stack.resolve(stack.websocket_api.api.node.default_child.logical_id)
    return {
        "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:execute-api:<AWS::Region>:<AWS::AccountId>:"
        f"<{api}>/{stage.name}/{method}/@connections/*]"
        for method in (("POST", "DELETE") if stage.uses_jwt else ("POST",))
    }


APIG4 = {"AwsSolutions-APIG4"}
STREAM_LISTING = "AwsSolutions-IAM5[Resource::*]"
# Routes without an authorizer on `auth: none` stages.
UNAUTHORIZED_ROUTES = {
    "HttpApi/Default/POST--tasks/Resource": APIG4,
    "HttpApi/Default/GET--tasks/Resource": APIG4,
    "HttpApi/Default/GET--tasks--{taskId}/Resource": APIG4,
    "HttpApi/Default/POST--tasks--{taskId}--retry/Resource": APIG4,
    "HttpApi/Default/GET--openapi.json/Resource": APIG4,
    "WebSocketApi/Default/$connect-Route/Resource": APIG4,
}


def _common_acknowledgments(stack: TaskBackendStack, stage: StageConfig) -> dict[str, set[str]]:
    """Every stage's: the WebSocket routes after $connect, stream listing, the @connections grants
    (the notifier's and the resume's), PITR."""
    return {
        "WebSocketApi/Default/$disconnect-Route/Resource": APIG4,
        "WebSocketApi/Default/$default-Route/Resource": APIG4,
        "TaskPipeline/EnqueueFunction/Role/DefaultPolicy/Resource": {STREAM_LISTING},
        "WebSocketApi/NotifierFunction/Role/DefaultPolicy/Resource": {
            STREAM_LISTING,
            *_connections_findings(stack, stage),
        },
        "WebSocketApi/WsDefaultFunction/Role/DefaultPolicy/Resource": _connections_findings(stack, stage),
        # `auth: jwt` stages: a table of its own (its ByOwner index has a sort key, infra/connection_table.py)
        f"ConnectionTable/{'OwnerScoped' if stage.uses_jwt else 'Default'}/Resource": {"AwsSolutions-DDB3"},
    }


def _expected_acknowledgments(variant: Variant) -> dict[str, set[str]]:
    stage = variant.stage
    expected = _common_acknowledgments(variant.stack, stage)
    if stage.auth == "none":
        expected |= UNAUTHORIZED_ROUTES
    if stage.creates_user_pool:
        expected["Auth/UserPool/Resource"] = {"AwsSolutions-COG2", "AwsSolutions-COG8"}
    return expected


@pytest.mark.parametrize(
    ("variant", "public_routes", "user_pool"),
    [("dev", True, False), ("prod", False, True), ("jwt_issuer", False, False)],
    indirect=["variant"],
)
def test_acknowledgments_are_exactly_the_accepted_findings_on_their_resources(
    variant, public_routes, user_pool
):
    # dev: `auth: none`, its routes are public. prod: `auth: jwt` with a created user pool (MFA optional,
    # Lite plan). With auth the routes are authorized: an APIG4 acknowledgment there would hide a route
    # that lost its authorizer.
    acknowledged = _acknowledged(variant.stack)

    assert acknowledged == _expected_acknowledgments(variant)
    assert ("HttpApi/Default/GET--tasks/Resource" in acknowledged) is public_routes
    assert ("WebSocketApi/Default/$connect-Route/Resource" in acknowledged) is public_routes
    assert ("Auth/UserPool/Resource" in acknowledged) is user_pool


@on_variants("dev")
def test_only_the_openapi_document_route_is_acknowledged_as_a_public_document(variant):
    # The five HTTP routes share the rule (APIG4) but not the reason: the document route has its own.
    stack = variant.stack

    reasons = {
        path.removeprefix(f"{stack.node.path}/"): suppression
        for path, suppression in stack.nag_suppressions
        if "/HttpApi/" in path
    }

    assert reasons.pop("HttpApi/Default/GET--openapi.json/Resource") is (
        nag_suppressions.OPENAPI_DOCUMENT_WITHOUT_AUTH
    )
    assert len(reasons) == 4
    assert set(reasons.values()) == {nag_suppressions.HTTP_ROUTES_WITHOUT_AUTH}


@on_variants("dev_without_websocket_access_logs")
def test_websocket_stage_without_access_logs_is_acknowledged_only_when_configured_so(variant):
    acknowledged = _acknowledged(variant.stack)

    assert acknowledged["WebSocketApi/Stage/Resource"] == {"AwsSolutions-APIG1"}
    assert "WebSocketApi/Stage/Resource" not in _acknowledged(stage_variant("dev").stack)


@on_variants("dev", "prod", "jwt_issuer")
def test_every_acknowledgment_answers_a_real_finding(monkeypatch, variant):
    # Given the same stage built without any acknowledgment, nag finds exactly what is acknowledged:
    # no acknowledgment is stale, and the pack does see these resources.
    stage = variant.stage
    acknowledged = variant.stack.nag_suppressions
    monkeypatch.setattr(infra.stack, "acknowledge_accepted_findings", lambda **_: [])
    bare = TaskBackendStack(cdk.App(), stack_name_for(stage), stage=stage)

    report = AwsSolutionsChecks().validate_scope(bare)

    found = {
        (resource.construct_path, violation.rule_name)
        for violation in report.violations
        for resource in violation.violating_resources
    }
    assert found == {(path, suppression.rule_id) for path, suppression in acknowledged}


def test_an_acknowledgment_covers_only_its_own_finding():
    # IAM5 is acknowledged per finding (Resource::*), not per rule: a new wildcard action on the same
    # policy is still reported. (A second action on "*" would share the finding id: the IAM tests pin
    # the actions on "*" to dynamodb:ListStreams.)
    stage = cdk_json_stages()["dev"]
    stack = TaskBackendStack(cdk.App(), stack_name_for(stage), stage=stage)
    stack.pipeline.enqueue.role.add_to_principal_policy(
        iam.PolicyStatement(actions=["sqs:*"], resources=[stack.task_queue.queue.queue_arn])
    )

    report = AwsSolutionsChecks().validate_scope(stack)

    assert [(v.rule_name, [r.construct_path for r in v.violating_resources]) for v in report.violations] == [
        (
            "AwsSolutions-IAM5[Action::sqs:*]",
            [f"{stack.node.path}/TaskPipeline/EnqueueFunction/Role/DefaultPolicy/Resource"],
        )
    ]


def test_every_suppression_has_a_reason_and_is_listed_in_the_security_doc():
    doc = (REPO_ROOT / "docs" / "security.md").read_text()
    suppressions = {
        name: value
        for name, value in vars(nag_suppressions).items()
        if isinstance(value, nag_suppressions.Suppression)
    }

    assert suppressions
    for name, suppression in suppressions.items():
        assert len(suppression.reason) > 80, name
        assert f"`{name}`" in doc, f"docs/security.md does not list {name}"
    assert "connections_wildcard" in doc
