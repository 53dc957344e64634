"""originlock.cdk's parts alone in a user's app: the authorizer on their own routes, the
rotation of a distribution made outside CDK, the alarms given those pieces.

The ``parts`` configuration (conftest.py: ``authorizer_alone``, ``rotation_alone``) is the user's
app; the scans every configuration passes (cdk-nag, checkov, cfn-lint, least privilege, no
secret) run on it in their own modules.
"""

from __future__ import annotations

import json
from typing import Any, TypeVar

import pytest
from aws_cdk import App, Duration, Stack
from aws_cdk import aws_kms as kms
from aws_cdk.assertions import Annotations, Match

from originlock.bundle import asl_file
from originlock.cdk import (
    AlarmProps,
    OriginAuthorizer,
    OriginLockAlarms,
    RotationProps,
    RotationWorkflow,
    TokenParameter,
)
from originlock.constants import (
    AUTHORIZER_HANDLER,
    DEFAULT_HEADER_NAME,
    PARAMETER_PROVIDER_HANDLER,
    ROTATE_HANDLER,
    SCHEDULE_INPUT,
)
from originlock.target import OUTPUT_KEYS, REQUIRED_OUTPUTS
from tests.infra.conftest import (
    AUTHORIZER_ALONE,
    OUTSIDE_API_ID,
    OUTSIDE_DISTRIBUTION_ID,
    ROTATION_ALONE,
    Synth,
    flatten,
    grants,
    logical_id,
    of_type,
    rotation_alone,
)
from tests.infra.test_library import function_ids, refused, synthesize

pytestmark = pytest.mark.infra

PARAMETER_ARN = "arn:<AWS::Partition>:ssm:<AWS::Region>:<AWS::AccountId>:parameter/originlock/{}"
# What originlock never makes unless asked: the rotation, the distribution and its guard,
# the alarms and their probe.
NOT_THE_AUTHORIZERS = (
    "AWS::StepFunctions::StateMachine",
    "AWS::Scheduler::Schedule",
    "AWS::CloudFront::Distribution",
    "Custom::OriginlockOriginHeaderValue",
    "AWS::Events::Rule",
    "AWS::SNS::Topic",
    "AWS::CloudWatch::Alarm",
)


def part(parts: Synth, stack_name: str) -> tuple[Stack, dict[str, Any]]:
    """One of the user's stacks and its template as written to cdk.out."""
    stack = parts.app.node.find_child(stack_name)
    assert isinstance(stack, Stack)
    return stack, json.loads((parts.outdir / f"{stack_name}.template.json").read_text())


Part = TypeVar("Part")


def child(stack: Stack, construct_id: str, kind: type[Part]) -> Part:
    """What the user's app made under *construct_id*, as the *kind* it made."""
    found = stack.node.find_child(construct_id)
    assert isinstance(found, kind)
    return found


def handlers(template: dict[str, Any]) -> list[str]:
    return sorted(
        function["Properties"]["Handler"]
        for function in of_type(template, "AWS::Lambda::Function").values()
    )


@pytest.mark.parametrize("stack_name", [AUTHORIZER_ALONE, ROTATION_ALONE])
def test_parts_alone_synthesize_without_warnings_or_errors(parts: Synth, stack_name: str) -> None:
    stack, _ = part(parts, stack_name)
    annotations = Annotations.from_stack(stack)
    assert annotations.find_warning("*", Match.any_value()) == []
    assert annotations.find_error("*", Match.any_value()) == []


# -- the authorizer alone, on the user's own routes -------------------------------------------
def test_authorizer_alone_guards_the_users_routes_with_the_origin_header(parts: Synth) -> None:
    stack, template = part(parts, AUTHORIZER_ALONE)
    authorizer = child(stack, "Authorizer", OriginAuthorizer)
    function = logical_id(stack, authorizer.function)
    # One request authorizer on the user's one API: the header is its identity source
    [api] = of_type(template, "AWS::ApiGatewayV2::Api")
    [(authorizer_id, resource)] = of_type(template, "AWS::ApiGatewayV2::Authorizer").items()
    properties = resource["Properties"]
    assert properties["ApiId"] == {"Ref": api}
    assert properties["AuthorizerType"] == "REQUEST"
    assert properties["IdentitySource"] == [f"$request.header.{DEFAULT_HEADER_NAME}"]
    assert properties["EnableSimpleResponses"] is True
    assert f"<{function}.Arn>" in flatten(properties["AuthorizerUri"])
    # Every route of the user's goes through it
    routes = of_type(template, "AWS::ApiGatewayV2::Route").values()
    assert sorted(r["Properties"]["RouteKey"] for r in routes) == ["ANY /", "ANY /{proxy+}"]
    for route in routes:
        assert route["Properties"]["AuthorizationType"] == "CUSTOM"
        assert route["Properties"]["AuthorizerId"] == {"Ref": authorizer_id}
    # API Gateway may invoke the function for this authorizer of this API only
    [permission] = of_type(template, "AWS::Lambda::Permission").values()
    assert permission["Properties"]["Principal"] == "apigateway.amazonaws.com"
    assert flatten(permission["Properties"]["SourceArn"]).endswith(
        f":<{api}>/authorizers/<{authorizer_id}>"
    )


def test_authorizer_alone_reads_the_token_parameter_once_it_exists(parts: Synth) -> None:
    stack, template = part(parts, AUTHORIZER_ALONE)
    authorizer = child(stack, "Authorizer", OriginAuthorizer)
    token = child(stack, "Token", TokenParameter)
    function = template["Resources"][logical_id(stack, authorizer.function)]
    variables = function["Properties"]["Environment"]["Variables"]
    assert (
        variables["SSM_PARAMETER_NAME"]
        == token.name
        == f"/originlock/{AUTHORIZER_ALONE}/origin-token"
    )
    assert variables["ORIGIN_HEADER_NAME"] == DEFAULT_HEADER_NAME
    # Created after the parameter: a first request finds a document to decide by
    assert logical_id(stack, token.resource) in function["DependsOn"]


def test_authorizer_alone_role_reads_its_one_parameter_and_nothing_else(parts: Synth) -> None:
    stack, template = part(parts, AUTHORIZER_ALONE)
    authorizer = child(stack, "Authorizer", OriginAuthorizer)
    key = logical_id(stack, child(stack, "Key", kms.Key))
    assert grants(template, logical_id(stack, authorizer.role)) == {
        frozenset({"logs:CreateLogStream", "logs:PutLogEvents"}): [
            f"<{logical_id(stack, authorizer.log_group)}.Arn>"
        ],
        frozenset({"ssm:GetParameter"}): [PARAMETER_ARN.format(f"{AUTHORIZER_ALONE}/origin-token")],
        # The SecureString is under the user's key
        frozenset({"kms:Decrypt"}): [f"<{key}.Arn>"],
    }


def test_authorizer_alone_makes_no_rotation_distribution_or_schedule(parts: Synth) -> None:
    _, template = part(parts, AUTHORIZER_ALONE)
    for resource_type in NOT_THE_AUTHORIZERS:
        assert not of_type(template, resource_type), resource_type
    # originlock's functions here: the authorizer and the token parameter's provider
    assert handlers(template) == sorted([AUTHORIZER_HANDLER, PARAMETER_PROVIDER_HANDLER])
    assert len(of_type(template, "AWS::ApiGatewayV2::Api")) == 1


# -- the rotation alone, of a distribution and an API named by id -----------------------------
def test_rotation_alone_runs_the_repositorys_state_machine(parts: Synth) -> None:
    stack, template = part(parts, ROTATION_ALONE)
    rotation = child(stack, "Rotation", RotationWorkflow)
    [machine] = of_type(template, "AWS::StepFunctions::StateMachine").values()
    properties = machine["Properties"]
    assert properties["StateMachineName"] == f"{ROTATION_ALONE}-rotation"
    staged = parts.outdir / f"asset.{properties['DefinitionS3Location']['Key']}"
    assert json.loads(staged.read_text()) == json.loads(asl_file().read_text())
    assert properties["DefinitionSubstitutions"] == {
        "RotateFunctionArn": {"Fn::GetAtt": [logical_id(stack, rotation.rotate.function), "Arn"]}
    }


def test_rotation_alone_schedule_starts_the_state_machine(parts: Synth) -> None:
    stack, template = part(parts, ROTATION_ALONE)
    machine = logical_id(stack, child(stack, "Rotation", RotationWorkflow).state_machine)
    [schedule] = of_type(template, "AWS::Scheduler::Schedule").values()
    target = schedule["Properties"]["Target"]
    assert target["Arn"] == {"Ref": machine}
    assert json.loads(target["Input"]) == SCHEDULE_INPUT
    assert schedule["Properties"]["ScheduleExpression"] == "rate(7 days)"
    role = target["RoleArn"]["Fn::GetAtt"][0]
    assert grants(template, role) == {frozenset({"states:StartExecution"}): [f"<{machine}>"]}


def test_rotation_alone_switches_the_named_distribution_and_no_other(parts: Synth) -> None:
    stack, template = part(parts, ROTATION_ALONE)
    rotation = child(stack, "Rotation", RotationWorkflow)
    authorizer = logical_id(stack, child(stack, "Authorizer", OriginAuthorizer).function)
    variables = template["Resources"][logical_id(stack, rotation.rotate.function)]["Properties"][
        "Environment"
    ]["Variables"]
    assert variables["DISTRIBUTION_ID"] == OUTSIDE_DISTRIBUTION_ID
    assert variables["API_ID"] == OUTSIDE_API_ID
    assert variables["ORIGIN_HEADER_NAME"] == DEFAULT_HEADER_NAME
    assert variables["AUTHORIZER_FUNCTION_NAME"] == {"Ref": authorizer}
    granted = grants(template, logical_id(stack, rotation.rotate.role))
    cloudfront_actions = frozenset(
        {
            "cloudfront:GetDistribution",
            "cloudfront:GetDistributionConfig",
            "cloudfront:UpdateDistribution",
        }
    )
    assert granted[cloudfront_actions] == [
        f"arn:<AWS::Partition>:cloudfront::<AWS::AccountId>:distribution/{OUTSIDE_DISTRIBUTION_ID}"
    ]
    # No other CloudFront grant; no web ACL or log bucket was named, none is granted
    services = {
        a.split(":")[0] for actions in granted if actions != cloudfront_actions for a in actions
    }
    assert "cloudfront" not in services and not services & {"wafv2", "s3"}
    # A revoke empties this API's authorizer cache and replaces this authorizer's instances
    assert granted[frozenset({"apigateway:DELETE"})] == [
        f"arn:<AWS::Partition>:apigateway:<AWS::Region>::/apis/{OUTSIDE_API_ID}"
        "/stages/$default/cache/authorizers"
    ]
    assert granted[
        frozenset({"lambda:GetFunctionConfiguration", "lambda:UpdateFunctionConfiguration"})
    ] == [f"<{authorizer}.Arn>"]


def test_rotation_alone_makes_no_drift_guard_and_no_distribution(parts: Synth) -> None:
    _, template = part(parts, ROTATION_ALONE)
    for resource_type in (
        "AWS::CloudFront::Distribution",
        "Custom::OriginlockOriginHeaderValue",
        "AWS::SNS::Topic",
        "AWS::CloudWatch::Alarm",
    ):
        assert not of_type(template, resource_type), resource_type
    # The API is the user's, wired by them (as attach mode documents): nothing of it here
    assert not [t for t in {r["Type"] for r in template["Resources"].values()} if "ApiGateway" in t]
    assert handlers(template) == sorted(
        [AUTHORIZER_HANDLER, PARAMETER_PROVIDER_HANDLER, ROTATE_HANDLER]
    )


def test_rotation_alone_stack_is_one_the_cli_can_operate(parts: Synth) -> None:
    # The user declared the outputs `originlock --stack MyRotation` reads
    stack, template = part(parts, ROTATION_ALONE)
    outputs = {key: output["Value"] for key, output in template["Outputs"].items()}
    assert set(REQUIRED_OUTPUTS) <= set(outputs) <= set(OUTPUT_KEYS)
    machine = logical_id(stack, child(stack, "Rotation", RotationWorkflow).state_machine)
    assert outputs["StateMachineArn"] == {"Ref": machine}
    assert outputs["ParameterName"] == f"/originlock/{ROTATION_ALONE}/origin-token"
    assert outputs["DistributionId"] == OUTSIDE_DISTRIBUTION_ID
    assert outputs["OriginHeaderName"] == DEFAULT_HEADER_NAME


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("another header", "not the header the authorizer checks"),
        ("another parameter", "the authorizer reads /elsewhere/token"),
        ("a distribution by ARN", "distribution_id is not a valid id"),
        ("an API by URL", "api_id is not a valid id"),
        ("another key", "different encryption keys"),
    ],
)
def test_rotation_alone_refuses_pieces_that_disagree(case: str, message: str) -> None:
    def build(stack: Stack) -> RotationWorkflow:
        token = TokenParameter(stack, "Token", parameter_name="/originlock/MyService/origin-token")
        if case == "another parameter":
            authorizer = OriginAuthorizer(stack, "Authorizer", parameter_name="/elsewhere/token")
        elif case == "another key":
            authorizer = OriginAuthorizer(
                stack,
                "Authorizer",
                parameter_name=token.name,
                encryption_key=kms.Key.from_key_arn(stack, "OtherKey", KEY_ARNS[1]),
            )
        else:
            authorizer = OriginAuthorizer(stack, "Authorizer", token=token)
        return RotationWorkflow(
            stack,
            "Rotation",
            token=token,
            authorizer=authorizer,
            header_name="x-origin-verify" if case == "another header" else None,
            distribution_id=(
                f"arn:aws:cloudfront::111111111111:distribution/{OUTSIDE_DISTRIBUTION_ID}"
                if case == "a distribution by ARN"
                else OUTSIDE_DISTRIBUTION_ID
            ),
            api_id=(
                f"https://{OUTSIDE_API_ID}.execute-api.eu-west-1.amazonaws.com"
                if case == "an API by URL"
                else OUTSIDE_API_ID
            ),
        )

    refused(build, message)


KEY_ARNS = (
    "arn:aws:kms:eu-west-1:111111111111:key/11111111-2222-3333-4444-555555555555",
    "arn:aws:kms:eu-west-1:111111111111:key/66666666-7777-8888-9999-000000000000",
)


def test_rotation_alone_takes_the_same_key_imported_twice() -> None:
    # Given a token parameter and an authorizer made separately, each importing the same key
    stack = Stack(App(), "KeyTwice")
    token = TokenParameter(
        stack,
        "Token",
        parameter_name="/originlock/KeyTwice/origin-token",
        encryption_key=kms.Key.from_key_arn(stack, "Key", KEY_ARNS[0]),
    )
    authorizer = OriginAuthorizer(
        stack,
        "Authorizer",
        parameter_name=token.name,
        encryption_key=kms.Key.from_key_arn(stack, "SameKey", KEY_ARNS[0]),
    )

    # Then the rotation takes them: they name one key
    rotation = RotationWorkflow(
        stack,
        "Rotation",
        token=token,
        authorizer=authorizer,
        distribution_id=OUTSIDE_DISTRIBUTION_ID,
    )
    assert rotation.node.id == "Rotation"


def test_authorizer_takes_its_parameter_from_the_token_or_from_its_name_not_both() -> None:
    def build(stack: Stack) -> OriginAuthorizer:
        token = TokenParameter(stack, "Token", parameter_name="/originlock/MyService/origin-token")
        return OriginAuthorizer(stack, "Authorizer", token=token, parameter_name="/other/token")

    refused(build, "leave out parameter_name and encryption_key")


# -- the alarms, given the pieces ------------------------------------------------------------
def test_alarms_alone_watch_the_rotation_and_the_authorizer_they_are_given() -> None:
    schedule = RotationProps(schedule="rate(30 days)")

    def build(stack: Stack) -> tuple[RotationWorkflow, OriginAuthorizer]:
        rotation = rotation_alone(stack, schedule)
        authorizer = child(stack, "Authorizer", OriginAuthorizer)
        OriginLockAlarms(
            stack,
            "Alarms",
            token=child(stack, "Token", TokenParameter),
            state_machine=rotation.state_machine,
            authorizer=authorizer.function,
            props=AlarmProps(email="ops@example.com"),
            rotation=schedule,
        )
        return rotation, authorizer

    template, (rotation, authorizer) = synthesize(build)
    stack = Stack.of(rotation)
    machine = {"Ref": logical_id(stack, rotation.state_machine)}
    function = {"Ref": logical_id(stack, authorizer.function)}
    alarms = {
        alarm["Properties"]["MetricName"]: alarm["Properties"]
        for alarm in of_type(template, "AWS::CloudWatch::Alarm").values()
    }
    assert [d["Value"] for d in alarms["ExecutionsFailed"]["Dimensions"]] == [machine]
    assert [d["Value"] for d in alarms["ExecutionsTimedOut"]["Dimensions"]] == [machine]
    assert [d["Value"] for d in alarms["Errors"]["Dimensions"]] == [function]
    # Stale at twice the schedule the rotation was given
    assert alarms["TokenAgeSeconds"]["Threshold"] == Duration.days(60).to_seconds()
    [topic] = of_type(template, "AWS::SNS::Topic")
    for alarm in alarms.values():
        assert alarm["AlarmActions"] == [{"Ref": topic}]
    [subscription] = of_type(template, "AWS::SNS::Subscription").values()
    assert subscription["Properties"]["Endpoint"] == "ops@example.com"
    # Still no distribution: the alarms watch what they were given
    assert not of_type(template, "AWS::CloudFront::Distribution")
    assert len(function_ids(template, AUTHORIZER_HANDLER)) == 1
