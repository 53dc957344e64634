"""Header mode and edge-signed mode side by side: same run, same machine, same timings.

Each mode gets a sandbox of its own (4 edges, the sandbox's default timings; edge-signed mode
with its 10 s token window, tolerance 1, KeyValueStore writes reaching each edge 0.3-1.5 s
after they are made, and a 2 s propagation wait), and the same scenario with one legitimate
client per edge every 50 ms throughout:

1. **steady traffic** (no attacker) for ``STEADY`` seconds: authorizer invocations per 1,000
   requests (API Gateway's cache, keyed on the header value, answers the rest);
2. **a leaked header value**: the origin header of a request the API let through (what a
   backend that logs request headers holds), replayed straight at the API. Header mode: for as
   long as edge-signed mode's bound, and it is still accepted at the end (it lives until a
   rotation retires it or a revoke). Edge-signed mode: until it is refused; its life counted
   from its window's start, against (T + 1)·W + TTL;
3. **a scheduled rotation**: wall time; the time the edges took to switch (CloudFront's
   deployment; the KeyValueStore's propagation to the last edge); what the rotation waits on
   purpose (stage wait and drain; in edge-signed mode also the propagation wait) and its
   Lambda steps;
4. **revoke all** with the current value (the signing key) leaked and replayed (the key also
   used to sign tokens): the last acceptance counted from the request, against the stated R;
5. legitimate requests refused outside the revoke window (0 in both modes).
"""

from __future__ import annotations

import math
import sys
import time
from typing import Any

from bench.common import machine, write_result
from originlock.demo import LEAKED_HEADER, REVOKE_PHASE, DemoSettings, Scenario, build_report
from originlock.observe import LEGIT, Run
from originlock.sandbox import Sandbox
from originlock.traffic import Traffic, rejected, within

MODES = ("header", "edge-signed")
STEADY = 20.0
SETTINGS = DemoSettings(
    baseline=STEADY, pause=0.5, tail=1.0, time_limit=150.0, execution_timeout=90.0
)


def _switching(sb: Sandbox, run: Run) -> float:
    """How long the edges took to switch during *run*: CloudFront's deployment (header mode)
    or the store's write reaching its last edge (edge-signed mode)."""
    if sb.edge_signed:
        offset = time.time() - time.monotonic()
        writes = sb.key_value_store.writes()
        return sum(last - at for at, last in writes if run.started <= at - offset <= run.ended)
    assert sb.edges is not None
    return sum(b - a for a, b in sb.edges.deploy_log if run.started <= a <= run.ended)


def rotation_figures(sb: Sandbox, run: Run) -> dict[str, Any]:
    timings = sb.timings
    steps = run.outcome.steps
    ended = [s.ended for s in steps if s.ended is not None]
    started = steps[0].started if steps else None
    wall = (max(ended) - started).total_seconds() if started and ended else run.ended - run.started
    tasks = sum(
        (s.ended - s.started).total_seconds()
        for s in steps
        if s.kind == "Task" and s.started is not None and s.ended is not None
    )
    waited = math.ceil(timings.stage_wait) + math.ceil(timings.drain)
    switching = _switching(sb, run)
    # Edge-signed: the rotation waits its stated propagation time whatever the edges did; the
    # edges' own switching is inside it. Header: it waits for CloudFront.
    edges_wait = max(timings.edge_propagation_wait, switching) if sb.edge_signed else switching
    beyond = wall - waited - edges_wait - tasks
    poll = max(1, math.ceil(timings.poll_interval))
    return {
        "status": run.outcome.status,
        "wall_s": round(wall, 2),
        "edges_switching_s": round(switching, 2),
        "waited_on_purpose_s": waited + (timings.edge_propagation_wait if sb.edge_signed else 0.0),
        "lambda_steps_s": round(tasks, 2),
        "overhead_s": round(wall - switching, 2),
        "beyond_waits_and_steps_s": round(beyond, 2),
        "poll_interval_s": poll,
        "polls": run.polls,
        "state_transitions": run.state_transitions,
        "lambda_invocations": run.lambda_invocations,
    }


def _steady(play: Scenario) -> dict[str, Any]:
    sb = play.sandbox
    assert sb.api is not None
    before = sb.api.invocations
    play.phase("steady")
    time.sleep(STEADY)
    play.phase("")
    phase = play.phases[-1]
    legit = within(play.records(kind=LEGIT), phase.start, phase.end)
    invocations = sb.api.invocations - before
    return {
        "seconds": round(phase.end - phase.start, 1),
        "requests": len(legit),
        "requests_per_s": round(len(legit) / (phase.end - phase.start), 1),
        "authorizer_invocations": invocations,
        "invocations_per_1000": round(1000 * invocations / max(1, len(legit)), 2),
        "refused": len(rejected(legit)),
    }


def _header_mode_leak(play: Scenario, seconds: float) -> dict[str, Any]:
    """Header mode: the captured value replayed for *seconds*; it does not expire."""
    sb = play.sandbox
    captured = sb.captured_origin_header()
    assert captured is not None
    header = sb.header_name
    until = time.monotonic() + seconds
    play.traffic.start(
        LEAKED_HEADER,
        0,
        f"{sb.api_url}/orders",
        SETTINGS.replay_interval,
        lambda: {header: captured},
        until=until,
    )
    time.sleep(seconds + SETTINGS.pause)
    replays = play.records(kind=LEAKED_HEADER)
    accepted = [r for r in replays if r.status == 200]
    return {
        "replayed_for_s": round(seconds, 1),
        "replayed": len(replays),
        "accepted": len(accepted),
        "refused": len(replays) - len(accepted),
        "still_accepted_at_the_end": bool(replays) and replays[-1].status == 200,
    }


def run_mode(mode: str, seed: int) -> dict[str, Any]:
    began = time.monotonic()
    with Sandbox(edges=4, seed=seed, stack=False, lock_mode=mode) as sb:
        traffic = Traffic(max_requests=20_000, time_limit=SETTINGS.time_limit)
        play = Scenario(
            sb,
            traffic,
            execution_timeout=SETTINGS.execution_timeout,
            settings=SETTINGS,
            say=lambda _text: None,
        )
        try:
            for index, url in enumerate(sb.edge_urls):
                traffic.start(LEGIT, index, f"{url}/orders", SETTINGS.legit_interval)
            steady = _steady(play)
            play.phase("leaked header value")
            if sb.edge_signed:
                play.leaked_header()
                header_leak = None
            else:
                header_leak = _header_mode_leak(play, sb.timings.leaked_header_bound())
            play.phase("scheduled rotation")
            rotation = play.run("scheduled rotation", sb.fire_schedule)
            time.sleep(SETTINGS.pause)
            play.phase(REVOKE_PHASE)
            play.leak_and_revoke()
            play.phase("")
        finally:
            traffic.stop()
        report = build_report(play)
        figures = rotation_figures(sb, rotation)
        revoke = report["revoke"]
        result: dict[str, Any] = {
            "mode": mode,
            "timings": {
                "authorizer_ttl_s": sb.timings.authorizer_ttl,
                "stage_wait_s": sb.timings.stage_wait,
                "drain_s": sb.timings.drain,
                "deploy_window_s": list(sb.timings.deploy_window),
                "kvs_propagation_s": list(sb.timings.kvs_propagation),
                "propagation_wait_s": sb.timings.edge_propagation_wait,
                "window_s": sb.timings.edge_window,
                "tolerance_windows": sb.timings.edge_tolerance,
            },
            "steady": steady,
            "leaked_header": report.get("leaked_header") or header_leak,
            "leaked_header_bound_s": sb.timings.leaked_header_bound() if sb.edge_signed else None,
            "rotation": figures,
            "revoke_all": {
                "stated_bound_s": revoke["stated_bound_s"],
                "measured_bound_s": revoke["measured_bound_s"],
                "replayed": revoke["replayed"],
                "accepted_after_bound": revoke["accepted_after_bound"],
                "legit_refused_in_window": report["legit"]["rejected_in_revoke_window"],
            },
            "legit_requests": report["legit"]["requests"],
            "legit_refused_outside_revoke_window": report["legit"][
                "rejected_outside_revoke_window"
            ],
            "secrets_found": None,
            "seconds": round(time.monotonic() - began, 1),
        }
        values = sb.token_values()
        text = repr(result)
        result["secrets_found"] = sum(1 for value in values if value in text)
        return result


def run_scenario() -> dict[str, Any]:
    modes = {mode: run_mode(mode, seed) for mode, seed in zip(MODES, (31, 32), strict=True)}
    header, edge = modes["header"], modes["edge-signed"]
    leak = edge["leaked_header"]
    targets = {
        "rotations_succeeded": all(m["rotation"]["status"] == "SUCCEEDED" for m in modes.values()),
        "no_legit_refused_outside_revoke_window": all(
            m["legit_refused_outside_revoke_window"] == 0 and m["steady"]["refused"] == 0
            for m in modes.values()
        ),
        "revoke_within_stated_bound": all(
            m["revoke_all"]["accepted_after_bound"] == 0
            and m["revoke_all"]["replayed"] > 0
            and m["revoke_all"]["measured_bound_s"] <= m["revoke_all"]["stated_bound_s"]
            for m in modes.values()
        ),
        "edge_leaked_header_refused_within_bound": (
            leak["refused"] > 0
            and leak["accepted_after_bound"] == 0
            and leak["lived_s"] <= leak["stated_bound_s"]
        ),
        # Beyond what each rotation waits on purpose, the edges' switching and its Lambda
        # steps: at most the poll's granularity.
        "rotation_overhead_is_waits_steps_and_a_poll": all(
            m["rotation"]["beyond_waits_and_steps_s"] <= m["rotation"]["poll_interval_s"]
            for m in modes.values()
        ),
        "no_secret_in_the_figures": all(m["secrets_found"] == 0 for m in modes.values()),
    }
    return {
        "bench": "modes",
        "modes": modes,
        "header_leak_still_accepted": bool(
            header["leaked_header"] and header["leaked_header"]["still_accepted_at_the_end"]
        ),
        "targets": targets,
        "pass": all(targets.values()),
    }


def table(report: dict[str, Any]) -> Any:
    from rich.table import Table

    view = Table(title="Header mode and edge-signed mode, same run, same timings (4 edges)")
    for column in ("figure", "header", "edge-signed", "bound / formula"):
        view.add_column(column, justify="left" if column == "figure" else "right")
    for name, row in rows(report):
        view.add_row(name, *row)
    return view


def rows(report: dict[str, Any]) -> list[tuple[str, tuple[str, str, str]]]:
    header, edge = report["modes"]["header"], report["modes"]["edge-signed"]
    h_rot, e_rot = header["rotation"], edge["rotation"]
    h_leak, e_leak = header["leaked_header"], edge["leaked_header"]
    h_revoke, e_revoke = header["revoke_all"], edge["revoke_all"]
    return [
        (
            "rotation wall time (s)",
            (f"{h_rot['wall_s']:.1f}", f"{e_rot['wall_s']:.1f}", ""),
        ),
        (
            "  edges switching: CloudFront deploy / store propagation (s)",
            (f"{h_rot['edges_switching_s']:.1f}", f"{e_rot['edges_switching_s']:.1f}", ""),
        ),
        (
            "  overhead beyond the edges' switching (s)",
            (
                f"{h_rot['overhead_s']:.1f}",
                f"{e_rot['overhead_s']:.1f}",
                f"waits on purpose {h_rot['waited_on_purpose_s']:g} / "
                f"{e_rot['waited_on_purpose_s']:g} + Lambda steps "
                f"{h_rot['lambda_steps_s']:.1f} / {e_rot['lambda_steps_s']:.1f}",
            ),
        ),
        (
            "  state transitions / Lambda invocations",
            (
                f"{h_rot['state_transitions']} / {h_rot['lambda_invocations']}",
                f"{e_rot['state_transitions']} / {e_rot['lambda_invocations']}",
                f"N polls: {h_rot['polls']} / {e_rot['polls']}",
            ),
        ),
        (
            "revoke all: leaked value / key last accepted, from the request (s)",
            (
                f"{h_revoke['measured_bound_s']:.1f}",
                f"{e_revoke['measured_bound_s']:.1f}",
                f"R = {h_revoke['stated_bound_s']:.0f} / {e_revoke['stated_bound_s']:.0f}",
            ),
        ),
        (
            "leaked header value: life when replayed (s)",
            (
                f"> {h_leak['replayed_for_s']:.0f}: {h_leak['accepted']} of "
                f"{h_leak['replayed']} accepted, until a rotation or revoke",
                f"{e_leak['lived_s']:.1f} from its window's start "
                f"({e_leak['lived_after_capture_s']:.1f} from capture)",
                f"(T+1)·W + TTL = {e_leak['stated_bound_s']:.0f}",
            ),
        ),
        (
            "authorizer invocations per 1,000 requests (steady)",
            (
                f"{header['steady']['invocations_per_1000']:.1f}",
                f"{edge['steady']['invocations_per_1000']:.1f}",
                f"{header['steady']['requests_per_s']:.0f} req/s; TTL "
                f"{header['timings']['authorizer_ttl_s']:g} s; W {edge['timings']['window_s']} s",
            ),
        ),
        (
            "legit requests refused outside the revoke window",
            (
                f"{header['legit_refused_outside_revoke_window']} of {header['legit_requests']}",
                f"{edge['legit_refused_outside_revoke_window']} of {edge['legit_requests']}",
                "0",
            ),
        ),
        (
            "  refused in the revoke window (edges not yet switched)",
            (
                str(h_revoke["legit_refused_in_window"]),
                str(e_revoke["legit_refused_in_window"]),
                "the price of revoke all",
            ),
        ),
    ]


def main() -> int:
    from rich.console import Console

    report = run_scenario()
    report["machine"] = machine()
    Console(width=180).print(table(report))
    print(write_result("modes", report), flush=True)
    return 0 if report["pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
