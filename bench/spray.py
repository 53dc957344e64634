"""A spray of random header values at a whole authorizer fleet: SSM reads per second.

Anyone can send random header values straight at the ``execute-api`` URL (WAF does not cover
it); at full concurrency every instance of the authorizer fleet is busy with them. SSM's
GetParameter quota (40/s by default) is shared by every caller in the account and region, so
what the fleet reads under that traffic is everyone's problem.

The sandbox cannot host a thousand Lambda instances, so this is a simulation on a clock the
bench moves: N instances of the real ``authorizer.cache.AcceptedSetCache``, each receiving
sprayed values (and the real value now and then) for fifteen simulated minutes, reading
through one token bucket that stands for the account's quota. Instances start spread over
ten seconds (Lambda adds at most 1,000 execution environments per 10 s to a function).
Figures per fleet size (50, 200, 1,000):

* **ours, budgeted**: the max age the CDK app derives from the budget (``originlock/budget.py``:
  10 reads/s by default) for that fleet: reads per second, peak and mean, after the first
  cycle;
* **ours, max age 60 s**: the same cache with the configured max age, not derived — what the
  budget buys at 1,000 instances;
* **refresh-on-miss (the previous design)**: an instance re-reads on an unknown value at most
  once per refresh interval (1 s): N reads per second under a spray;
* **the blog's design**: one read per request (computed: every request is a read).

Each figure is checked against the budget and the quota; the bench also checks that no
sprayed value ever got a decision other than a certain Deny (no invocation failed) while the
store answered.
"""

from __future__ import annotations

import random
import sys
from dataclasses import dataclass
from typing import Any

from authorizer.cache import AcceptedSetCache, Decision
from bench.common import machine, write_result
from originlock.budget import JITTER, fleet_reads_per_second, max_age_for_budget
from tokens.document import TokenDocument, generate_token
from tokens.store import StoreError

FLEETS = (50, 200, 1000)
BUDGET = 10.0  # reads per second: CONTEXT_DEFAULTS' ssmReadBudgetPerSecond
QUOTA = 40.0  # SSM's default GetParameter quota per account and region
CONFIGURED_MAX_AGE = 60
REFRESH = 1.0
SECONDS = 900
# Sprayed requests per instance per simulated second (more changes nothing: no read depends
# on traffic); the real value every tenth request.
REQUESTS_PER_SECOND = 4
SCALE_UP_SECONDS = 10.0


class Bucket:
    """The account's GetParameter quota: a token bucket on the simulated clock."""

    def __init__(self, rate: float, clock: Any) -> None:
        self.rate, self.clock = rate, clock
        self.tokens = rate
        self.at = clock()
        self.per_second: dict[int, int] = {}
        self.throttled_per_second: dict[int, int] = {}

    def take(self) -> bool:
        now = self.clock()
        self.tokens = min(self.rate, self.tokens + (now - self.at) * self.rate)
        self.at = now
        self.per_second[int(now)] = self.per_second.get(int(now), 0) + 1
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        second = int(now)
        self.throttled_per_second[second] = self.throttled_per_second.get(second, 0) + 1
        return False


class Reader:
    def __init__(self, bucket: Bucket, document: str) -> None:
        self.bucket, self.document = bucket, document

    def read(self) -> str:
        if not self.bucket.take():
            raise StoreError("ThrottlingException")
        return self.document


class RefreshOnMiss(AcceptedSetCache):
    """The previous design: an unknown value makes the instance read again, at most once per
    refresh interval (for the comparison only)."""

    def decide(self, presented: bytes, deadline: float | None = None) -> Decision:
        decision = super().decide(presented, deadline)
        now = self._clock()
        if not decision.allowed and (self.last_attempt is None or now - self.last_attempt >= 1):
            self._refresh(now, deadline)
            decision = super().decide(presented, deadline)
        return decision


@dataclass
class Fleet:
    # After the first two refresh cycles (the scale-up's burst settled): steady state.
    reads_per_second_mean: float
    reads_per_second_peak: int
    throttled_in_steady_state: int
    # The fleet's first reads: one per new instance, throttled beyond the quota and retried.
    first_cycle_reads: int
    first_cycle_throttled: int
    undecided_sprays: int


def simulate(
    instances: int, max_age: float, cache: type[AcceptedSetCache], seconds: int = SECONDS
) -> Fleet:
    now = [0.0]

    def clock() -> float:
        return now[0]

    rng = random.Random(instances)
    current = generate_token()
    document = TokenDocument(current=current).evolve().to_json()
    bucket = Bucket(QUOTA, clock)
    fleet = [
        cache(
            Reader(bucket, document),
            clock,
            max_age=max_age,
            retry_interval=REFRESH,
            max_staleness=900,
            jitter=rng.random,
        )
        for _ in range(instances)
    ]
    starts = [rng.uniform(0, SCALE_UP_SECONDS) for _ in fleet]
    sprayed = generate_token().encode()
    real = current.encode()
    undecided = 0
    step = 1 / REQUESTS_PER_SECOND
    ticks = int(seconds * REQUESTS_PER_SECOND)
    for tick in range(ticks):
        base = tick * step
        for index, instance in enumerate(fleet):
            if base < starts[index]:
                continue  # not started yet
            now[0] = base + (starts[index] % step)
            presented = real if (tick + index) % 10 == 0 else sprayed
            decision = instance.decide(presented)
            if presented is sprayed and not decision.certain and not instance.last_attempt_failed:
                undecided += 1
    # After the first cycle (the fleet's first reads, a scale-up's burst): steady state.
    settled = 0 if cache is RefreshOnMiss else int(2 * max_age)
    steady = {s: n for s, n in bucket.per_second.items() if s >= settled}
    first = {s: n for s, n in bucket.per_second.items() if s < max_age}
    length = max(1, seconds - settled)
    return Fleet(
        reads_per_second_mean=round(sum(steady.values()) / length, 2),
        reads_per_second_peak=max(steady.values(), default=0),
        throttled_in_steady_state=sum(
            n for s, n in bucket.throttled_per_second.items() if s >= settled
        ),
        first_cycle_reads=sum(first.values()),
        first_cycle_throttled=sum(n for s, n in bucket.throttled_per_second.items() if s < max_age),
        undecided_sprays=undecided,
    )


def run_scenario() -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    for instances in FLEETS:
        budgeted = max_age_for_budget(CONFIGURED_MAX_AGE, instances, BUDGET)
        ours = simulate(instances, budgeted, AcceptedSetCache)
        fixed = simulate(instances, CONFIGURED_MAX_AGE, AcceptedSetCache)
        # The previous design reads once per refresh interval per instance under a spray
        # (each instance sees an unknown value every interval): simulated on a shorter run.
        previous = simulate(instances, CONFIGURED_MAX_AGE, RefreshOnMiss, seconds=30)
        rows.append(
            {
                "instances": instances,
                "budgeted_max_age_s": budgeted,
                "ours_budgeted": ours.__dict__,
                "ours_budgeted_bound": round(fleet_reads_per_second(instances, budgeted), 2),
                "ours_max_age_60": fixed.__dict__,
                "refresh_on_miss": previous.__dict__,
                "blog_reads_per_second": instances * REQUESTS_PER_SECOND,
            }
        )
    report: dict[str, Any] = {
        "bench": "spray",
        "budget_per_second": BUDGET,
        "quota_per_second": QUOTA,
        "jitter": JITTER,
        "simulated_seconds": SECONDS,
        "requests_per_instance_per_second": REQUESTS_PER_SECOND,
        "rows": rows,
    }
    report["targets"] = {
        "budgeted_fleet_within_budget": all(
            r["ours_budgeted"]["reads_per_second_mean"] <= BUDGET for r in rows
        ),
        "budgeted_fleet_never_throttled_in_steady_state": all(
            r["ours_budgeted"]["throttled_in_steady_state"] == 0
            and r["ours_budgeted"]["reads_per_second_peak"] < QUOTA
            for r in rows
        ),
        "every_spray_certainly_denied": all(
            r["ours_budgeted"]["undecided_sprays"] == 0 for r in rows
        ),
    }
    report["pass"] = all(report["targets"].values())
    return report


def table(report: dict[str, Any]) -> Any:
    from rich.table import Table

    view = Table(
        title=(
            "SSM reads per second under a spray, whole fleet "
            f"(budget {report['budget_per_second']:.0f}/s, "
            f"quota {report['quota_per_second']:.0f}/s)"
        )
    )
    for column in (
        "instances",
        "ours: max age (s)",
        "ours: mean / peak",
        "bound",
        "ours: first reads (throttled)",
        "max age 60 s: mean / peak",
        "refresh-on-miss",
        "blog (1 per request)",
    ):
        view.add_column(column, justify="right")
    for row in report["rows"]:
        ours, fixed = row["ours_budgeted"], row["ours_max_age_60"]
        view.add_row(
            str(row["instances"]),
            str(row["budgeted_max_age_s"]),
            f"{ours['reads_per_second_mean']:.1f} / {ours['reads_per_second_peak']}",
            f"{row['ours_budgeted_bound']:.1f}",
            f"{ours['first_cycle_reads']} ({ours['first_cycle_throttled']})",
            f"{fixed['reads_per_second_mean']:.1f} / {fixed['reads_per_second_peak']}",
            f"{row['refresh_on_miss']['reads_per_second_mean']:.0f}",
            f"{row['blog_reads_per_second']:,}",
        )
    return view


def main() -> int:
    from rich.console import Console

    report = run_scenario()
    report["machine"] = machine()
    Console(width=160).print(table(report))
    print(write_result("spray", report), flush=True)
    return 0 if report["pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
