"""CloudFormation intrinsics resolve to the local stack's values; unknowns fail loudly."""

import pytest

from local.template.intrinsics import IntrinsicError, PseudoParameters, Resolver, referenced_logical_ids

PSEUDO = PseudoParameters(region="eu-west-1", account_id="111122223333", stack_name="Stack-dev")
REFS = {"Queue": "http://moto/111122223333/q", "Api": "abc123"}
ATTS = {("Queue", "Arn"): "arn:aws:sqs:eu-west-1:111122223333:q", ("Fn", "Arn"): "arn:fn"}


def resolver(**kwargs):
    return Resolver(PSEUDO, REFS.__getitem__, lambda lid, att: ATTS[(lid, att)], **kwargs)


@pytest.mark.parametrize(
    ("pseudo", "expected"),
    [
        ("AWS::Region", "eu-west-1"),
        ("AWS::AccountId", "111122223333"),
        ("AWS::Partition", "aws"),
        ("AWS::URLSuffix", "amazonaws.com"),
        ("AWS::StackName", "Stack-dev"),
    ],
)
def test_pseudo_parameters_resolve_to_local_values(pseudo, expected):
    assert resolver().resolve({"Ref": pseudo}) == expected


def test_ref_and_get_att_return_the_resources_local_values():
    assert resolver().resolve({"Ref": "Queue"}) == "http://moto/111122223333/q"
    assert resolver().resolve({"Fn::GetAtt": ["Queue", "Arn"]}) == ATTS[("Queue", "Arn")]
    assert resolver().resolve({"Fn::GetAtt": "Queue.Arn"}) == ATTS[("Queue", "Arn")]


def test_join_builds_the_websocket_callback_url_shape():
    value = {
        "Fn::Join": [
            "",
            [
                "https://",
                {"Ref": "Api"},
                ".execute-api.",
                {"Ref": "AWS::Region"},
                ".",
                {"Ref": "AWS::URLSuffix"},
                "/dev",
            ],
        ]
    }
    assert resolver().resolve(value) == "https://abc123.execute-api.eu-west-1.amazonaws.com/dev"


def test_sub_handles_pseudo_parameters_attributes_variables_and_escapes():
    value = {"Fn::Sub": ["${AWS::Region}/${Queue.Arn}/${Name}/${!Literal}", {"Name": {"Ref": "Api"}}]}
    assert resolver().resolve(value) == f"eu-west-1/{ATTS[('Queue', 'Arn')]}/abc123/${{Literal}}"


def test_select_and_split_pick_a_part():
    value = {"Fn::Select": [1, {"Fn::Split": [":", {"Fn::GetAtt": ["Queue", "Arn"]}]}]}
    assert resolver().resolve(value) == "aws"


def test_if_uses_the_templates_conditions():
    conditions = {"InEurope": {"Fn::Equals": [{"Ref": "AWS::Region"}, "eu-west-1"]}}
    value = {"Fn::If": ["InEurope", "yes", "no"]}
    assert resolver(conditions=conditions).resolve(value) == "yes"


def test_no_value_removes_the_property():
    value = {"A": {"Ref": "AWS::NoValue"}, "B": [1, {"Ref": "AWS::NoValue"}]}
    assert resolver().resolve(value) == {"B": [1]}


def test_parameters_resolve_to_their_default():
    assert resolver(parameters={"Param": "/ssm/path"}).resolve({"Ref": "Param"}) == "/ssm/path"


@pytest.mark.parametrize(
    "value",
    [
        {"Fn::ImportValue": "OtherStack-Output"},
        {"Ref": "NotAResource"},
        {"Fn::GetAtt": ["Queue", "NoSuchAttribute"]},
        {"Fn::Select": [5, ["a"]]},
    ],
)
def test_values_that_cannot_be_known_locally_raise(value):
    with pytest.raises(IntrinsicError):
        resolver().resolve(value)


def test_referenced_logical_ids_finds_refs_get_atts_and_sub_variables():
    value = {
        "Fn::Join": ["", [{"Ref": "A"}, {"Fn::GetAtt": ["B", "Arn"]}, {"Ref": "AWS::Region"}]],
        "X": {"Fn::Sub": "${C.Arn}-${AWS::Region}"},
    }
    assert list(referenced_logical_ids(value)) == ["A", "B", "C"]
