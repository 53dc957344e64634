"""Load: 500+ requests per second through the sandbox's CloudFront edges across a whole
rotation, on loopback, and not one legitimate request refused.

A load generator in a child process (:class:`originlock.traffic.TrafficProcess`: paced
clients in threads, keep-alive connections, so it does not share the sandbox's GIL) offers
``OFFERED`` requests per second, spread over every edge. The authorizer is prewarmed with
more instances than there are clients (as provisioned concurrency would: in one process,
concurrent cold starts are serialised by the GIL). After a warm-up, a rotation runs through
the real state machine; the load continues until it has ended. Figures:

* what the edges carried during the rotation (requests started in the rotation's window /
  its duration) against the 500/s target, and what the local API Gateway answered;
* legitimate requests refused during the whole run (target: 0);
* end-to-end latency seen by the clients;
* the authorizer's invocations (API Gateway's cache answers most requests): wall time per
  invocation, which includes waiting for the GIL and the SSM reads of the refreshes, and the
  invoking thread's CPU time, which is the decision's own cost;
* SSM reads during the rotation against their floor (one read per instance per cache period,
  plus one refresh-on-miss per instance for the staged value);
* what the sandbox carries when driven closed-loop (every client sends as soon as it has an
  answer) for a few seconds: its capacity on this machine.

On two cores, with the sandbox, moto and the functions in one Python process, a request costs
the sandbox about 0.7 ms of CPU (waitress's parsing at the edge, the edge's origin request,
API Gateway's cache lookup): it carries about 1,400 requests per second closed loop here, and
800 per second through a whole rotation (which takes about as long as idle).
"""

from __future__ import annotations

import math
import sys
import time
from typing import Any

from bench.common import machine, ms, write_result
from originlock.observe import LEGIT, Observer
from originlock.sandbox import Sandbox
from originlock.sandbox.sandbox import percentile
from originlock.traffic import ClientPlan, Sent, Traffic, TrafficProcess, rejected, within

TARGET_RPS = 500.0
OFFERED_RPS = 800.0
CLIENTS = 8
WARMUP = 2.0
TAIL = 1.0
CAPACITY_SECONDS = 3.0


def _plans(sb: Sandbox, clients: int, offered: float | None) -> list[ClientPlan]:
    urls = [f"{url}/orders" for url in sb.edge_urls]
    interval = clients / offered if offered else 0.0
    return [
        ClientPlan(LEGIT, index, urls[index % len(urls)], interval, paced=bool(offered))
        for index in range(clients)
    ]


def _latency(records: list[Sent]) -> dict[str, float | None]:
    seconds = [r.ended - r.started for r in records]
    return {
        "p50_ms": ms(percentile(seconds, 0.50), 1),
        "p99_ms": ms(percentile(seconds, 0.99), 1),
    }


def capacity(sb: Sandbox, clients: int = CLIENTS, seconds: float = CAPACITY_SECONDS) -> float:
    """Requests per second the edges carry closed-loop (no pacing) for *seconds*."""
    process = TrafficProcess(_plans(sb, clients, None), time_limit=seconds + 30)
    process.start()
    time.sleep(seconds)
    records = process.stop()
    if not records:
        return 0.0
    span = max(r.ended for r in records) - min(r.started for r in records)
    return round(len(records) / span, 1) if span > 0 else 0.0


def run_scenario(
    sb: Sandbox,
    *,
    offered: float = OFFERED_RPS,
    clients: int = CLIENTS,
    warmup: float = WARMUP,
    tail: float = TAIL,
    measure_capacity: bool = True,
) -> dict[str, Any]:
    """Offer *offered* requests per second through every edge while one rotation runs."""
    api, lambdas = sb.api, sb.lambdas
    assert api is not None and lambdas is not None
    began = time.monotonic()
    instances = sb.prewarm_authorizer(clients + 4)
    cold_before = len(api.cold_latencies)
    # Followed every second, as the CLI follows a rotation on AWS every 2 s: on two cores,
    # the demo's 4 polls a second (each a DescribeExecution and the whole history) cost
    # the sandbox a fifth of a core, a third of what it has left for requests.
    observer = Observer(sb, Traffic(max_requests=0), execution_timeout=180.0, watch_interval=1.0)
    process = TrafficProcess(_plans(sb, clients, offered), time_limit=240.0)
    process.start()
    try:
        time.sleep(warmup)
        answered, reads = sum(api.responses.values()), sb.ssm_reads
        latencies, cpu, invocations = len(api.latencies), len(api.cpu_latencies), api.invocations
        run = observer.run("rotation under load", observer.start_rotation)
        answered = sum(api.responses.values()) - answered
        reads = sb.ssm_reads - reads
        wall = list(api.latencies)[latencies:]
        cpu_times = list(api.cpu_latencies)[cpu:]
        invoked = api.invocations - invocations
        time.sleep(tail)
    finally:
        records = process.stop()
    window = run.ended - run.started
    during = within(records, run.started, run.ended)
    refused = rejected(records)
    warm_instances = lambdas.warm_instances(sb.authorizer_function)
    periods = math.ceil(window / sb.timings.token_cache_max_age)
    # A read per instance per cache period, and one refresh-on-miss per instance for the
    # staged value; an instance that served no request in a period reads nothing then.
    reads_floor = warm_instances * (periods + 1)
    report: dict[str, Any] = {
        "bench": "load",
        "edges": len(sb.edge_urls),
        "clients": clients,
        "offered_rps": offered,
        "target_rps": TARGET_RPS,
        "rotation": {
            "status": run.outcome.status,
            "seconds": round(window, 1),
            "state_transitions": run.state_transitions,
            "lambda_invocations": run.lambda_invocations,
        },
        "requests": len(records),
        "requests_during_rotation": len(during),
        "edge_rps_during_rotation": round(len(during) / window, 1) if window else 0.0,
        "api_answered_rps_during_rotation": round(answered / window, 1) if window else 0.0,
        "legit_rejected": len(refused),
        "rejected_statuses": sorted({r.status for r in refused}),
        "latency_end_to_end": _latency(during),
        "authorizer": {
            "invocations_during_rotation": invoked,
            "api_gateway_cache_answered": round(1 - invoked / max(answered, 1), 4),
            "wall_p50_ms": ms(percentile(wall, 0.50), 3),
            "wall_p99_ms": ms(percentile(wall, 0.99), 3),
            "cpu_p50_ms": ms(percentile(cpu_times, 0.50), 3),
            "cpu_p99_ms": ms(percentile(cpu_times, 0.99), 3),
            "instances_prewarmed": instances,
            "warm_instances": warm_instances,
            "cold_starts_during_run": len(api.cold_latencies) - cold_before,
        },
        "ssm": {
            "reads_during_rotation": reads,
            "reads_floor": reads_floor,
            "cache_max_age_s": sb.timings.token_cache_max_age,
        },
    }
    if measure_capacity:
        report["capacity_closed_loop_rps"] = capacity(sb, clients)
    report["seconds"] = round(time.monotonic() - began, 1)
    report["targets"] = {
        "edge_rps_at_least_500": report["edge_rps_during_rotation"] >= TARGET_RPS,
        "zero_legit_rejected": report["legit_rejected"] == 0 and bool(records),
        "rotation_succeeded": run.outcome.succeeded,
    }
    report["pass"] = all(report["targets"].values())
    return report


def table(report: dict[str, Any]) -> Any:
    from rich.table import Table

    auth, ssm = report["authorizer"], report["ssm"]
    view = Table(
        title=f"Load through {report['edges']} edges during a rotation "
        f"({report['clients']} paced clients in a child process, "
        f"{report['offered_rps']:.0f}/s offered)"
    )
    view.add_column("figure")
    view.add_column("measured", justify="right")
    view.add_column("target / floor", justify="right")
    view.add_row(
        "edges: requests/s during the rotation",
        f"{report['edge_rps_during_rotation']:.0f}",
        f">= {report['target_rps']:.0f}",
    )
    view.add_row(
        "local API Gateway: answers/s during the rotation",
        f"{report['api_answered_rps_during_rotation']:.0f}",
        "",
    )
    view.add_row(
        "legitimate requests refused (whole run)",
        f"{report['legit_rejected']} of {report['requests']}",
        "0",
    )
    view.add_row(
        "rotation under load",
        f"{report['rotation']['status']} in {report['rotation']['seconds']:.1f} s",
        "",
    )
    latency = report["latency_end_to_end"]
    view.add_row("end-to-end p50 / p99 (ms)", f"{latency['p50_ms']} / {latency['p99_ms']}", "")
    view.add_row(
        "authorizer invocations (API Gateway cache answered the rest)",
        f"{auth['invocations_during_rotation']} ({auth['api_gateway_cache_answered']:.1%} cached)",
        "",
    )
    view.add_row(
        "authorizer p50 / p99, wall (ms; GIL waits, SSM refreshes)",
        f"{auth['wall_p50_ms']} / {auth['wall_p99_ms']}",
        "",
    )
    view.add_row(
        "authorizer p50 / p99, CPU of the invoking thread (ms)",
        f"{auth['cpu_p50_ms']} / {auth['cpu_p99_ms']}",
        "",
    )
    view.add_row(
        "SSM reads during the rotation",
        str(ssm["reads_during_rotation"]),
        f"floor {ssm['reads_floor']} ({auth['warm_instances']} instances)",
    )
    if "capacity_closed_loop_rps" in report:
        view.add_row(
            "sandbox capacity, closed loop (requests/s)",
            f"{report['capacity_closed_loop_rps']:.0f}",
            "",
        )
    return view


def main() -> int:
    from rich.console import Console

    with Sandbox(edges=4, seed=5, stack=False) as sb:
        report = run_scenario(sb)
    report["machine"] = machine()
    Console(width=140).print(table(report))
    line = write_result("load", report)
    print(line, flush=True)
    return 0 if report["pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
