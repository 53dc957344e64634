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

``EdgeSignedModel`` runs the same rules in edge-signed mode (docs/edge-signed.md): the real
``SigningKeys`` port on the sandbox's emulated KeyValueStore, edges that each see a store write
after their own delay and sign with their own clock skew, a switch from header mode, replayed
tokens. Its docstring states what it models and assumes; on top of the invariants above (a
revoked *key* refused in every form, a token an edge sends never denied), every token seen is
refused everywhere from its window's start + (T + 1)·W + TTL on. The ``..._catches_...`` tests
below are broken variants each model must catch.

``make test`` runs 500 examples in header mode and 200 in edge-signed mode; ``make soak``
(ORIGINLOCK_SOAK=1) runs 20,000 and 10,000.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import os
import sys
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

import pytest
from botocore.exceptions import ClientError
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
from originlock.sandbox.kvs import ConflictError, EmulatedKeyValueStore, ResourceNotFoundError
from provision.errors import LockUnavailableError, ProvisionError, RotationRunningError
from provision.errors import StoreUnavailableError as GuardStoreUnavailableError
from provision.logic import origin_header_value
from rotate import steps
from rotate.adapters import (
    RELEASED,
    Fence,
    LiveDistribution,
    SigningKeys,
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
from tokens.document import EDGE_SIGNED_MODE, Signing, TokenDocument, generate_token
from tokens.edge import KVS_KEY_NAME, sign, valid_signing_key, window_of
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
EDGES = 4

# -- edge-signed mode (EdgeSignedModel) ------------------------------------------------------
KVS_ARN = "arn:aws:cloudfront::111111111111:key-value-store/0f1e2d3c-aaaa-bbbb-cccc-0123456789ab"
EDGE_FUNCTION = "model-sign"
EDGE_ENV = {
    "SSM_PARAMETER_NAME": "/model/token",
    "DISTRIBUTION_ID": "EMODEL",
    "AUTHORIZER_REFRESH_INTERVAL_SECONDS": str(REFRESH),
    "AUTHORIZER_MAX_AGE_SECONDS": str(MAX_AGE),
    "DEPLOY_TIMEOUT_SECONDS": "1800",
    "FENCE_SETTLE_SECONDS": str(FENCE_SETTLE),
    "LOCK_MODE": "edge-signed",
    "KVS_ARN": KVS_ARN,
    "EDGE_FUNCTION_NAME": EDGE_FUNCTION,
}
# The product's defaults otherwise: 60 s windows, tolerance 1, a 60 s propagation wait, 5 s
# polls, a 60 s drain.
EDGE_SETTINGS = RotateSettings.from_env(EDGE_ENV)
# The authorizer's result TTL in this mode: the window (docs/edge-signed.md, "Leak lifetime").
EDGE_API_TTL = 60.0
# The environment assumptions of the mode, each shown to matter by a broken variant below:
# every edge's clock (with the request's transit) is within tolerance x window of the
# authorizer's (Lambda's clock is the reference), and a KeyValueStore write reaches every edge,
# and CloudFront's TestFunction, within the rotation's propagation wait.
SKEW_BOUND = EDGE_SETTINGS.tolerance_windows * EDGE_SETTINGS.window_seconds
SKEWS = tuple(SKEW_BOUND * f for f in (-1, -0.99, -0.5, -0.01, 0, 0.01, 0.5, 0.99, 1))
MAX_PROPAGATION = EDGE_SETTINGS.propagation_seconds
DELAYS = tuple(MAX_PROPAGATION * f for f in (0, 0.01, 0.05, 0.1, 0.35, 0.98, 1))


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class LockRecord:
    execution: str
    priority: int
    # rotate.adapters.Holder.settle_until: writes it waits for may land until then.
    settle_until: float | None = None


@dataclass
class PendingWrite:
    """A write that passed its fence check and has not landed yet."""

    execution: str
    kind: str  # "document" | "distribution" | "release"
    payload: Any
    etag: str
    deadline: float


@dataclass(frozen=True)
class Sent:
    """What one edge puts in the origin header of a request now."""

    header: str | None  # None: no header at all (API Gateway answers 401 from its identity source)
    secret: str | None  # the stored value it proves: the value itself, or the key that signed it
    since: float  # when the configuration, or the store's version, behind it was written


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

    def edge_configs(self) -> list[tuple[dict[str, str], float]]:
        """Per edge, the static header values of the configuration it runs now, and when that
        configuration was applied."""
        now = self.clock.now
        configs: list[tuple[dict[str, str], float]] = []
        for edge in range(len(self.rollouts[0][0])):
            for switch_at, headers, applied_at in reversed(self.rollouts):
                if switch_at[edge] <= now:
                    configs.append((headers, applied_at))
                    break
        return configs

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
        now = self.world.clock.now
        inherited = held.settle_until is not None and held.settle_until > now
        busy, running = self._busy(held.execution)
        if not busy:
            if inherited:
                record.settle_until = now + FENCE_SETTLE
            self.world.lock = record
            return {**result, "took_over": held.execution, "settle": inherited}
        if mine > 0 and (mine > held.priority or not running):
            in_flight = any(w.execution == held.execution for w in self.world.pending_writes)
            settle = in_flight or inherited
            # rotate.adapters.Lock takes over with a settling record whatever the history says
            record.settle_until = now + FENCE_SETTLE
            self.world.lock = record
            if running:
                self.model.stop(held.execution)
            return {
                **result,
                "preempted": {"execution": held.execution, "was_running": running},
                "settle": settle,
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
        left = released(self.world.lock, self.world.clock.now)
        if not self.world.defer(execution_id, "release", left):
            self.world.lock = left
        return True


def released(record: LockRecord | None, now: float) -> LockRecord | None:
    """What rotate.adapters.Lock.release leaves: nothing, or a record of nobody that keeps a
    settling holder's settle_until (whoever takes the lock next settles too)."""
    if record is None or record.settle_until is None or record.settle_until <= now:
        return None
    return LockRecord(RELEASED, 0, record.settle_until)


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


def make_config(value: str | None) -> dict[str, Any]:
    """The distribution's configuration: its origin sends *value* as a static header (None:
    no static header, the edge function sets it)."""
    items = [] if value is None else [{"HeaderName": HEADER, "HeaderValue": value}]
    return {
        "Origins": {
            "Quantity": 1,
            "Items": [
                {
                    "Id": "api",
                    "DomainName": "api.example",
                    "CustomHeaders": {"Quantity": len(items), "Items": items},
                }
            ],
        },
        "Comment": "model",
    }


class ProtocolModel(RuleBasedStateMachine):
    """Header mode: CloudFront sends the stored value as a static origin header."""

    def __init__(self) -> None:
        super().__init__()
        self.clock = Clock()
        first = generate_token()
        self.world = World(self.clock, TokenDocument(current=first).evolve(), make_config(first))
        self.world.rollouts.append(([0.0] * EDGES, {"api": first}, 0.0))
        self.distribution = Distribution(self.world, deploy_window=120.0)
        self.running: list[Execution] = []
        self.stopped_at: dict[str, float] = {}
        self.stopped: dict[str, Execution] = {}
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
        # Values removed by a revoke all: edges not yet switched may still send them (the
        # documented price). A value revoke previous removed no edge may send.
        self.revoked_by_all: set[str] = set()
        # Edge-signed tokens seen so far: token -> (window, key), and each key's tokens.
        self.tokens: dict[str, tuple[int, str]] = {}
        self.tokens_by_key: dict[str, set[str]] = {}
        # Tokens whose life may not be over yet (checked once past it; replays check later).
        self.live_tokens: set[str] = set()

    @property
    def settings(self) -> RotateSettings:
        return SETTINGS  # looked up at each call: the broken variants patch it

    @property
    def api_ttl(self) -> float:
        return API_TTL

    def random_header(self, i: int) -> str:
        """A value a sprayer sends straight at the API."""
        return generate_token()

    def guard_in_template(self) -> bool:
        """Whether a ``cdk deploy`` writes a static origin header (through the drift guard)."""
        return True

    def deployed(self) -> bool:
        return self.world.status() == "Deployed"

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
                self.stopped[name] = execution

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
        # A revoke driven on the way may have moved the clock further (its polls): time never
        # goes back.
        self.clock.now = max(self.clock.now, target)

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
                wall_clock=self.clock,
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
            value = self.random_header(i)
            instance = self.world.instances[i % len(self.world.instances)]
            decision = instance.decide(value.encode())
            assert not decision.allowed
            if decision.certain:
                self.world.api_cache[value] = (False, self.clock.now + self.api_ttl)

    @precondition(lambda self: self.deploy is None and self.guard_in_template())
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
            # DeleteParameter deletes whatever lock is there (PutParameter of a settling
            # holder's release record overwrites it)
            self.world.lock = write.payload
        elif write.kind == "kvs":
            self.land_key(write)
        elif write.etag == str(self.world.etag):
            self.distribution.apply(write.payload, self.distribution.spread())
        else:
            write.payload = None  # PreconditionFailed: that step retries, if it still runs
        execution = next((e for e in self.running if e.name == write.execution), None)
        if execution is None:
            self.landed_after_stop(write)
            return
        if execution.in_flight is None:
            return
        if any(w.execution == write.execution for w in self.world.pending_writes):
            return
        name, result = execution.in_flight
        execution.in_flight = None
        if write.kind in ("distribution", "kvs") and write.payload is None:
            return  # the switch is retried with a fresh ETag
        self.record(execution, name, result)

    def landed_after_stop(self, write: PendingWrite) -> None:
        """The last write of a stopped execution's step landed: a revoke's write revokes what
        it was asked to revoke all the same (the operator asked for it; edges still sending
        those values are refused, the price of revoke all)."""
        execution = self.stopped.get(write.execution)
        if execution is None or execution.in_flight is None:
            return
        if any(w.execution == write.execution for w in self.world.pending_writes):
            return
        name, result = execution.in_flight
        execution.in_flight = None
        if name in ("revoke_all", "revoke_previous") and result["changed"]:
            self.revoking.update(dict.fromkeys(execution.revoked, self.clock.now))
            if name == "revoke_all":
                self.revoked_by_all |= execution.revoked

    def land_key(self, write: PendingWrite) -> None:
        raise AssertionError("header mode writes no KeyValueStore")

    def _fail(self, execution: Execution) -> None:
        """The state machine's failure path: after a revoke step, ResetCachesAfterFailure
        (best effort), then ReleaseLockAfterFailure (retried until SSM answers)."""
        if execution.revoke:
            call = steps.StepCall(execution.name, execution.state, {"fresh_instances": True})
            # A value a revoke step already removed stays revoked (edges still sending it get
            # 403, the price of revoke all). If the reset cannot run, warm instances and API
            # Gateway's cache may accept it until they expire (the bound from the write).
            with contextlib.suppress(RotationError):
                steps.reset_authorizer_caches(call, self.settings, self.ports)
                self._caches_reset(execution)
        lock = self.world.lock
        if lock is not None and lock.execution == execution.name:
            self.world.lock = released(lock, self.clock.now)
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
        self.leaked_tokens_expire()
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
            result = steps.STEPS[step_name](call, self.settings, self.ports)
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
            if name == "revoke_all":
                self.revoked_by_all |= execution.revoked
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
            self.advance(self.settings.poll_interval_seconds)
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
        tail = (STALENESS if outage else MAX_AGE) + self.api_ttl
        return min(self.reset_after_revoke.get(value, float("inf")), written + tail)

    @precondition(lambda self: self.running)
    @rule()
    def deploy_timeout(self) -> None:
        execution = self.running[0]
        if execution.in_flight is not None:
            return
        if execution.program[execution.position] == "poll" and not self.deployed():
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
        self.world.api_cache[value] = (allowed, self.clock.now + self.api_ttl)
        return allowed

    def _undecided_only_while_ssm_fails(self, instance: AcceptedSetCache, d: Decision) -> None:
        if d.certain:
            return
        assert instance.last_attempt_failed, "an instance decided nothing though it can read"
        assert instance.last_attempt is not None
        assert self.clock.now - instance.last_attempt < instance.retry_after(), (
            "an instance decided nothing after SSM recovered"
        )

    def sent_by_edges(self) -> list[Sent]:
        """What every edge sends now: its configuration's static header."""
        return [
            Sent(value, value, applied_at)
            for headers, applied_at in self.world.edge_configs()
            for value in headers.values()
        ]

    def forms(self, value: str) -> list[str]:
        """Every header that proves *value* now (header mode: the value itself)."""
        return [value]

    def headers_of(self, value: str) -> set[str]:
        """Every header seen so far that proves *value*."""
        return {value} | self.tokens_by_key.get(value, set())

    @invariant()
    def every_value_an_edge_sends_is_accepted(self) -> None:
        if not hasattr(self, "world"):
            return
        for sent in dict.fromkeys(self.sent_by_edges()):  # each distinct one once
            assert sent.header is not None and sent.secret is not None, (
                "an edge sends no origin header: its requests are refused (401)"
            )
            value = sent.header
            if sent.secret in self.revoked_by_all and sent.since <= self.revoking[sent.secret]:
                # The documented price of revoke all: 403 until Deployed (in edge-signed mode,
                # until the edge's store has the new key). The requests still arrive; a stale
                # instance may allow one, and API Gateway caches that Allow.
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
        for value in self.configured_values():
            assert self.world.document.slot_of(value) is not None, (
                "the distribution is configured to send a value that is refused"
            )

    def configured_values(self) -> list[str]:
        """What CloudFront is configured to send (or sign with), once every edge has it."""
        return list(header_values(self.world.config, HEADER, ()).values())

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
            for header in self.headers_of(value):
                cached = self.world.api_cache.get(header)
                assert not (cached and cached[0] and cached[1] > self.clock.now), (
                    "a revoked value is accepted from API Gateway's cache"
                )
            for instance in self.world.instances:
                for form in self.forms(value):
                    assert not instance.decide(form.encode()).allowed, "a revoked value is accepted"

    def token_dies(self, window: int) -> float:
        """When a token for *window* must be refused everywhere: (T + 1)·W + TTL after the
        window's start (docs/edge-signed.md, "Leak lifetime")."""
        width = self.settings.window_seconds
        return (window + self.settings.tolerance_windows + 1) * width + self.api_ttl

    @invariant()
    def leaked_tokens_expire(self) -> None:
        """Every token an edge sent (leaked, say, by a backend's logs) is refused by every
        instance and by API Gateway's cache from the end of its life on."""
        if not hasattr(self, "world"):
            return
        for token in list(self.live_tokens):
            if self.clock.now < self.token_dies(self.tokens[token][0]):
                continue
            cached = self.world.api_cache.get(token)
            assert not (cached and cached[0] and cached[1] > self.clock.now), (
                "a leaked token is accepted from API Gateway's cache after its life"
            )
            for instance in self.world.instances:
                assert not instance.decide(token.encode()).allowed, (
                    "a leaked token is accepted after its life"
                )
            self.live_tokens.discard(token)

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
            wait = self.settings.revoke_stage_wait_seconds
            bound = settles + wait + execution.blocked + 1.0
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


# -- edge-signed mode -------------------------------------------------------------------------
def client_error(code: str, operation: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": code}}, operation)


class KeyValueStoreClient:
    """botocore's ``cloudfront-keyvaluestore`` client as the real :class:`SigningKeys` calls it,
    on the sandbox's emulated store (an ETag per version, a stale one refused, each version
    reaching each edge at its own moment). A write sent by a step whose writes are in flight is
    held back like the other fenced writes, and lands with the ETag it was sent with."""

    def __init__(self, model: EdgeSignedModel) -> None:
        self.model = model

    def describe_key_value_store(self, **call: Any) -> dict[str, Any]:
        described = self.model.kvs.describe()
        return described | {
            "Created": datetime.fromisoformat(described["Created"]),
            "LastModified": datetime.fromisoformat(described["LastModified"]),
        }

    def get_key(self, **call: Any) -> dict[str, Any]:
        try:
            return self.model.kvs.get_key(call["Key"])
        except ResourceNotFoundError:
            raise client_error("ResourceNotFoundException", "GetKey") from None

    def update_keys(self, **call: Any) -> dict[str, Any]:
        world = self.model.world
        if self.model.foreign_store_write:
            self.model.foreign_store_write = False
            self.model.write_another_key()
        key = call["Puts"][0]["Value"]
        execution = world.defer_writes_for
        if execution is not None and world.defer(execution, "kvs", key, call["IfMatch"]):
            return {}
        try:
            return self.model.kvs.update_keys(call["IfMatch"], puts=call["Puts"])
        except ConflictError:
            raise client_error("ConflictException", "UpdateKeys") from None


class FunctionsClient:
    """CloudFront's DescribeFunction and TestFunction. TestFunction runs the published function
    somewhere in CloudFront: its view of the store is modelled as one more edge's (evidence
    that the key spreads, never proof that every edge has it)."""

    def __init__(self, model: EdgeSignedModel) -> None:
        self.model = model

    def describe_function(self, **call: Any) -> dict[str, Any]:
        return {"ETag": "ETVPDKIKX0DER"}

    def test_function(self, **call: Any) -> dict[str, Any]:
        sent = self.model.signed_at(EDGES, skew=0.0, record=False)
        headers = {} if sent.header is None else {HEADER: {"value": sent.header}}
        output = json.dumps({"request": {"headers": headers}})
        return {"TestResult": {"FunctionOutput": output, "ComputeUtilization": "12"}}


class Clients:
    def __init__(self, model: EdgeSignedModel) -> None:
        self.services: dict[str, Any] = {
            "cloudfront-keyvaluestore": KeyValueStoreClient(model),
            "cloudfront": FunctionsClient(model),
        }

    def get(self, service: str, *, fenced: bool = False) -> Any:
        return self.services[service]


class EdgeSignedModel(ProtocolModel):
    """Edge-signed mode: the same workflow, steps, lock, fences and authorizer cache; what the
    edges send is a token each computes per request (docs/edge-signed.md).

    * The rotation's distribution port is the real :class:`SigningKeys` (``LOCK_MODE``
      edge-signed, the function named), its KeyValueStore the sandbox's emulated store and its
      distribution the model's, as in header mode.
    * Each edge runs the configuration CloudFront rolled out to it. While that configuration
      still carries the static origin header, the edge sends it (it wins over the function's).
      Otherwise the edge sends ``sign(key, distribution, edge clock, window)`` with the key its
      own view of the store holds now: each store write reaches each edge after its own delay
      (drawn up to ``MAX_PROPAGATION``); an edge never goes back to an older version; each edge's
      clock is off by its own skew (drawn within ``SKEW_BOUND``).
    * API Gateway caches per header value, for the window (``EDGE_API_TTL``): a token changes
      every window, so each one meets an instance at least once.
    * A ``cdk deploy`` that switches modes (the static header out, the function in) comes only
      once the store's key has been written for the propagation wait (the procedure's
      assumption: the test ``..._mode_switch_deployed_before_the_key_reached_every_edge``
      shows why). Other deploys go through the drift guard while the header is in the template.

    After every move, besides header mode's invariants: every token an edge sends is allowed
    (never a cached Deny), a revoked key's tokens for any window within the tolerance are
    refused from R on, and every token seen is refused everywhere from its window's start +
    (T + 1)·W + TTL on.
    """

    def __init__(self) -> None:
        super().__init__()
        self.switching = False
        # Another writer of the store changes it between a step's read and its write.
        self.foreign_store_write = False
        self.skews: list[float] = [0.0] * EDGES
        self.delays: list[list[float]] = [[0.0] * (EDGES + 1)]
        self._immediate = False
        self.setup_edges("edge-signed", self.skews, self.delays)
        self.ports.distribution = SigningKeys(
            self.settings,
            cast(Any, Clients(self)),
            distribution=cast(Any, self.distribution),
            clock=self.clock,
        )

    @property
    def settings(self) -> RotateSettings:
        return EDGE_SETTINGS

    @property
    def api_ttl(self) -> float:
        return EDGE_API_TTL

    def setup_edges(self, start: str, skews: list[float], delays: list[list[float]]) -> None:
        """The world at the start of an example.

        *start*: ``edge-signed`` (the mode in place: a key in the document and the store, no
        static header), ``key-staged`` (a mode switch under way: a header-mode rotation's value
        still current and sent as the static header, an edge-signed rotation's key staged and in
        the store, as its first poll left them) or ``header`` (the deployment's settings just
        switched: nothing in the store, a header-mode document). *delays*: per store version
        (cycling), the propagation delay to each edge and to TestFunction's location.
        """
        self.skews, self.delays = list(skews), [list(row) for row in delays]
        self.kvs = EmulatedKeyValueStore(KVS_ARN, EDGES + 1, clock=self.clock, delay=self._delay)
        settings = self.settings
        signing = Signing(
            settings.distribution_id, settings.window_seconds, settings.tolerance_windows
        )
        first = generate_token()
        if start == "edge-signed":
            document = TokenDocument(current=first, mode=EDGE_SIGNED_MODE, signing=signing)
            self._put_key_long_ago(first)
            config = make_config(None)
        elif start == "key-staged":
            key = generate_token()
            document = TokenDocument(
                current=first, pending=key, mode=EDGE_SIGNED_MODE, signing=signing
            )
            self._put_key_long_ago(key)
            config = make_config(first)
        else:
            document = TokenDocument(current=first)
            config = make_config(first)
        self.world.document = document.evolve()
        self.world.config = config
        self.world.rollouts[:] = [([0.0] * EDGES, header_values(config, HEADER, ()), 0.0)]
        self.switching = bool(header_values(config, HEADER, ()))

    def _put_key_long_ago(self, key: str) -> None:
        now, self._immediate = self.clock.now, True
        self.clock.now = now - self.settings.propagation_seconds - 1.0
        try:
            self.kvs.update_keys(self.kvs.latest.etag, puts=[{"Key": KVS_KEY_NAME, "Value": key}])
        finally:
            self.clock.now, self._immediate = now, False

    def _delay(self, version: int, edge: int) -> float:
        if self._immediate:
            return 0.0
        row = self.delays[version % len(self.delays)]
        return row[edge % len(row)]

    @initialize(
        start=st.sampled_from(["edge-signed", "key-staged", "header"]),
        skews=st.lists(st.sampled_from(SKEWS), min_size=EDGES, max_size=EDGES),
        delays=st.lists(
            st.lists(st.sampled_from(DELAYS), min_size=EDGES + 1, max_size=EDGES + 1),
            min_size=1,
            max_size=3,
        ),
    )
    def edges_and_store(self, start: str, skews: list[float], delays: list[list[float]]) -> None:
        self.setup_edges(start, skews, delays)

    # -- what the edges send -----------------------------------------------------------------
    def signed_at(self, edge: int, skew: float, record: bool = True) -> Sent:
        """What the function sends at *edge* now: a token with the key its store view holds,
        or no header when it holds none (the function then removes the header)."""
        version = self.kvs.visible_version(edge, self.clock.now)
        assert version is not None  # the model makes no edge unable to read its store
        key = version.data.get(KVS_KEY_NAME)
        if key is None:
            return Sent(None, None, version.written_at)
        width = self.settings.window_seconds
        edge_time = self.clock.now + skew
        token = sign(key, self.settings.distribution_id, edge_time, width)
        if record and token not in self.tokens:
            self.tokens[token] = (window_of(edge_time, width), key)
            self.tokens_by_key.setdefault(key, set()).add(token)
            self.live_tokens.add(token)
        return Sent(token, key, version.written_at)

    def sent_by_edges(self) -> list[Sent]:
        sent: list[Sent] = []
        for edge, (headers, applied_at) in enumerate(self.world.edge_configs()):
            if headers:  # a static origin header wins over the function's (FACTS.md)
                sent += [Sent(value, value, applied_at) for value in headers.values()]
            else:
                sent.append(self.signed_at(edge, self.skews[edge]))
        return sent

    def forms(self, value: str) -> list[str]:
        """The value as is, and its tokens for every window an authorizer may accept now."""
        forms = [value]
        if valid_signing_key(value):
            settings, width = self.settings, self.settings.window_seconds
            window = window_of(self.clock.now, width)
            reach = settings.tolerance_windows
            forms += [
                sign(value, settings.distribution_id, (window + d) * width, width)
                for d in range(-reach, reach + 1)
            ]
        return forms

    def configured_values(self) -> list[str]:
        key = self.kvs.latest.data.get(KVS_KEY_NAME)
        return super().configured_values() + ([] if key is None else [key])

    def random_header(self, i: int) -> str:
        # Every other one a well-formed token signed with a key nobody has.
        if i % 2:
            return generate_token()
        return sign(
            generate_token(),
            self.settings.distribution_id,
            self.clock.now,
            self.settings.window_seconds,
        )

    def guard_in_template(self) -> bool:
        return self.switching

    def deployed(self) -> bool:
        try:
            return self.ports.distribution.describe().status == "Deployed"
        except RotationError:
            return False

    def land_key(self, write: PendingWrite) -> None:
        try:
            self.kvs.update_keys(write.etag, puts=[{"Key": KVS_KEY_NAME, "Value": write.payload}])
        except ConflictError:
            write.payload = None  # ConflictException: that step retries, if it still runs

    # -- moves of this mode ----------------------------------------------------------------------
    def key_settled(self) -> bool:
        """The store holds a key, written at least the propagation wait ago."""
        latest = self.kvs.latest
        waited = self.clock.now - latest.written_at >= self.settings.propagation_seconds
        return KVS_KEY_NAME in latest.data and waited

    @precondition(lambda self: self.switching and self.deploy is None and self.key_settled())
    @rule()
    def cdk_deploy_switches_modes(self) -> None:
        self.switch_modes()

    def switch_modes(self) -> None:
        """The deploy that finishes a switch to edge-signed mode: one configuration without the
        static header and with the function on viewer request, rolled out edge by edge."""
        self.switching = False
        config = copy.deepcopy(self.world.config)
        for origin in config["Origins"]["Items"]:
            origin["CustomHeaders"] = {"Quantity": 0, "Items": []}
        self.distribution.apply(config, self.distribution.spread())

    @rule()
    def someone_else_writes_the_store(self) -> None:
        """Another key of the store changes (an operator, another function sharing the store)
        just before the next write: its ETag moves on, so that write meets ConflictException."""
        self.foreign_store_write = True

    def write_another_key(self) -> None:
        entry = {"Key": "feature-flags", "Value": generate_token()}
        self.kvs.update_keys(self.kvs.latest.etag, puts=[entry])

    @precondition(lambda self: any(not e.revoke for e in self.running))
    @rule(
        count=st.integers(5, 30),
        in_flight=st.sampled_from([False, False, False, True]),
    )
    def a_rotation_proceeds(self, count: int, in_flight: bool) -> None:
        """The oldest running rotation moves on by up to *count* states (its polls and waits
        among them): so that many examples see a rotation promote, drain and retire while the
        store's versions spread; *in_flight*: the last state's writes land later."""
        for i in range(count):
            rotations = [e for e in self.running if not e.revoke]
            if not rotations:
                return
            self.workflow_step(rotations[0], None, in_flight and i == count - 1)
            self.check_all()

    @precondition(lambda self: self.tokens)
    @rule(index=st.integers(0, 63))
    def a_leaked_token_is_replayed(self, index: int) -> None:
        """Someone replays a token a backend logged, straight at the API."""
        tokens = list(self.tokens)
        token = tokens[index % len(tokens)]
        allowed = self._decide(token, cache_allow_if=any)
        assert not (allowed and self.clock.now >= self.token_dies(self.tokens[token][0])), (
            "a leaked token is accepted after its life"
        )


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
    # (the settings refuse such a wait: built past them to show the model would catch it)
    short = dataclasses.replace(
        RotateSettings.from_env(
            {
                "SSM_PARAMETER_NAME": "/model/token",
                "DISTRIBUTION_ID": "EMODEL",
                "AUTHORIZER_MAX_AGE_SECONDS": str(MAX_AGE),
            }
        ),
        stage_wait_seconds=1.0,
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


# A revoked value written back: the distribution is configured with it, and the edges that
# switch to it are refused (by an instance, or by the Deny API Gateway cached while the revoke
# ran, whichever the model checks first).
WRITTEN_BACK = r"configured to send a value that is refused|an edge sends a value that is refused"


def test_a_deploy_during_a_revoke_is_refused_before_it_reads() -> None:
    # Given a revoke all between staging and its switch, when a deploy asks the guard
    model = ProtocolModel()
    race(model, guard_first=False)
    # Then the guard refused (and its rollback answered): nothing was written back
    assert model.deploys_refused == 1
    assert model.deploy is None


def test_without_the_lock_check_a_deploy_writes_the_revoked_value_back() -> None:
    # The same moves with the guard as it was: the model catches the value written back
    with pytest.raises(AssertionError, match=WRITTEN_BACK):
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
    with pytest.raises(AssertionError, match=WRITTEN_BACK):
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


MODES = pytest.mark.parametrize(
    "model_class", [ProtocolModel, EdgeSignedModel], ids=["header", "edge-signed"]
)


def accepted_anywhere(model: ProtocolModel, value: str) -> bool:
    """Whether a request proving *value* (as is, or a token it signs for a window the
    authorizer accepts now) is allowed through API Gateway."""
    return any(model._decide(form, cache_allow_if=any) for form in model.forms(value))


@MODES
@pytest.mark.parametrize(
    "where",
    ["stage", "wait_stage", "switch", "poll", "verify", "promote", "wait_drain", "retire"],
)
def test_a_revoke_all_preempts_a_rotation_between_its_steps(
    model_class: type[ProtocolModel], where: str
) -> None:
    # Given a rotation that has reached *where*, when an operator revokes all
    model = model_class()
    rotation, leaked, requested = preempt(model, where=where, in_flight=False)
    # Then the rotation was stopped, the revoke wrote after its stage wait alone (nothing to
    # settle), and the leaked value is refused everywhere
    assert not model.is_running(rotation)
    assert model.preemptions == 1
    assert model.revoking[leaked] - requested <= model.settings.revoke_stage_wait_seconds
    assert not accepted_anywhere(model, leaked)


@pytest.mark.parametrize(
    ("step", "where"),
    [
        ("stage", "wait_stage"),
        ("switch", "poll"),
        ("promote", "wait_drain"),
        ("retire", "reset_authorizer_caches"),
    ],
)
@MODES
def test_a_revoke_all_preempts_a_rotation_whose_write_is_in_flight(
    model_class: type[ProtocolModel], step: str, where: str
) -> None:
    # Given a rotation whose *step* passed its fence check and whose write has not landed (in
    # edge-signed mode the switch's is UpdateKeys), when an operator revokes all
    model = model_class()
    _, leaked, requested = preempt(model, where=where, in_flight=True)
    # Then the revoke settled before it read anything (the late write landed meanwhile and was
    # then overwritten), wrote within the settle + its stage wait, and the leaked value is
    # refused everywhere
    assert model.preemptions == 1
    assert not model.world.pending_writes
    written = model.revoking[leaked] - requested
    assert FENCE_SETTLE <= written <= FENCE_SETTLE + model.settings.revoke_stage_wait_seconds
    assert not accepted_anywhere(model, leaked)


def run(model: ProtocolModel, execution: Execution, until: str | None = None) -> None:
    """Step *execution* until it ends (or reaches the state *until*), checking the invariants
    after every state; its waits and polls move the clock."""
    for _ in range(200):
        if not model.is_running(execution.name):
            return
        if execution.program[execution.position] == until and execution.wait_until is None:
            return
        model.workflow_step(execution, None, False)
        model.check_all()
    raise AssertionError("the execution did not end")


def edge_model(
    start: str = "edge-signed",
    skews: tuple[float, ...] = (0.0,) * EDGES,
    delays: tuple[float, ...] = (0.0,) * (EDGES + 1),
) -> EdgeSignedModel:
    """An edge-signed model under traffic; *delays*: each edge's propagation delay, then
    TestFunction's, for every store write."""
    model = EdgeSignedModel()
    model.setup_edges(start, list(skews), [list(delays)])
    model.start_instances()
    model.check_all()
    return model


def edge_settings(monkeypatch: Any, **env: str) -> None:
    monkeypatch.setattr(
        sys.modules[__name__], "EDGE_SETTINGS", RotateSettings.from_env(EDGE_ENV | env)
    )


def test_an_edge_signed_rotation_retires_the_old_key_once_every_edge_signs_with_the_new() -> None:
    # Given edges that see a store write from at once to the whole propagation wait later,
    # with clocks off by up to the tolerance, either way
    model = edge_model(
        skews=(-SKEW_BOUND, -0.5, 30.0, SKEW_BOUND),
        delays=(0.0, 2.0, 20.0, MAX_PROPAGATION, 1.0),
    )
    old = model.world.document.current
    assert old is not None

    # When a rotation runs to its end (the invariants checked after every state)
    model.trigger_rotation("manual")
    run(model, model.running[0])

    # Then the new key is the only one, every edge signs with it, and the old one is refused
    document = model.world.document
    assert document.pending is None and document.previous is None
    assert {sent.secret for sent in model.sent_by_edges()} == {document.current}
    model.cold_start()
    fresh = model.world.instances[-1]
    assert not any(fresh.decide(form.encode()).allowed for form in model.forms(old))


def test_a_deployment_switches_to_edge_signed_mode_without_refusing_a_request() -> None:
    # Given a header-mode deployment whose rotate function now runs in edge-signed mode
    model = edge_model(
        "header", skews=(-SKEW_BOUND, 0.0, 5.0, SKEW_BOUND), delays=(0.0, 5.0, 30.0, 60.0, 0.0)
    )
    header_value = model.world.document.current

    # When a rotation runs: it stages a key with the mode, writes it to the store, and stops
    # at its first poll (the static header still wins over the function)
    model.trigger_rotation("manual")
    rotation = model.running[0]
    run(model, rotation)
    assert rotation.program[rotation.position] == "poll"
    document = model.world.document
    assert document.mode == EDGE_SIGNED_MODE
    assert document.current == header_value
    assert model.kvs.latest.data[KVS_KEY_NAME] == document.pending

    # And, once the key has been in the store for the propagation wait, the deploy that
    # removes the static header and adds the function rolls out edge by edge (both forms
    # accepted meanwhile)
    while not model.key_settled():
        model.advance(5.0)
        model.check_all()
    model.switch_modes()
    forms: set[bool] = set()
    for _ in range(30):
        model.advance(5.0)
        model.check_all()
        forms |= {sent.header == sent.secret for sent in model.sent_by_edges()}
    assert forms == {True, False}, "some edges sent the header value, others a token"

    # And a rotation runs again: it promotes the key and retires the header value
    model.trigger_rotation("manual")
    run(model, model.running[0])

    # Then every edge signs with the key, the only value accepted
    document = model.world.document
    assert document.current == model.kvs.latest.data[KVS_KEY_NAME]
    assert document.previous is None and document.pending is None
    assert all(sent.header and sent.header.startswith("v1.") for sent in model.sent_by_edges())


def test_a_revoke_all_during_a_mode_switch_fails_before_it_removes_anything() -> None:
    # Given a switch under way: the static header still wins, the key is in the store
    model = edge_model("key-staged", delays=(0.0, 5.0, 30.0, 60.0, 0.0))
    header_value = model.world.document.current

    # When an operator revokes all
    model.trigger_revoke_all()
    revoke = model.running[0]
    run(model, revoke)

    # Then it kept the staged key (the store has it) but failed at RevokeAll (CloudFront still
    # sends the static header): nothing was removed, and the header value is still accepted
    assert revoke.program[revoke.position] == "revoke_all"
    assert not model.revoking
    assert model.world.document.current == header_value
    assert model.kvs.latest.data[KVS_KEY_NAME] == model.world.document.pending


def test_a_leaked_token_is_refused_once_its_window_and_the_tolerance_are_over() -> None:
    # Given a token an edge sent (leaked by a backend's logs, say), allowed when replayed
    model = edge_model()
    token = next(sent.header for sent in model.sent_by_edges() if sent.header)
    window, _ = model.tokens[token]
    width = model.settings.window_seconds
    refused_from = (window + model.settings.tolerance_windows + 1) * width
    model.advance(refused_from - 0.5 - model.clock.now)
    assert model._decide(token, cache_allow_if=any)  # an Allow that API Gateway caches

    # Then the authorizer refuses it from the end of the tolerance on, API Gateway's cached
    # Allow serves it for its TTL at most, and nothing accepts it afterwards
    model.advance(0.5)
    assert not any(i.decide(token.encode()).allowed for i in model.world.instances)
    assert model._decide(token, cache_allow_if=any)
    model.advance(model.token_dies(window) - model.clock.now)
    assert not model._decide(token, cache_allow_if=any)
    assert model.token_dies(window) - window * width == (1 + 1) * 60 + 60
    model.leaked_tokens_expire()


# -- broken variants of edge-signed mode: the model must catch each ---------------------------
@pytest.mark.parametrize(("slowest", "caught"), [(MAX_PROPAGATION, False), (100.0, True)])
def test_the_model_catches_an_edge_slower_than_the_propagation_wait(
    slowest: float, caught: bool
) -> None:
    # Given an edge that sees a store write *slowest* seconds after it (the rotation waits 60 s)
    model = edge_model(delays=(0.0, 1.0, 2.0, slowest, 0.0))
    model.trigger_rotation("manual")
    run(model, model.running[0], until="wait_drain")

    # When an operator revokes the previous key once the rotation has promoted the new one
    model.trigger_revoke_previous()

    def the_next_two_minutes() -> None:
        model.advance(0)
        model.check_all()
        for _ in range(24):
            model.advance(5.0)
            model.check_all()

    # Then with the slowest edge within the wait nothing is refused; beyond it, that edge's
    # requests are (it still signs with the revoked key)
    if caught:
        with pytest.raises(AssertionError, match="refused"):
            the_next_two_minutes()
    else:
        the_next_two_minutes()


@pytest.mark.parametrize(("tolerance", "caught"), [("1", False), ("0", True)])
def test_the_model_catches_a_tolerance_of_zero_with_skewed_edges(
    monkeypatch: Any, tolerance: str, caught: bool
) -> None:
    # Given an edge whose clock runs 5 s ahead of the authorizer's
    edge_settings(monkeypatch, EDGE_TOLERANCE_WINDOWS=tolerance)
    model = edge_model(skews=(0.0, 0.0, 0.0, 5.0))
    width = model.settings.window_seconds

    # When the authorizer's clock is 3 s before a window ends (the edge is in the next one)
    model.advance((window_of(model.clock.now, width) + 1) * width - 3.0 - model.clock.now)

    # Then with a tolerance of 0 its token is denied, and API Gateway caches that Deny
    if caught:
        with pytest.raises(AssertionError, match="refused"):
            model.check_all()
    else:
        model.check_all()


def test_the_model_catches_a_rotation_that_retires_the_old_key_before_it_propagated(
    monkeypatch: Any,
) -> None:
    # Given a rotation that trusts the store's write alone (no propagation wait, no
    # TestFunction, no drain) and an edge that sees the new key 30 s after its write
    edge_settings(
        monkeypatch, EDGE_PROPAGATION_SECONDS="0", DRAIN_SECONDS="0", EDGE_FUNCTION_NAME=""
    )
    model = edge_model(delays=(0.0, 0.0, 0.0, 30.0, 0.0))

    # When it runs, and an instance reads the document after it
    model.trigger_rotation("manual")
    with pytest.raises(AssertionError, match="refused"):
        run(model, model.running[0])
        model.cold_start()
        model.check_all()
    # Then that edge's requests are refused: it still signs with the retired key


def test_the_model_catches_a_mode_switch_deployed_before_the_key_reached_every_edge() -> None:
    # Given a switch from header mode whose rotation has just written the key to the store
    # (edge 0 sees it after 30 s)
    model = edge_model("header", delays=(30.0, 0.0, 0.0, 0.0, 0.0))
    model.trigger_rotation("manual")
    run(model, model.running[0])
    assert model.kvs.latest.data[KVS_KEY_NAME] == model.world.document.pending

    # When the deploy that removes the static header comes at once (edge 0 switches first)
    model.switch_modes()

    # Then edge 0's function finds no key and sends no header: its requests are refused
    with pytest.raises(AssertionError, match="no origin header"):
        model.check_all()


def test_the_model_catches_a_key_signed_with_before_every_instance_has_it(
    monkeypatch: Any,
) -> None:
    # Given a rotation that writes the key to the store one second after staging it, and
    # instances whose copies predate the staging
    # (the settings refuse such a wait: built past them to show the model would catch it)
    monkeypatch.setattr(
        sys.modules[__name__],
        "EDGE_SETTINGS",
        dataclasses.replace(RotateSettings.from_env(EDGE_ENV), stage_wait_seconds=1.0),
    )
    model = edge_model()
    model.advance(30.0)
    model.check_all()

    # When it runs, then an edge's token with the new key is denied (with certainty: cached)
    model.trigger_rotation("manual")
    with pytest.raises(AssertionError, match="refused"):
        run(model, model.running[0])


# -- a product bug the model found, fixed: a revoke that preempts a settling holder settles --
def test_a_revoke_that_preempts_a_settling_revoke_still_waits_for_the_first_holders_write() -> None:
    # Given a rotation whose staging write is in flight, preempted by a revoke previous that
    # waits the fence settle
    model = ProtocolModel()
    model.start_instances()
    model.trigger_rotation("manual")
    rotation = model.running[0]
    run(model, rotation, until="stage")
    model.workflow_step(rotation, None, True)
    assert model.world.pending_writes
    model.trigger_revoke_previous()
    model.advance(0)
    model.check_all()

    # When a revoke all preempts that revoke during its settle
    model.trigger_revoke_all()
    model.advance(0)

    # Then it still waits for the rotation's write (the settling revoke's record says until
    # when): the write lands before the revoke's, nothing revoked comes back, and every value
    # CloudFront sends stays accepted
    for _ in range(10):
        model.advance(2.5)
        model.check_all()


# -- a product bug the model found (make soak), fixed: a settling holder's release keeps the
# -- settle (the next taker of the lock settles too) -------------------------------------
def test_a_revoke_that_fails_right_after_its_takeover_passes_the_settle_on() -> None:
    # Given a revoke all whose staging write is in flight when the operator stops it
    model = ProtocolModel()
    model.start_instances()
    model.trigger_revoke_all()
    first = model.running[0]
    run(model, first, until="stage")
    model.workflow_step(first, None, True)
    assert model.world.pending_writes
    model.stop(first.name)
    # and a second revoke all that takes the lock over from it (settling: that write may
    # still land) and fails right after, its failure path releasing the lock
    model.trigger_revoke_all()
    second = model.running[0]
    model.workflow_step(second, None, False)  # Validate
    model.workflow_step(second, "after", False)  # AcquireLock, then the failure path
    assert not model.is_running(second.name)
    assert model.world.lock is not None and model.world.lock.execution == RELEASED

    # When a third revoke all takes the lock before the first one's write has landed
    model.trigger_revoke_all()

    # Then it settles until that write has landed: its own writes come after, nothing it
    # revoked comes back, and every value CloudFront sends stays accepted
    for _ in range(20):
        model.advance(2.5)
        model.check_all()
    assert not model.world.pending_writes
    assert model.world.document.current not in model.revoked_by_all


# -- the model's own bookkeeping (make soak): a stopped revoke's write still revokes ------
def test_a_stopped_revoke_all_whose_write_lands_revokes_what_it_was_asked_to() -> None:
    # Given a revoke all stopped while its revoking write is in flight (the foreign update
    # keeps CloudFront's deployment, and so edges sending the leaked value, going on)
    model = ProtocolModel()
    model.start_instances()
    leaked = model.world.document.current
    model.someone_else_updates_the_distribution()
    model.trigger_revoke_all()
    first = model.running[0]
    run(model, first, until="revoke_all")
    model.workflow_step(first, None, True)
    model.trigger_revoke_all()
    model.stop(first.name)

    # When its write lands (during the second revoke's settle) and the second runs on
    model.advance(30.0)
    model.check_all()

    # Then the leaked value counts as revoked by a revoke all: edges still sending it are
    # refused, the price of revoke all
    assert leaked in model.revoked_by_all
    assert model.world.document.slot_of(leaked) is None


ProtocolModel.TestCase.settings = settings(
    max_examples=20_000 if SOAK else 500,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestProtocol = ProtocolModel.TestCase

EdgeSignedModel.TestCase.settings = settings(
    max_examples=10_000 if SOAK else 200,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestEdgeSigned = EdgeSignedModel.TestCase
