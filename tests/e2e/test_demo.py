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
    # When a scheduled rotation, a manual rotation, an emergency revoke all, and a revoke all
    # while another rotation waits for CloudFront run
    report = run_scenario(sandbox, SHORT, say=lambda _text: None)

    # Then the report says every invariant held
    assert report["ok"], report["broken"]
    assert report["blog_test"]["cloudfront"] == 200
    assert report["blog_test"]["api_without_header"] == 401
    assert report["blog_test"]["api_with_a_guessed_value"] == 403
    # no legitimate request lost outside the revoke-all windows (their 403s are counted apart)
    assert report["legit"]["requests"] > 100
    assert report["legit"]["rejected_outside_revoke_window"] == 0
    for phase in report["phases"]:
        if phase["phase"] not in ("revoke all", "revoke during a rotation"):
            assert phase["legit_rejected"] == 0, phase
    # no attacker request accepted; the revoked value stops working within R
    assert report["attacker"]["requests"] > 20
    assert report["attacker"]["accepted"] == 0
    assert set(report["attacker"]["statuses"]) <= {"401", "403"}
    for revoke in (report["revoke"], report["revoke_during_rotation"]):
        assert revoke["replayed"] > 0 and revoke["accepted_after_bound"] == 0
        assert 0 <= revoke["measured_bound_s"] <= revoke["stated_bound_s"]
    # the second revoke did not wait for the rotation: it stopped it, saying why
    during = report["revoke_during_rotation"]
    assert during["preempted_status"] == "ABORTED"
    assert "preempted by revoke all" in during["preempted_cause"]
    # four runs, each succeeded, cheap in transitions; the authorizer measured
    assert [run["status"] for run in report["rotations"]] == ["SUCCEEDED"] * 4
    assert all(run["state_transitions"] < 100 for run in report["rotations"])
    assert report["authorizer"]["invocations"] > 0 and report["authorizer"]["p99_ms"] is not None
    assert report["ssm"]["get_parameter_reads"] > 0
    # every caller's SSM reads stayed under the account's quota the sandbox applies
    assert report["ssm"]["throttled"] == 0
    assert report["ssm"]["peak_reads_in_a_second"] <= report["ssm"]["quota_per_second"]
    # invariant 2: no token value in any output, the report included; the functions' logs
    # were kept apart from the terminal, and scanned
    assert report["secrets"]["found"] == 0
    assert '"service":"rotate"' in sandbox.lambda_output()
    text = json.dumps(report)
    assert not any(value in text for value in sandbox.token_values())
