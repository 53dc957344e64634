"""The demo's scenario, shortened, asserted as a user reads its report."""

from __future__ import annotations

import json

import pytest

from originlock.demo import DemoSettings, run_scenario
from originlock.sandbox import Sandbox

pytestmark = pytest.mark.e2e

SHORT = DemoSettings(baseline=1.0, pause=0.3, tail=0.5, time_limit=240.0)


def test_demo_scenario_loses_no_legit_request_and_lets_no_attacker_in(sandbox: Sandbox) -> None:
    # Given steady traffic through every edge and attackers straight at the API
    # When a scheduled rotation, a manual rotation and an emergency revoke all run
    report = run_scenario(sandbox, SHORT, say=lambda _text: None)

    # Then the report says every invariant held
    assert report["ok"], report["broken"]
    assert report["blog_test"]["cloudfront"] == 200
    assert report["blog_test"]["api_without_header"] == 401
    assert report["blog_test"]["api_with_a_guessed_value"] == 403
    # no legitimate request lost outside the revoke-all window (its 403s are counted apart)
    assert report["legit"]["requests"] > 100
    assert report["legit"]["rejected_outside_revoke_window"] == 0
    for phase in report["phases"]:
        if phase["phase"] != "revoke all":
            assert phase["legit_rejected"] == 0, phase
    # no attacker request accepted; the revoked value stops working within R
    assert report["attacker"]["requests"] > 20
    assert report["attacker"]["accepted"] == 0
    assert set(report["attacker"]["statuses"]) <= {"401", "403"}
    revoke = report["revoke"]
    assert revoke["replayed"] > 0 and revoke["accepted_after_bound"] == 0
    assert 0 <= revoke["measured_bound_s"] <= revoke["stated_bound_s"]
    # three runs, each succeeded, cheap in transitions; the authorizer measured
    assert [run["status"] for run in report["rotations"]] == ["SUCCEEDED"] * 3
    assert all(run["state_transitions"] < 100 for run in report["rotations"])
    assert report["authorizer"]["invocations"] > 0 and report["authorizer"]["p99_ms"] is not None
    assert report["ssm"]["get_parameter_reads"] > 0
    # invariant 2: no token value in any output, the report included; the functions' logs
    # were kept apart from the terminal, and scanned
    assert report["secrets"]["found"] == 0
    assert '"service":"rotate"' in sandbox.lambda_output()
    text = json.dumps(report)
    assert not any(value in text for value in sandbox.token_values())
