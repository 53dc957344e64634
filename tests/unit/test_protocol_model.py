"""Model-based test of the rotation protocol (Hypothesis stateful testing).

The *protocol* is the real code: the rotation steps of ``functions/rotate/steps.py`` in the
order the state machine runs them, and the authorizer's real ``AcceptedSetCache``. The
*world* is a model: SSM, a CloudFront distribution whose edges switch one by one, a set of
authorizer instances that come and go, API Gateway's authorizer result cache (a Deny is cached
too), a clock, SSM outages, crashes, stopped executions, deploy timeouts, concurrent triggers
and ``cdk deploy``.

A ``cdk deploy`` is two moves, as on AWS: the drift guard answers (the real
``provision.logic.origin_header_value``: the rotation lock, the document, the live
distribution), and later CloudFormation writes the answered value into the distribution. Any
rotation or revoke move may come between them. The environment assumption (docs/decisions.md,
"Drift guard"): CloudFormation writes less than the emergency stage wait after the guard
answered; ``SlowCloudFormation`` below shows what happens without it.

After every move, two invariants are checked:

1. every value any edge may send is allowed — through API Gateway's cache, and by every
   authorizer instance (except, during a ``revoke all``, the leaked values that edges not yet
   switched still send: the documented price); and the value the distribution is configured to
   send is one the token document accepts;
2. a revoked value is accepted by no instance and no cached API Gateway result from R on:
   at once after a cache reset that ran after the revoke's write (the workflow's, or its
   failure path's), and in any case max age + TTL after the write (staleness + TTL if SSM was
   out meanwhile) — the runbook's "After the write". Edges not yet switched keep sending a
   value revoke all removed, and those requests reach API Gateway and the instances as on
   AWS (a stale instance's Allow is cached), without counting as lost.

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

from authorizer.cache import AcceptedSetCache
from provision.errors import LockUnavailableError, ProvisionError, RotationRunningError
from provision.errors import StoreUnavailableError as GuardStoreUnavailableError
from provision.logic import origin_header_value
from rotate import steps
from rotate.adapters import LiveDistribution, header_values, with_header_value
from rotate.errors import (
    DistributionChangedError,
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
    }
)

PROGRAMS = {
    "rotate": [
        "validate", "acquire_lock", "stage", "wait_stage", "switch", "poll", "verify",
        "promote", "wait_drain", "retire", "reset_authorizer_caches", "release_lock",
    ],
    "revoke_all": [
        "validate", "acquire_lock", "stage", "wait_stage", "switch", "revoke_all",
        "reset_fresh", "poll", "verify", "release_lock",
    ],
    "revoke_previous": [
        "validate", "acquire_lock", "revoke_previous", "reset_fresh", "release_lock",
    ],
}  # fmt: skip
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
class World:
    clock: Clock
    document: TokenDocument
    config: dict[str, Any]
    etag: int = 1
    # (switch time per edge, header values, applied at) for each configuration version
    rollouts: list[tuple[list[float], dict[str, str], float]] = field(default_factory=list)
    outage_until: float = 0.0
    lock: str | None = None
    api_cache: dict[str, tuple[bool, float]] = field(default_factory=dict)
    instances: list[AcceptedSetCache] = field(default_factory=list)
    reads: int = 0

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


class Reader:
    def __init__(self, world: World) -> None:
        self.world = world

    def read(self) -> str:
        self.world.reads += 1
        if self.world.ssm_down():
            raise StoreError("ThrottlingException")
        return self.world.document.to_json()


class Store:
    def __init__(self, world: World) -> None:
        self.world = world

    def read(self) -> TokenDocument:
        if self.world.ssm_down():
            raise StoreUnavailableError("throttled")
        return self.world.document

    def write(self, document: TokenDocument) -> None:
        if self.world.ssm_down():
            raise StoreUnavailableError("throttled")
        self.world.document = document


class Lock:
    """The workflow's lock; a holder that no longer runs is taken over (rotate.adapters.Lock)."""

    def __init__(self, world: World, running: Any) -> None:
        self.world = world
        self.running = running

    def acquire(self, execution_id: str, detail: dict[str, Any]) -> dict[str, Any]:
        holder = self.world.lock
        if holder not in (None, execution_id) and self.running(holder):
            raise RotationInProgressError("held")
        self.world.lock = execution_id
        return {"acquired": True, "took_over": holder if holder != execution_id else None}

    def release(self, execution_id: str) -> bool:
        if self.world.lock == execution_id:
            self.world.lock = None
            return True
        return False


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

    def send(self, live: LiveDistribution, value: str) -> None:
        if self.foreign_update_pending:
            self.foreign_update_pending = False
            self.world.etag += 1
        if live.etag != str(self.world.etag):
            raise DistributionChangedError("stale etag")
        self.apply(with_header_value(live.config, HEADER, (), value), self.spread())


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
        return self.world.lock

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
        self.ports = steps.Ports(
            Store(self.world),
            Lock(self.world, self.is_running),
            self.distribution,
            Caches(self.world, self.spawn),
        )
        self.running: list[Execution] = []
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

    def is_running(self, execution_id: str) -> bool:
        return any(e.name == execution_id for e in self.running)

    def guard_lock(self) -> GuardLock:
        return GuardLock(self.world, self.is_running)

    def advance(self, seconds: float) -> None:
        """Move the clock; a deploy's pending write lands first if it would come too late."""
        if self.deploy is not None and (
            self.clock.now + seconds >= self.deploy.answered_at + DEPLOY_WRITE_BOUND
        ):
            self.cloudformation_writes_the_distribution()
        self.clock.now += seconds

    # -- world moves ---------------------------------------------------------
    def spawn(self) -> None:
        self.world.instances.append(
            AcceptedSetCache(
                Reader(self.world),
                self.clock,
                max_age=MAX_AGE,
                refresh_min_interval=REFRESH,
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

    @precondition(lambda self: not self.world.ssm_down() and len(self.world.instances) < 5)
    @rule()
    def cold_start(self) -> None:
        # (A cold start while SSM is unreachable denies everything: no state to fall back on.
        # The model's environment does not start instances during an outage.) Lambda starts
        # an instance for a request: that first request reads the document now, not later
        # when API Gateway's cache first lets a request through to it.
        self.spawn()
        self.world.instances[-1].decide(generate_token().encode())

    @precondition(lambda self: len(self.world.instances) > 1)
    @rule(index=st.integers(0, 4))
    def instance_recycled(self, index: int) -> None:
        del self.world.instances[index % len(self.world.instances)]

    @precondition(lambda self: not self.world.ssm_down())
    @rule(seconds=st.sampled_from([0.5, 2.0, MAX_OUTAGE]))
    def ssm_outage(self, seconds: float) -> None:
        # Outages are separated by at least a refresh interval of service.
        self.world.outage_until = self.clock.now + seconds
        self.outages.append((self.clock.now, self.world.outage_until))

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
        stale, until the next execution takes it over."""
        execution = self.running[index % len(self.running)]
        # No reset runs: warm instances and API Gateway's cache may accept a value a revoke
        # step already removed until they expire (the bound from the write).
        self.running.remove(execution)

    # -- the workflow ----------------------------------------------------------
    def _fail(self, execution: Execution) -> None:
        """The state machine's failure path: after a revoke step, ResetCachesAfterFailure
        (best effort), then ReleaseLockAfterFailure (retried until SSM answers)."""
        if execution.program is not PROGRAMS["rotate"]:
            call = steps.StepCall(execution.name, execution.state, {"fresh_instances": True})
            # A value a revoke step already removed stays revoked (edges still sending it get
            # 403, the price of revoke all). If the reset cannot run, warm instances and API
            # Gateway's cache may accept it until they expire (the bound from the write).
            with contextlib.suppress(RotationError):
                steps.reset_authorizer_caches(call, SETTINGS, self.ports)
                self._caches_reset(execution)
        self.world.lock = None if self.world.lock == execution.name else self.world.lock
        self.running.remove(execution)

    @precondition(lambda self: self.running)
    @rule(
        index=st.integers(0, 3),
        count=st.integers(1, 6),
        crash=st.sampled_from([None, None, None, None, "before", "after"]),
    )
    def workflow_steps(self, index: int, count: int, crash: str | None) -> None:
        """Advance one execution by up to *count* states (the invariants hold after each);
        a crash, if drawn, hits the last of them."""
        for i in range(count):
            if not self.running:
                return
            execution = self.running[index % len(self.running)]
            self.workflow_step(execution, crash if i == count - 1 else None)
            self.check_all()

    def check_all(self) -> None:
        self.every_value_an_edge_sends_is_accepted()
        self.the_distribution_is_configured_with_an_accepted_value()
        self.at_most_one_execution_is_past_its_lock()
        self.revoked_values_stay_refused()

    def workflow_step(self, execution: Execution, crash: str | None) -> None:
        name = execution.program[execution.position]
        if execution.wait_until is not None:
            self.advance(max(0.0, execution.wait_until - self.clock.now))
            execution.wait_until = None
            execution.position += 1
            return
        if name in ("wait_stage", "wait_drain"):
            key = "stage_wait_seconds" if name == "wait_stage" else "drain_seconds"
            execution.wait_until = self.clock.now + execution.state["settings"][key]
            return
        if crash == "before" and name not in ("validate", "release_lock"):
            self._fail(execution)
            return
        step_name = {"poll": "check_deployed", "reset_fresh": "reset_authorizer_caches"}.get(
            name, name
        )
        params: dict[str, Any] = {}
        if name == "validate":
            params["input"] = execution.state["input"]
        if name.startswith("reset"):
            params["fresh_instances"] = name == "reset_fresh"
        doc = self.world.document
        # What a revoke step removes, should it succeed.
        leaked = {v for v in (doc.current, doc.previous) if v} if name == "revoke_all" else set()
        if name == "revoke_previous" and doc.previous:
            leaked = {doc.previous}
        call = steps.StepCall(execution.name, execution.state, params)
        try:
            result = steps.STEPS[step_name](call, SETTINGS, self.ports)
        except (StoreUnavailableError, DistributionChangedError):
            return  # ASL Retry: the same step runs again later
        except RotationInProgressError:
            assert name == "acquire_lock"
            self.refused += 1
            self._fail(execution)
            return
        except RotationError:
            self._fail(execution)
            return
        if name == "validate":
            execution.state.update(result)
        else:
            key = {"poll": "poll", "reset_fresh": "caches"}.get(name, name)
            execution.state[key] = {"result": result}
        if name in ("revoke_all", "revoke_previous") and result["changed"]:
            execution.revoked |= leaked
            self.revoking.update(dict.fromkeys(leaked, self.clock.now))
        if name == "reset_fresh":
            self._caches_reset(execution)
        if crash == "after" and name not in ("validate", "release_lock"):
            self._fail(execution)
            return
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
        if execution.program[execution.position] == "poll" and self.world.status() != "Deployed":
            self._fail(execution)  # DeploymentTimeoutError: nothing is removed

    # -- invariants ------------------------------------------------------------
    def _decide(self, value: str, *, cache_allow_if: Any = all) -> bool:
        """A request carrying *value* at API Gateway: the cache, else an instance.

        Whichever instance Lambda picks, API Gateway caches its answer: for a value that must
        be allowed, all instances must allow it (*cache_allow_if* ``all``); for one that may
        be refused, any instance that allows it may put an Allow in the cache (``any``).
        """
        cached = self.world.api_cache.get(value)
        if cached and cached[1] > self.clock.now:
            return cached[0]
        decisions = [i.decide(value.encode()).allowed for i in self.world.instances]
        allowed = bool(cache_allow_if(decisions))
        self.world.api_cache[value] = (allowed, self.clock.now + API_TTL)
        return allowed

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
            assert self._decide(value), "an edge sends a value that is refused"

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
        assert not past or self.world.lock == past[0].name

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


class WithoutRefreshOnMiss(ProtocolModel):
    """The protocol with two of its defences removed: the model must catch it."""

    def spawn(self) -> None:
        self.world.instances.append(
            AcceptedSetCache(
                Reader(self.world),
                self.clock,
                max_age=MAX_AGE,
                refresh_min_interval=MAX_AGE,  # no refresh-on-miss
                max_staleness=STALENESS,
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


def test_the_model_catches_a_protocol_without_its_defences(monkeypatch: Any) -> None:
    # Given a stage wait shorter than the cache age and no refresh-on-miss
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
        search_for_a_counterexample(WithoutRefreshOnMiss, max_examples=500)


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
    with pytest.raises(AssertionError, match="a revoked value is accepted"):
        search_for_a_counterexample(WithoutTheCacheReset, max_examples=2000)


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
        self.clock.now += seconds


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
    # validate, acquire_lock, stage, the stage wait (set, then over)
    model.workflow_steps(index=0, count=5, crash=None)
    if not guard_first:
        model.cdk_deploy_guard_answers()
    # switch, revoke_all
    model.workflow_steps(index=0, count=2, crash=None)
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


ProtocolModel.TestCase.settings = settings(
    max_examples=20_000 if SOAK else 500,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestProtocol = ProtocolModel.TestCase
