"""Run the real statemachine/rotation.asl.json in moto's Step Functions interpreter.

The Lambda tasks execute the real ``functions/rotate`` code in process (the harness), the
distribution behaves like CloudFront after an update (ETags, PreconditionFailed, InProgress
then Deployed, N edges), and a sampler checks invariant 1 throughout every run: every value
any edge may send is in the document's accepted set *and* is allowed by a real authorizer
instance (a warm one, with its in-memory cache).

``make_world(edge_signed=EdgeOptions(...))`` deploys edge-signed mode instead: the KeyValueStore
(its data plane answered in process, :mod:`originlock.sandbox.edgeservices`), the published
CloudFront Function, and edges that run it (the real JavaScript, in a Node worker) with their
own view of the store and their own clocks. The sampler then asks, for every edge, whether the
key it signs with is in the accepted set and whether a real authorizer instance allows the
token it sends now.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.awslambda.models import lambda_backends

from originlock.sandbox.edgefunction import SignedEdges
from originlock.sandbox.edgeservices import EdgeServices
from originlock.sandbox.harness import (
    CloudFrontEdges,
    Deployment,
    EdgeSigning,
    FakeContext,
    InProcessLambda,
    deploy,
    installed,
    shared_sdk_models,
)
from originlock.sandbox.kvs import EmulatedKeyValueStore
from rotate.adapters import RELEASED
from tokens.document import TokenDocument
from tokens.edge import KVS_KEY_NAME

FAKE_ENV = {
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
}
ROTATE = {"mode": "rotate", "trigger": "manual", "reason": "test", "requested_by": "pytest"}
SCHEDULED = {
    "mode": "rotate",
    "trigger": "schedule",
    "reason": "scheduled rotation",
    "requested_by": "eventbridge-scheduler",
}
REVOKE_ALL = {"mode": "revoke", "revoke": "all", "reason": "leaked", "requested_by": "pytest"}
REVOKE_PREVIOUS = {"mode": "revoke", "revoke": "previous", "requested_by": "pytest"}
# Fast timings for tests: the rotate function's stage wait is derived from them (max age +
# refresh interval + a margin), as the CDK app derives it.
AUTHORIZER_ENV = {"TOKEN_REFRESH_MIN_INTERVAL_SECONDS": "0.2", "TOKEN_CACHE_MAX_AGE_SECONDS": "1"}


def authorizer_event(header: str, value: str) -> dict[str, Any]:
    return {
        "version": "2.0",
        "type": "REQUEST",
        "routeKey": "$default",
        "identitySource": [value],
        "headers": {header: value, "host": "api.example"},
    }


@dataclass(frozen=True)
class EdgeOptions:
    """An edge-signed world: each edge picks up store version *v* ``delay(v, edge)`` seconds
    after the write (``None``: at random in *propagation*), the rotate function waits
    *propagation_wait* before it looks for ``Deployed``, and edge *e*'s clock runs
    ``skews[e]`` seconds ahead."""

    propagation: tuple[float, float] = (0.2, 1.0)
    propagation_wait: float = 1.2
    window_seconds: int = 10
    tolerance_windows: int = 1
    delay: Any = None
    skews: dict[int, float] = field(default_factory=dict)
    function_name: str | None = "originlock-sign"


@dataclass
class Violation:
    at: float
    # Secrets: kept out of the repr, which a failing assertion prints.
    missing: frozenset[str] = field(repr=False)
    reason: str = ""


@dataclass
class World:
    session: Any
    deployment: Deployment
    lambdas: InProcessLambda
    edges: CloudFrontEdges
    violations: list[Violation] = field(default_factory=list)
    seen_values: set[str] = field(default_factory=set)
    samples: int = 0
    check_authorizer: bool = True
    # Edge-signed mode: the data plane and function runtime, and the edges running the function.
    services: EdgeServices | None = None
    signer: SignedEdges | None = None
    # Samples in which the edges signed with more than one key (a key half propagated).
    mixed_samples: int = 0
    # One client per service: building one costs 20-30 ms of CPU, and the sampler reads
    # SSM twenty times a second.
    clients: dict[str, Any] = field(default_factory=dict, repr=False)

    def client(self, service: str) -> Any:
        if service not in self.clients:
            self.clients[service] = self.session.client(service)
        return self.clients[service]

    # -- reading -----------------------------------------------------------
    def document(self) -> TokenDocument:
        value = self.client("ssm").get_parameter(
            Name=self.deployment.parameter_name, WithDecryption=True
        )["Parameter"]["Value"]
        return TokenDocument.parse(value)

    @property
    def store(self) -> EmulatedKeyValueStore:
        assert self.services is not None and self.deployment.kvs_arn is not None
        return self.services.store(self.deployment.kvs_arn)

    def edge_tokens(self) -> dict[int, tuple[str | None, str | None]]:
        """Edge-signed mode: per edge, the key it signs with now and the header it sends."""
        assert self.signer is not None
        found: dict[int, tuple[str | None, str | None]] = {}
        for edge in range(self.edges.edges):
            view = self.store.edge_view(edge) or {}
            headers = dict(self.signer.origin_headers(edge, []))
            found[edge] = (view.get(KVS_KEY_NAME), headers.get(self.deployment.header_name))
        return found

    def in_flight(self) -> set[str]:
        if self.signer is not None:
            return {key for key, _ in self.edge_tokens().values() if key is not None}
        return self.edges.values_in_flight(
            self.deployment.distribution_id,
            self.deployment.origin_id,
            self.deployment.header_name,
        )

    def distribution_config(self) -> dict[str, Any]:
        response = self.client("cloudfront").get_distribution_config(
            Id=self.deployment.distribution_id
        )
        return dict(response["DistributionConfig"])

    def configured_value(self, origin_index: int = 0) -> str:
        origin = self.distribution_config()["Origins"]["Items"][origin_index]
        return str(origin["CustomHeaders"]["Items"][0]["HeaderValue"])

    def lock_holder(self) -> str | None:
        """The execution id the target's lock names, or ``None`` when nobody holds it."""
        ssm = self.client("ssm")
        try:
            value = ssm.get_parameter(Name=f"{self.deployment.parameter_name}.lock")
        except ssm.exceptions.ParameterNotFound:
            return None
        holder = str(json.loads(value["Parameter"]["Value"])["execution"])
        # (a settling holder's release leaves a record of nobody: rotate.adapters.RELEASED)
        return None if holder == RELEASED else holder

    def authorize(self, value: str) -> bool:
        """Ask a real authorizer instance (warm if one is free) about *value*."""
        fn = lambda_backends["123456789012"]["us-east-1"].get_function(
            self.deployment.authorizer_function
        )
        result, errored = self.lambdas.run(fn, authorizer_event(self.deployment.header_name, value))
        assert not errored, result
        return bool(result["isAuthorized"])

    def authorizer(self) -> Any:
        return lambda_backends["123456789012"]["us-east-1"].get_function(
            self.deployment.authorizer_function
        )

    def prewarm_authorizers(self, count: int, value: str) -> None:
        """Have *count* warm authorizer instances, each with a copy read now (having seen
        *value*). The sampler only ever takes one of them: the others keep that copy."""
        self.lambdas.prewarm(
            self.authorizer(), count, authorizer_event(self.deployment.header_name, value)
        )

    def authorize_everywhere(self, value: str) -> list[bool]:
        """Ask every warm authorizer instance at once about *value* (a fresh one if none is
        warm: after a configuration change Lambda serves only fresh instances)."""
        fn = self.authorizer()
        event = authorizer_event(self.deployment.header_name, value)
        warm = self.lambdas.warm_instances(self.deployment.authorizer_function)
        taken = [self.lambdas._checkout(fn) for _ in range(max(1, warm))]
        try:
            results = [
                instance.handler(event, FakeContext(fn.function_name)) for _, instance in taken
            ]
        finally:
            for pool, instance in taken:
                self.lambdas._checkin(fn, pool, instance)
        return [bool(result["isAuthorized"]) for result in results]

    def sample(self) -> None:
        if self.signer is not None:
            self._sample_signed()
            return
        document = self.document()
        accepted = frozenset(v.decode() for _, v in document.accepted())
        in_flight = frozenset(self.in_flight())
        self.seen_values |= accepted | in_flight
        self.samples += 1
        now = time.monotonic()
        if in_flight - accepted:
            self.violations.append(Violation(now, in_flight - accepted, "not in document"))
        if self.check_authorizer:
            refused = frozenset(v for v in in_flight if not self.authorize(v))
            if refused:
                self.violations.append(Violation(now, refused, "refused by an authorizer"))

    def _sample_signed(self) -> None:
        """Invariant 1 in edge-signed mode: the key every edge signs with is accepted, and the
        token it sends now is allowed by a real authorizer instance."""
        document = self.document()
        accepted = frozenset(v.decode() for _, v in document.accepted())
        signed = self.edge_tokens()
        keys = frozenset(key for key, _ in signed.values() if key is not None)
        tokens = frozenset(token for _, token in signed.values() if token is not None)
        self.seen_values |= accepted | keys | tokens
        self.samples += 1
        self.mixed_samples += len(keys) > 1
        now = time.monotonic()
        if any(token is None for _, token in signed.values()):
            self.violations.append(Violation(now, keys, "an edge sent no header"))
        if keys - accepted:
            self.violations.append(Violation(now, keys - accepted, "not in document"))
        if self.check_authorizer:
            refused = frozenset(
                str(key) for key, token in signed.values() if token and not self.authorize(token)
            )
            if refused:
                self.violations.append(Violation(now, refused, "refused by an authorizer"))

    # -- running -----------------------------------------------------------
    def start(self, payload: Any, name: str | None = None) -> str:
        # moto names an execution started without a name "None": always name it.
        response = self.client("stepfunctions").start_execution(
            stateMachineArn=self.deployment.state_machine_arn,
            input=payload if isinstance(payload, str) else json.dumps(payload),
            name=name or f"test-{uuid.uuid4().hex[:12]}",
        )
        return str(response["executionArn"])

    def wait(self, execution_arn: str, timeout: float = 60.0) -> dict[str, Any]:
        sfn = self.client("stepfunctions")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.sample()
            described = sfn.describe_execution(executionArn=execution_arn)
            if described["status"] != "RUNNING":
                self.sample()
                return dict(described)
            time.sleep(0.05)
        raise AssertionError(f"execution still running after {timeout} s")

    def run(self, payload: Any, timeout: float = 60.0) -> tuple[str, dict[str, Any]]:
        arn = self.start(payload)
        return arn, self.wait(arn, timeout)

    def history(self, execution_arn: str) -> list[dict[str, Any]]:
        pages = self.client("stepfunctions").get_paginator("get_execution_history")
        return [e for page in pages.paginate(executionArn=execution_arn) for e in page["events"]]

    def entered_states(self, execution_arn: str) -> list[str]:
        return [
            e["stateEnteredEventDetails"]["name"]
            for e in self.history(execution_arn)
            if "stateEnteredEventDetails" in e
        ]

    def step_outputs(self, execution_arn: str, state: str) -> list[dict[str, Any]]:
        """What a Lambda state recorded, each time it was entered, in order."""
        return [
            json.loads(event["stateExitedEventDetails"]["output"])
            for event in self.history(execution_arn)
            if (event.get("stateExitedEventDetails") or {}).get("name") == state
        ]

    def step_output(self, execution_arn: str, state: str) -> dict[str, Any]:
        """The result a Lambda state recorded (the last time it was entered)."""
        outputs = self.step_outputs(execution_arn, state)
        return outputs[-1] if outputs else {}

    def assert_invariants(
        self, *execution_arns: str, output: str = "", revoked: frozenset[str] = frozenset()
    ) -> None:
        """Invariant 1 at every sample, except for *revoked* values (CloudFront may send them
        and have them refused: the price of revoke all, or a value set out of band);
        invariant 2: no value (accepted, sent or revoked) in any execution history,
        description or captured output."""
        assert self.samples > 1, "the run was never sampled"
        broken = [v for v in self.violations if not v.missing <= revoked]
        assert not broken, [(v.at, v.reason) for v in broken[:3]]
        texts = [output]
        sfn = self.client("stepfunctions")
        for arn in execution_arns:
            texts.append(json.dumps(self.history(arn), default=str))
            texts.append(json.dumps(sfn.describe_execution(executionArn=arn), default=str))
        values = self.seen_values | {v.decode() for _, v in self.document().accepted()}
        for text in texts:
            for value in values:
                assert value not in text, "a token value reached a history, payload or log"


@pytest.fixture
def aws_env() -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in FAKE_ENV}
    os.environ.update(FAKE_ENV)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture
def make_world(aws_env: None) -> Iterator[Any]:
    """Build a world; keyword arguments go to :func:`deploy` (env overrides, document...)."""
    stack: list[Any] = []

    def build(
        edges: int = 4,
        deploy_window: tuple[float, float] = (0.3, 1.2),
        edge_signed: EdgeOptions | None = None,
        **kwargs: Any,
    ) -> World:
        mock = mock_aws(config={"stepfunctions": {"execute_state_machine": True}})
        mock.start()
        stack.append(mock.stop)
        services = None
        if edge_signed is not None:
            services = EdgeServices()
            services.install()
            stack.append(services.uninstall)
            kwargs["edge_signing"] = EdgeSigning(
                services=services,
                edges=edges,
                propagation=edge_signed.propagation,
                propagation_wait=edge_signed.propagation_wait,
                window_seconds=edge_signed.window_seconds,
                tolerance_windows=edge_signed.tolerance_windows,
                function_name=edge_signed.function_name,
                delay=edge_signed.delay,
                seed=7,
            )
        models = shared_sdk_models()
        models.__enter__()
        stack.append(lambda: models.__exit__(None, None, None))
        harness = installed(
            InProcessLambda(base_env=FAKE_ENV), CloudFrontEdges(edges, deploy_window, seed=7)
        )
        lambdas, cf_edges = harness.__enter__()
        stack.append(lambda: harness.__exit__(None, None, None))
        kwargs.setdefault("authorizer_env", AUTHORIZER_ENV)
        session = boto3.Session(region_name="us-east-1")
        deployment = deploy(session, **kwargs)
        world = World(session, deployment, lambdas, cf_edges, services=services)
        if edge_signed is not None:
            assert services is not None and deployment.kvs_arn is not None
            from edge import render

            window = edge_signed.window_seconds
            world.signer = SignedEdges(
                services.worker_for(render(deployment.header_name, window)),
                services.store(deployment.kvs_arn),
                deployment.distribution_id,
            )
            for edge, skew in edge_signed.skews.items():
                world.signer.set_skew(edge, skew)
        world.sample()
        return world

    yield build
    while stack:
        stack.pop()()
