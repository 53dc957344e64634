"""The demo's report judges the blog's test exactly: no header 401, a guessed value 403,
CloudFront 200; anything else is a broken invariant (and ``originlock demo`` exits 1). In
edge-signed mode it also judges the leaked header value against its bound.

An in-memory scenario: the records and counters ``build_report`` reads, no sandbox.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, cast

import pytest

from originlock.demo import (
    LEAK_PHASE,
    LEAKED_HEADER,
    NO_HEADER,
    PREEMPT_PHASE,
    REPLAY,
    REPLAY_PREEMPT,
    REVOKE_PHASE,
    Scenario,
    build_report,
)
from originlock.observe import LEGIT, Phase
from originlock.traffic import Sent

GOOD_BLOG = {"api_without_header": 401, "api_with_a_guessed_value": 403, "cloudfront": 200}


@dataclass
class FakeTimings:
    deploy_window: tuple[float, float] = (1.0, 3.0)
    authorizer_ttl: float = 2.0
    token_cache_max_age: float = 3.0
    token_refresh_interval: float = 0.5
    ssm_quota: float = 40.0
    edge_window: int = 10
    edge_tolerance: int = 1
    kvs_propagation: tuple[float, float] = (0.3, 1.5)
    edge_propagation_wait: float = 2.0

    def leaked_header_bound(self) -> float:
        return (self.edge_tolerance + 1) * self.edge_window + self.authorizer_ttl

    def revoke_bound(self, preempting: bool = False) -> float:
        return 13.0 if preempting else 11.0


@dataclass
class FakeQuota:
    throttled: int = 0

    def peak(self) -> int:
        return 3


@dataclass
class FakeOutcome:
    """The preempted rotation, as ``operations.outcome`` returns it."""

    name: str = "manual-rotate-1"
    status: str = "ABORTED"
    cause: str = "preempted by revoke all (execution manual-revoke-all-1)"


@dataclass
class FakeApi:
    cache_hits: int = 5


@dataclass
class FakeLambdas:
    instances_created: dict[str, int] = field(default_factory=lambda: {"authorizer": 2})


@dataclass
class FakeSandbox:
    timings: FakeTimings = field(default_factory=FakeTimings)
    api: FakeApi = field(default_factory=FakeApi)
    lambdas: FakeLambdas = field(default_factory=FakeLambdas)
    edge_urls: tuple[str, ...] = ("http://127.0.0.1:1/", "http://127.0.0.1:2/")
    authorizer_function: str = "authorizer"
    authorizer_invocations: int = 10
    ssm_reads: int = 4
    ssm_quota: FakeQuota = field(default_factory=FakeQuota)
    edge_signed: bool = False
    lock_mode: str = "header"

    def latency_ms(self) -> dict[str, Any]:
        return {"p50_ms": 0.5, "p99_ms": 2.0, "cold_starts": 1, "cold_p50_ms": 40.0}


@dataclass
class FakeTraffic:
    records: list[Sent]

    def snapshot(self) -> list[Sent]:
        return list(self.records)


@dataclass
class FakeScenario:
    """What ``build_report`` reads from a played :class:`Scenario`."""

    blog: dict[str, int]
    sandbox: FakeSandbox = field(default_factory=FakeSandbox)
    traffic: FakeTraffic = field(
        default_factory=lambda: FakeTraffic(
            [
                Sent(LEGIT, 0, 0.5, 0.6, 200),
                Sent(NO_HEADER, 0, 0.5, 0.6, 401),
                Sent(REPLAY, 0, 10.5, 10.6, 200),  # before R (revoke started at 10)
                Sent(REPLAY, 0, 12.0, 12.1, 403),
                Sent(REPLAY_PREEMPT, 0, 30.5, 30.6, 200),  # before R (requested at 30)
                Sent(REPLAY_PREEMPT, 0, 33.0, 33.1, 403),
            ]
        )
    )
    phases: list[Phase] = field(
        default_factory=lambda: [
            Phase("steady", 0.0, 10.0),
            Phase(REVOKE_PHASE, 10.0, 25.0),
            Phase(PREEMPT_PHASE, 30.0, 45.0),
        ]
    )
    runs: list[Any] = field(default_factory=list)
    revoke_started: float = 10.0
    revoke_ended: float = 14.0
    preempt_started: float = 30.0
    preempt_ended: float = 34.0
    preempted: Any = field(default_factory=FakeOutcome)
    key_ids: dict[str, str | None] = field(default_factory=dict)
    leak_window_start: float = 50.0
    leak_captured: float = 52.0


def report_of(blog: dict[str, int]) -> dict[str, Any]:
    return build_report(cast(Scenario, FakeScenario(blog)))


def test_demo_report_blog_test_as_api_gateway_answers_is_ok() -> None:
    report = report_of(GOOD_BLOG)

    assert report["ok"], report["broken"]
    assert report["blog_test"] == GOOD_BLOG


def test_demo_report_counts_each_phases_replays_in_its_row() -> None:
    report = report_of(GOOD_BLOG)

    rows = {row["phase"]: row for row in report["phases"]}
    assert (rows[REVOKE_PHASE]["replayed"], rows[REVOKE_PHASE]["replay_accepted"]) == (2, 1)
    # the value revoked during a rotation, replayed: its own row, not "0 replayed"
    assert (rows[PREEMPT_PHASE]["replayed"], rows[PREEMPT_PHASE]["replay_accepted"]) == (2, 1)


@pytest.mark.parametrize(
    ("check", "status"),
    [
        ("api_without_header", 403),  # the authorizer was invoked: no identity source set
        ("api_without_header", 200),
        ("api_with_a_guessed_value", 401),
        ("api_with_a_guessed_value", 200),  # a guessed value let in
        ("cloudfront", 403),
        ("cloudfront", 502),
    ],
)
def test_demo_report_blog_test_any_other_status_is_broken(check: str, status: int) -> None:
    report = report_of({**GOOD_BLOG, check: status})

    assert not report["ok"]
    [broken] = report["broken"]
    assert broken.startswith("the blog's test did not pass")
    assert f"{check} answered {status}" in broken


def test_demo_report_blog_test_not_run_is_broken() -> None:
    report = report_of({})

    assert not report["ok"]
    assert report["broken"][0].startswith("the blog's test did not pass")


EDGE_BLOG = {**GOOD_BLOG, "api_with_a_forged_token": 403}


def edge_report(*replays: tuple[float, int]) -> dict[str, Any]:
    """An edge-signed run whose leaked header value (window start 50, bound 22 s) got these
    (moment, status) answers."""
    scenario = FakeScenario(
        EDGE_BLOG, sandbox=FakeSandbox(edge_signed=True, lock_mode="edge-signed")
    )
    scenario.traffic.records += [
        Sent(LEAKED_HEADER, 0, at, at + 0.1, status) for at, status in replays
    ]
    scenario.phases.append(Phase(LEAK_PHASE, 50.0, 75.0))
    scenario.key_ids = {"current": "1a2b3c4d"}
    return build_report(cast(Scenario, scenario))


def test_demo_report_edge_signed_leaked_header_within_its_bound_is_ok() -> None:
    report = edge_report((53.0, 200), (69.0, 200), (70.5, 403), (71.0, 403))

    assert report["ok"], report["broken"]
    assert report["lock_mode"] == "edge-signed"
    assert report["key_ids"] == {"current": "1a2b3c4d"}
    leak = report["leaked_header"]
    assert leak["stated_bound_s"] == 22.0
    assert leak["lived_s"] == pytest.approx(19.1)
    assert leak["lived_after_capture_s"] == pytest.approx(17.1)
    assert (leak["accepted"], leak["refused"], leak["accepted_after_bound"]) == (2, 2, 0)
    # the leak phase's replays are counted in its row
    [row] = [phase for phase in report["phases"] if phase["phase"] == LEAK_PHASE]
    assert (row["replayed"], row["replay_accepted"]) == (4, 2)


@pytest.mark.parametrize(
    ("replays", "broken"),
    [
        (((53.0, 200), (73.0, 200), (74.0, 403)), "accepted 1 times after its bound"),
        (((53.0, 200), (60.0, 200)), "never refused"),
        ((), "never replayed"),
    ],
)
def test_demo_report_edge_signed_leaked_header_beyond_its_bound_is_broken(
    replays: tuple[tuple[float, int], ...], broken: str
) -> None:
    report = edge_report(*replays)

    assert not report["ok"]
    assert any(broken in item for item in report["broken"]), report["broken"]


def test_demo_report_edge_signed_needs_the_forged_token_refused() -> None:
    scenario = FakeScenario(
        {**EDGE_BLOG, "api_with_a_forged_token": 200},
        sandbox=FakeSandbox(edge_signed=True, lock_mode="edge-signed"),
    )
    scenario.traffic.records.append(Sent(LEAKED_HEADER, 0, 53.0, 53.1, 403))

    report = build_report(cast(Scenario, scenario))

    assert "api_with_a_forged_token answered 200" in report["broken"][0]
