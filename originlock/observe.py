"""What a scenario records against a started sandbox: phases of traffic, and executions.

The demo, the benchmarks (``bench/``) and the e2e tests drive the sandbox the same way: clients
of :mod:`originlock.traffic` send requests while the workflow runs; an :class:`Observer` marks
phases (what happened between two moments), starts executions and follows them to their end,
recording per execution its states, retries, state transitions and Lambda invocations.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from originlock import operations
from originlock.target import Target, discover
from originlock.traffic import Sent, Traffic, rejected, within

if TYPE_CHECKING:
    from originlock.sandbox.sandbox import Sandbox

LEGIT = "legit"


@dataclass
class Phase:
    name: str
    start: float
    end: float = 0.0
    ssm_reads_at_start: int = 0
    ssm_reads: int = 0


@dataclass
class Run:
    """One execution of the workflow, followed to its end."""

    label: str
    outcome: operations.Outcome
    started: float
    ended: float
    state_transitions: int
    lambda_invocations: int
    # Edge-signed mode: the id of the key this run staged (public: every token it signs
    # carries it); None in header mode or when nothing was staged.
    key_id: str | None = None

    @property
    def states(self) -> list[str]:
        return [step.name for step in self.outcome.steps]

    @property
    def polls(self) -> int:
        """``CheckDeployed`` polls (N in docs/runbook.md's cost formula)."""
        return self.states.count("CheckDeployed")

    def to_json(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "execution": self.outcome.name,
            "status": self.outcome.status,
            "seconds": round(self.ended - self.started, 2),
            "state_transitions": self.state_transitions,
            "lambda_invocations": self.lambda_invocations,
            "failed_step": self.outcome.failed_step,
            "cause": self.outcome.cause,
            "key_id": self.key_id,
        }


def staged_key_id(events: list[dict[str, Any]]) -> str | None:
    """The key id the ``Stage`` state's result names (edge-signed mode), from a history."""
    for event in reversed(events):
        details = event.get("stateExitedEventDetails") or {}
        if details.get("name") != "Stage":
            continue
        try:
            kid = json.loads(details.get("output") or "{}")["stage"]["result"].get("pending_kid")
        except (ValueError, KeyError, TypeError, AttributeError):
            return None
        return str(kid) if kid else None
    return None


@dataclass
class Observer:
    """Phases and executions of one scenario against a started sandbox."""

    sandbox: Sandbox
    traffic: Traffic
    execution_timeout: float = 60.0
    watch_interval: float = 0.25
    target: Target = field(init=False)
    phases: list[Phase] = field(default_factory=list)
    runs: list[Run] = field(default_factory=list)

    def __post_init__(self) -> None:
        sb = self.sandbox
        self.target = discover(sb.session, sb.endpoint_url, sb.region, sb.describe())

    # -- phases ----------------------------------------------------------------------------------
    def phase(self, name: str) -> None:
        """End the current phase (if any) and start *name* (none if empty)."""
        now = time.monotonic()
        reads = self.sandbox.ssm_reads
        if self.phases and not self.phases[-1].end:
            self.phases[-1].end = now
            self.phases[-1].ssm_reads = reads - self.phases[-1].ssm_reads_at_start
        if name:
            self.phases.append(Phase(name, now, ssm_reads_at_start=reads))

    def records(self, phase: Phase | None = None, kind: str | None = None) -> list[Sent]:
        records = self.traffic.snapshot()
        if phase is not None:
            records = within(records, phase.start, phase.end or time.monotonic())
        return [r for r in records if kind is None or r.kind == kind]

    def legit_lost(self, phase: Phase | None = None) -> int:
        return len(rejected(self.records(phase, LEGIT)))

    # -- executions --------------------------------------------------------------------------------
    def start_rotation(self, reason: str = "rotation") -> str:
        return operations.start(self.target, "rotate", reason=reason).execution_arn

    def start_revoke(self, scope: str, reason: str = "revoke") -> str:
        return operations.start(self.target, "revoke", scope=scope, reason=reason).execution_arn

    def run(
        self,
        label: str,
        start: Callable[[], str],
        on_update: Callable[[operations.Outcome], None] | None = None,
    ) -> Run:
        """Start an execution with *start* and follow it to its end; *on_update* sees every
        view of it on the way (a fault can be injected when a state is entered). Without
        *on_update* only its status is polled, and its history read once at the end: the
        whole history at every poll costs the sandbox a tenth of a core, which traffic
        measured meanwhile would lose."""
        sb = self.sandbox
        before = sb.lambda_invocations(sb.rotate_function)
        started = time.monotonic()
        arn = start()
        if on_update is not None:
            operations.watch(
                self.target,
                arn,
                on_update=on_update,
                interval=self.watch_interval,
                timeout=self.execution_timeout,
            )
        else:
            self._wait(arn)
        ended = time.monotonic()
        events = operations.history_events(self.target, arn)
        outcome = operations.outcome(self.target, arn, events)
        run = Run(
            label,
            outcome,
            started,
            ended,
            sum(1 for e in events if str(e.get("type", "")).endswith("StateEntered")),
            sb.lambda_invocations(sb.rotate_function) - before,
            staged_key_id(events),
        )
        self.runs.append(run)
        return run

    def _wait(self, arn: str) -> None:
        """Until the execution is no longer ``RUNNING`` (or the timeout has passed)."""
        stepfunctions = self.target.client("stepfunctions")
        deadline = time.monotonic() + self.execution_timeout
        while time.monotonic() < deadline:
            if stepfunctions.describe_execution(executionArn=arn)["status"] != "RUNNING":
                return
            time.sleep(self.watch_interval)
