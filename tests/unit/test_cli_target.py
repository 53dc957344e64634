"""Resolving a deployment from a stack's outputs, with in-memory fakes of the AWS clients."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from originlock.errors import TargetError
from originlock.target import from_stack


class FakeCloudFormation:
    def __init__(self, stacks: dict[str, dict[str, str]]) -> None:
        self.stacks = stacks

    def describe_stacks(self, StackName: str) -> dict[str, Any]:
        if StackName not in self.stacks:
            raise ClientError(
                {
                    "Error": {
                        "Code": "ValidationError",
                        "Message": f"Stack with id {StackName} does not exist",
                    }
                },
                "DescribeStacks",
            )
        outputs = [{"OutputKey": k, "OutputValue": v} for k, v in self.stacks[StackName].items()]
        return {"Stacks": [{"StackName": StackName, "Outputs": outputs}]}


class FakeSession:
    def __init__(self, stacks: dict[str, dict[str, str]]) -> None:
        self.cloudformation = FakeCloudFormation(stacks)

    def client(self, service: str, **_kwargs: Any) -> Any:
        assert service == "cloudformation"
        return self.cloudformation


OUTPUTS = {
    "StateMachineArn": "arn:aws:states:eu-west-1:123456789012:stateMachine:Rotation",
    "ParameterName": "/originlock/origin-token",
    "DistributionId": "E123",
    "ApiUrl": "https://abc.execute-api.eu-west-1.amazonaws.com/",
    "CloudFrontUrl": "https://d111.cloudfront.net/",
    "AuthorizerFunctionName": "OriginLock-Authorizer",
    "SomethingElse": "ignored",
}


def test_target_from_stack_outputs() -> None:
    target = from_stack(FakeSession({"OriginLock": OUTPUTS}), None, "eu-west-1", "OriginLock")

    assert target.state_machine_arn == OUTPUTS["StateMachineArn"]
    assert target.parameter_name == "/originlock/origin-token"
    assert target.distribution_id == "E123"
    assert target.cloudfront_url == "https://d111.cloudfront.net/"
    assert target.authorizer_function_name == "OriginLock-Authorizer"
    assert target.schedule_name is None  # no ScheduleName output: "unknown" in status
    assert target.description == "stack OriginLock (eu-west-1)"
    assert not target.local


def test_target_stack_not_found() -> None:
    with pytest.raises(TargetError, match="stack Nope not found in eu-west-1"):
        from_stack(FakeSession({}), None, "eu-west-1", "Nope")


def test_target_stack_without_our_outputs() -> None:
    session = FakeSession({"Other": {"BucketName": "b"}})

    with pytest.raises(TargetError, match="no output StateMachineArn, ParameterName"):
        from_stack(session, None, "eu-west-1", "Other")
