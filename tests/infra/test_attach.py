"""Attach mode: originlock for an API and a distribution made elsewhere, from their ids alone.

The ``attach`` configuration synthesizes the app with ``-c attach=true`` and a blog-style
setup's ids (offline: nothing is looked up). The scans every configuration passes (cdk-nag,
cfn-lint, checkov, least privilege, no secret) run on it in their own modules.
"""

from __future__ import annotations

from typing import Any

import pytest
from aws_cdk import App, Stack
from aws_cdk.assertions import Template

from infra.config import AttachConfig, ConfigError
from originlock.cdk import AttachedOriginLock, PropsError
from originlock.target import OUTPUT_KEYS
from tests.infra.conftest import ATTACH_CONTEXT, Synth, flatten, grants, logical_id, of_type

pytestmark = pytest.mark.infra

API_ID = ATTACH_CONTEXT["apiId"]
DISTRIBUTION_ID = ATTACH_CONTEXT["distributionId"]
PARAMETER = ATTACH_CONTEXT["parameterName"]


def api_gateway_permissions(template: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        permission
        for permission in of_type(template, "AWS::Lambda::Permission").values()
        if permission["Properties"]["Principal"] == "apigateway.amazonaws.com"
    ]


def rotate_environment(attach: Synth) -> dict[str, Any]:
    properties = attach.resource(attach.main.rotation.rotate.function)["Properties"]
    variables: dict[str, Any] = properties["Environment"]["Variables"]
    return variables


def test_attach_stack_owns_neither_the_api_nor_the_distribution(attach: Synth) -> None:
    template = attach.json()
    for owned_by_someone_else in (
        "AWS::ApiGatewayV2::Api",
        "AWS::ApiGatewayV2::Route",
        "AWS::ApiGatewayV2::Stage",
        "AWS::CloudFront::Distribution",
    ):
        assert not of_type(template, owned_by_someone_else), owned_by_someone_else
    # No drift guard: CloudFormation writes no distribution here
    assert not of_type(template, "Custom::OriginlockOriginHeaderValue")


def test_attach_stack_adds_an_authorizer_on_the_api_by_id(attach: Synth) -> None:
    template = attach.json()
    [(authorizer_id, authorizer)] = of_type(template, "AWS::ApiGatewayV2::Authorizer").items()
    properties = authorizer["Properties"]
    assert properties["ApiId"] == API_ID
    assert properties["AuthorizerType"] == "REQUEST"
    assert properties["IdentitySource"] == ["$request.header.x-cf-api-gateway-token"]
    assert properties["AuthorizerPayloadFormatVersion"] == "2.0"
    assert properties["EnableSimpleResponses"] is True
    assert properties["AuthorizerResultTtlInSeconds"] == 300
    function = attach.logical_id(attach.main.authorizer.function)
    assert f"<{function}.Arn>" in flatten(properties["AuthorizerUri"])
    # API Gateway may invoke the function for this authorizer of this API, nothing else
    [permission] = api_gateway_permissions(template)
    assert flatten(permission["Properties"]["SourceArn"]) == (
        f"arn:<AWS::Partition>:execute-api:<AWS::Region>:<AWS::AccountId>:{API_ID}"
        f"/authorizers/<{authorizer_id}>"
    )
    # The documented wiring step reads these outputs
    outputs = template["Outputs"]
    assert outputs["AuthorizerId"]["Value"] == {"Ref": authorizer_id}
    assert f"<{function}.Arn>" in flatten(outputs["AuthorizerUri"]["Value"])


def test_attach_stack_adopts_the_blogs_parameter(attach: Synth) -> None:
    [parameter] = of_type(attach.json(), "Custom::OriginlockTokenParameter").values()
    assert parameter["Properties"]["ParameterName"] == PARAMETER
    assert parameter["Properties"]["AdoptExisting"] == "true"
    authorizer = attach.resource(attach.main.authorizer.function)["Properties"]
    assert authorizer["Environment"]["Variables"]["SSM_PARAMETER_NAME"] == PARAMETER


def test_attach_rotation_switches_the_named_origin_of_the_distribution(attach: Synth) -> None:
    env = rotate_environment(attach)
    assert env["DISTRIBUTION_ID"] == DISTRIBUTION_ID
    assert env["ORIGIN_IDS"] == "blog-api"
    assert env["API_ID"] == API_ID
    assert env["API_STAGE"] == "$default"
    assert env["PROBE_URL"] == "https://d111111abcdef8.cloudfront.net"
    assert flatten(env["API_URL"]) == (
        f"https://{API_ID}.execute-api.<AWS::Region>.<AWS::URLSuffix>/"
    )
    assert env["SSM_PARAMETER_NAME"] == PARAMETER
    assert env["LOCK_PARAMETER_NAME"] == f"{PARAMETER}.lock"


def test_attach_rotate_role_names_the_distribution_and_its_web_acl(attach: Synth) -> None:
    granted = grants(attach.json(), attach.logical_id(attach.main.rotation.rotate.role))
    assert granted[
        frozenset(
            {
                "cloudfront:GetDistribution",
                "cloudfront:GetDistributionConfig",
                "cloudfront:UpdateDistribution",
            }
        )
    ] == [f"arn:<AWS::Partition>:cloudfront::111111111111:distribution/{DISTRIBUTION_ID}"]
    assert granted[frozenset({"wafv2:GetWebACL"})] == [ATTACH_CONTEXT["webAclArn"]]
    assert granted[frozenset({"apigateway:DELETE"})] == [
        f"arn:<AWS::Partition>:apigateway:<AWS::Region>::/apis/{API_ID}/stages/$default"
        "/cache/authorizers"
    ]
    # No log bucket named: no S3 permission
    assert not [actions for actions in granted if any(a.startswith("s3:") for a in actions)]


def test_attach_stack_declares_the_outputs_the_cli_reads(attach: Synth) -> None:
    outputs = attach.json()["Outputs"]
    assert set(OUTPUT_KEYS) <= set(outputs)
    assert outputs["DistributionId"]["Value"] == DISTRIBUTION_ID
    assert outputs["ParameterName"]["Value"] == PARAMETER
    assert outputs["CloudFrontUrl"]["Value"] == "https://d111111abcdef8.cloudfront.net"


def test_attach_with_an_existing_authorizer_makes_none_and_lets_it_invoke() -> None:
    # Given the blog's own authorizer, whose function originlock's replaces
    app = App()
    stack = Stack(app, "BlogLock")
    lock = AttachedOriginLock(
        stack,
        "Lock",
        api_id=API_ID,
        distribution_id=DISTRIBUTION_ID,
        existing_authorizer_id="abc123",
        parameter_name=PARAMETER,
        log_bucket_name="blog-cloudfront-logs",
    )
    template = dict(Template.from_stack(stack).to_json())
    # Then no authorizer is made; API Gateway may invoke the function for that authorizer
    assert not of_type(template, "AWS::ApiGatewayV2::Authorizer")
    [permission] = api_gateway_permissions(template)
    assert flatten(permission["Properties"]["SourceArn"]).endswith(f":{API_ID}/authorizers/abc123")
    assert template["Outputs"]["AuthorizerId"]["Value"] == "abc123"
    # Without a domain there is no probe through CloudFront, and no CloudFrontUrl output
    rotate = template["Resources"][logical_id(stack, lock.rotation.rotate.function)]
    assert "PROBE_URL" not in rotate["Properties"]["Environment"]["Variables"]
    assert "CloudFrontUrl" not in template["Outputs"]
    # The standard-log bucket's ACL, which CloudFront checks on UpdateDistribution
    granted = grants(template, logical_id(stack, lock.rotation.rotate.role))
    assert granted[frozenset({"s3:GetBucketAcl", "s3:PutBucketAcl"})] == [
        "arn:<AWS::Partition>:s3:::blog-cloudfront-logs"
    ]


@pytest.mark.parametrize(
    ("context", "message"),
    [
        ({"distributionId": "E1ABCDEF2GHIJK"}, "context apiId is required with attach=true"),
        ({"apiId": "a1b2c3d4e5"}, "context distributionId is required"),
        ({"apiId": "https://a1b2c3d4e5", "distributionId": "E1ABCDEF2GHIJK"}, "apiId is not"),
        ({"apiId": "a1b2c3d4e5", "distributionId": "d1.cloudfront.net"}, "distributionId is not"),
        (
            {"apiId": "a1b2c3d4e5", "distributionId": "E1ABCDEF2GHIJK", "webAclArn": "id-1"},
            "webAclArn",
        ),
        (
            {"apiId": "a1b2c3d4e5", "distributionId": "E1ABCDEF2GHIJK", "originIds": "a, b c"},
            "originIds",
        ),
    ],
)
def test_attach_context_is_refused_by_name(context: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        AttachConfig.from_context({"attach": "true", **context}.get)


def test_attached_lock_refuses_what_is_not_an_id() -> None:
    stack = Stack(App(), "BlogLock")
    with pytest.raises(PropsError, match="api_id"):
        AttachedOriginLock(stack, "Lock", api_id="my api", distribution_id=DISTRIBUTION_ID)
