"""The token parameter: a custom resource names it, never holds its value."""

from __future__ import annotations

import pytest

from tests.infra.conftest import Synth, as_list, grants, of_type, policy_statements

pytestmark = pytest.mark.infra

PARAMETER_ARN = (
    "arn:<AWS::Partition>:ssm:eu-west-1:111111111111:parameter/originlock/Originlock/origin-token"
)


def test_custom_resource_carries_the_name_only(synth: Synth) -> None:
    [resource] = of_type(synth.json(), "Custom::OriginlockTokenParameter").values()
    properties = resource["Properties"]
    assert set(properties) == {"ServiceToken", "ServiceTimeout", "ParameterName", "AdoptExisting"}
    assert properties["ParameterName"] == "/originlock/Originlock/origin-token"
    assert properties["AdoptExisting"] == "true"
    provider = synth.main.token.provider
    assert properties["ServiceToken"] == {
        "Fn::GetAtt": [synth.logical_id(provider.function), "Arn"]
    }
    function = synth.resource(provider.function)["Properties"]
    assert function["Handler"] == "provision.handler.token_parameter_handler"


def test_cloudformation_never_gets_an_ssm_parameter_resource(synth: Synth) -> None:
    # AWS::SSM::Parameter cannot be a SecureString: it would put the value in the template.
    assert not of_type(synth.json(), "AWS::SSM::Parameter")


def test_provider_may_only_manage_the_one_parameter(synth: Synth) -> None:
    provider = synth.main.token.provider
    granted = grants(synth.json(), synth.logical_id(provider.role))
    logs = synth.logical_id(provider.log_group)
    assert granted == {
        frozenset({"logs:CreateLogStream", "logs:PutLogEvents"}): [f"<{logs}.Arn>"],
        frozenset({"ssm:GetParameter", "ssm:PutParameter", "ssm:DeleteParameter"}): [PARAMETER_ARN],
        # The owner tag: is the parameter another stack's? (a condition limits the keys, below)
        frozenset({"ssm:ListTagsForResource"}): [PARAMETER_ARN],
        frozenset({"ssm:AddTagsToResource", "ssm:RemoveTagsFromResource"}): [PARAMETER_ARN],
    }


def test_provider_may_set_and_remove_only_the_owner_tag(synth: Synth) -> None:
    role = synth.logical_id(synth.main.token.provider.role)
    [tagging] = [
        statement
        for statement in policy_statements(synth.json(), role)
        if "ssm:AddTagsToResource" in as_list(statement["Action"])
    ]
    assert tagging["Condition"] == {
        "ForAllValues:StringEquals": {"aws:TagKeys": ["originlock:stack"]}
    }


def test_customer_key_is_passed_and_granted(variant: Synth) -> None:
    key = variant.main.token.key
    assert key is not None
    key_id = variant.logical_id(key)
    [resource] = of_type(variant.json(), "Custom::OriginlockTokenParameter").values()
    assert resource["Properties"]["KeyId"] == {"Fn::GetAtt": [key_id, "Arn"]}
    granted = grants(variant.json(), variant.logical_id(variant.main.token.provider.role))
    assert granted[frozenset({"kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey"})] == [
        f"<{key_id}.Arn>"
    ]
    [key_resource] = of_type(variant.json(), "AWS::KMS::Key").values()
    assert key_resource["Properties"]["EnableKeyRotation"] is True
