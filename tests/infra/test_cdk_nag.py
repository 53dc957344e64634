"""cdk-nag's AwsSolutions pack: no finding left unacknowledged, every acknowledgment reasoned.

cdk-nag 3 is a CDK policy-validation plugin (``Validations.of(app).add_plugins``):
synthesis fails on any unacknowledged finding, and ``validation-report.json`` in
the output directory lists each acknowledged one as a suppressed violation with
its reason and where it was acknowledged.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from aws_cdk import Validations
from cdk_nag import AwsSolutionsChecks

from tests.infra.conftest import SCANNED, Synth

pytestmark = pytest.mark.infra


def report(synthesized: Synth) -> dict[str, Any]:
    text = (synthesized.outdir / "validation-report.json").read_text()
    [plugin] = json.loads(text)["pluginReports"]
    assert plugin["pluginName"] == "AwsSolutions"
    return plugin  # type: ignore[no-any-return]


@pytest.mark.parametrize("which", SCANNED)
def test_no_unacknowledged_findings(which: str, request: pytest.FixtureRequest) -> None:
    synthesized: Synth = request.getfixturevalue(which)
    plugin = report(synthesized)
    assert plugin["violations"] == []
    assert plugin["conclusion"] == "success"


@pytest.mark.parametrize("which", SCANNED)
def test_every_finding_is_acknowledged_with_a_reason(
    which: str, request: pytest.FixtureRequest
) -> None:
    synthesized: Synth = request.getfixturevalue(which)
    # Given every finding the pack raises, acknowledged or not
    raw = AwsSolutionsChecks(synthesized.app).validate_scope(synthesized.app)
    findings = {
        (violation.rule_name, resource.construct_path)
        for violation in raw.violations
        for resource in violation.violating_resources
    }
    # Then each is in the report's suppressed violations, with a reason
    suppressed = {}
    for violation in report(synthesized)["suppressedViolations"]:
        assert violation["acknowledgedId"] == f"AwsSolutions::{violation['ruleName']}"
        assert len(violation["reason"]) >= 40, violation["reason"]
        for construct in violation["violatingConstructs"]:
            suppressed[(violation["ruleName"], construct["constructPath"])] = violation
    assert findings == set(suppressed)


def acknowledgments(synthesized: Synth) -> set[tuple[str, str]]:
    """``(construct path, acknowledged id)`` of every acknowledgment in the tree."""
    found: set[tuple[str, str]] = set()
    for construct in synthesized.app.node.find_all():
        for entry in construct.node.metadata:
            if entry.type == Validations.ACKNOWLEDGED_RULES_METADATA_KEY:
                data: dict[str, str] = entry.data
                found |= {(construct.node.path, rule) for rule in data}
    return found


@pytest.mark.parametrize("which", SCANNED)
def test_no_stale_acknowledgments(which: str, request: pytest.FixtureRequest) -> None:
    # An acknowledgment that matches no finding would hide a future one unnoticed.
    synthesized: Synth = request.getfixturevalue(which)
    used = {
        (violation["acknowledgedAt"], violation["acknowledgedId"])
        for violation in report(synthesized)["suppressedViolations"]
    }
    assert acknowledgments(synthesized) == used
