"""``revoke all`` while a rotation runs, with live traffic: it does not wait for the rotation.

A rotation is caught waiting for CloudFront's deployment, or draining after its promotion;
the current value leaks and an attacker replays it straight at the API; ``revoke all`` is
requested at once. The revoke stops the rotation (PreemptedError), the leaked value stops
working within R counted from the request, every value the edges send is accepted once
CloudFront is deployed, and nothing secret reaches an output.
"""

from __future__ import annotations

import dataclasses
import json
import time

import pytest

from originlock import operations
from originlock.sandbox import Sandbox
from originlock.target import discover
from originlock.traffic import Traffic, rejected
from tests.e2e.conftest import E2E_TIMINGS
from tokens.document import TokenDocument

pytestmark = pytest.mark.e2e

# Long enough to catch the rotation in its deployment wait or its drain.
TIMINGS = dataclasses.replace(E2E_TIMINGS, deploy_window=(1.5, 3.0), drain=4.0)
WAITING_FOR = {
    "deployment": ("CheckDeployed", "IsDeployed", "WaitForDeployment"),
    "drain": ("Drain",),
}


def document(sb: Sandbox) -> TokenDocument:
    value = sb.client("ssm").get_parameter(Name=sb.parameter_name, WithDecryption=True)
    return TokenDocument.parse(value["Parameter"]["Value"])


def configured_values(sb: Sandbox) -> set[str]:
    config = sb.client("cloudfront").get_distribution_config(Id=sb.distribution_id)
    return {
        header["HeaderValue"]
        for origin in config["DistributionConfig"]["Origins"]["Items"]
        for header in (origin.get("CustomHeaders") or {}).get("Items", [])
        if header["HeaderName"].lower() == sb.header_name
    }


@pytest.mark.parametrize("where", sorted(WAITING_FOR))
def test_revoke_all_preempts_a_rotation_and_revokes_within_r(sandbox: Sandbox, where: str) -> None:
    sb = sandbox
    target = discover(sb.session, sb.endpoint_url, sb.region, sb.describe())
    with sb.retimed(TIMINGS):
        traffic = Traffic(max_requests=5000, time_limit=120)
        for index, url in enumerate(sb.edge_urls):
            traffic.start("legit", index, f"{url}/orders", 0.05)
        try:
            # Given a rotation that has reached its deployment wait (or its drain)
            rotation = operations.start(target, "rotate", reason=f"e2e: preempted in {where}")
            deadline = time.monotonic() + 60
            while (
                operations.current_state(target, rotation.execution_arn) not in (WAITING_FOR[where])
            ):
                assert time.monotonic() < deadline, f"the rotation never reached its {where}"
                time.sleep(0.1)
            leaked = document(sb).current
            assert leaked is not None
            header = sb.header_name
            bound = sb.timings.revoke_bound(preempting=True)

            # When the current value leaks, is replayed, and revoke all is requested at once
            requested = time.monotonic()
            traffic.start(
                "replay",
                0,
                f"{sb.api_url}/orders",
                0.05,
                lambda: {header: leaked},
                until=requested + bound + 1.0,
            )
            revoke = operations.start(target, "revoke", scope="all", reason="e2e: leaked")
            outcome = operations.watch(target, revoke.execution_arn, interval=0.25, timeout=90)
            sb.finish_deployments()
            deployed = time.monotonic()
            time.sleep(max(requested + bound + 1.0 - time.monotonic(), 0) + 0.5)
        finally:
            traffic.stop()

    # Then the revoke started at once, named what it preempted, and succeeded
    assert revoke.preempts is not None and revoke.preempts["name"] == rotation.name
    assert outcome.succeeded, (outcome.failed_step, outcome.error, outcome.cause)
    preempted = operations.outcome(target, rotation.execution_arn)
    assert preempted.status == "ABORTED"
    assert preempted.error == "PreemptedError"
    assert preempted.cause is not None and revoke.name in preempted.cause
    # the leaked value stopped working within R of the request
    records = traffic.snapshot()
    replays = [r for r in records if r.kind == "replay"]
    accepted = [r for r in replays if r.status == 200]
    assert replays and all(r.ended <= requested + bound for r in accepted)
    assert replays[-1].status == 403
    # the document accepts only the new value, and CloudFront sends it
    final = document(sb)
    assert final.pending is None and final.previous is None
    assert final.current != leaked
    assert configured_values(sb) == {final.current}
    # legitimate requests were refused only while edges not yet switched sent a revoked
    # value (the price of revoke all), never after the revoke ended and CloudFront deployed
    legit = [r for r in records if r.kind == "legit"]
    assert len(legit) > 50
    late = [r for r in rejected(legit) if r.started > deployed + 0.2]
    assert not late, late[:3]
    assert {r.status for r in rejected(legit)} <= {403}
    # and no value reached an execution's history or the functions' output
    texts = [sb.lambda_output()]
    for arn in (rotation.execution_arn, revoke.execution_arn):
        texts.append(json.dumps(operations.history_events(target, arn), default=str))
    for value in sb.token_values():
        assert not any(value in text for text in texts)
