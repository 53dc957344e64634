"""The edge: CloudFront distribution, the drift guard that sets its header, the web ACL."""

from __future__ import annotations

from typing import Any

import pytest
from aws_cdk.assertions import Match

from originlock.constants import HEADER_VALUE_PLACEHOLDER, WAF_REGION
from tests.infra.conftest import MAIN_CONTEXT, Synth, flatten, grants, of_type, synthesize

pytestmark = pytest.mark.infra

HEADER = "x-cf-api-gateway-token"
CACHING_DISABLED = "4135ea2d-6df8-44a3-9df3-4b5a84be39ad"
ALL_VIEWER_EXCEPT_HOST_HEADER = "b689b0a8-53d0-40ab-baf2-68738e2966ac"


def distribution(synth: Synth) -> dict[str, Any]:
    [resource] = of_type(synth.json(), "AWS::CloudFront::Distribution").values()
    config: dict[str, Any] = resource["Properties"]["DistributionConfig"]
    return config


def guard(synth: Synth) -> tuple[str, dict[str, Any]]:
    [(logical_id, resource)] = of_type(synth.json(), "Custom::OriginlockOriginHeaderValue").items()
    return logical_id, resource


def test_origin_is_the_api_over_https_only_tls12(synth: Synth) -> None:
    [origin] = distribution(synth)["Origins"]
    assert origin["CustomOriginConfig"] == {
        "OriginProtocolPolicy": "https-only",
        "OriginSSLProtocols": ["TLSv1.2"],
    }
    api = synth.logical_id(synth.main.api.api)
    assert origin["DomainName"] == {
        "Fn::Select": [2, {"Fn::Split": ["/", {"Fn::GetAtt": [api, "ApiEndpoint"]}]}]
    }


def test_viewers_are_redirected_and_nothing_is_cached(synth: Synth) -> None:
    synth.template.has_resource_properties(
        "AWS::CloudFront::Distribution",
        {
            "DistributionConfig": Match.object_like(
                {
                    "Enabled": True,
                    "DefaultCacheBehavior": Match.object_like(
                        {
                            "ViewerProtocolPolicy": "redirect-to-https",
                            "CachePolicyId": CACHING_DISABLED,
                            "OriginRequestPolicyId": ALL_VIEWER_EXCEPT_HOST_HEADER,
                            "AllowedMethods": Match.array_with(["PATCH", "POST", "DELETE"]),
                        }
                    ),
                }
            )
        },
    )


def test_no_refusal_or_error_is_served_from_cloudfronts_cache(synth: Synth) -> None:
    # CloudFront caches an origin's 404/405/414/5xx for 10 s unless a custom error response
    # says otherwise: a failed authorizer invocation (500) must reach no viewer after its cause
    [distribution] = synth.template.find_resources("AWS::CloudFront::Distribution").values()
    responses = distribution["Properties"]["DistributionConfig"]["CustomErrorResponses"]
    assert {r["ErrorCode"]: r["ErrorCachingMinTTL"] for r in responses} == dict.fromkeys(
        (400, 403, 404, 405, 414, 416, 500, 501, 502, 503, 504), 0
    )
    # no error page is served instead of the origin's own answer
    assert not any("ResponsePagePath" in r or "ResponseCode" in r for r in responses)


def test_header_value_is_the_drift_guard_attribute_never_a_literal(synth: Synth) -> None:
    guard_id, _ = guard(synth)
    [origin] = distribution(synth)["Origins"]
    assert origin["OriginCustomHeaders"] == [
        {"HeaderName": HEADER, "HeaderValue": {"Fn::GetAtt": [guard_id, "Value"]}}
    ]


def normalized(value: Any) -> Any:
    """Keys lower-cased: the guard's copy is camelCase, the template PascalCase."""
    if isinstance(value, dict):
        if len(value) == 1 and next(iter(value)).startswith(("Fn::", "Ref")):
            return value  # an intrinsic: compare as is
        return {key.lower(): normalized(item) for key, item in value.items()}
    if isinstance(value, list):
        return [normalized(item) for item in value]
    return value


def test_drift_guard_carries_the_distribution_configuration(synth: Synth) -> None:
    # Given the distribution as CloudFormation will write it, header value masked
    expected = normalized(distribution(synth))
    expected["origins"][0]["origincustomheaders"][0]["headervalue"] = HEADER_VALUE_PLACEHOLDER
    # Then the guard's properties hold exactly that: any change CloudFormation would
    # make to the distribution changes the guard too, which then runs first
    _, resource = guard(synth)
    properties = resource["Properties"]
    assert normalized(properties["DistributionConfig"]) == expected
    [distribution_id] = of_type(synth.json(), "AWS::CloudFront::Distribution")
    assert properties["DistributionLogicalId"] == distribution_id
    assert normalized(properties["DistributionTags"]) == normalized(
        synth.json()["Resources"][distribution_id]["Properties"]["Tags"]
    )
    assert properties["ParameterName"] == "/originlock/Originlock/origin-token"
    assert properties["HeaderName"] == HEADER
    # The rotate function's lock: the guard refuses a deploy while an execution holds it.
    assert properties["LockParameterName"] == "/originlock/Originlock/origin-token.lock"
    rotate_env = synth.resource(synth.main.rotation.rotate.function)["Properties"]["Environment"]
    assert rotate_env["Variables"]["LOCK_PARAMETER_NAME"] == properties["LockParameterName"]


def test_synthesis_is_deterministic(synth: Synth, tmp_path_factory: pytest.TempPathFactory) -> None:
    # No deploy nonce: the same app synthesizes to the same templates, so a deploy
    # without changes is a no-op and the guard runs only when the distribution changes.
    again = synthesize(MAIN_CONTEXT, tmp_path_factory.mktemp("cdk-again"))
    assert [p.name for p in again.templates()] == [p.name for p in synth.templates()]
    for first, second in zip(synth.templates(), again.templates(), strict=True):
        assert first.read_text() == second.read_text(), first.name


def test_drift_guard_is_answered_by_its_own_function(synth: Synth) -> None:
    _, resource = guard(synth)
    provider = synth.main.edge.header_value.provider
    assert resource["Properties"]["ServiceToken"] == {
        "Fn::GetAtt": [synth.logical_id(provider.function), "Arn"]
    }
    function = synth.resource(provider.function)["Properties"]
    assert function["Handler"] == "provision.handler.origin_header_handler"
    # The guard waits for the parameter and its own permissions.
    token = synth.logical_id(synth.main.token.resource)
    assert token in resource["DependsOn"]


def test_drift_guard_may_only_read(synth: Synth) -> None:
    provider = synth.main.edge.header_value.provider
    granted = grants(synth.json(), synth.logical_id(provider.role))
    logs = synth.logical_id(provider.log_group)
    ssm = (
        "arn:<AWS::Partition>:ssm:eu-west-1:111111111111"
        ":parameter/originlock/Originlock/origin-token"
    )
    assert granted == {
        frozenset({"logs:CreateLogStream", "logs:PutLogEvents"}): [f"<{logs}.Arn>"],
        # The token parameter, and the rotation lock (is a rotation running?)
        frozenset({"ssm:GetParameter"}): [ssm, f"{ssm}.lock"],
        # Its own stack: the distribution's id, and whether it is rolling back.
        frozenset({"cloudformation:DescribeStackResource", "cloudformation:DescribeStacks"}): [
            "<AWS::StackId>"
        ],
        frozenset({"cloudfront:GetDistributionConfig"}): [
            "arn:<AWS::Partition>:cloudfront::111111111111:distribution/*"
        ],
        # Whether the lock's holder still runs (a stale lock does not block a deploy).
        frozenset({"states:DescribeExecution"}): [
            "arn:<AWS::Partition>:states:eu-west-1:111111111111:execution:Originlock-rotation:*"
        ],
    }


def test_web_acl_comes_from_us_east_1(synth: Synth) -> None:
    assert synth.waf is not None
    assert synth.waf.region == WAF_REGION
    acl = distribution(synth)["WebACLId"]
    # Across regions: CDK's export reader in this stack.
    readers = of_type(synth.json(), "Custom::CrossRegionExportReader")
    assert list(readers) == [acl["Fn::GetAtt"][0]]


def test_web_acl_rules(synth: Synth) -> None:
    [acl] = of_type(synth.waf_json(), "AWS::WAFv2::WebACL").values()
    properties = acl["Properties"]
    assert properties["Scope"] == "CLOUDFRONT"
    assert properties["DefaultAction"] == {"Allow": {}}
    rules = {rule["Name"]: rule for rule in properties["Rules"]}
    for group in (
        "AWSManagedRulesCommonRuleSet",
        "AWSManagedRulesKnownBadInputsRuleSet",
        "AWSManagedRulesAmazonIpReputationList",
    ):
        statement = rules[group]["Statement"]["ManagedRuleGroupStatement"]
        assert statement == {"VendorName": "AWS", "Name": group}
        assert rules[group]["OverrideAction"] == {"None": {}}
    rate = rules["RateLimitPerIp"]
    assert rate["Action"] == {"Block": {}}
    assert rate["Statement"]["RateBasedStatement"] == {"Limit": 2000, "AggregateKeyType": "IP"}
    assert len({rule["Priority"] for rule in properties["Rules"]}) == len(rules)


def test_cdk_json_defaults_put_both_stacks_in_us_east_1_with_a_plain_export(
    defaults: Synth,
) -> None:
    # Given cdk.json's context as is: no account, no region, WAF on
    assert defaults.waf is not None
    assert defaults.main.region == WAF_REGION == defaults.waf.region
    # Then the web ACL's ARN is a plain CloudFormation export, not CDK's cross-region reader
    acl = distribution(defaults)["WebACLId"]
    assert set(acl) == {"Fn::ImportValue"}
    assert not of_type(defaults.json(), "Custom::CrossRegionExportReader")
    exported = [output["Export"] for output in defaults.waf_json()["Outputs"].values()]
    assert {"Name": acl["Fn::ImportValue"]} in exported


def test_without_waf_there_is_no_web_acl(variant: Synth) -> None:
    assert variant.waf is None
    assert "WebACLId" not in distribution(variant)
    assert not of_type(variant.json(), "Custom::CrossRegionExportReader")


def test_distribution_writes_standard_logs_to_its_own_bucket(synth: Synth) -> None:
    bucket = synth.main.edge.log_bucket
    assert bucket is not None
    bucket_id = synth.logical_id(bucket)
    assert distribution(synth)["Logging"] == {
        "Bucket": {"Fn::GetAtt": [bucket_id, "DomainName"]},
        "IncludeCookies": False,
        "Prefix": "cloudfront/",
    }
    properties = synth.resource(bucket)["Properties"]
    # CloudFront's log delivery writes with ACLs: they stay enabled, owned by the bucket owner
    assert properties["OwnershipControls"] == {
        "Rules": [{"ObjectOwnership": "BucketOwnerPreferred"}]
    }
    assert properties["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    assert properties["BucketEncryption"] == {
        "ServerSideEncryptionConfiguration": [
            {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}
        ]
    }
    assert properties["VersioningConfiguration"] == {"Status": "Enabled"}
    [rule] = properties["LifecycleConfiguration"]["Rules"]
    assert rule["ExpirationInDays"] == 90
    assert rule["NoncurrentVersionExpiration"] == {"NoncurrentDays": 90}
    assert synth.resource(bucket)["DeletionPolicy"] == "Retain"
    # SSL only
    [policy] = of_type(synth.json(), "AWS::S3::BucketPolicy").values()
    [statement] = policy["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Effect"] == "Deny"
    assert statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_standard_logs_can_be_switched_off(variant: Synth) -> None:
    assert variant.main.edge.log_bucket is None
    assert "Logging" not in distribution(variant)
    assert not of_type(variant.json(), "AWS::S3::Bucket")


def test_outputs(synth: Synth) -> None:
    outputs = synth.json()["Outputs"]
    for name in (
        "CloudFrontUrl",
        "ApiUrl",
        "StateMachineArn",
        "ParameterName",
        "DistributionId",
        "AuthorizerFunctionName",
        "RotateFunctionName",
        "ScheduleName",
        "ScheduleGroupName",
        "OriginHeaderName",
    ):
        assert name in outputs
    assert outputs["ParameterName"]["Value"] == "/originlock/Originlock/origin-token"
    schedule = synth.logical_id(synth.main.rotation.schedule)
    assert outputs["ScheduleName"]["Value"] == {"Ref": schedule}
    assert outputs["OriginHeaderName"]["Value"] == HEADER
    assert flatten(outputs["CloudFrontUrl"]["Value"]).startswith("https://<")
