"""IAM: one role per function, each allowed exactly the actions and resources its handler uses."""

from __future__ import annotations

from typing import Any

import pytest
from aws_cdk.assertions import Match
from template_queries import (
    ALL_HANDLERS,
    HANDLERS,
    arn,
    canonical,
    cdk_json_stages,
    function_id,
    function_ids,
    handlers_of,
    on_variants,
    permissions,
    ref,
    resources,
    role_id,
)

from taskflow import table_schema

ROLE = "AWS::IAM::Role"
PERMISSION = "AWS::Lambda::Permission"
LOGS_WRITE = ("logs:CreateLogStream", "logs:PutLogEvents")
STREAM_READ = ("dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator")
# With a customer managed key (`customer_managed_keys`): what DynamoDB and SQS call on the key on the
# caller's behalf. Table readers and stream readers decrypt the table key; table writers also encrypt;
# the queue's producer generates data keys. Never a wildcard action.
KEY_READ = ("kms:Decrypt", "kms:DescribeKey")
KEY_WRITE = (*KEY_READ, "kms:Encrypt", "kms:GenerateDataKey")
KEY_SEND = ("kms:GenerateDataKey", "kms:Decrypt")
QUEUE_CONSUME = (
    "sqs:ChangeMessageVisibility",
    "sqs:DeleteMessage",
    "sqs:GetQueueAttributes",
    "sqs:GetQueueUrl",
    "sqs:ReceiveMessage",
)


def _allow(actions: tuple[str, ...] | str, *targets: Any) -> set[tuple[str, str]]:
    actions = (actions,) if isinstance(actions, str) else actions
    return {(action, canonical(target)) for action in actions for target in targets}


def _index(table_arn: dict[str, Any], index: str) -> dict[str, Any]:
    return {"Fn::Join": ["", [table_arn, f"/index/{index}"]]}


def _expected(template, ids, construct_id: str, *, owner_scoped: bool = False) -> set[tuple[str, str]]:
    """`owner_scoped`: a stage with `auth: jwt` (callers see their own tasks and frames only)."""
    return _expected_without_key(template, ids, construct_id, owner_scoped=owner_scoped) | _expected_key_use(
        ids, construct_id
    )


def _expected_key_use(ids, construct_id: str) -> set[tuple[str, str]]:
    """The KMS actions on the stage's data key, if it has one (none on the AWS managed keys)."""
    if ids.data_key is None:
        return set()
    actions = {
        "HttpApiFunction": KEY_WRITE,
        "EnqueueFunction": (*KEY_READ, *KEY_SEND),  # reads the table's stream, sends to the queue
        "ProcessorFunction": KEY_WRITE,  # consumes the queue (decrypt), writes the task table
        "DlqConsumerFunction": KEY_WRITE,
        "NotifierFunction": KEY_WRITE,  # reads the stream, deletes gone connections
        "WsConnectFunction": KEY_WRITE,
        "WsDisconnectFunction": KEY_WRITE,
        "WsDefaultFunction": KEY_READ,  # a resume reads the caller's tasks
        "WsAuthorizerFunction": (),
    }[construct_id]
    return _allow(tuple(actions), arn(ids.data_key))


def _expected_without_key(template, ids, construct_id: str, *, owner_scoped: bool) -> set[tuple[str, str]]:
    fn = function_id(template, construct_id)
    own_logs = _allow(LOGS_WRITE, arn(_log_group_of(template, fn)))
    task_table = arn(ids.task_table)
    # The list indexes by name: no index/* wildcard (with auth, the key conditions name the caller).
    task_indexes = [
        _index(task_table, index)
        for index in (table_schema.TASKS_BY_CREATED_INDEX, table_schema.TASKS_BY_FINISHED_INDEX)
    ]
    connections = arn(ids.connection_table)
    # Without auth every frame goes to every connection (Scan); with auth to the task owner's
    # connections only, found through the owner index: no Scan.
    find_connections = (
        _allow("dynamodb:Query", _index(connections, table_schema.CONNECTIONS_BY_OWNER_INDEX))
        if owner_scoped
        else _allow("dynamodb:Scan", connections)
    )
    # The Lambda poller of a DynamoDB stream needs dynamodb:ListStreams, which IAM does not scope
    # to a resource: CDK's DynamoEventSource grants it on "*". The one "*" in the stack.
    stream = _allow("dynamodb:ListStreams", "*") | _allow(STREAM_READ, arn(ids.task_table, "StreamArn"))
    stage_name = template.to_json()["Resources"][ids.websocket_stage]["Properties"]["StageName"]

    def connections_method(method: str) -> dict[str, Any]:
        return {
            "Fn::Join": [
                "",
                [
                    "arn:",
                    {"Ref": "AWS::Partition"},
                    ":execute-api:",
                    {"Ref": "AWS::Region"},
                    ":",
                    {"Ref": "AWS::AccountId"},
                    ":",
                    {"Ref": ids.websocket_api},
                    # This stage and this method only; * is the connection id.
                    f"/{stage_name}/{method}/@connections/*",
                ],
            ]
        }

    # POST (post_to_connection); on `auth: jwt` stages also DELETE: a connection ends with its token.
    methods = ("POST", "DELETE") if owner_scoped else ("POST",)
    manage_connections = [connections_method(method) for method in methods]
    return (
        own_logs
        | {
            "HttpApiFunction": _allow(
                ("dynamodb:PutItem", "dynamodb:GetItem", "dynamodb:UpdateItem", "dynamodb:BatchGetItem"),
                task_table,
            )
            | _allow("dynamodb:Query", *task_indexes),
            "EnqueueFunction": stream
            | _allow(("sqs:SendMessage", "sqs:GetQueueAttributes", "sqs:GetQueueUrl"), arn(ids.queue)),
            "ProcessorFunction": _allow(QUEUE_CONSUME, arn(ids.queue))
            | _allow(("dynamodb:GetItem", "dynamodb:UpdateItem"), task_table),
            "DlqConsumerFunction": _allow(QUEUE_CONSUME, arn(ids.dlq))
            | _allow("dynamodb:UpdateItem", task_table),
            "NotifierFunction": stream
            | find_connections
            | _allow("dynamodb:DeleteItem", connections)
            | _allow("execute-api:ManageConnections", *manage_connections),
            "WsConnectFunction": _allow("dynamodb:PutItem", connections),
            "WsDisconnectFunction": _allow("dynamodb:DeleteItem", connections),
            # A resume: the caller's tasks from both listing indexes, then posts the missed frames.
            "WsDefaultFunction": _allow("dynamodb:Query", *task_indexes)
            | _allow("dynamodb:BatchGetItem", task_table)
            | _allow("execute-api:ManageConnections", *manage_connections),
            # Verifies tokens with the issuer's public keys, fetched over HTTPS: nothing in AWS.
            "WsAuthorizerFunction": set(),
        }[construct_id]
    )


def _log_group_of(template, fn_id: str) -> str:
    return template.to_json()["Resources"][fn_id]["Properties"]["LoggingConfig"]["LogGroup"]["Ref"]


# Every function of each stage: dev has `auth: none`, prod `auth: jwt` (a created user pool), and the
# jwt stage with an external issuer; the last two share the owner-scoped grants. dev_cmk: dev with
# `customer_managed_keys` (as prod), for the key grants of the `auth: none` functions.
STAGES = ("dev", "prod", "jwt_issuer", "dev_cmk")
STAGE_FUNCTIONS = [
    (stage_name, construct_id)
    for stage_name, handlers in (
        ("dev", HANDLERS),
        ("prod", handlers_of(cdk_json_stages()["prod"])),
        ("jwt_issuer", ALL_HANDLERS),
        ("dev_cmk", HANDLERS),
    )
    for construct_id in sorted(handlers)
]


@pytest.mark.parametrize(("variant", "construct_id"), STAGE_FUNCTIONS, indirect=["variant"])
def test_role_allows_exactly_what_the_function_uses(variant, construct_id):
    template = variant.template

    granted = permissions(template, function_id(template, construct_id))

    assert granted == _expected(template, variant.ids, construct_id, owner_scoped=variant.stage.uses_jwt)


@on_variants(*STAGES)
def test_each_function_has_its_own_role_and_no_other_roles_exist(variant):
    template = variant.template

    roles_by_function = {name: role_id(template, fn) for name, fn in function_ids(template).items()}

    assert set(roles_by_function) == set(handlers_of(variant.stage))
    assert len(set(roles_by_function.values())) == len(handlers_of(variant.stage))
    assert set(resources(template, ROLE)) == set(roles_by_function.values())


@on_variants(*STAGES)
def test_roles_are_assumable_by_lambda_only_and_carry_no_managed_policies(variant):
    variant.template.all_resources_properties(
        ROLE,
        {
            "AssumeRolePolicyDocument": {
                "Statement": [
                    Match.object_equals(
                        {
                            "Action": "sts:AssumeRole",
                            "Effect": "Allow",
                            "Principal": {"Service": "lambda.amazonaws.com"},
                        }
                    )
                ]
            },
            # No AWSLambdaBasicExecutionRole: its logs actions are on "*"; each role writes its own group.
            "ManagedPolicyArns": Match.absent(),
            "Policies": Match.absent(),
        },
    )


@on_variants(*STAGES)
def test_wildcard_resource_is_only_the_stream_listing(variant):
    template = variant.template

    for fn in function_ids(template).values():
        wildcard_actions = {action for action, target in permissions(template, fn) if target == '"*"'}
        assert wildcard_actions <= {"dynamodb:ListStreams"}


def _account_root() -> dict[str, Any]:
    return {
        "Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, ":iam::", {"Ref": "AWS::AccountId"}, ":root"]]
    }


@on_variants("dev", "prod")
def test_resource_policies_allow_only_this_account_and_cloudwatch_alarms(variant):
    # Queues, the alarm topic and its key, the data key (prod): every Allow names this account or the
    # CloudWatch alarms service; the only "*" principals are in Deny statements (TLS enforcement).
    template = variant.template
    documents = [
        *(p["Properties"]["PolicyDocument"] for p in resources(template, "AWS::SQS::QueuePolicy").values()),
        *(p["Properties"]["PolicyDocument"] for p in resources(template, "AWS::SNS::TopicPolicy").values()),
        *(k["Properties"]["KeyPolicy"] for k in resources(template, "AWS::KMS::Key").values()),
    ]

    assert len(documents) == 2 + 1 + 1 + (variant.ids.data_key is not None)
    for document in documents:
        for statement in document["Statement"]:
            if statement["Effect"] == "Deny":
                assert statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
                continue
            assert statement["Principal"] in (
                {"AWS": _account_root()},
                {"Service": "cloudwatch.amazonaws.com"},
            ), statement


@on_variants(*STAGES)
def test_only_this_stacks_apis_may_invoke_functions(variant):
    template, ids = variant.template, variant.ids

    template.all_resources_properties(
        PERMISSION, {"Action": "lambda:InvokeFunction", "Principal": "apigateway.amazonaws.com"}
    )
    for permission in resources(template, PERMISSION).values():
        source_parts = permission["Properties"]["SourceArn"]["Fn::Join"][1]
        assert ref(ids.http_api) in source_parts or ref(ids.websocket_api) in source_parts
