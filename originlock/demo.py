"""``make demo``: the whole product under traffic, offline, in well under 90 seconds.

1. Start the sandbox and run the blog's test: the API URL refuses a request, a CloudFront
   edge serves it.
2. Drive steady legitimate traffic through every edge, and attackers straight at the API:
   no header, and random values.
3. Run a scheduled rotation (the input EventBridge Scheduler sends), a manual rotation
   (``originlock rotate``), then leak the current value to an attacker who replays it, and
   run an emergency ``revoke all``; then start another rotation, leak again while it waits
   for CloudFront's deployment, and revoke all at once: the revoke preempts the rotation.
4. Report per phase what legitimate traffic lost (nothing, outside the revoke-all windows,
   whose 403s are the documented price of an emergency and are counted apart), what the
   attackers got (nothing), when each revoked value stopped working counted from the revoke
   command (the measured bound R against the stated one), the authorizer's latency, SSM reads
   (against SSM's quota, which the sandbox applies to every caller), and per execution the
   state transitions and Lambda invocations. Exit 1 if an invariant broke.

In edge-signed mode (``--lock-mode edge-signed``, docs/edge-signed.md) the same scenario runs
with the edges signing each request with the KeyValueStore's key (the leaked "value" is then
the signing key, which the attacker uses as is and to mint tokens), plus one phase after the
steady one: a header value a backend received (its logs leak it) is replayed straight at the
API until it is refused, and how long it lived is reported against the bound (T + 1)·W + TTL.
An attacker also sends well-formed tokens signed with keys of its own.

All traffic goes to 127.0.0.1. The leaked value is held in memory only: the report, the
narration and the functions' output are scanned for every value the parameter ever held (and,
in edge-signed mode, every key the store held and every token an edge made). Key ids, which
every token carries, are shown; keys and tokens never are.
"""

from __future__ import annotations

import itertools
import json
import secrets
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import requests
from rich.console import Console
from rich.table import Table

from originlock import operations
from originlock.observe import LEGIT, Observer, Run
from originlock.sandbox.sandbox import Sandbox, SandboxTimings
from originlock.traffic import Traffic, status_counts, within

NO_HEADER = "no header"
RANDOM = "random value"
FORGED = "token signed with a key of its own"
REPLAY = "replayed revoked value"
REPLAY_PREEMPT = "replayed value revoked during a rotation"
LEAKED_HEADER = "replayed header value"
ATTACKS = (NO_HEADER, RANDOM, FORGED)
LEAK_PHASE = "leaked header value"
REVOKE_PHASE = "revoke all"
PREEMPT_PHASE = "revoke during a rotation"
# Phases whose legitimate refusals are the documented price of revoke all (edges not yet
# switched send the revoked value): counted apart.
REVOKE_PHASES = (REVOKE_PHASE, PREEMPT_PHASE)
# The states in which the demo's second rotation is preempted: waiting for CloudFront.
DEPLOY_WAIT_STATES = ("CheckDeployed", "IsDeployed", "WaitForDeployment")


@dataclass(frozen=True)
class DemoSettings:
    """Phase lengths and traffic rates (seconds). The e2e tests use shorter ones."""

    baseline: float = 3.0
    pause: float = 1.0
    tail: float = 1.0
    legit_interval: float = 0.05
    attacker_interval: float = 0.1
    replay_interval: float = 0.05
    max_requests: int = 3000  # per client
    # No client sends after this many seconds (edge-signed mode adds the leaked header
    # phase's bound to it).
    time_limit: float = 75.0
    execution_timeout: float = 60.0


@dataclass
class Scenario(Observer):
    """One run of the demo against a started sandbox."""

    settings: DemoSettings = field(default_factory=DemoSettings)
    say: Callable[[str], None] = print
    blog: dict[str, int] = field(default_factory=dict)
    revoke_started: float = 0.0
    revoke_ended: float = 0.0
    # The revoke that preempted a rotation: when it was requested, when it ended, and the
    # rotation's outcome.
    preempt_started: float = 0.0
    preempt_ended: float = 0.0
    preempted: operations.Outcome | None = None
    # Edge-signed mode: the leaked header value's window start (monotonic clock) and when it
    # was captured.
    leak_window_start: float = 0.0
    leak_captured: float = 0.0
    # The document's key ids when the scenario ended (public; {} in header mode).
    key_ids: dict[str, str | None] = field(default_factory=dict)

    @property
    def edge_signed(self) -> bool:
        return bool(self.sandbox.edge_signed)

    def mint(self, key: str) -> str:
        """A token signed with *key* now: what anyone holding a key can make."""
        from originlock.document import sign

        sb = self.sandbox
        return sign(key, sb.distribution_id, time.time(), sb.timings.edge_window)

    # -- steps ---------------------------------------------------------------------------
    def blog_test(self) -> None:
        sb = self.sandbox
        with requests.Session() as session:
            session.trust_env = False
            self.blog = {
                "api_without_header": session.get(sb.api_url, timeout=10).status_code,
                "api_with_a_guessed_value": session.get(
                    sb.api_url, headers={sb.header_name: secrets.token_urlsafe(32)}, timeout=10
                ).status_code,
                "cloudfront": session.get(sb.cloudfront_url, timeout=10).status_code,
            }
            if self.edge_signed:
                forged = self.mint(secrets.token_urlsafe(32))
                self.blog["api_with_a_forged_token"] = session.get(
                    sb.api_url, headers={sb.header_name: forged}, timeout=10
                ).status_code
        self.say(
            f"  API URL, no header          {self.blog['api_without_header']}"
            "   (missing identity source: the authorizer is not even invoked)"
        )
        self.say(f"  API URL, a guessed value    {self.blog['api_with_a_guessed_value']}")
        if self.edge_signed:
            self.say(
                f"  API URL, a forged token     {self.blog['api_with_a_forged_token']}"
                "   (well formed, signed with a key of the attacker's own)"
            )
        self.say(f"  CloudFront edge             {self.blog['cloudfront']}")

    def start_traffic(self) -> None:
        sb, s = self.sandbox, self.settings
        for index, url in enumerate(sb.edge_urls):
            self.traffic.start(LEGIT, index, f"{url}/orders", s.legit_interval)
        self.traffic.start(NO_HEADER, 0, f"{sb.api_url}/orders", s.attacker_interval)
        header = sb.header_name
        self.traffic.start(
            RANDOM,
            0,
            f"{sb.api_url}/orders",
            s.attacker_interval,
            lambda: {header: secrets.token_urlsafe(32)},
        )
        kinds = "no header; random values"
        if self.edge_signed:
            self.traffic.start(
                FORGED,
                0,
                f"{sb.api_url}/orders",
                s.attacker_interval,
                lambda: {header: self.mint(secrets.token_urlsafe(32))},
            )
            kinds += "; tokens signed with keys of their own"
        self.say(
            f"  {len(sb.edge_urls)} legitimate clients, one per CloudFront edge; "
            f"{len(ATTACKS) - (0 if self.edge_signed else 1)} attackers straight at the API "
            f"({kinds})"
        )

    def run(
        self,
        label: str,
        start: Callable[[], str],
        on_update: Callable[[operations.Outcome], None] | None = None,
    ) -> Run:
        run = super().run(label, start, on_update)
        outcome, started, ended = run.outcome, run.started, run.ended
        status = (
            outcome.status if outcome.succeeded else f"{outcome.status} at {outcome.failed_step}"
        )
        key = f" · key {run.key_id}" if run.key_id else ""
        self.say(
            f"  {outcome.name}: {status} in {ended - started:.1f} s · "
            f"{run.state_transitions} state transitions · "
            f"{run.lambda_invocations} Lambda invocations{key}"
        )
        return run

    def _replay(self, kind: str, leaked: str, until: float) -> None:
        header = self.sandbox.header_name
        headers: Callable[[], dict[str, str]] = lambda: {header: leaked}  # noqa: E731
        if self.edge_signed:
            # A stolen key is used both ways: sent as is (any accepted value is accepted as
            # is) and to mint a token for the current window.
            turn = itertools.count()
            headers = lambda: {header: leaked if next(turn) % 2 else self.mint(leaked)}  # noqa: E731
        self.traffic.start(
            kind,
            0,
            f"{self.sandbox.api_url}/orders",
            self.settings.replay_interval,
            headers,
            until=until,
        )

    def leaked_header(self) -> None:
        """Edge-signed mode: a header value the origin received (a backend logged it) is
        replayed straight at the API until it is refused, and a little longer."""
        from originlock.document import parse_token

        sb, s = self.sandbox, self.settings
        captured = sb.captured_origin_header()
        token = parse_token(captured)
        if captured is None or token is None:
            raise RuntimeError("no signed header value reached the origin yet")
        self.leak_captured = time.monotonic()
        # The window's start, unix time -> this process's monotonic clock.
        self.leak_window_start = (
            token.window * sb.timings.edge_window - time.time() + self.leak_captured
        )
        bound = sb.timings.leaked_header_bound()
        until = self.leak_window_start + bound + s.tail
        header = sb.header_name
        self.traffic.start(
            LEAKED_HEADER,
            0,
            f"{sb.api_url}/orders",
            s.replay_interval,
            lambda: {header: captured},
            until=until,
        )
        self.say(
            f"  a backend logged a header value (key {token.kid}, window started "
            f"{self.leak_captured - self.leak_window_start:.1f} s ago): replayed at the API "
            f"until refused (bound (T+1)·W + TTL = {bound:.0f} s from its window's start)"
        )
        while time.monotonic() < until:
            if any(r.status != 200 for r in self.records(kind=LEAKED_HEADER)):
                break
            time.sleep(0.1)
        refused = [r for r in self.records(kind=LEAKED_HEADER) if r.status != 200]
        if refused:
            lived = refused[0].started - self.leak_window_start
            self.say(f"  refused {lived:.1f} s after its window started; still replayed a moment")
        time.sleep(s.pause)

    def _start_revoke_all(self, reason: str) -> str:
        return operations.start(self.target, "revoke", scope="all", reason=reason).execution_arn

    def leak_and_revoke(self) -> None:
        sb, s = self.sandbox, self.settings
        # The attacker has the current value (read here as a leak would give it: in memory).
        leaked = operations.read_document(self.target).current
        assert leaked is not None
        bound = sb.timings.revoke_bound()
        self.revoke_started = time.monotonic()
        self._replay(REPLAY, leaked, self.revoke_started + bound + s.tail)
        self.say(
            "  the signing key leaked: an attacker sends it and tokens it signs, straight at "
            "the API"
            if self.edge_signed
            else "  the current value leaked: an attacker replays it straight at the API"
        )
        self.run(
            "emergency revoke all",
            lambda: self._start_revoke_all("demo: the current value leaked"),
        )
        self.revoke_ended = time.monotonic()
        self.phase("after the revoke")
        remaining = self.revoke_started + bound + s.tail - time.monotonic()
        self.say(
            f"  watching the replay until the stated bound R = {bound:.0f} s has passed"
            f" ({max(remaining, 0):.0f} s more)"
        )
        time.sleep(max(remaining, s.pause))

    def revoke_during_rotation(self) -> None:
        """A rotation waits for CloudFront; the current value leaks; ``revoke all`` at once."""
        sb, s = self.sandbox, self.settings
        rotation = operations.start(self.target, "rotate", reason="demo: preempted by a revoke")
        deadline = time.monotonic() + s.execution_timeout
        while operations.current_state(self.target, rotation.execution_arn) not in (
            DEPLOY_WAIT_STATES
        ):
            if time.monotonic() > deadline:
                raise RuntimeError("the rotation never reached its deployment wait")
            time.sleep(self.watch_interval)
        self.say(f"  {rotation.name} waits for CloudFront's deployment")
        leaked = operations.read_document(self.target).current
        assert leaked is not None
        bound = sb.timings.revoke_bound(preempting=True)
        self.preempt_started = time.monotonic()
        self._replay(REPLAY_PREEMPT, leaked, self.preempt_started + bound + s.tail)
        self.say(
            f"  the {'signing key' if self.edge_signed else 'current value'} leaked: revoke all "
            "now, without waiting for the rotation"
        )
        self.run(
            "revoke all during a rotation",
            lambda: self._start_revoke_all("demo: leaked during a rotation"),
        )
        self.preempt_ended = time.monotonic()
        self.preempted = operations.outcome(self.target, rotation.execution_arn)
        self.say(
            f"  {rotation.name}: {self.preempted.status}"
            + (f" ({self.preempted.cause})" if self.preempted.cause else "")
        )
        self.phase("after the preempting revoke")
        remaining = self.preempt_started + bound + s.tail - time.monotonic()
        time.sleep(max(remaining, s.pause))

    def play(self) -> None:
        sb, s = self.sandbox, self.settings
        self.say("the blog's test")
        self.blog_test()
        self.say("traffic")
        self.start_traffic()
        self.phase("steady")
        time.sleep(s.baseline)
        if self.edge_signed:
            self.say("a header value leaks from a backend's logs")
            self.phase(LEAK_PHASE)
            self.leaked_header()
        self.say("scheduled rotation (the input EventBridge Scheduler sends)")
        self.phase("scheduled rotation")
        self.run("scheduled rotation", sb.fire_schedule)
        time.sleep(s.pause)
        self.say("manual rotation (originlock rotate)")
        self.phase("manual rotation")
        self.run(
            "manual rotation",
            lambda: (
                operations.start(
                    self.target, "rotate", reason="demo: manual rotation"
                ).execution_arn
            ),
        )
        time.sleep(s.pause)
        self.say("emergency: revoke all (originlock revoke all --yes)")
        self.phase(REVOKE_PHASE)
        self.leak_and_revoke()
        time.sleep(s.pause)
        self.say("emergency during a rotation: revoke all preempts it")
        self.phase(PREEMPT_PHASE)
        self.revoke_during_rotation()
        self.phase("")
        self.traffic.stop()
        self.key_ids = operations.read_document(self.target).key_ids()


# -- the report ---------------------------------------------------------------------------------
def build_report(scenario: Scenario) -> dict[str, Any]:
    sb = scenario.sandbox
    records = scenario.traffic.snapshot()
    bound = sb.timings.revoke_bound()
    phases: list[dict[str, Any]] = []
    for phase in scenario.phases:
        inside = within(records, phase.start, phase.end)
        legit = [r for r in inside if r.kind == LEGIT]
        attacks = [r for r in inside if r.kind in ATTACKS]
        replays = [r for r in inside if r.kind in (REPLAY, REPLAY_PREEMPT)]
        header_replays = [r for r in inside if r.kind == LEAKED_HEADER]
        phases.append(
            {
                "phase": phase.name,
                "seconds": round(phase.end - phase.start, 2),
                "legit_requests": len(legit),
                "legit_rejected": sum(1 for r in legit if r.status != 200),
                "attacker_requests": len(attacks),
                "attacker_accepted": sum(1 for r in attacks if r.status == 200),
                "replayed": len(replays) + len(header_replays),
                "replay_accepted": sum(1 for r in [*replays, *header_replays] if r.status == 200),
                "ssm_reads": phase.ssm_reads,
            }
        )
    legit_outside = sum(p["legit_rejected"] for p in phases if p["phase"] not in REVOKE_PHASES)
    legit_window = sum(p["legit_rejected"] for p in phases if p["phase"] in REVOKE_PHASES)
    attacks = [r for r in records if r.kind in ATTACKS]
    replays = [r for r in records if r.kind == REPLAY]
    accepted_replays = [r for r in replays if r.status == 200]
    measured = (
        max(r.ended for r in accepted_replays) - scenario.revoke_started
        if accepted_replays
        else 0.0
    )
    after_bound = [r for r in accepted_replays if r.ended > scenario.revoke_started + bound]
    preempt = _revoke_figures(
        [r for r in records if r.kind == REPLAY_PREEMPT],
        scenario.preempt_started,
        sb.timings.revoke_bound(preempting=True),
    )
    edge = bool(sb.edge_signed)
    leaked = (
        _leaked_header_figures(scenario, [r for r in records if r.kind == LEAKED_HEADER])
        if edge
        else {}
    )
    rotation = scenario.preempted
    latency = sb.latency_ms()
    api = sb.api
    assert api is not None and sb.lambdas is not None
    duration = (scenario.phases[-1].end - scenario.phases[0].start) if scenario.phases else 0.0
    sandbox: dict[str, Any] = {
        "lock_mode": sb.lock_mode,
        "edges": len(sb.edge_urls),
        "deploy_window_s": list(sb.timings.deploy_window),
        "authorizer_result_ttl_s": sb.timings.authorizer_ttl,
        "token_cache_max_age_s": sb.timings.token_cache_max_age,
        "token_refresh_interval_s": sb.timings.token_refresh_interval,
    }
    if edge:
        sandbox |= {
            "token_window_s": sb.timings.edge_window,
            "tolerance_windows": sb.timings.edge_tolerance,
            "kvs_propagation_s": list(sb.timings.kvs_propagation),
            "propagation_wait_s": sb.timings.edge_propagation_wait,
        }
    report: dict[str, Any] = {
        "ok": True,
        "broken": [],
        "lock_mode": sb.lock_mode,
        "sandbox": sandbox,
        "blog_test": scenario.blog,
        "phases": phases,
        "legit": {
            "requests": sum(1 for r in records if r.kind == LEGIT),
            "rejected_outside_revoke_window": legit_outside,
            "rejected_in_revoke_window": legit_window,
            "revoke_window_s": round(
                scenario.revoke_ended
                - scenario.revoke_started
                + scenario.preempt_ended
                - scenario.preempt_started,
                2,
            ),
        },
        "attacker": {
            "requests": len(attacks),
            "accepted": sum(1 for r in attacks if r.status == 200),
            "statuses": status_counts(attacks),
        },
        "revoke": {
            "stated_bound_s": bound,
            "measured_bound_s": round(measured, 2),
            "replayed": len(replays),
            "accepted": len(accepted_replays),
            "accepted_after_bound": len(after_bound),
        },
        "revoke_during_rotation": {
            **preempt,
            "preempted_rotation": rotation.name if rotation else None,
            "preempted_status": rotation.status if rotation else None,
            "preempted_cause": rotation.cause if rotation else None,
        },
        "authorizer": {
            "invocations": sb.authorizer_invocations,
            "p50_ms": latency["p50_ms"],
            "p99_ms": latency["p99_ms"],
            "cold_starts": latency["cold_starts"],
            "cold_start_p50_ms": latency["cold_p50_ms"],
            "api_gateway_cache_hits": api.cache_hits,
            "instances_started": sb.lambdas.instances_created.get(sb.authorizer_function, 0),
        },
        "ssm": {
            "get_parameter_reads": sb.ssm_reads,
            "per_second": round(sb.ssm_reads / duration, 2) if duration else None,
            # Every caller's reads in the account, against the quota the sandbox applies.
            "peak_reads_in_a_second": sb.ssm_quota.peak() if sb.ssm_quota else None,
            "quota_per_second": sb.timings.ssm_quota,
            "throttled": sb.ssm_quota.throttled if sb.ssm_quota else None,
        },
        "rotations": [run.to_json() for run in scenario.runs],
        # Public: every token a key signs carries its id (edge-signed mode; {} in header mode).
        "key_ids": dict(scenario.key_ids),
        "seconds": round(duration, 1),
    }
    if edge:
        report["leaked_header"] = leaked
    broken: list[str] = []
    # API Gateway answers a request missing the identity source 401 without invoking the
    # authorizer; a value it does not accept is the authorizer's Deny: 403.
    expected_blog = {"api_without_header": 401, "api_with_a_guessed_value": 403, "cloudfront": 200}
    if edge:
        expected_blog["api_with_a_forged_token"] = 403
    unexpected = [
        f"{check} answered {scenario.blog.get(check)}, expected {status}"
        for check, status in expected_blog.items()
        if scenario.blog.get(check) != status
    ]
    if unexpected:
        broken.append(f"the blog's test did not pass: {'; '.join(unexpected)}")
    if legit_outside:
        broken.append(f"{legit_outside} legitimate requests refused outside the revoke window")
    if report["attacker"]["accepted"]:
        broken.append(f"{report['attacker']['accepted']} attacker requests accepted")
    if after_bound:
        broken.append(f"the revoked value was accepted {len(after_bound)} times after R")
    if not replays:
        broken.append("the revoked value was never replayed")
    if preempt["accepted_after_bound"]:
        broken.append(
            f"the value revoked during a rotation was accepted {preempt['accepted_after_bound']}"
            " times after R"
        )
    if not preempt["replayed"]:
        broken.append("the value revoked during a rotation was never replayed")
    if rotation is None or rotation.status != "ABORTED":
        broken.append("the revoke did not preempt the running rotation")
    if edge:
        if not leaked["replayed"]:
            broken.append("the leaked header value was never replayed")
        elif not leaked["refused"]:
            broken.append("the leaked header value was never refused")
        if leaked["accepted_after_bound"]:
            broken.append(
                f"the leaked header value was accepted {leaked['accepted_after_bound']} times "
                "after its bound"
            )
    broken += [
        f"{run.label} ended {run.outcome.status}"
        + (f" at step {run.outcome.failed_step}" if run.outcome.failed_step else "")
        + (f": {run.outcome.error}" if run.outcome.error else "")
        + (f": {run.outcome.cause}" if run.outcome.cause else "")
        for run in scenario.runs
        if not run.outcome.succeeded
    ]
    report["broken"] = broken
    report["ok"] = not broken
    return report


def _revoke_figures(replays: list[Any], requested: float, bound: float) -> dict[str, Any]:
    """When a revoked value was last accepted, counted from the revoke's request."""
    accepted = [r for r in replays if r.status == 200]
    last = max((r.ended for r in accepted), default=requested)
    return {
        "stated_bound_s": bound,
        "measured_bound_s": round(last - requested, 2),
        "replayed": len(replays),
        "accepted": len(accepted),
        "accepted_after_bound": sum(1 for r in accepted if r.ended > requested + bound),
    }


def _leaked_header_figures(scenario: Scenario, replays: list[Any]) -> dict[str, Any]:
    """How long a header value an edge sent stayed usable, counted from its window's start."""
    timings = scenario.sandbox.timings
    start = scenario.leak_window_start
    bound = timings.leaked_header_bound()
    accepted = [r for r in replays if r.status == 200]
    refused = [r for r in replays if r.status != 200]
    last = max((r.ended for r in accepted), default=start)
    return {
        "window_s": timings.edge_window,
        "tolerance_windows": timings.edge_tolerance,
        "authorizer_result_ttl_s": timings.authorizer_ttl,
        "stated_bound_s": bound,
        "lived_s": round(last - start, 2),
        "lived_after_capture_s": round(max(last - scenario.leak_captured, 0.0), 2),
        "first_refused_s": round(min(r.started for r in refused) - start, 2) if refused else None,
        "replayed": len(replays),
        "accepted": len(accepted),
        "refused": len(refused),
        "refusals": status_counts(refused),
        "accepted_after_bound": sum(1 for r in accepted if r.ended > start + bound),
    }


def scan_for_secrets(scenario: Scenario, texts: list[str]) -> dict[str, int]:
    """Invariant 2: no value the parameter ever held in any output we can see."""
    sb = scenario.sandbox
    values = sb.token_values()
    everything = [sb.lambda_output(), *texts]
    for run in scenario.runs:
        everything.append(
            json.dumps(
                operations.history_events(scenario.target, run.outcome.execution_arn), default=str
            )
        )
    found = sum(1 for text in everything for value in values if value in text)
    return {"values_checked": len(values), "texts_scanned": len(everything), "found": found}


def run_scenario(
    sandbox: Sandbox, settings: DemoSettings | None = None, say: Callable[[str], None] = print
) -> dict[str, Any]:
    """Play the demo against a started sandbox and return the report (one JSON object)."""
    settings = settings or DemoSettings()
    limit = settings.time_limit
    if sandbox.edge_signed:
        limit += sandbox.timings.leaked_header_bound() + settings.tail
    scenario = Scenario(
        sandbox,
        Traffic(max_requests=settings.max_requests, time_limit=limit),
        execution_timeout=settings.execution_timeout,
        settings=settings,
        say=say,
    )
    try:
        scenario.play()
    finally:
        scenario.traffic.stop()
    report = build_report(scenario)
    report["secrets"] = scan_for_secrets(scenario, [json.dumps(report)])
    if report["secrets"]["found"]:
        report["broken"].append("a token value reached an output")
        report["ok"] = False
    return report


def _ms(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:.2f} ms" if value < 10 else f"{value:.0f} ms"


# -- showing it ------------------------------------------------------------------------------------
def report_view(console: Console, report: dict[str, Any]) -> None:
    table = Table(title="Requests per phase", show_edge=False, header_style="bold")
    for column in (
        "Phase",
        "Seconds",
        "Legit",
        "Legit refused",
        "Attacks",
        "Attacks accepted",
        "Replays",
        "Replays accepted",
        "SSM reads",
    ):
        table.add_column(column, justify="left" if column == "Phase" else "right")
    for phase in report["phases"]:
        table.add_row(
            phase["phase"] + (" *" if phase["phase"] in REVOKE_PHASES else ""),
            f"{phase['seconds']:.1f}",
            str(phase["legit_requests"]),
            str(phase["legit_rejected"]),
            str(phase["attacker_requests"]),
            str(phase["attacker_accepted"]),
            str(phase["replayed"]),
            str(phase["replay_accepted"]),
            str(phase["ssm_reads"]),
        )
    console.print(table)
    if report.get("lock_mode") == "edge-signed":
        console.print(
            "* edges that have not picked up the new key sign with the revoked one: 403 until "
            "they do (the price of an emergency)"
        )
    else:
        console.print(
            "* edges not yet switched send the revoked value: 403 until Deployed (the price of "
            "an emergency)"
        )

    revoke, legit, auth = report["revoke"], report["legit"], report["authorizer"]
    facts = Table(title="What it shows", show_header=False, show_edge=False)
    facts.add_column(style="bold")
    facts.add_column()
    edge = report.get("lock_mode") == "edge-signed"
    sandbox = report["sandbox"]
    facts.add_row(
        "Lock mode",
        f"edge-signed: a CloudFront Function signs each request with the KeyValueStore's key "
        f"(window {sandbox['token_window_s']} s, tolerance {sandbox['tolerance_windows']}); "
        f"keys now: {_key_ids(report['key_ids'])}"
        if edge
        else "header: CloudFront sends the stored value",
    )
    facts.add_row(
        "Legitimate requests",
        f"{legit['requests']} sent; refused: {legit['rejected_outside_revoke_window']} "
        f"(+ {legit['rejected_in_revoke_window']} in the {legit['revoke_window_s']:.1f} s "
        "revoke-all window)",
    )
    statuses = ", ".join(f"{n} x {code}" for code, n in report["attacker"]["statuses"].items())
    facts.add_row(
        "Attacker requests",
        f"{report['attacker']['requests']} sent, {report['attacker']['accepted']} accepted "
        f"({statuses})",
    )
    if edge:
        leak = report["leaked_header"]
        facts.add_row(
            "Leaked header value",
            f"replayed {leak['replayed']} times; last accepted {leak['lived_s']:.1f} s after its "
            f"window started ({leak['lived_after_capture_s']:.1f} s after it was captured), "
            f"stated bound (T+1)·W + TTL = {leak['stated_bound_s']:.0f} s; accepted after it: "
            f"{leak['accepted_after_bound']}",
        )
    facts.add_row(
        "Revoked key" if edge else "Revoked value",
        f"last accepted {revoke['measured_bound_s']:.1f} s after revoke all started "
        f"(stated bound R = {revoke['stated_bound_s']:.0f} s); "
        f"accepted after R: {revoke['accepted_after_bound']} of {revoke['replayed']} replays",
    )
    during = report["revoke_during_rotation"]
    facts.add_row(
        "Revoked during a rotation",
        f"{during['preempted_rotation']} {during['preempted_status']}; the "
        f"{'key' if edge else 'value'} was last "
        f"accepted {during['measured_bound_s']:.1f} s after the command (stated bound R = "
        f"{during['stated_bound_s']:.0f} s); accepted after R: {during['accepted_after_bound']}"
        f" of {during['replayed']} replays",
    )
    facts.add_row(
        "Authorizer",
        f"{auth['invocations']} invocations: warm p50 {_ms(auth['p50_ms'])}, "
        f"p99 {_ms(auth['p99_ms'])}; {auth['cold_starts']} cold starts "
        f"(p50 {_ms(auth['cold_start_p50_ms'])})",
    )
    facts.add_row(
        "API Gateway cache",
        f"{auth['api_gateway_cache_hits']} requests answered without invoking the authorizer",
    )
    ssm = report["ssm"]
    facts.add_row(
        "SSM",
        f"{ssm['get_parameter_reads']} GetParameter reads of the token "
        f"({ssm['per_second']}/s); every caller at most {ssm['peak_reads_in_a_second']} in a "
        f"second, against the account's quota of {ssm['quota_per_second']:.0f}/s "
        f"({ssm['throttled']} throttled)",
    )
    for run in report["rotations"]:
        facts.add_row(
            run["label"].capitalize(),
            f"{run['status']} in {run['seconds']:.1f} s: {run['state_transitions']} state "
            f"transitions, {run['lambda_invocations']} Lambda invocations"
            + (f"; staged key {run['key_id']}" if run.get("key_id") else ""),
        )
    what = "keys, token values and signed header values" if edge else "token values"
    facts.add_row(
        "Secrets",
        f"{report['secrets']['values_checked']} {what} searched in function logs, "
        f"execution histories and this report: found {report['secrets']['found']}",
    )
    console.print(facts)
    if report["ok"]:
        console.print("[bold green]Every invariant held.[/]")
    else:
        for item in report["broken"]:
            console.print(f"[bold red]BROKEN:[/] {item}")


def _key_ids(key_ids: dict[str, str | None]) -> str:
    return ", ".join(f"{slot} {kid or '?'}" for slot, kid in key_ids.items()) or "none"


def main(
    edges: int = 4,
    as_json: bool = False,
    settings: DemoSettings | None = None,
    timings: SandboxTimings | None = None,
    lock_mode: str = "header",
) -> int:
    """Run the demo; print the report (or one JSON object); 0 if every invariant held."""
    console = Console(stderr=as_json, highlight=False, record=True)
    if not console.is_terminal:
        console.width = 140
    began = time.monotonic()

    def say(text: str) -> None:
        console.print(text, markup=False)

    console.print(
        "[bold]originlock demo[/]: everything runs on 127.0.0.1, nothing leaves this machine"
    )
    say(
        f"starting the sandbox: moto in server mode, {edges} CloudFront edges, "
        "a local API Gateway, the real functions"
        + (
            "; edge-signed: the real CloudFront Function at every edge, a KeyValueStore"
            if lock_mode == "edge-signed"
            else ""
        )
    )
    with Sandbox(edges=edges, timings=timings, lock_mode=lock_mode) as sb:
        low, high = sb.timings.kvs_propagation if sb.edge_signed else sb.timings.deploy_window
        switching = (
            f"each edge picks up a new key {low:g}-{high:g} s after it is written"
            if sb.edge_signed
            else f"each edge switches {low:.0f}-{high:.0f} s after an update"
        )
        say(f"  up in {time.monotonic() - began:.1f} s; {switching}")
        report = run_scenario(sb, settings, say)
        values = sb.token_values()
    report["total_seconds"] = round(time.monotonic() - began, 1)
    output = json.dumps(report, indent=2) + "\n"
    if as_json:
        sys.stdout.write(output)
    else:
        console.print()
        report_view(console, report)
        console.print(f"demo finished in {report['total_seconds']:.0f} s")
    # Invariant 2 for what was just printed too (narration and report).
    if any(value in console.export_text() or value in output for value in values):
        sys.stderr.write("error: a token value reached the demo's output\n")
        return 1
    return 0 if report["ok"] else 1
