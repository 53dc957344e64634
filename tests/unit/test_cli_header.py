"""A deployment whose origin header is not the default one (the CDK context ``headerName``).

The CLI learns the header's name from the stack output ``OriginHeaderName`` (or from the
sandbox's description) and looks for that header on the distribution. In-memory fakes of the
AWS clients; no network.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from originlock import operations, render
from originlock.target import HEADER_NAME, discover, from_stack
from tokens.document import TokenDocument, fingerprint

CURRENT = "c" * 43
PREVIOUS = "p" * 43
CUSTOM = "X-Origin-Secret"  # CloudFront keeps the case it was given
STACK_OUTPUTS = {
    "StateMachineArn": "arn:aws:states:eu-west-1:123456789012:stateMachine:Rotation",
    "ParameterName": "/originlock/origin-token",
    "DistributionId": "E123",
}


def distribution(distribution_id: str, header: str, value: str) -> dict[str, Any]:
    origin = {
        "Id": "api",
        "CustomHeaders": {"Quantity": 1, "Items": [{"HeaderName": header, "HeaderValue": value}]},
    }
    return {"Id": distribution_id, "Origins": {"Quantity": 1, "Items": [origin]}}


class FakeAws:
    """The few calls ``status`` and target resolution make, over in-memory state."""

    def __init__(self, outputs: dict[str, str], distributions: list[dict[str, Any]]) -> None:
        self.outputs = outputs
        self.distributions = distributions
        self.parameter = TokenDocument(current=CURRENT, previous=PREVIOUS, generation=3).to_json()

    # cloudformation
    def describe_stacks(self, StackName: str) -> dict[str, Any]:
        outputs = [{"OutputKey": k, "OutputValue": v} for k, v in self.outputs.items()]
        return {"Stacks": [{"StackName": StackName, "Outputs": outputs}]}

    # ssm
    def get_parameter(self, Name: str, WithDecryption: bool) -> dict[str, Any]:
        return {"Parameter": {"Name": Name, "Value": self.parameter}}

    # stepfunctions
    def list_executions(self, **_kwargs: Any) -> dict[str, Any]:
        return {"executions": []}

    def get_paginator(self, operation: str) -> Any:
        assert operation == "list_state_machines"
        machine = {"name": "originlock-rotation", "stateMachineArn": "arn:sm"}

        class Pages:
            def paginate(self) -> list[dict[str, Any]]:
                return [{"stateMachines": [machine]}]

        return Pages()

    # cloudfront
    def get_distribution(self, Id: str) -> dict[str, Any]:
        for item in self.distributions:
            if item["Id"] == Id:
                config = {"Origins": item["Origins"]}
                return {
                    "Distribution": {
                        "Id": Id,
                        "Status": "Deployed",
                        "DomainName": f"{Id.lower()}.cloudfront.net",
                        "DistributionConfig": config,
                    }
                }
        raise ClientError({"Error": {"Code": "NoSuchDistribution"}}, "GetDistribution")

    def list_distributions(self) -> dict[str, Any]:
        return {"DistributionList": {"Items": self.distributions}}

    # scheduler
    def get_schedule(self, Name: str, GroupName: str) -> dict[str, Any]:
        raise ClientError({"Error": {"Code": "ResourceNotFoundException"}}, "GetSchedule")


class FakeSession:
    def __init__(self, aws: FakeAws) -> None:
        self.aws = aws

    def client(self, service: str, **_kwargs: Any) -> Any:
        assert service in ("cloudformation", "ssm", "stepfunctions", "cloudfront", "scheduler"), (
            service
        )
        return self.aws


def test_target_header_name_comes_from_the_stack_output() -> None:
    aws = FakeAws({**STACK_OUTPUTS, "OriginHeaderName": CUSTOM}, [])

    target = from_stack(FakeSession(aws), None, "eu-west-1", "OriginLock")

    assert target.header_name == "x-origin-secret"


def test_target_header_name_defaults_without_the_output() -> None:
    target = from_stack(FakeSession(FakeAws(STACK_OUTPUTS, [])), None, "eu-west-1", "OriginLock")

    assert target.header_name == HEADER_NAME == "x-cf-api-gateway-token"


def test_status_with_a_custom_header_name_sees_what_cloudfront_sends() -> None:
    # Given a stack deployed with headerName x-origin-secret, CloudFront sending the current value
    aws = FakeAws(
        {**STACK_OUTPUTS, "OriginHeaderName": CUSTOM}, [distribution("E123", CUSTOM, CURRENT)]
    )
    target = from_stack(FakeSession(aws), None, "eu-west-1", "OriginLock")

    # When the operator asks for the status
    data = operations.status(target)

    # Then the header is found, named by its slot and fingerprint, never by its value
    assert data["distribution"]["sends"] == [
        {"origin": "api", "fingerprint": fingerprint(CURRENT), "slot": "current"}
    ]
    assert data["distribution"]["header_name"] == "x-origin-secret"
    [line] = [text for label, text in render.status_rows(data) if label == "CloudFront"]
    assert line == f"E123 · Deployed · sends current ({fingerprint(CURRENT)})"
    assert CURRENT not in repr(data)


def test_status_names_the_header_it_did_not_find() -> None:
    # Given a stack that says x-origin-secret while the distribution sends another header
    aws = FakeAws(
        {**STACK_OUTPUTS, "OriginHeaderName": CUSTOM}, [distribution("E123", HEADER_NAME, CURRENT)]
    )
    target = from_stack(FakeSession(aws), None, "eu-west-1", "OriginLock")

    data = operations.status(target)

    assert data["distribution"]["sends"] == []
    [line] = [text for label, text in render.status_rows(data) if label == "CloudFront"]
    assert line.endswith("sends no origin header (x-origin-secret)")


def test_sandbox_header_name_from_its_description_finds_the_distribution() -> None:
    # Given two distributions; only one carries the sandbox's header
    aws = FakeAws(
        {},
        [distribution("EOTHER", HEADER_NAME, PREVIOUS), distribution("EMINE", CUSTOM, CURRENT)],
    )
    info = {"api_url": "http://127.0.0.1:1/", "header_name": CUSTOM}

    # When the sandbox target is discovered from its description
    target = discover(FakeSession(aws), "http://127.0.0.1:2", "us-east-1", info)

    # Then the header name is the sandbox's, and so is the distribution found by it
    assert target.header_name == "x-origin-secret"
    assert target.distribution_id == "EMINE"
    assert operations.status(target)["distribution"]["sends"][0]["slot"] == "current"


def test_sandbox_header_name_from_its_outputs_or_the_default() -> None:
    aws = FakeAws({}, [distribution("EMINE", CUSTOM, CURRENT)])

    from_outputs = discover(
        FakeSession(aws),
        "http://127.0.0.1:2",
        "us-east-1",
        {"outputs": {"OriginHeaderName": CUSTOM}},
    )
    default = discover(FakeSession(aws), "http://127.0.0.1:2", "us-east-1", {})

    assert from_outputs.header_name == "x-origin-secret"
    assert default.header_name == HEADER_NAME
