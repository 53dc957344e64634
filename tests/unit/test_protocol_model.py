"""Model-based test of the rotation protocol (Hypothesis stateful testing).

The *protocol* is the real code: the rotation steps of ``functions/rotate/steps.py`` in the
order the state machine runs them, and the authorizer's real ``AcceptedSetCache``. The
*world* is a model: SSM, a CloudFront distribution whose edges switch one by one, a set of
authorizer instances that come and go, API Gateway's authorizer result cache (a Deny is cached
too; a failed invocation is not), a clock, SSM outages (the account's quota exhausted by
another workload), crashes, stopped executions, deploy timeouts, concurrent triggers, sprays
of random header values and ``cdk deploy``.

A ``cdk deploy`` is two moves, as on AWS: the drift guard answers (the real
``provision.logic.origin_header_value``: the rotation lock, the document, the live
distribution), and later CloudFormation writes the answered value into the distribution. Any
rotation or revoke move may come between them. The environment assumption (docs/decisions.md,
"Drift guard"): CloudFormation writes less than the emergency stage wait after the guard
answered; ``SlowCloudFormation`` below shows what happens without it.

A revoke preempts a running rotation (or ``revoke previous``): it takes the lock, stops the
holder, and waits the fence settle time when the holder's Lambda step was under way. A step's
write may be *in flight*: it passed its fence check (the lock) and lands later, at most
``FENCE_BOUND`` after the check — possibly after a revoke took the lock. Revokes are driven
by the clock (a revoke's next task runs before time moves on), so R is counted from the
revoke's request: its write must come within the settle time, its stage wait and any SSM
outage it met, and a removed value must be refused from then on as the runbook states.

After every move, these are checked:

1. every value any edge may send is allowed — through API Gateway's cache (never a cached
   Deny), and by every authorizer instance, which may only fail the invocation (500, not
   cached) while its own last read failed and its retry is not yet due (except, during a
   ``revoke all``, the leaked values that edges not yet switched still send: the documented
   price); and the value the distribution is configured to send is one the token document
   accepts;
2. a revoked value is accepted by no instance and no cached API Gateway result from R on:
   at once after a cache reset that ran after the revoke's write (the workflow's, or its
   failure path's), and in any case max age + TTL after the write (staleness + TTL if SSM was
   out meanwhile); and the write itself comes within R's first part after the request;
3. the SSM budget: no instance reads twice within the max age while its last read
   succeeded, nor twice within the retry interval after a failure, whatever the traffic.

``make test`` runs 500 examples; ``make soak`` (ORIGINLOCK_SOAK=1) runs 20,000.
"""

from __future__ import annotations

import contextlib
import copy
import os
import sys
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from authorizer.cache import AcceptedSetCache, Decision
from provision.errors import LockUnavailableError, ProvisionError, RotationRunningError
from provision.errors import StoreUnavailableError as GuardStoreUnavailableError
from provision.logic import origin_header_value
from rotate import steps
from rotate.adapters import (
    Fence,
    LiveDistribution,
    header_values,
    priority,
    with_header_value,
)
from rotate.errors import (
    DistributionChangedError,
    LockLostError,
    RotationError,
    RotationInProgressError,
    StoreUnavailableError,
)
from rotate.settings import RotateSettings
from tokens.document import TokenDocument, generate_token
from tokens.store import StoreError

HEADER = "x-cf-api-gateway-token"
REFRESH = 1.0
MAX_AGE = 60.0
STALENESS = 900.0
API_TTL = 300.0
MAX_OUTAGE = 5.0  # the environment assumption: SSM outages shorter than the stage-wait margin
GRACE = 130.0  # LOCK_TAKEOVER_GRACE_SECONDS
FENCE_SETTLE = 20.0  # FENCE_SETTLE_SECONDS
# A write allowed by a fence check lands at most this long after it (FENCE_SEND_WITHIN_SECONDS
# + the fenced clients' connect and read timeouts, rotate/adapters.py).
FENCE_BOUND = 15.0
SOAK = os.environ.get("ORIGINLOCK_SOAK") == "1"
EXECUTIONS = "arn:aws:states:eu-west-1:111111111111:execution:Model-rotation:"
STACK_ID = "arn:aws:cloudformation:eu-west-1:111111111111:stack/Model/1"
GUARD_PROPERTIES = {
    "ParameterName": "/model/token",
    "HeaderName": HEADER,
    "DistributionLogicalId": "EdgeDistribution",
    "LockParameterName": "/model/token.lock",
}

SETTINGS = RotateSettings.from_env(
    {
        "SSM_PARAMETER_NAME": "/model/token",
        "DISTRIBUTION_ID": "EMODEL",
        "AUTHORIZER_REFRESH_INTERVAL_SECONDS": str(REFRESH),
        "AUTHORIZER_MAX_AGE_SECONDS": str(MAX_AGE),
        "POLL_INTERVAL_SECONDS": "30",
        "DEPLOY_TIMEOUT_SECONDS": "1800",
        "DRAIN_SECONDS": "300",
        "FENCE_SETTLE_SECONDS": str(FENCE_SETTLE),
    }
)

PROGRAMS = {
    "rotate": [
        "validate", "acquire_lock", "stage", "wait_stage", "switch", "poll", "verify",
        "promote", "wait_drain", "retire", "reset_authorizer_caches", "release_lock",
    ],
    "revoke_all": [
        "validate", "acquire_lock", "stage", "replace_before_switch", "wait_stage", "switch",
        "revoke_all", "reset_fresh", "poll", "verify", "release_lock",
    ],
    "revoke_previous": [
        "validate", "acquire_lock", "revoke_previous", "reset_fresh", "release_lock",
    ],
}  # fmt: skip
REVOKE_PROGRAMS = ("revoke_all", "revoke_previous")
# The drift guard's environment assumption: CloudFormation updates the distribution less than
# this long after the guard answered. A revoke that takes the lock after the guard checked it
# switches CloudFront no sooner than its stage wait after staging (docs/decisions.md).
DEPLOY_WRITE_BOUND = SETTINGS.revoke_stage_wait_seconds


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class LockRecord:
    execution: str
    priority: int


@dataclass
class PendingWrite:
    """A write that passed its fence check and has not landed yet."""

    execution: str
    kind: str  # "document" | "distribution" | "release"
    payload: Any
    etag: str
    deadline: float


@dataclass
class World:
    clock: Clock
    document: TokenDocument
    config: dict[str, Any]
    etag: int = 1
    # (switch time per edge, header values, applied at) for each configuration version
    rollouts: list[tuple[list[float], dict[str, str], float]] = field(default_factory=list)
    outage_until: float = 0.0
    lock: LockRecord | None = None
    api_cache: dict[str, tuple[bool, float]] = field(default_factory=dict)
    instances: list[AcceptedSetCache] = field(default_factory=list)
    reads: int = 0
    # Writes a step sends are held back (in flight) while this names the step's execution.
    defer_writes_for: str | None = None
    pending_writes: list[PendingWrite] = field(default_factory=list)

    def ssm_down(self) -> bool:
        return self.clock.now < self.outage_until

    def edge_values(self) -> set[tuple[str, float]]:
        """``(value, when its configuration was applied)`` for what each edge sends now."""
        now = self.clock.now
        values: set[tuple[str, float]] = set()
        for edge in range(len(self.rollouts[0][0])):
            for switch_at, headers, applied_at in reversed(self.rollouts):
                if switch_at[edge] <= now:
                    values.update((value, applied_at) for value in headers.values())
                    break
        return values

    def status(self) -> str:
        return "InProgress" if any(t > self.clock.now for t in self.rollouts[-1][0]) else "Deployed"

    def defer(self, execution: str, kind: str, payload: Any, etag: str = "") -> bool:
        """Hold a fenced write back if the running step's writes are in flight."""
        if self.defer_writes_for != execution:
            return False
        self.pending_writes.append(
            PendingWrite(execution, kind, payload, etag, self.clock.now + FENCE_BOUND)
        )
        return True


class Reader:
    """One instance's reads of the parameter, with when each was attempted and how it went."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.attempts: list[tuple[float, bool]] = []

    def read(self) -> str:
        self.world.reads += 1
        if self.world.ssm_down():
            self.attempts.append((self.world.clock.now, False))
            raise StoreError("ThrottlingException")
        self.attempts.append((self.world.clock.now, True))
        return self.world.document.to_json()


class Store:
    def __init__(self, world: World) -> None:
        self.world = world

    def read(self) -> TokenDocument:
        if self.world.ssm_down():
            raise StoreUnavailableError("throttled")
        return self.world.document

    def write(self, document: TokenDocument, fence: Fence) -> None:
        fence.ensure_fresh()
        if self.world.ssm_down():
            raise StoreUnavailableError("throttled")
        if not self.world.defer(fence.execution_id, "document", document):
            self.world.document = document


class Lock:
    """The workflow's lock with rotate.adapters.Lock's rules: a stale holder is taken over, a
    revoke preempts a less urgent running holder (or any stopped within the grace), stops it
    and settles if its step was in flight; a scheduled rotation yields; writes are fenced."""

    def __init__(self, model: ProtocolModel) -> None:
        self.model = model
        self.world = model.world

    def _busy(self, holder: str) -> tuple[bool, bool]:
        """(still acting, running)."""
        if self.model.is_running(holder):
            return True, True
        stopped = self.model.stopped_at.get(holder)
        return stopped is not None and self.world.clock.now - stopped < GRACE, False

    def acquire(self, execution_id: str, detail: dict[str, Any]) -> dict[str, Any]:
        if self.world.ssm_down():
            raise StoreUnavailableError("throttled")
        result: dict[str, Any] = {
            "acquired": True,
            "took_over": None,
            "preempted": None,
            "settle": False,
            "skipped": None,
        }
        mine = priority(detail.get("mode"), detail.get("revoke"))
        record = LockRecord(execution_id, mine)
        held = self.world.lock
        if held is None or held.execution == execution_id:
            self.world.lock = record
            return result
        busy, running = self._busy(held.execution)
        if not busy:
            self.world.lock = record
            return {**result, "took_over": held.execution}
        if mine > 0 and (mine > held.priority or not running):
            in_flight = any(w.execution == held.execution for w in self.world.pending_writes)
            self.world.lock = record
            if running:
                self.model.stop(held.execution)
            return {
                **result,
                "preempted": {"execution": held.execution, "was_running": running},
                "settle": in_flight,
            }
        if detail.get("trigger") == "schedule":
            return {**result, "acquired": False, "skipped": "held"}
        raise RotationInProgressError("held")

    def fence(self, execution_id: str) -> Fence:
        if self.world.ssm_down():
            raise StoreUnavailableError("throttled")
        if self.world.lock is None or self.world.lock.execution != execution_id:
            raise LockLostError("lost")
        return Fence(execution_id, self.world.clock.now, self.world.clock)

    def release(self, execution_id: str) -> bool:
        try:
            self.fence(execution_id)
        except LockLostError:
            return False
        if not self.world.defer(execution_id, "release", None):
            self.world.lock = None
        return True


class Distribution:
    def __init__(self, world: World, deploy_window: float) -> None:
        self.world = world
        self.deploy_window = deploy_window
        self.foreign_update_pending = False

    def _live(self) -> LiveDistribution:
        config = copy.deepcopy(self.world.config)
        return LiveDistribution(
            config,
            str(self.world.etag),
            status=self.world.status(),
            header_values=header_values(config, HEADER, ()),
        )

    def config(self) -> LiveDistribution:
        return self._live()

    def describe(self) -> LiveDistribution:
        return self._live()

    def apply(self, config: dict[str, Any], spread: list[float]) -> None:
        self.world.config = config
        self.world.etag += 1
        now = self.world.clock.now
        rollout = ([now + s for s in spread], header_values(config, HEADER, ()), now)
        self.world.rollouts.append(rollout)
        self.world.rollouts = self.world.rollouts[-6:]

    def spread(self) -> list[float]:
        """The first edge switches at once, the last one after the whole window."""
        edges = len(self.world.rollouts[0][0])
        return [self.deploy_window * i / (edges - 1) for i in range(edges)]

    def send(self, live: LiveDistribution, value: str, fence: Fence) -> None:
        fence.ensure_fresh()
        if self.foreign_update_pending:
            self.foreign_update_pending = False
            self.world.etag += 1
        config = with_header_value(live.config, HEADER, (), value)
        if self.world.defer(fence.execution_id, "distribution", config, live.etag):
            return
        if live.etag != str(self.world.etag):
            raise DistributionChangedError("stale etag")
        self.apply(config, self.spread())


# -- the drift guard's ports (provision.logic), on the same world ----------------------------
class GuardStore:
    def __init__(self, world: World) -> None:
        self.world = world

    def get(self, name: str) -> str | None:
        if self.world.ssm_down():
            raise GuardStoreUnavailableError("GetParameter failed: ThrottlingException")
        return self.world.document.to_json()

    def create(self, name: str, value: str, key_id: str | None) -> bool:
        raise AssertionError("the drift guard never writes")

    def delete(self, name: str) -> None:
        raise AssertionError("the drift guard never writes")


class GuardDistribution:
    def __init__(self, world: World) -> None:
        self.world = world

    def distribution_config(self, stack_id: str, logical_id: str) -> dict[str, Any] | None:
        return copy.deepcopy(self.world.config)


class GuardLock:
    def __init__(self, world: World, running: Any) -> None:
        self.world = world
        self.is_running = running

    def holder(self, name: str) -> str | None:
        if self.world.ssm_down():
            raise LockUnavailableError("GetParameter on the rotation lock failed: Throttling")
        return None if self.world.lock is None else self.world.lock.execution

    def running(self, execution_arn: str) -> bool:
        return bool(self.is_running(execution_arn))


class GuardStacks:
    def __init__(self, status: str) -> None:
        self.value = status

    def status(self, stack_id: str) -> str:
        return self.value


@dataclass
class PendingDeploy:
    """A deploy whose guard has answered; CloudFormation has not written the distribution yet."""

    value: str
    answered_at: float


class Caches:
    def __init__(self, world: World, spawn: Any) -> None:
        self.world = world
        self.spawn = spawn

    def reset_api_cache(self) -> bool:
        self.world.api_cache.clear()
        return True

    def replace_instances(self, epoch: str) -> bool:
        count = len(self.world.instances)
        self.world.instances.clear()
        for _ in range(count):
            self.spawn()
        return True


@dataclass
class Execution:
    name: str
    program: list[str]
    started_at: float
    position: int = 0
    state: dict[str, Any] = field(default_factory=dict)
    wait_until: float | None = None
    revoked: set[str] = field(default_factory=set)
    # A step whose writes are in flight: its result, recorded once they have all landed.
    in_flight: tuple[str, dict[str, Any]] | None = None
    wrote_at: float | None = None
    # SSM outage seconds met since the request (they delay a revoke's write: retries).
    blocked: float = 0.0
    # A step that failed with a retried error runs again then (ASL Retry).
    retry_at: float | None = None

    @property
    def revoke(self) -> bool:
        return any(self.program is PROGRAMS[name] for name in REVOKE_PROGRAMS)


def make_config(value: str) -> dict[str, Any]:
    return {
        "Origins": {
            "Quantity": 1,
            "Items": [
                {
                    "Id": "api",
                    "DomainName": "api.example",
                    "CustomHeaders": {
                        "Quantity": 1,
                        "Items": [{"HeaderName": HEADER, "HeaderValue": value}],
                    },
                }
            ],
        },
        "Comment": "model",
    }


class ProtocolModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.clock = Clock()
        first = generate_token()
        self.world = World(self.clock, TokenDocument(current=first).evolve(), make_config(first))
        self.world.rollouts.append(([0.0] * 4, {"api": first}, 0.0))
        self.distribution = Distribution(self.world, deploy_window=120.0)
        self.running: list[Execution] = []
        self.stopped_at: dict[str, float] = {}
        self.ports = steps.Ports(
            Store(self.world), Lock(self), self.distribution, Caches(self.world, self.spawn)
        )
        self.readers: list[Reader] = []
        self.counter = 0
        self.refused = 0
        # Values a revoke step removed, with when (the write): edges still on a configuration
        # applied before then may send them (refused early, by design); a later one may not.
        self.revoking: dict[str, float] = {}
        # When a cache reset (fresh instances, API Gateway's cache emptied) first ran after
        # each revoked value's write: from then on it is refused.
        self.reset_after_revoke: dict[str, float] = {}
        # SSM outages, (start, end): an instance serves its last good copy through them.
        self.outages: list[tuple[float, float]] = []
        self.deploy: PendingDeploy | None = None
        self.deploys_refused = 0
        self.preemptions = 0
        self._driving = False

    def is_running(self, execution_id: str) -> bool:
        return any(e.name == execution_id for e in self.running)

    def guard_lock(self) -> GuardLock:
        return GuardLock(self.world, self.is_running)

    def stop(self, name: str) -> None:
        """StopExecution: no failure path runs; a step's write in flight still lands."""
        for execution in list(self.running):
            if execution.name == name:
                self.running.remove(execution)
                self.stopped_at[name] = self.clock.now

    def advance(self, seconds: float) -> None:
        """Move the clock. On the way: a deploy's pending write lands if it would come too
        late, writes in flight land before their bound, and running revokes take every step
        they can, their waits ending on time (Step Functions runs a task when its state is
        entered: a revoke is never starved by the clock)."""
        target = self.clock.now + seconds
        self.drive_revokes()
        while True:
            if self.deploy is not None and target >= self.deploy.answered_at + DEPLOY_WRITE_BOUND:
                self.cloudformation_writes_the_distribution()
                continue
            events: list[tuple[float, Any]] = [
                (w.deadline, w) for w in self.world.pending_writes if w.deadline <= target
            ]
            events += [
                (e.wait_until, e)
                for e in self.running
                if e.revoke and e.wait_until is not None and e.wait_until <= target
            ]
            events += [
                (e.retry_at, e.name)
                for e in self.running
                if e.revoke and e.retry_at is not None and e.retry_at <= target
            ]
            if not events:
                break
            when, what = min(events, key=lambda event: event[0])
            self._count_outages(self.clock.now, max(self.clock.now, when))
            self.clock.now = max(self.clock.now, when)
            if isinstance(what, PendingWrite):
                self.land(what)
            elif isinstance(what, str):
                for execution in self.running:
                    if execution.name == what:
                        execution.retry_at = None
            else:
                self.end_wait(what)
            self.drive_revokes()
        self._count_outages(self.clock.now, target)
        self.clock.now = target

    def _count_outages(self, start: float, end: float) -> None:
        """Outage seconds a running revoke meets delay its write (its steps are retried)."""
        for execution in self.running:
            if not execution.revoke:
                continue
            for o_start, o_end in self.outages:
                overlap = min(end, o_end) - max(start, o_start)
                if overlap > 0:
                    execution.blocked += overlap

    # -- world moves ---------------------------------------------------------
    def spawn(self) -> None:
        reader = Reader(self.world)
        self.readers.append(reader)
        self.world.instances.append(
            AcceptedSetCache(
                reader,
                self.clock,
                max_age=MAX_AGE,
                retry_interval=REFRESH,
                max_staleness=STALENESS,
            )
        )

    @initialize()
    def start_instances(self) -> None:
        for _ in range(2):
            self.spawn()

    @rule(seconds=st.sampled_from([0.3, 1.0, 5.0, 30.0, 61.0, 200.0]))
    def time_passes(self, seconds: float) -> None:
        self.advance(seconds)

    @precondition(lambda self: len(self.world.instances) < 5)
    @rule()
    def cold_start(self) -> None:
        # Lambda starts an instance for a request: that first request reads the document now
        # (and fails, during an SSM outage: the instance then decides nothing until it can).
        self.spawn()
        self.world.instances[-1].decide(generate_token().encode())

    @precondition(lambda self: len(self.world.instances) > 1)
    @rule(index=st.integers(0, 4))
    def instance_recycled(self, index: int) -> None:
        del self.world.instances[index % len(self.world.instances)]

    @precondition(lambda self: not self.world.ssm_down())
    @rule(seconds=st.sampled_from([0.5, 2.0, MAX_OUTAGE]))
    def ssm_quota_exhausted_by_another_workload(self, seconds: float) -> None:
        # Outages are separated by at least a refresh interval of service.
        self.world.outage_until = self.clock.now + seconds
        self.outages.append((self.clock.now, self.world.outage_until))

    @rule(count=st.integers(1, 40))
    def spray_of_random_header_values(self, count: int) -> None:
        """Random values straight at the API (WAF does not cover it): each one reaches an
        instance (API Gateway caches per value), none may cost a read."""
        for i in range(count):
            value = generate_token()
            instance = self.world.instances[i % len(self.world.instances)]
            decision = instance.decide(value.encode())
            assert not decision.allowed
            if decision.certain:
                self.world.api_cache[value] = (False, self.clock.now + API_TTL)

    @precondition(lambda self: self.deploy is None)
    @rule()
    def cdk_deploy_guard_answers(self) -> None:
        """CloudFormation updates the drift guard: the real guard checks the lock, reads the
        document and the live distribution, and answers the value to write (or refuses)."""
        try:
            choice = origin_header_value(
                GUARD_PROPERTIES,
                STACK_ID,
                GuardStore(self.world),
                GuardDistribution(self.world),
                self.guard_lock(),
                GuardStacks("UPDATE_IN_PROGRESS"),
            )
        except RotationRunningError:
            self.deploys_refused += 1
            # The stack rolls back: the guard is asked again, at once, and must answer (a
            # rollback is never refused); the distribution was never touched, so nothing is
            # written.
            origin_header_value(
                GUARD_PROPERTIES,
                STACK_ID,
                GuardStore(self.world),
                GuardDistribution(self.world),
                self.guard_lock(),
                GuardStacks("UPDATE_ROLLBACK_IN_PROGRESS"),
            )
            return
        except ProvisionError:
            return  # SSM unavailable: the deploy fails, the distribution is not touched
        self.deploy = PendingDeploy(choice.value, self.clock.now)

    @precondition(lambda self: self.deploy is not None)
    @rule()
    def cloudformation_writes_the_distribution(self) -> None:
        """UpdateDistribution with the template's configuration and the guard's answer."""
        assert self.deploy is not None
        value, self.deploy = self.deploy.value, None
        self.distribution.apply(
            with_header_value(self.world.config, HEADER, (), value), self.distribution.spread()
        )

    @rule()
    def someone_else_updates_the_distribution(self) -> None:
        self.distribution.foreign_update_pending = True

    # -- triggers ------------------------------------------------------------
    def _start(self, mode: str, payload: dict[str, Any]) -> None:
        self.counter += 1
        execution = Execution(f"{EXECUTIONS}exec-{self.counter}", PROGRAMS[mode], self.clock.now)
        execution.state["input"] = payload
        self.running.append(execution)

    @rule(trigger=st.sampled_from(["schedule", "manual"]))
    def trigger_rotation(self, trigger: str) -> None:
        self._start("rotate", {"mode": "rotate", "trigger": trigger})

    @rule()
    def trigger_revoke_all(self) -> None:
        self._start("revoke_all", {"mode": "revoke", "revoke": "all"})

    @rule()
    def trigger_revoke_previous(self) -> None:
        self._start("revoke_previous", {"mode": "revoke", "revoke": "previous"})

    @precondition(lambda self: self.running)
    @rule(index=st.integers(0, 3))
    def execution_stopped(self, index: int) -> None:
        """StopExecution, or the execution's timeout: no failure path runs and the lock stays,
        stale, until the next execution takes it over (a write in flight still lands)."""
        self.stop(self.running[index % len(self.running)].name)

    @precondition(lambda self: self.world.pending_writes)
    @rule(index=st.integers(0, 3))
    def a_write_in_flight_lands(self, index: int) -> None:
        self.land(self.world.pending_writes[index % len(self.world.pending_writes)])

    # -- the workflow ----------------------------------------------------------
    def land(self, write: PendingWrite) -> None:
        """A write that passed its fence check reaches SSM or CloudFront (no second check)."""
        self.world.pending_writes.remove(write)
        if write.kind == "document":
            self.world.document = write.payload
        elif write.kind == "release":
            self.world.lock = None  # DeleteParameter deletes whatever lock is there
        elif write.etag == str(self.world.etag):
            self.distribution.apply(write.payload, self.distribution.spread())
        else:
            write.payload = None  # PreconditionFailed: that step retries, if it still runs
        execution = next((e for e in self.running if e.name == write.execution), None)
        if execution is None or execution.in_flight is None:
            return
        if any(w.execution == write.execution for w in self.world.pending_writes):
            return
        name, result = execution.in_flight
        execution.in_flight = None
        if write.kind == "distribution" and write.payload is None:
            return  # the switch is retried with a fresh ETag
        self.record(execution, name, result)

    def _fail(self, execution: Execution) -> None:
        """The state machine's failure path: after a revoke step, ResetCachesAfterFailure
        (best effort), then ReleaseLockAfterFailure (retried until SSM answers)."""
        if execution.revoke:
            call = steps.StepCall(execution.name, execution.state, {"fresh_instances": True})
            # A value a revoke step already removed stays revoked (edges still sending it get
            # 403, the price of revoke all). If the reset cannot run, warm instances and API
            # Gateway's cache may accept it until they expire (the bound from the write).
            with contextlib.suppress(RotationError):
                steps.reset_authorizer_caches(call, SETTINGS, self.ports)
                self._caches_reset(execution)
        lock = self.world.lock
        if lock is not None and lock.execution == execution.name:
            self.world.lock = None
        if execution in self.running:
            self.running.remove(execution)

    @precondition(lambda self: self.running)
    @rule(
        index=st.integers(0, 3),
        count=st.integers(1, 6),
        crash=st.sampled_from([None, None, None, None, "before", "after"]),
        in_flight=st.sampled_from([False, False, False, True]),
    )
    def workflow_steps(self, index: int, count: int, crash: str | None, in_flight: bool) -> None:
        """Advance one execution by up to *count* states (the invariants hold after each);
        a crash, if drawn, hits the last of them; *in_flight*: its writes land later."""
        for i in range(count):
            if not self.running:
                return
            execution = self.running[index % len(self.running)]
            last = i == count - 1
            self.workflow_step(execution, crash if last else None, in_flight and last)
            self.check_all()

    def drive_revokes(self) -> None:
        """Every running revoke takes the steps it can now (not its waits, not a step whose
        writes are in flight, not a step that fails for a retry)."""
        if self._driving:
            return
        self._driving = True
        try:
            for _ in range(40):
                movable = [
                    e
                    for e in self.running
                    if e.revoke
                    and e.in_flight is None
                    and e.wait_until is None
                    and e.retry_at is None
                ]
                if not movable:
                    return
                before = [(e.name, e.position, e.wait_until) for e in movable]
                for execution in movable:
                    if execution in self.running:
                        self.workflow_step(execution, None, False)
                after = [(e.name, e.position, e.wait_until) for e in self.running if e.revoke]
                if set(after) == set(before) or not after:
                    return
        finally:
            self._driving = False

    def check_all(self) -> None:
        self.every_value_an_edge_sends_is_accepted()
        self.the_distribution_is_configured_with_an_accepted_value()
        self.at_most_one_execution_is_past_its_lock()
        self.revoked_values_stay_refused()
        self.revokes_write_within_r()
        self.no_instance_reads_beyond_its_budget()

    def workflow_step(self, execution: Execution, crash: str | None, in_flight: bool) -> None:
        if execution.in_flight is not None:
            return  # its task is still under way
        execution.retry_at = None
        name = execution.program[execution.position]
        if execution.wait_until is not None:
            self.advance(max(0.0, execution.wait_until - self.clock.now))
            if execution.wait_until is not None:  # (a revoke's ends as the clock passes it)
                self.end_wait(execution)
            return
        if name in ("wait_stage", "wait_drain"):
            key = "stage_wait_seconds" if name == "wait_stage" else "drain_seconds"
            execution.wait_until = self.clock.now + execution.state["settings"][key]
            return
        if crash == "before" and name not in ("validate", "release_lock"):
            self._fail(execution)
            return
        step_name = {
            "poll": "check_deployed",
            "reset_fresh": "reset_authorizer_caches",
            "replace_before_switch": "reset_authorizer_caches",
        }.get(name, name)
        params: dict[str, Any] = {}
        if name == "validate":
            params["input"] = execution.state["input"]
        if step_name == "reset_authorizer_caches":
            params["fresh_instances"] = name != "reset_authorizer_caches"
        doc = self.world.document
        # What a revoke step removes, should it succeed.
        leaked = {v for v in (doc.current, doc.previous) if v} if name == "revoke_all" else set()
        if name == "revoke_previous" and doc.previous:
            leaked = {doc.previous}
        call = steps.StepCall(execution.name, execution.state, params)
        self.world.defer_writes_for = execution.name if in_flight else None
        try:
            result = steps.STEPS[step_name](call, SETTINGS, self.ports)
        except (StoreUnavailableError, DistributionChangedError):
            execution.retry_at = self.clock.now + 1.0  # ASL Retry: the same step again later
            return
        except RotationInProgressError:
            assert name == "acquire_lock"
            self.refused += 1
            self._fail(execution)
            return
        except RotationError:
            self._fail(execution)
            return
        finally:
            self.world.defer_writes_for = None
        if name in ("revoke_all", "revoke_previous") and result["changed"]:
            execution.revoked |= leaked
        if any(w.execution == execution.name for w in self.world.pending_writes):
            execution.in_flight = (name, result)
            return
        if crash == "after" and name not in ("validate", "release_lock"):
            self.record(execution, name, result, crashed=True)
            self._fail(execution)
            return
        self.record(execution, name, result)

    def end_wait(self, execution: Execution) -> None:
        execution.wait_until = None
        if execution.program[execution.position] != "acquire_lock":
            execution.position += 1  # the fence settle comes back to AcquireLock

    def record(
        self, execution: Execution, name: str, result: dict[str, Any], crashed: bool = False
    ) -> None:
        """A step's result reaches the execution (its writes, if any, have landed)."""
        if name == "validate":
            execution.state.update(result)
        else:
            key = {"poll": "poll", "reset_fresh": "caches", "acquire_lock": "lock"}.get(name, name)
            execution.state[key] = {"result": result}
        if name in ("revoke_all", "revoke_previous") and result["changed"]:
            execution.wrote_at = self.clock.now
            self.revoking.update(dict.fromkeys(execution.revoked, self.clock.now))
        if name in ("revoke_all", "revoke_previous") and not result["changed"]:
            execution.wrote_at = execution.wrote_at or self.clock.now
        if name == "reset_fresh":
            self._caches_reset(execution)
        if crashed or execution not in self.running:
            return
        if name == "acquire_lock":
            if result["preempted"] is not None:
                self.preemptions += 1
            if not result["acquired"]:
                self.running.remove(execution)  # Skipped: a scheduled rotation yields
                return
            if result["settle"]:
                execution.wait_until = self.clock.now + FENCE_SETTLE
                return  # FenceSettle, then AcquireLock again
        if name == "poll" and not result["deployed"]:
            self.advance(SETTINGS.poll_interval_seconds)
            return
        execution.position += 1
        if execution.position == len(execution.program):
            self.running.remove(execution)

    def _caches_reset(self, execution: Execution) -> None:
        for value in execution.revoked:
            self.reset_after_revoke.setdefault(value, self.clock.now)

    def refused_from(self, value: str) -> float:
        """The moment from which *value*, revoked, must be refused everywhere (R's end)."""
        written = self.revoking[value]
        outage = any(start < self.clock.now and end > written for start, end in self.outages)
        tail = (STALENESS if outage else MAX_AGE) + API_TTL
        return min(self.reset_after_revoke.get(value, float("inf")), written + tail)

    @precondition(lambda self: self.running)
    @rule()
    def deploy_timeout(self) -> None:
        execution = self.running[0]
        if execution.in_flight is not None:
            return
        if execution.program[execution.position] == "poll" and self.world.status() != "Deployed":
            self._fail(execution)  # DeploymentTimeoutError: nothing is removed

    # -- invariants ------------------------------------------------------------
    def _decide(self, value: str, *, cache_allow_if: Any = all) -> bool:
        """A request carrying *value* at API Gateway: the cache, else an instance.

        Whichever instance Lambda picks, API Gateway caches its answer, if it gave one: for a
        value that must be allowed, no instance may deny it (*cache_allow_if* ``all``: the
        first certain answer is cached); for one that may be refused, any instance that allows
        it may put an Allow in the cache (``any``). A failed invocation caches nothing.
        """
        cached = self.world.api_cache.get(value)
        if cached and cached[1] > self.clock.now:
            return cached[0]
        decisions = [i.decide(value.encode()) for i in self.world.instances]
        answers = [d.allowed for d in decisions if d.certain]
        if not answers:
            return False
        allowed = bool(cache_allow_if(answers))
        self.world.api_cache[value] = (allowed, self.clock.now + API_TTL)
        return allowed

    def _undecided_only_while_ssm_fails(self, instance: AcceptedSetCache, d: Decision) -> None:
        if d.certain:
            return
        assert instance.last_attempt_failed, "an instance decided nothing though it can read"
        assert instance.last_attempt is not None
        assert self.clock.now - instance.last_attempt < instance.retry_after(), (
            "an instance decided nothing after SSM recovered"
        )

    @invariant()
    def every_value_an_edge_sends_is_accepted(self) -> None:
        if not hasattr(self, "world"):
            return
        for value, applied_at in self.world.edge_values():
            if value in self.revoking and applied_at <= self.revoking[value]:
                # The documented price of revoke all: 403 until Deployed. The requests still
                # arrive; a stale instance may allow one, and API Gateway caches that Allow.
                self._decide(value, cache_allow_if=any)
                continue
            cached = self.world.api_cache.get(value)
            assert not (cached and not cached[0] and cached[1] > self.clock.now), (
                "an edge sends a value that is refused from API Gateway's cache"
            )
            for instance in self.world.instances:
                decision = instance.decide(value.encode())
                assert decision.allowed or not decision.certain, (
                    "an edge sends a value that is refused"
                )
                self._undecided_only_while_ssm_fails(instance, decision)
            self._decide(value)

    @invariant()
    def the_distribution_is_configured_with_an_accepted_value(self) -> None:
        if not hasattr(self, "world"):
            return
        for value in header_values(self.world.config, HEADER, ()).values():
            assert self.world.document.slot_of(value) is not None, (
                "the distribution is configured to send a value that is refused"
            )

    @invariant()
    def at_most_one_execution_is_past_its_lock(self) -> None:
        if not hasattr(self, "world"):
            return
        past = [e for e in self.running if e.position > e.program.index("acquire_lock")]
        assert len(past) <= 1, "two executions change the target at once"
        lock = self.world.lock
        assert not past or (lock is not None and lock.execution == past[0].name)

    @invariant()
    def revoked_values_stay_refused(self) -> None:
        if not hasattr(self, "world"):
            return
        for value in self.revoking:
            if self.refused_from(value) > self.clock.now:
                continue
            assert not self.world.document.slot_of(value), "a revoked value came back"
            cached = self.world.api_cache.get(value)
            assert not (cached and cached[0] and cached[1] > self.clock.now), (
                "a revoked value is accepted from API Gateway's cache"
            )
            for instance in self.world.instances:
                assert not instance.decide(value.encode()).allowed, "a revoked value is accepted"

    @invariant()
    def revokes_write_within_r(self) -> None:
        """R's first part, from the request: a running revoke has written by the fence settle
        (once per preemption) + its stage wait + the SSM outages it met."""
        if not hasattr(self, "world"):
            return
        for execution in self.running:
            if not execution.revoke or execution.wrote_at is not None:
                continue
            settles = 2 * FENCE_SETTLE + FENCE_BOUND
            bound = settles + SETTINGS.revoke_stage_wait_seconds + execution.blocked + 1.0
            assert self.clock.now - execution.started_at <= bound, (
                "a revoke has not written within R of its request"
            )

    @invariant()
    def no_instance_reads_beyond_its_budget(self) -> None:
        if not hasattr(self, "world"):
            return
        for reader in self.readers:
            for (t1, ok), (t2, _) in zip(reader.attempts, reader.attempts[1:], strict=False):
                gap = t2 - t1
                assert gap >= (MAX_AGE if ok else REFRESH), "an instance read beyond its budget"


class DeniesWhenUncertain(AcceptedSetCache):
    """The authorizer as it was: a Deny from a copy it cannot vouch for (an expired one, or
    none at all), which API Gateway then caches."""

    def decide(self, presented: bytes, deadline: float | None = None) -> Decision:
        decision = super().decide(presented, deadline)
        return decision if decision.certain else Decision(False, reason="no_match")


class WithoutCertainty(ProtocolModel):
    def spawn(self) -> None:
        reader = Reader(self.world)
        self.readers.append(reader)
        self.world.instances.append(
            DeniesWhenUncertain(
                reader, self.clock, max_age=MAX_AGE, retry_interval=REFRESH, max_staleness=STALENESS
            )
        )


def search_for_a_counterexample(model: type[ProtocolModel], max_examples: int) -> None:
    """Run *model* until an invariant fails (it raises) or *max_examples* pass."""
    run_state_machine_as_test(
        model,
        settings=settings(
            max_examples=max_examples,
            stateful_step_count=40,
            deadline=None,
            database=None,
            phases=[Phase.generate],  # finding it is the point; no need to shrink
        ),
    )


def test_the_model_catches_a_deny_from_a_copy_the_instance_cannot_vouch_for() -> None:
    # Given instances that deny when they cannot read (no copy, or an expired one), Then the
    # model finds an edge's value refused: a cold start or an expiry during an SSM outage
    with pytest.raises(AssertionError, match="refused"):
        search_for_a_counterexample(WithoutCertainty, max_examples=2000)


def test_the_model_catches_a_stage_wait_shorter_than_the_max_age(monkeypatch: Any) -> None:
    # Given a rotation that switches CloudFront one second after staging (instances do not
    # re-read on a miss, so one whose copy predates the stage denies the new value)
    short = RotateSettings.from_env(
        {
            "SSM_PARAMETER_NAME": "/model/token",
            "DISTRIBUTION_ID": "EMODEL",
            "AUTHORIZER_MAX_AGE_SECONDS": str(MAX_AGE),
            "STAGE_WAIT_SECONDS": "1",
        }
    )
    monkeypatch.setattr(sys.modules[__name__], "SETTINGS", short)
    # Then the model finds a moment where an edge's value is refused
    with pytest.raises(AssertionError, match="refused"):
        search_for_a_counterexample(ProtocolModel, max_examples=500)


def test_the_model_catches_a_revoke_that_switches_without_fresh_instances(
    monkeypatch: Any,
) -> None:
    # Revoke all's program without its instance replacement (and so still a revoke)
    program = [s for s in PROGRAMS["revoke_all"] if s != "replace_before_switch"]
    monkeypatch.setitem(PROGRAMS, "revoke_all", program)
    with pytest.raises(AssertionError, match="refused"):
        search_for_a_counterexample(ProtocolModel, max_examples=2000)


class CachesThatKeepEverything(Caches):
    """A cache reset that reports success and changes nothing."""

    def reset_api_cache(self) -> bool:
        return True

    def replace_instances(self, epoch: str) -> bool:
        return True


class WithoutTheCacheReset(ProtocolModel):
    """A revoke whose cache reset does nothing: stale copies outlive the reset."""

    def __init__(self) -> None:
        super().__init__()
        self.ports.caches = CachesThatKeepEverything(self.world, self.spawn)


def test_the_model_catches_a_revoked_value_accepted_after_r() -> None:
    # Given a revoke whose reset leaves warm instances and API Gateway's cache as they were,
    # then the model finds a revoked value accepted after the reset that should have ended R
    # (or, with no fresh instances before its switch, its new value refused)
    with pytest.raises(AssertionError, match=r"a revoked value is accepted|refused"):
        search_for_a_counterexample(WithoutTheCacheReset, max_examples=2000)


class UnfencedLock(Lock):
    """A lock whose writes are not fenced and whose revoke never settles."""

    def fence(self, execution_id: str) -> Fence:
        return Fence(execution_id, self.world.clock.now, self.world.clock)

    def acquire(self, execution_id: str, detail: dict[str, Any]) -> dict[str, Any]:
        return {**super().acquire(execution_id, detail), "settle": False}


class WithoutTheFence(ProtocolModel):
    def __init__(self) -> None:
        super().__init__()
        self.ports.lock = UnfencedLock(self)


def test_the_model_catches_a_preempted_write_landing_after_the_revoke() -> None:
    # Given a revoke that preempts without fencing the holder's writes or settling: a rotation
    # whose staging write is in flight when the revoke takes over
    with pytest.raises(AssertionError, match=r"refused|came back"):
        preempt(WithoutTheFence(), where="wait_stage", in_flight=True)
    # Then its late write undoes the revoke (the leaked value back, or the value CloudFront
    # now sends dropped); the same moves with the fence hold (the test below)


class NoLockSeen(GuardLock):
    def holder(self, name: str) -> str | None:
        return None


class WithoutTheLockCheck(ProtocolModel):
    """The drift guard as it was: no look at the workflow's lock."""

    def guard_lock(self) -> GuardLock:
        return NoLockSeen(self.world, self.is_running)


class SlowCloudFormation(ProtocolModel):
    """The residual window: CloudFormation writes the distribution any time after the guard
    answered, later than a revoke that started after the guard's check reaches its switch."""

    def advance(self, seconds: float) -> None:
        deploy, self.deploy = self.deploy, None
        try:
            super().advance(seconds)
        finally:
            self.deploy = self.deploy or deploy


def race(model: ProtocolModel, *, guard_first: bool) -> None:
    """A ``revoke all`` and a ``cdk deploy`` in the order that races: the guard answers, then the
    revoke switches CloudFront and removes the value the guard read, then CloudFormation writes.

    *guard_first*: the guard answers before the revoke takes the lock (else while the revoke
    waits between staging and its switch).
    """
    model.start_instances()
    model.trigger_revoke_all()
    if guard_first:
        model.cdk_deploy_guard_answers()
    # validate, acquire_lock, stage, replace the instances, the stage wait (begun)
    model.workflow_steps(index=0, count=5, crash=None, in_flight=False)
    if not guard_first:
        # half a second before the stage wait ends
        model.advance(SETTINGS.revoke_stage_wait_seconds - 0.5)
        model.cdk_deploy_guard_answers()
    # the stage wait ends: the revoke, driven by the clock, switches and revokes
    model.workflow_steps(index=0, count=1, crash=None, in_flight=False)
    assert model.revoking, "the revoke removed the old value"
    if model.deploy is not None:
        model.cloudformation_writes_the_distribution()
    model.check_all()


def test_a_deploy_during_a_revoke_is_refused_before_it_reads() -> None:
    # Given a revoke all between staging and its switch, when a deploy asks the guard
    model = ProtocolModel()
    race(model, guard_first=False)
    # Then the guard refused (and its rollback answered): nothing was written back
    assert model.deploys_refused == 1
    assert model.deploy is None


def test_without_the_lock_check_a_deploy_writes_the_revoked_value_back() -> None:
    # The same moves with the guard as it was: the model catches the value written back
    with pytest.raises(AssertionError, match="configured to send a value that is refused"):
        race(WithoutTheLockCheck(), guard_first=False)


def test_a_revoke_started_after_the_guard_answered_switches_after_the_write() -> None:
    # Given the guard's answer just before a revoke takes the lock, CloudFormation writes
    # within the emergency stage wait: before the revoke's switch, so the switch wins
    model = ProtocolModel()
    race(model, guard_first=True)
    assert model.deploys_refused == 0
    assert model.world.document.slot_of(model.world.rollouts[-1][1]["api"]) == "current"


def test_the_residual_window_a_cloudformation_slower_than_the_stage_wait() -> None:
    # Given the same moves with CloudFormation writing only after the revoke's switch: the
    # documented residual window, the value the guard read is written back after its revoke
    with pytest.raises(AssertionError, match="configured to send a value that is refused"):
        race(SlowCloudFormation(), guard_first=True)


def preempt(model: ProtocolModel, *, where: str, in_flight: bool) -> tuple[str, str, float]:
    """A rotation that has reached *where* (its last step's write still in flight, if
    *in_flight*), under traffic, then a ``revoke all``, then five minutes of clock: the
    invariants are checked throughout. Returns the rotation, the leaked value and when the
    revoke was requested."""
    model.start_instances()
    model.trigger_rotation("manual")
    rotation = model.running[0]
    while rotation.program[rotation.position] != where:
        last = rotation.program[rotation.position + 1] == where
        model.workflow_step(rotation, None, in_flight and last)
        model.check_all()
        if rotation.in_flight is not None:
            break
    leaked = model.world.document.current
    assert leaked is not None
    requested = model.clock.now
    model.trigger_revoke_all()
    model.advance(0)
    model.check_all()
    for _ in range(60):
        model.advance(5.0)
        model.check_all()
    return rotation.name, leaked, requested


@pytest.mark.parametrize(
    "where",
    ["stage", "wait_stage", "switch", "poll", "verify", "promote", "wait_drain", "retire"],
)
def test_a_revoke_all_preempts_a_rotation_between_its_steps(where: str) -> None:
    # Given a rotation that has reached *where*, when an operator revokes all
    model = ProtocolModel()
    rotation, leaked, requested = preempt(model, where=where, in_flight=False)
    # Then the rotation was stopped, the revoke wrote after its stage wait alone (nothing to
    # settle), and the leaked value is refused everywhere
    assert not model.is_running(rotation)
    assert model.preemptions == 1
    assert model.revoking[leaked] - requested <= SETTINGS.revoke_stage_wait_seconds
    assert not model._decide(leaked, cache_allow_if=any)


@pytest.mark.parametrize(
    ("step", "where"),
    [
        ("stage", "wait_stage"),
        ("switch", "poll"),
        ("promote", "wait_drain"),
        ("retire", "reset_authorizer_caches"),
    ],
)
def test_a_revoke_all_preempts_a_rotation_whose_write_is_in_flight(step: str, where: str) -> None:
    # Given a rotation whose *step* passed its fence check and whose write has not landed,
    # when an operator revokes all
    model = ProtocolModel()
    _, leaked, requested = preempt(model, where=where, in_flight=True)
    # Then the revoke settled before it read anything (the late write landed meanwhile and was
    # then overwritten), wrote within the settle + its stage wait, and the leaked value is
    # refused everywhere
    assert model.preemptions == 1
    assert not model.world.pending_writes
    written = model.revoking[leaked] - requested
    assert FENCE_SETTLE <= written <= FENCE_SETTLE + SETTINGS.revoke_stage_wait_seconds
    assert not model._decide(leaked, cache_allow_if=any)


ProtocolModel.TestCase.settings = settings(
    max_examples=20_000 if SOAK else 500,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestProtocol = ProtocolModel.TestCase
