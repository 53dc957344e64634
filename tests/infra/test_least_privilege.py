"""No IAM wildcard anywhere but the few AWS forces, each one acknowledged with its reason."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from tests.infra.conftest import SCANNED, Synth, as_list, flatten, of_type, policy_statements

pytestmark = pytest.mark.infra

# The synthesized stacks' names (cdk.json's default, the variant's, the attach stack's, the
# edge-signed one's, the user's rotation alone).
STACK = "(Originlock|Staging|BlogLock|EdgeLock|MyRotation)"
# The attach configuration's (the blog's) parameter.
BLOG_PARAMETER = "blog/cf-api-gateway-token"
# (role path fragment, actions, resource pattern): the wildcards AWS forces.
ALLOWED_WILDCARDS: list[tuple[str, frozenset[str] | None, str]] = [
    # X-Ray and CloudWatch Logs vended delivery have no resource-level permissions.
    ("RotationStateMachineRole", None, r"^\*$"),
    # ssm:DescribeParameters has no resource-level permissions (metadata, no value).
    ("MonitoringTokenAgeProbeRole", frozenset({"ssm:DescribeParameters"}), r"^\*$"),
    # Takeover markers of the rotation lock get a run-time suffix.
    (
        "RotationRotateRole",
        None,
        rf":parameter/(originlock/{STACK}/origin-token|{BLOG_PARAMETER})\.lock\.takeover\.\*$",
    ),
    # This state machine's executions (names made at run time): is the lock's holder running,
    # was its step under way, and stop it when a revoke preempts it.
    (
        "RotationRotateRole",
        frozenset(
            {"states:DescribeExecution", "states:GetExecutionHistory", "states:StopExecution"}
        ),
        rf":{STACK}-rotation:\*$",
    ),
    # The drift guard asks whether the lock's holder still runs.
    (
        "EdgeOriginHeaderValueProviderRole",
        frozenset({"states:DescribeExecution"}),
        rf":{STACK}-rotation:\*$",
    ),
    # Edge-signed mode's signing-key resource, like the drift guard, refuses while a rotation
    # runs.
    (
        "EdgeSigningProviderRole",
        frozenset({"states:DescribeExecution"}),
        rf":{STACK}-rotation:\*$",
    ),
    # The drift guard reads a distribution that does not exist when its policy is written.
    (
        "EdgeOriginHeaderValueProviderRole",
        frozenset({"cloudfront:GetDistributionConfig"}),
        r":distribution/\*$",
    ),
    # CDK's cross-region reference providers: this app's export parameters only.
    ("CustomCrossRegionExport", None, rf":parameter/cdk/exports/({STACK}/)?\*$"),
]


def wildcard_grants(template: dict[str, Any]) -> list[tuple[str, frozenset[str], str]]:
    found = []
    for role_id in of_type(template, "AWS::IAM::Role"):
        for statement in policy_statements(template, role_id):
            actions = frozenset(as_list(statement["Action"]))
            for resource in as_list(statement["Resource"]):
                text = flatten(resource)
                if "*" in text:
                    found.append((role_id, actions, text))
    return found


def allowed(role_id: str, actions: frozenset[str], resource: str) -> bool:
    return any(
        fragment in role_id
        and (wanted is None or actions == wanted)
        and re.search(pattern, resource)
        for fragment, wanted, pattern in ALLOWED_WILDCARDS
    )


@pytest.mark.parametrize("which", SCANNED)
def test_every_wildcard_resource_is_one_aws_forces(
    which: str, request: pytest.FixtureRequest
) -> None:
    synthesized: Synth = request.getfixturevalue(which)
    for path in synthesized.templates():
        template = json.loads(path.read_text())
        for role_id, actions, resource in wildcard_grants(template):
            assert allowed(role_id, actions, resource), (path.name, role_id, actions, resource)


@pytest.mark.parametrize("which", SCANNED)
def test_no_action_wildcards(which: str, request: pytest.FixtureRequest) -> None:
    synthesized: Synth = request.getfixturevalue(which)
    for path in synthesized.templates():
        template = json.loads(path.read_text())
        for role_id in of_type(template, "AWS::IAM::Role"):
            for statement in policy_statements(template, role_id):
                for action in as_list(statement["Action"]):
                    assert "*" not in action, (path.name, role_id, action)


def test_our_roles_attach_no_managed_policy(synth: Synth) -> None:
    for role_id, role in of_type(synth.json(), "AWS::IAM::Role").items():
        if role_id.startswith("CustomCrossRegionExport"):
            continue  # CDK's own provider (AWSLambdaBasicExecutionRole)
        assert "ManagedPolicyArns" not in role["Properties"], role_id
