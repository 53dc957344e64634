"""500 requests per second offered through the edges while a rotation runs: none refused.

The short version of ``bench/load.py`` (which also reports what the sandbox sustains and the
authorizer's latency). Asserted on counts only: a loaded machine carries fewer requests per
second, but not one legitimate request may be refused.
"""

from __future__ import annotations

import pytest

from bench import faults, load
from originlock.sandbox import Sandbox

pytestmark = pytest.mark.e2e


def test_a_rotation_under_500_requests_per_second_refuses_no_legit_request(
    sandbox: Sandbox, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a load generator in another process offering 500 requests/s over every edge
    # When a rotation runs through the real state machine meanwhile (the faults' short
    # timings: about 4 s idle, so the load lasts seconds, not a minute)
    with sandbox.retimed(faults.FAULT_TIMINGS):
        report = load.run_scenario(
            sandbox, offered=500.0, clients=8, warmup=1.0, tail=0.5, measure_capacity=False
        )

    # Then the rotation completed and no legitimate request was refused
    assert report["rotation"]["status"] == "SUCCEEDED"
    assert report["legit_rejected"] == 0, report["rejected_statuses"]
    assert report["requests"] >= 1000
    assert report["authorizer"]["cold_starts_during_run"] == 0
    with capsys.disabled():
        print(
            f"\n  load: {report['edge_rps_during_rotation']:.0f} requests/s through the edges "
            f"during a {report['rotation']['seconds']:.1f} s rotation, "
            f"{report['requests']} requests, {report['legit_rejected']} refused"
        )
