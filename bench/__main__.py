"""``make bench``: every benchmark, then one table of every figure, then one JSON line.

Scenarios, each in a sandbox (or process) of its own, in this order:

* ``authorizer`` (:mod:`bench.authorizer`): the authorizer against the blog's baseline in
  ``../shared/baselines/``, measured in the same run, and the compare_digest floor;
* ``naive`` (:mod:`bench.naive`): the public samples' rotation orders against ours;
* ``load`` (:mod:`bench.load`): 500+ requests per second through the edges across a rotation;
* ``faults`` (:mod:`bench.faults`): every injected fault, with live traffic;
* ``rotation`` (:mod:`bench.rotation`): overhead, cost and the revoke bound R against their
  floors and formulas, with and without a rotation running;
* ``modes`` (:mod:`bench.modes`): header mode and edge-signed mode side by side, a sandbox
  each: rotation wall time and overhead, R for a leaked value or key, the life of a leaked
  header value, authorizer invocations per 1,000 requests, legitimate requests lost;
* ``spray`` (:mod:`bench.spray`): a spray of random header values at whole authorizer fleets
  (50, 200, 1,000 instances, simulated): SSM reads per second against the budget, the
  account's quota, the previous design and the blog's.

Prints each scenario's own table as it ends, then the combined table (figure, the blog
baseline or the public samples where there is one, ours, the floor or target, verdict), and as
its last line one JSON object with every figure. Writes ``bench/results/<scenario>.json``,
``bench/results/bench.json`` and ``bench/results/table.md``. Exits 1 if a target is missed.
``python -m bench --only load faults`` runs a subset.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
from collections.abc import Callable
from typing import Any

from bench import authorizer
from bench.common import RESULTS, machine, write_result

SCENARIOS = ("authorizer", "naive", "load", "faults", "rotation", "modes", "spray")


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _sandbox_scenario(name: str) -> Callable[[], dict[str, Any]]:
    def run() -> dict[str, Any]:
        from originlock.sandbox import Sandbox

        if name == "naive":
            from bench import naive

            with Sandbox(edges=4, timings=naive.NAIVE_TIMINGS, seed=21, stack=False) as sb:
                return naive.run_scenario(sb, say=_say)
        if name == "load":
            from bench import load

            _say("bench: load through the edges across a rotation ...")
            with Sandbox(edges=4, seed=5, stack=False) as sb:
                return load.run_scenario(sb)
        if name == "faults":
            from bench import faults

            with Sandbox(edges=3, timings=faults.FAULT_TIMINGS, seed=7, stack=False) as sb:
                return faults.run_scenario(sb, say=_say)
        from bench import rotation

        _say("bench: a rotation and a revoke all ...")
        with Sandbox(edges=4, seed=13, stack=False) as sb:
            return rotation.run_scenario(sb)

    return run


def _detail(name: str, figures: dict[str, Any]) -> Any:
    if name == "authorizer":
        return None  # authorizer.print_table prints its own
    return importlib.import_module(f"bench.{name}").table(figures)


# -- the combined table --------------------------------------------------------------------------
Row = dict[str, Any]


def _row(
    area: str,
    figure: str,
    ours: str,
    *,
    baseline: str = "",
    floor: str = "",
    ok: bool | None = None,
) -> Row:
    return {
        "area": area,
        "figure": figure,
        "baseline": baseline,
        "ours": ours,
        "floor_or_target": floor,
        "verdict": "" if ok is None else ("pass" if ok else "MISS"),
    }


def _authorizer_rows(f: dict[str, Any]) -> list[Row]:
    warm, cold, floor, ok = f["warm"], f["cold_start"], f["floor"], f["targets"]
    base, ours = warm["baseline"], warm["ours"]
    return [
        _row(
            "authorizer",
            "warm decision p50 (µs)",
            f"{ours['p50_us']:.2f}",
            baseline=f"{base['p50_us']:.1f} ({warm['p50_ratio']:.0f}x slower)",
            floor=f"3 compare_digest {floor['compare_digest_us']:.3f}; >= 100x faster than blog",
            ok=ok["warm_p50_100x"],
        ),
        _row(
            "authorizer",
            "warm decision p99 (µs)",
            f"{ours['p99_us']:.2f}",
            baseline=f"{base['p99_us']:.1f} ({warm['p99_ratio']:.0f}x slower)",
            floor=">= 100x faster than blog",
            ok=ok["warm_p99_100x"],
        ),
        _row(
            "authorizer",
            "warm decisions per second, one thread",
            f"{ours['requests_per_s']:,.0f}",
            baseline=(
                f"{base['requests_per_s']:,.0f} "
                f"({ours['requests_per_s'] / base['requests_per_s']:.0f}x fewer)"
            ),
        ),
        _row(
            "authorizer",
            "SSM reads per 1,000 allowed requests (2,000-call loop)",
            f"{ours['ssm_reads_per_1000_allowed']:.1f}",
            baseline=f"{base['ssm_reads_per_1000_allowed']:.0f}",
            floor=f"<= 1 per {ours['cache_max_age_s']:.0f} s cache period per instance",
            ok=ok["ssm_reads_per_cache_period"],
        ),
        _row(
            "authorizer",
            f"SSM reads per 1,000 requests over {ours['simulated_seconds'] / 60:.0f} min",
            f"{ours['simulated_ssm_reads_per_1000_allowed']}",
            baseline="1000",
            floor=f"{ours['simulated_cache_periods']} (one per cache period)",
            ok=ok["ssm_reads_per_cache_period"],
        ),
        _row(
            "authorizer",
            "cold start, import + first decision, SDK (ms)",
            f"{cold['ours_sdk_ms']:.0f} (net {cold['ours_sdk_net_ms']:.0f})",
            baseline=f"{cold['baseline_ms']:.0f} (net {cold['baseline_net_ms']:.0f})",
            floor=f"bare interpreter {cold['interpreter_ms']:.0f}; <= blog (+5% noise)",
            ok=ok["cold_sdk_not_slower"],
        ),
        _row(
            "authorizer",
            "cold start, import + first decision, extension (ms)",
            f"{cold['ours_extension_ms']:.0f} (net {cold['ours_extension_net_ms']:.0f})",
            baseline=f"{cold['baseline_ms']:.0f} (net {cold['baseline_net_ms']:.0f})",
            floor=f"bare interpreter {cold['interpreter_ms']:.0f}; <= blog / 3",
            ok=ok["cold_extension_third"],
        ),
    ]


def _naive_rows(f: dict[str, Any]) -> list[Row]:
    rows = f["rows"]
    ours = rows[-1]
    naive = ", ".join(
        f"{label} {row['legit_lost']} ({row['lost_share']:.0%})"
        for label, row in zip(("(a)", "(b)"), rows[:-1], strict=True)
    )
    return [
        _row(
            "rotation protocol",
            "legit requests lost in one rotation, same sandbox and traffic",
            f"{ours['legit_lost']} of {ours['legit_requests']}",
            baseline=naive,
            floor="0",
            ok=f["targets"]["ours_loses_nothing"],
        )
    ]


def _load_rows(f: dict[str, Any]) -> list[Row]:
    auth, ssm = f["authorizer"], f["ssm"]
    rows = [
        _row(
            "load",
            "requests/s through the edges during a rotation",
            f"{f['edge_rps_during_rotation']:.0f} ({f['offered_rps']:.0f} offered)",
            floor=f">= {f['target_rps']:.0f}",
            ok=f["targets"]["edge_rps_at_least_500"],
        ),
        _row(
            "load",
            "legit requests refused under load",
            f"{f['legit_rejected']} of {f['requests']}",
            floor="0",
            ok=f["targets"]["zero_legit_rejected"],
        ),
        _row(
            "load",
            "local API Gateway answers/s during the rotation",
            f"{f['api_answered_rps_during_rotation']:.0f}",
        ),
        _row(
            "load",
            "authorizer invocation p99 under load, wall / CPU (ms)",
            f"{auth['wall_p99_ms']} / {auth['cpu_p99_ms']}",
            floor="CPU includes SSM refreshes; wall includes GIL waits",
        ),
        _row(
            "load",
            "rotation under load (s)",
            f"{f['rotation']['seconds']:.1f} ({f['rotation']['status']})",
            ok=f["targets"]["rotation_succeeded"],
        ),
        _row(
            "load",
            "SSM reads during the loaded rotation",
            str(ssm["reads_during_rotation"]),
            floor=f"<= {ssm['reads_floor']} (1 per instance per cache period, +1 for pending)",
            ok=ssm["reads_during_rotation"] <= ssm["reads_floor"],
        ),
    ]
    if "capacity_closed_loop_rps" in f:
        rows.append(
            _row(
                "load",
                "sandbox capacity, closed loop (requests/s)",
                f"{f['capacity_closed_loop_rps']:.0f}",
            )
        )
    return rows


def _faults_rows(f: dict[str, Any]) -> list[Row]:
    return [
        _row(
            "faults",
            "faults survived (rotation completed, no legit request lost)",
            f"{f['faults_survived']} of {f['faults_tried']}",
            floor="all",
            ok=f["faults_survived"] == f["faults_tried"],
        ),
        _row(
            "faults",
            "legit requests lost outside documented windows",
            f"{f['legit_lost_outside_documented_windows']} of {f['legit_requests']}",
            floor=f"0 (+{f['legit_lost']} in the fail-closed window, documented)",
            ok=f["legit_lost_outside_documented_windows"] == 0,
        ),
    ]


def _rotation_rows(f: dict[str, Any]) -> list[Row]:
    r, revoke, ok = f["rotation"], f["revoke_all"], f["targets"]
    return [
        _row(
            "rotation",
            "rotation overhead beyond CloudFront's deploy time (s)",
            f"{r['overhead_s']:.1f} (wall {r['wall_s']:.1f}"
            f" - deploy {r['cloudfront_deploy_s']:.1f})",
            floor=f"{r['overhead_floor_s']} waited on purpose + {r['lambda_steps_s']:.1f} Lambda "
            f"steps + <= {r['poll_interval_s']} poll",
            ok=ok["overhead_is_floor_steps_and_a_poll"],
        ),
        _row(
            "rotation",
            "state transitions per rotation",
            str(r["state_transitions"]),
            floor=f"16 + 3N = {r['state_transitions_formula']} (N = {r['polls']} polls)",
            ok=ok["transitions_match_formula"],
        ),
        _row(
            "rotation",
            "Lambda invocations per rotation",
            str(r["lambda_invocations"]),
            floor=f"9 + N = {r['lambda_invocations_formula']}",
            ok=ok["invocations_match_formula"],
        ),
        _row(
            "rotation",
            "revoke all: leaked value last accepted, after the request (s)",
            f"{revoke['measured_bound_s']:.1f}",
            floor=f"stated R = {revoke['stated_bound_s']:.0f}",
            ok=ok["revoke_within_stated_bound"],
        ),
        _row(
            "rotation",
            "revoke all during a rotation (preempted): last accepted, after the request (s)",
            f"{f['revoke_all_during_rotation']['measured_bound_s']:.1f}",
            floor=f"stated R = {f['revoke_all_during_rotation']['stated_bound_s']:.0f}",
            ok=ok["revoke_during_rotation_within_stated_bound"],
        ),
    ]


def _modes_rows(f: dict[str, Any]) -> list[Row]:
    header, edge = f["modes"]["header"], f["modes"]["edge-signed"]
    ok = f["targets"]
    leak = edge["leaked_header"]

    def both(figure: str, h: str, e: str, floor: str = "", verdict: bool | None = None) -> Row:
        return _row("lock modes", figure, f"header {h} · edge-signed {e}", floor=floor, ok=verdict)

    return [
        both(
            "rotation wall time / overhead beyond the edges' switching (s)",
            f"{header['rotation']['wall_s']:.1f} / {header['rotation']['overhead_s']:.1f}",
            f"{edge['rotation']['wall_s']:.1f} / {edge['rotation']['overhead_s']:.1f}",
            "waits on purpose + Lambda steps + <= 1 poll",
            ok["rotation_overhead_is_waits_steps_and_a_poll"],
        ),
        both(
            "revoke all: leaked value / key last accepted, from the request (s)",
            f"{header['revoke_all']['measured_bound_s']:.1f}",
            f"{edge['revoke_all']['measured_bound_s']:.1f}",
            f"stated R = {header['revoke_all']['stated_bound_s']:.0f} / "
            f"{edge['revoke_all']['stated_bound_s']:.0f}",
            ok["revoke_within_stated_bound"],
        ),
        both(
            "leaked header value, replayed: last accepted (s)",
            "never refused (until a rotation or revoke)",
            f"{leak['lived_s']:.1f} after its window's start",
            f"(T+1)·W + TTL = {leak['stated_bound_s']:.0f}",
            ok["edge_leaked_header_refused_within_bound"],
        ),
        both(
            "authorizer invocations per 1,000 requests (steady)",
            f"{header['steady']['invocations_per_1000']:.1f}",
            f"{edge['steady']['invocations_per_1000']:.1f}",
        ),
        both(
            "legit requests refused outside the revoke window",
            str(header["legit_refused_outside_revoke_window"]),
            str(edge["legit_refused_outside_revoke_window"]),
            "0",
            ok["no_legit_refused_outside_revoke_window"],
        ),
    ]


def _spray_rows(f: dict[str, Any]) -> list[Row]:
    rows = []
    for row in f["rows"]:
        ours = row["ours_budgeted"]
        rows.append(
            _row(
                "SSM budget",
                f"fleet reads/s under a spray, {row['instances']:,} instances (mean / peak)",
                f"{ours['reads_per_second_mean']:.1f} / {ours['reads_per_second_peak']} "
                f"(max age {row['budgeted_max_age_s']} s)",
                baseline=f"blog {row['blog_reads_per_second']:,}; refresh-on-miss "
                f"{row['refresh_on_miss']['reads_per_second_mean']:.0f}",
                floor=f"budget {f['budget_per_second']:.0f}/s; quota {f['quota_per_second']:.0f}/s",
                ok=ours["reads_per_second_mean"] <= f["budget_per_second"]
                and ours["throttled_in_steady_state"] == 0,
            )
        )
    return rows


ROWS = {
    "spray": _spray_rows,
    "authorizer": _authorizer_rows,
    "naive": _naive_rows,
    "load": _load_rows,
    "faults": _faults_rows,
    "rotation": _rotation_rows,
    "modes": _modes_rows,
}
COLUMNS = (
    ("area", "area"),
    ("figure", "figure"),
    ("baseline", "blog / public samples (same run)"),
    ("ours", "originlock"),
    ("floor_or_target", "floor / formula / target"),
    ("verdict", ""),
)


def combined_table(rows: list[Row]) -> Any:
    from rich.table import Table

    view = Table(title="originlock benchmarks (make bench): every figure, same run, this machine")
    for key, title in COLUMNS:
        view.add_column(title, justify="left" if key in ("area", "figure") else "right")
    for row in rows:
        verdict = row["verdict"]
        styled = {"pass": "[green]pass[/green]", "MISS": "[red]MISS[/red]"}.get(verdict, "")
        view.add_row(*(row[key] for key, _ in COLUMNS[:-1]), styled)
    return view


def markdown(rows: list[Row]) -> str:
    lines = [
        "| " + " | ".join(title or "verdict" for _, title in COLUMNS) + " |",
        "|" + "---|" * len(COLUMNS),
    ]
    for row in rows:
        cells = [str(row[key]).replace("|", "\\|") for key, _ in COLUMNS]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    from rich.console import Console

    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--only", nargs="+", choices=SCENARIOS, help="run only these")
    parser.add_argument(
        "--no-reference",
        action="store_true",
        help="skip the baseline's own bench script (a cross-check of the authorizer harness)",
    )
    args = parser.parse_args(argv)
    selected = [name for name in SCENARIOS if not args.only or name in args.only]
    console = Console(width=200)
    began = time.monotonic()
    figures: dict[str, Any] = {}
    for name in selected:
        started = time.monotonic()
        if name == "authorizer":
            result = authorizer.run(reference=not args.no_reference)
            authorizer.print_table(result)
        elif name == "modes":
            from bench import modes

            _say("bench: header mode and edge-signed mode, a sandbox each ...")
            result = modes.run_scenario()
            console.print(modes.table(result))
        elif name == "spray":
            from bench import spray

            _say("bench: a spray at whole authorizer fleets (simulated) ...")
            result = spray.run_scenario()
            console.print(spray.table(result))
        else:
            result = _sandbox_scenario(name)()
            console.print(_detail(name, result))
        result["scenario_seconds"] = round(time.monotonic() - started, 1)
        write_result(name, result)
        figures[name] = result
    rows = [row for name in selected for row in ROWS[name](figures[name])]
    console.print(combined_table(rows))
    missed = sorted(
        f"{name}.{target}"
        for name, result in figures.items()
        for target, ok in result.get("targets", {}).items()
        if not ok
    )
    missed += [f"{name}.pass" for name, result in figures.items() if not result.get("pass")]
    summary: dict[str, Any] = {
        "bench": "all",
        "date": time.strftime("%Y-%m-%d", time.gmtime()),
        "machine": machine(),
        "seconds": round(time.monotonic() - began, 1),
        "table": rows,
        "missed": sorted(set(missed)),
        "pass": not missed,
        "figures": figures,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "table.md").write_text(markdown(rows))
    write_result("bench", summary)
    if missed:
        _say(f"bench: targets missed: {', '.join(sorted(set(missed)))}")
    print(json.dumps(summary, sort_keys=True, default=str), flush=True)
    return 0 if not missed else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
