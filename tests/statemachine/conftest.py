"""Run the real statemachine/rotation.asl.json in moto's Step Functions interpreter.

The Lambda tasks execute the real ``functions/rotate`` code in process (the harness), the
distribution behaves like CloudFront after an update (ETags, PreconditionFailed, InProgress
then Deployed, N edges), and a sampler checks invariant 1 throughout every run.
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
from moto import mock_aws

from originlock.sandbox.harness import (
    CloudFrontEdges,
    Deployment,
    InProcessLambda,
    deploy,
    installed,
)
from tokens.document import TokenDocument

FAKE_ENV = {
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
}


@dataclass
class Sample:
    at: float
    accepted: frozenset[str]
    in_flight: frozenset[str]


@dataclass
class World:
    session: Any
    deployment: Deployment
    lambdas: InProcessLambda
    edges: CloudFrontEdges
    samples: list[Sample] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    seen_values: set[str] = field(default_factory=set)

    # -- reading -----------------------------------------------------------
    def document(self) -> TokenDocument:
        value = self.session.client("ssm").get_parameter(
            Name=self.deployment.parameter_name, WithDecryption=True
        )["Parameter"]["Value"]
        return TokenDocument.parse(value)

    def in_flight(self) -> set[str]:
        return self.edges.values_in_flight(
            self.deployment.distribution_id, self.deployment.origin_id, self.deployment.header_name
        )

    def configured_value(self) -> str:
        sfn_cf = self.session.client("cloudfront")
        config = sfn_cf.get_distribution_config(Id=self.deployment.distribution_id)
        origin = config["DistributionConfig"]["Origins"]["Items"][0]
        return str(origin["CustomHeaders"]["Items"][0]["HeaderValue"])

    def sample(self) -> None:
        document = self.document()
        accepted = frozenset(v.decode() for _, v in document.accepted())
        in_flight = frozenset(self.in_flight())
        self.seen_values |= accepted | in_flight
        self.samples.append(Sample(time.monotonic(), accepted, in_flight))
        missing = in_flight - accepted
        if missing:
            self.violations.append(
                f"t={time.monotonic():.2f}: an edge sends a value the document does not accept"
            )

    # -- running -----------------------------------------------------------
    def start(self, payload: dict[str, Any], name: str | None = None) -> str:
        kwargs: dict[str, Any] = {
            "stateMachineArn": self.deployment.state_machine_arn,
            "input": json.dumps(payload),
        }
        # moto names an execution started without a name "None": always name it.
        kwargs["name"] = name or f"test-{uuid.uuid4().hex[:12]}"
        return str(self.session.client("stepfunctions").start_execution(**kwargs)["executionArn"])

    def wait(self, execution_arn: str, timeout: float = 60.0) -> dict[str, Any]:
        sfn = self.session.client("stepfunctions")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.sample()
            described = sfn.describe_execution(executionArn=execution_arn)
            if described["status"] != "RUNNING":
                self.sample()
                return dict(described)
            time.sleep(0.05)
        raise AssertionError(f"execution still running after {timeout} s")

    def run(self, payload: dict[str, Any], timeout: float = 60.0) -> dict[str, Any]:
        return self.wait(self.start(payload), timeout)

    def history(self, execution_arn: str) -> list[dict[str, Any]]:
        sfn = self.session.client("stepfunctions")
        events: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"executionArn": execution_arn, "maxResults": 1000}
        while True:
            page = sfn.get_execution_history(**kwargs)
            events.extend(page["events"])
            if not page.get("nextToken"):
                return events
            kwargs["nextToken"] = page["nextToken"]

    def entered_states(self, execution_arn: str) -> list[str]:
        return [
            e["stateEnteredEventDetails"]["name"]
            for e in self.history(execution_arn)
            if "stateEnteredEventDetails" in e
        ]

    def assert_invariants(self, *execution_arns: str) -> None:
        """Invariant 1 held at every sample; invariant 2: no value in any history or output."""
        assert self.samples, "the run was never sampled"
        assert not self.violations, self.violations[:3]
        for arn in execution_arns:
            text = json.dumps(self.history(arn), default=str)
            text += json.dumps(
                self.session.client("stepfunctions").describe_execution(executionArn=arn),
                default=str,
            )
            for value in self.seen_values | {v.decode() for _, v in self.document().accepted()}:
                assert value not in text, "a token value reached the execution history"
        for output in self.lambdas.outputs:
            for value in self.seen_values:
                assert value not in output, "a token value reached a function's log output"


ROTATE = {"mode": "rotate", "trigger": "manual", "reason": "test", "requested_by": "pytest"}
SCHEDULED = {
    "mode": "rotate",
    "trigger": "schedule",
    "reason": "scheduled",
    "requested_by": "scheduler",
}


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
        stack.append(mock)
        harness = installed(
            InProcessLambda(base_env=FAKE_ENV), CloudFrontEdges(edges, deploy_window, seed=7)
        )
        lambdas, cf_edges = harness.__enter__()
        stack.append(harness)
        session = boto3.Session(region_name="us-east-1")
        deployment = deploy(session, **kwargs)
        world = World(session, deployment, lambdas, cf_edges)
        world.sample()
        return world

    yield build
    while stack:
        item = stack.pop()
        if hasattr(item, "__exit__"):
            item.__exit__(None, None, None)
        else:
            item.stop()
