"""A rotation and an emergency revoke, measured against their floors.

The demo's scenario (:mod:`originlock.demo`: one legitimate client per edge, attackers straight
at the API) with the sandbox's default timings, reduced to one scheduled rotation and one
``revoke all`` whose leaked value an attacker replays. Figures:

* **rotation overhead beyond CloudFront's own deploy time**: the execution's wall time minus
  the time from the switch (``UpdateDistribution``) to the moment the last edge switched; its
  floor is what the protocol waits on purpose, the stage wait and the drain (whole seconds in
  ASL ``Wait`` states). The rest is the Lambda steps, the interpreter and the poll's
  granularity (CloudFront is seen ``Deployed`` up to one poll interval late);
* **state transitions and Lambda invocations** per rotation against docs/runbook.md's formula
  16 + 3N and 9 + N, N being the ``CheckDeployed`` polls;
* **the revoke bound R**: the last moment the replayed leaked value was accepted, counted from
  the revoke's request, against the bound the sandbox states (``SandboxTimings.revoke_bound``),
  with no other execution running, and with a rotation running (waiting for CloudFront's
  deployment): the revoke preempts it;
* legitimate requests refused outside the revoke-all window (0), attackers let in (0).
"""

from __future__ import annotations

import math
import sys
import time
from typing import Any

from bench.common import machine, write_result
from originlock.demo import PREEMPT_PHASE, REVOKE_PHASE, DemoSettings, Scenario, build_report
from originlock.observe import Run
from originlock.sandbox import Sandbox
from originlock.traffic import Traffic

SETTINGS = DemoSettings(baseline=1.0, pause=0.5, tail=0.5, time_limit=90.0)


def rotation_figures(sb: Sandbox, run: Run) -> dict[str, Any]:
    """Wall time, CloudFront's deploy time, overhead and cost of one rotation."""
    edges = sb.edges
    assert edges is not None
    timings = sb.timings
    steps = run.outcome.steps
    ended = [s.ended for s in steps if s.ended is not None]
    started = steps[0].started if steps else None
    # From the history's own timestamps (the execution's start and stop are whole seconds).
    wall = (max(ended) - started).total_seconds() if started and ended else run.ended - run.started
    tasks = sum(
        (s.ended - s.started).total_seconds()
        for s in steps
        if s.kind == "Task" and s.started is not None and s.ended is not None
    )
    deploys = [(a, b) for a, b in edges.deploy_log if run.started <= a <= run.ended]
    deploy = sum(b - a for a, b in deploys)
    floor = math.ceil(timings.stage_wait) + math.ceil(timings.drain)
    polls = run.polls
    overhead = wall - deploy
    return {
        "status": run.outcome.status,
        "wall_s": round(wall, 2),
        "cloudfront_deploy_s": round(deploy, 2),
        "overhead_s": round(overhead, 2),
        "overhead_floor_s": floor,
        "overhead_beyond_floor_s": round(overhead - floor, 2),
        "lambda_steps_s": round(tasks, 2),
        "poll_interval_s": max(1, math.ceil(timings.poll_interval)),
        "polls": polls,
        "state_transitions": run.state_transitions,
        "state_transitions_formula": 16 + 3 * polls,
        "lambda_invocations": run.lambda_invocations,
        "lambda_invocations_formula": 9 + polls,
    }


def run_scenario(sb: Sandbox, settings: DemoSettings = SETTINGS) -> dict[str, Any]:
    began = time.monotonic()
    scenario = Scenario(
        sb,
        Traffic(max_requests=settings.max_requests, time_limit=settings.time_limit),
        execution_timeout=settings.execution_timeout,
        settings=settings,
        say=lambda _text: None,
    )
    try:
        scenario.blog_test()
        scenario.start_traffic()
        scenario.phase("steady")
        time.sleep(settings.baseline)
        scenario.phase("scheduled rotation")
        rotation = scenario.run("scheduled rotation", sb.fire_schedule)
        time.sleep(settings.pause)
        scenario.phase(REVOKE_PHASE)
        scenario.leak_and_revoke()
        time.sleep(settings.pause)
        scenario.phase(PREEMPT_PHASE)
        scenario.revoke_during_rotation()
        scenario.phase("")
    finally:
        scenario.traffic.stop()
    demo = build_report(scenario)
    figures = rotation_figures(sb, rotation)
    revoke = demo["revoke"]
    report: dict[str, Any] = {
        "bench": "rotation",
        "edges": len(sb.edge_urls),
        "timings": {
            "deploy_window_s": list(sb.timings.deploy_window),
            "stage_wait_s": sb.timings.stage_wait,
            "drain_s": sb.timings.drain,
            "poll_interval_s": sb.timings.poll_interval,
        },
        "rotation": figures,
        "revoke_all": {
            "stated_bound_s": revoke["stated_bound_s"],
            "measured_bound_s": revoke["measured_bound_s"],
            "replayed": revoke["replayed"],
            "accepted_after_bound": revoke["accepted_after_bound"],
            "state_transitions": scenario.runs[1].state_transitions,
            "lambda_invocations": scenario.runs[1].lambda_invocations,
            "legit_refused_in_windows": demo["legit"]["rejected_in_revoke_window"],
            "windows_s": demo["legit"]["revoke_window_s"],
        },
        "revoke_all_during_rotation": demo["revoke_during_rotation"],
        "legit_rejected_outside_revoke_window": demo["legit"]["rejected_outside_revoke_window"],
        "attacker_accepted": demo["attacker"]["accepted"],
        "broken": demo["broken"],
        "seconds": round(time.monotonic() - began, 1),
    }
    report["targets"] = {
        "rotation_succeeded": figures["status"] == "SUCCEEDED",
        "transitions_match_formula": (
            figures["state_transitions"] == figures["state_transitions_formula"]
        ),
        "invocations_match_formula": (
            figures["lambda_invocations"] == figures["lambda_invocations_formula"]
        ),
        # Beyond what it waits on purpose, only its Lambda steps and the poll's granularity.
        "overhead_is_floor_steps_and_a_poll": (
            figures["overhead_beyond_floor_s"] - figures["lambda_steps_s"]
            <= figures["poll_interval_s"]
        ),
        "revoke_within_stated_bound": (
            revoke["accepted_after_bound"] == 0
            and revoke["measured_bound_s"] <= revoke["stated_bound_s"]
            and revoke["replayed"] > 0
        ),
        "revoke_during_rotation_within_stated_bound": (
            demo["revoke_during_rotation"]["accepted_after_bound"] == 0
            and demo["revoke_during_rotation"]["replayed"] > 0
            and demo["revoke_during_rotation"]["preempted_status"] == "ABORTED"
        ),
        "no_legit_refused_outside_revoke_window": report["legit_rejected_outside_revoke_window"]
        == 0,
        "no_attacker_accepted": report["attacker_accepted"] == 0,
    }
    report["pass"] = all(report["targets"].values()) and not demo["broken"]
    return report


def table(report: dict[str, Any]) -> Any:
    from rich.table import Table

    rotation, revoke = report["rotation"], report["revoke_all"]
    during = report["revoke_all_during_rotation"]
    view = Table(title="A rotation and a revoke all, against their floors")
    for column in ("figure", "measured", "floor / formula / bound"):
        view.add_column(column, justify="left" if column == "figure" else "right")
    view.add_row("rotation wall time (s)", f"{rotation['wall_s']:.1f}", "")
    view.add_row(
        "  of which CloudFront deploying (s)", f"{rotation['cloudfront_deploy_s']:.1f}", ""
    )
    view.add_row(
        "  overhead beyond CloudFront's deploy (s)",
        f"{rotation['overhead_s']:.1f}",
        f"floor {rotation['overhead_floor_s']} (stage wait + drain)",
    )
    view.add_row(
        "  of the overhead, Lambda steps (s)",
        f"{rotation['lambda_steps_s']:.1f}",
        f"+ poll granularity <= {rotation['poll_interval_s']}",
    )
    view.add_row(
        "state transitions",
        str(rotation["state_transitions"]),
        f"16 + 3N = {rotation['state_transitions_formula']} (N = {rotation['polls']})",
    )
    view.add_row(
        "Lambda invocations",
        str(rotation["lambda_invocations"]),
        f"9 + N = {rotation['lambda_invocations_formula']}",
    )
    view.add_row(
        "revoke all: leaked value last accepted, from the request (s)",
        f"{revoke['measured_bound_s']:.1f}",
        f"R = {revoke['stated_bound_s']:.0f}",
    )
    view.add_row(
        "  the same with a rotation running (preempted) (s)",
        f"{during['measured_bound_s']:.1f}",
        f"R = {during['stated_bound_s']:.0f}",
    )
    view.add_row(
        "legit refused outside the revoke-all window",
        str(report["legit_rejected_outside_revoke_window"]),
        "0",
    )
    return view


def main() -> int:
    from rich.console import Console

    with Sandbox(edges=4, seed=13, stack=False) as sb:
        report = run_scenario(sb)
    report["machine"] = machine()
    Console(width=140).print(table(report))
    print(write_result("rotation", report), flush=True)
    return 0 if report["pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
