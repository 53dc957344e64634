"""Side by side: the public samples' rotation orders against ours, same sandbox, same traffic.

A benchmark scenario, not product code. In one sandbox (4 edges, each switching at its own
moment 1 to 5 s after an update; authorizer copies trusted 1 s; API Gateway caching results
1 s: AWS's minutes and the cache's 60 s / 300 s compressed to keep their ratio), with one
client per edge sending a request every 20 ms throughout, three rotations run one after the
other:

(a) **naive**: switch CloudFront, then at once make the new value the only one accepted
    (``UpdateDistribution``, then ``PutParameter``), driving SSM and CloudFront directly with
    boto3 against the sandbox's moto endpoint;
(b) **drop without Deployed**: stage the new value next to the old one, switch CloudFront,
    wait a fixed ``FIXED_WAIT`` seconds (shorter than the deploy window, as a fixed wait of
    minutes is shorter than CloudFront's 5 to 20), then make the new value the only one;
(c) **originlock**: the real state machine (``statemachine/rotation.asl.json``).

Each is counted from its start until CloudFront reports ``Deployed`` and every cache that could
still refuse a request has expired. Edges that have not switched yet keep sending the old
value: (a) and (b) refuse them once the authorizer's copy and API Gateway's cache expire.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

from bench.common import machine, write_result
from originlock.document import TokenDocument
from originlock.observe import LEGIT, Observer
from originlock.sandbox import Sandbox, SandboxTimings
from originlock.traffic import Traffic, rejected

NAIVE_TIMINGS = SandboxTimings(
    deploy_window=(1.0, 5.0),
    authorizer_ttl=1.0,
    token_cache_max_age=1.0,
    token_refresh_interval=0.25,
    margin=0.25,
    poll_interval=1.0,
    drain=1.0,
)
FIXED_WAIT = 2.0
LEGIT_INTERVAL = 0.02
SCENARIOS = ("naive: switch, then only the new value", "drop the old value before Deployed")
OURS = "originlock"


def _document(sb: Sandbox) -> TokenDocument:
    value = sb.client("ssm").get_parameter(Name=sb.parameter_name, WithDecryption=True)
    return TokenDocument.parse(value["Parameter"]["Value"])


def _write(sb: Sandbox, document: TokenDocument) -> None:
    sb.client("ssm").put_parameter(
        Name=sb.parameter_name, Value=document.to_json(), Type="SecureString", Overwrite=True
    )


def _switch(sb: Sandbox, value: str) -> None:
    """``UpdateDistribution`` with only the origin header's value changed."""
    cloudfront = sb.client("cloudfront")
    response = cloudfront.get_distribution_config(Id=sb.distribution_id)
    config = response["DistributionConfig"]
    for origin in config["Origins"]["Items"]:
        for header in (origin.get("CustomHeaders") or {}).get("Items", []):
            if header["HeaderName"].lower() == sb.header_name:
                header["HeaderValue"] = value
    cloudfront.update_distribution(
        Id=sb.distribution_id, IfMatch=response["ETag"], DistributionConfig=config
    )


def _wait_deployed(sb: Sandbox, timeout: float = 60.0) -> None:
    cloudfront = sb.client("cloudfront")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cloudfront.get_distribution(Id=sb.distribution_id)["Distribution"]["Status"] == (
            "Deployed"
        ):
            return
        time.sleep(0.1)
    raise TimeoutError("CloudFront did not report Deployed")


def naive(sb: Sandbox) -> None:
    from tokens.document import generate_token

    new = generate_token()
    _switch(sb, new)
    _write(sb, _document(sb).evolve(current=new, previous=None, pending=None))


def drop_before_deployed(sb: Sandbox) -> None:
    from tokens.document import generate_token

    new = generate_token()
    _write(sb, _document(sb).evolve(pending=new))
    _switch(sb, new)
    time.sleep(FIXED_WAIT)
    _write(sb, _document(sb).evolve(current=new, previous=None, pending=None))


def run_scenario(sb: Sandbox, say: Callable[[str], None] = lambda _text: None) -> dict[str, Any]:
    began = time.monotonic()
    timings = sb.timings
    # Every cache that could still answer for a value after CloudFront is Deployed.
    settle = timings.token_cache_max_age + timings.authorizer_ttl + 1.0
    traffic = Traffic(max_requests=50_000, time_limit=300.0)
    observer = Observer(sb, traffic, execution_timeout=120.0)
    for index, url in enumerate(sb.edge_urls):
        traffic.start(LEGIT, index, f"{url}/orders", LEGIT_INTERVAL)
    rows: list[dict[str, Any]] = []
    try:
        time.sleep(1.0)
        for name, rotate in zip(SCENARIOS, (naive, drop_before_deployed), strict=True):
            say(f"bench: naive comparison: {name} ...")
            observer.phase(name)
            rotate(sb)
            _wait_deployed(sb)
            time.sleep(settle)
            rows.append(_row(observer, name, _document(sb).pending is None))
        say("bench: naive comparison: originlock ...")
        observer.phase(OURS)
        run = observer.run(OURS, observer.start_rotation)
        time.sleep(settle)
        rows.append(_row(observer, OURS, run.outcome.succeeded))
    finally:
        traffic.stop()
    ours = rows[-1]
    report: dict[str, Any] = {
        "bench": "naive",
        "edges": len(sb.edge_urls),
        "deploy_window_s": list(timings.deploy_window),
        "token_cache_max_age_s": timings.token_cache_max_age,
        "authorizer_ttl_s": timings.authorizer_ttl,
        "fixed_wait_s": FIXED_WAIT,
        "rows": rows,
        "seconds": round(time.monotonic() - began, 1),
    }
    report["targets"] = {
        "ours_loses_nothing": ours["legit_lost"] == 0 and ours["completed"],
        # Otherwise this setup shows nothing: the naive orders must lose requests here.
        "naive_orders_lose_requests": all(row["legit_lost"] > 0 for row in rows[:-1]),
    }
    report["pass"] = all(report["targets"].values())
    return report


def _row(observer: Observer, name: str, completed: bool) -> dict[str, Any]:
    phase = observer.phases[-1]
    observer.phase("")
    legit = observer.records(phase, LEGIT)
    lost = rejected(legit)
    return {
        "protocol": name,
        "completed": completed,
        "seconds": round(phase.end - phase.start, 1),
        "legit_requests": len(legit),
        "legit_lost": len(lost),
        "lost_share": round(len(lost) / len(legit), 4) if legit else 0.0,
        "refused_from_s": round(min(r.started for r in lost) - phase.start, 2) if lost else None,
        "refused_until_s": round(max(r.ended for r in lost) - phase.start, 2) if lost else None,
        "statuses": sorted({r.status for r in lost}),
    }


def table(report: dict[str, Any]) -> Any:
    from rich.table import Table

    low, high = report["deploy_window_s"]
    view = Table(
        title=f"Rotation protocols, same sandbox and traffic ({report['edges']} edges switching "
        f"{low:.0f}-{high:.0f} s after an update; caches {report['token_cache_max_age_s']:.0f} s "
        f"+ {report['authorizer_ttl_s']:.0f} s)"
    )
    for column in ("protocol", "legit requests", "legit lost", "lost share", "refused between"):
        view.add_column(column, justify="left" if column == "protocol" else "right")
    for row in report["rows"]:
        window = (
            f"{row['refused_from_s']:.1f}-{row['refused_until_s']:.1f} s"
            if row["legit_lost"]
            else "-"
        )
        view.add_row(
            row["protocol"],
            str(row["legit_requests"]),
            str(row["legit_lost"]),
            f"{row['lost_share']:.1%}",
            window,
        )
    return view


def main() -> int:
    from rich.console import Console

    with Sandbox(edges=4, timings=NAIVE_TIMINGS, seed=21, stack=False) as sb:
        report = run_scenario(sb, say=lambda text: print(text, file=sys.stderr))
    report["machine"] = machine()
    Console(width=140).print(table(report))
    print(write_result("naive", report), flush=True)
    return 0 if report["pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
