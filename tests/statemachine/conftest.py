"""Run the real statemachine/rotation.asl.json in moto's Step Functions interpreter.

The Lambda tasks execute the real ``functions/rotate`` code in process (the harness), the
distribution behaves like CloudFront after an update (ETags, PreconditionFailed, InProgress
then Deployed, N edges), and a sampler checks invariant 1 throughout every run: every value
any edge may send is in the document's accepted set *and* is allowed by a real authorizer
instance (a warm one, with its in-memory cache).
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

from originlock.sandbox.harness import (
    CloudFrontEdges,
    Deployment,
    FakeContext,
    InProcessLambda,
    deploy,
    installed,
    shared_sdk_models,
)
from tokens.document import TokenDocument

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


@dataclass
class Violation:
    at: float
    missing: frozenset[str]
    reason: str


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

    def in_flight(self) -> set[str]:
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
        return str(json.loads(value["Parameter"]["Value"])["execution"])

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
        edges: int = 4, deploy_window: tuple[float, float] = (0.3, 1.2), **kwargs: Any
    ) -> World:
        mock = mock_aws(config={"stepfunctions": {"execute_state_machine": True}})
        mock.start()
        stack.append(mock.stop)
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
        world = World(session, deployment, lambdas, cf_edges)
        world.sample()
        return world

    yield build
    while stack:
        stack.pop()()
