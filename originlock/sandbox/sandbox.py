"""The offline sandbox: the whole of originlock on loopback, with compressed timings.

* moto in **server mode**, in this process, on ``127.0.0.1`` (a free port), with its Step
  Functions interpreter on: the real ``statemachine/rotation.asl.json`` runs, its Lambda
  tasks run the real ``functions/rotate`` code (the harness), and every AWS call of the
  functions and of the CLI goes over HTTP to moto, as it would go to AWS;
* a local **API Gateway** (:mod:`originlock.sandbox.apigateway`) guarded by the real
  ``functions/authorizer`` code, with API Gateway's authorizer result cache;
* a local **CloudFront** (:mod:`originlock.sandbox.cloudfront`) of N edges, each switching to
  a new configuration at its own moment in the deploy window;
* an EventBridge Scheduler schedule and a CloudFormation stack whose outputs name the
  resources, as the CDK app's do, so ``--stack`` works against the sandbox too.

``lock_mode="edge-signed"`` deploys edge-signed mode instead (docs/edge-signed.md): a
KeyValueStore holding the signing key (its data plane served on moto's endpoint, each edge
picking up a write at its own moment), the real CloudFront Function run at every edge in one
Node worker (``PublishFunction`` and ``TestFunction`` included, so the rotate function checks
through CloudFront as on AWS), and no origin custom header (:mod:`.edgeservices`).

Nothing listens on anything but 127.0.0.1. ``with Sandbox() as sb:`` starts it and stops every
thread and server at exit, restoring the environment variables it set.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import logging
import math
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import requests
from botocore.config import Config

from originlock.constants import SCHEDULE_INPUT
from originlock.sandbox import harness
from originlock.sandbox.apigateway import LocalApiGateway
from originlock.sandbox.cloudfront import LocalCloudFront
from originlock.sandbox.edgefunction import SignedEdges
from originlock.sandbox.edgeservices import EdgeServices
from originlock.sandbox.faults import SsmFaults, SsmQuota
from originlock.sandbox.kvs import EmulatedKeyValueStore
from originlock.sandbox.lambdas import SandboxLambda
from originlock.sandbox.output import OutputCapture, ThreadOutput
from originlock.sandbox.servers import LOOPBACK, moto_server
from originlock.target import (
    SANDBOX_NAME,
    SANDBOX_STACK,
    SCHEDULE_GROUP,
    SCHEDULE_NAME,
    write_sandbox_file,
)

REGION = "us-east-1"
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
}
# What EventBridge Scheduler sends the state machine: the CDK app's schedule input.
SCHEDULED_INPUT = SCHEDULE_INPUT
# The Powertools Logger services of functions/ (rotate/handler.py, authorizer/telemetry.py).
POWERTOOLS_SERVICES = ("rotate", "authorizer")
HEADER, EDGE_SIGNED = "header", "edge-signed"
LOCK_MODES = (HEADER, EDGE_SIGNED)
# Edge-signed mode: the CloudFront Function's name (given to the rotate function, which then
# checks through TestFunction that CloudFront's run of it signs with the new key).
EDGE_FUNCTION_NAME = f"{SANDBOX_NAME}-sign"


@dataclass(frozen=True)
class SandboxTimings:
    """Compressed timings: AWS's minutes become seconds.

    Attributes
    ----------
    deploy_window:
        After an ``UpdateDistribution`` each edge switches at a random moment in this window
        (AWS: up to 5 minutes, sometimes 15 to 20).
    authorizer_ttl:
        API Gateway's authorizer result cache TTL (AWS: 0 to 3600 s, CDK default 300 s).
    token_cache_max_age:
        How long an authorizer instance trusts its copy of the accepted set
        (``TOKEN_CACHE_MAX_AGE_SECONDS``, default 60 s).
    token_refresh_interval:
        The least time between an instance's read attempts after a failed one
        (``TOKEN_REFRESH_MIN_INTERVAL_SECONDS``, default 1 s).
    margin:
        What the rotate function adds to its stage waits (5 s on AWS).
    poll_interval, drain, deploy_timeout:
        The rotate function's ``POLL_INTERVAL_SECONDS``, ``DRAIN_SECONDS`` and
        ``DEPLOY_TIMEOUT_SECONDS``.
    task_budget:
        Seconds allowed per Lambda task (no retry) when stating the revoke bound.
    token_max_staleness:
        How long an authorizer instance that cannot read SSM serves its last good copy
        (``TOKEN_MAX_STALENESS_SECONDS``); ``None``: the function's default (900 s).
    fence_settle:
        How long a revoke that preempted an execution whose step was under way waits before
        it reads or writes (``FENCE_SETTLE_SECONDS``; 20 s on AWS).
    ssm_quota:
        SSM's GetParameter/GetParameters quota, one token bucket for every caller in the
        account (AWS's default: 40 per second).
    kvs_propagation:
        Edge-signed mode: after a KeyValueStore write each edge picks it up at a random moment
        in this window (AWS states no figure; reports say seconds).
    edge_propagation_wait:
        Edge-signed mode: how long the rotate function waits after its write before it looks
        for ``Deployed`` (``EDGE_PROPAGATION_SECONDS``; at least the window's end).
    edge_window, edge_tolerance:
        Edge-signed mode: the token window (``EDGE_WINDOW_SECONDS``, 10 s, the shortest the
        function allows, so a leaked value dies within the demo) and the authorizer's
        tolerance in windows (``EDGE_TOLERANCE_WINDOWS``). The authorizer's result TTL must
        not exceed the window (docs/edge-signed.md).
    """

    deploy_window: tuple[float, float] = (1.0, 3.0)
    authorizer_ttl: float = 2.0
    token_cache_max_age: float = 3.0
    token_refresh_interval: float = 0.5
    margin: float = 0.5
    poll_interval: float = 1.0
    drain: float = 2.0
    deploy_timeout: float = 60.0
    task_budget: float = 1.0
    token_max_staleness: float | None = None
    fence_settle: float = 1.0
    ssm_quota: float = 40.0
    kvs_propagation: tuple[float, float] = (0.3, 1.5)
    edge_propagation_wait: float = 2.0
    edge_window: int = 10
    edge_tolerance: int = 1

    @property
    def stage_wait(self) -> float:
        """A rotation's wait after staging, derived as the rotate function derives it:
        max age + refresh interval + margin (``STAGE_WAIT_SECONDS``)."""
        return self.token_cache_max_age + self.token_refresh_interval + self.margin

    @property
    def revoke_stage_wait(self) -> float:
        """An emergency revoke's shorter wait: refresh interval + margin
        (``REVOKE_STAGE_WAIT_SECONDS``)."""
        return self.token_refresh_interval + self.margin

    def revoke_bound(self, *, retries: bool = False, preempting: bool = False) -> float:
        """R: the longest a revoked value can still be accepted after a revoke-all is requested.

        Derived from ``statemachine/rotation.asl.json`` (:mod:`originlock.retry_budget`): the
        new document is written once the tasks up to ``RevokeAll`` have run and the emergency
        stage wait has passed (with *preempting*: after the fence settle too, and the lock
        taken a second time); after that an authorizer instance may allow a
        removed value until its copy is ``token_cache_max_age`` old, and API Gateway may
        serve that Allow from its cache for ``authorizer_ttl`` more. The instance
        replacement and the cache reset that follow usually end it much sooner; this bound
        does not count on them. Each invocation is given ``task_budget`` seconds.

        Without *retries* (what the demo states and measures) it holds for a run in which no
        task is retried; with *retries* it adds every retry the ASL allows on the way to the
        write (each one more invocation, plus its backoff wait; ``MaxAttempts`` counts
        retries). Both assume SSM answers the authorizer (an instance that cannot read
        serves its last good copy up to its max staleness).
        """
        from originlock.retry_budget import revoke_budget

        return revoke_budget("all", preempting=preempting).bound(
            settings={
                "stage_wait_seconds": math.ceil(self.revoke_stage_wait),
                "fence_settle_seconds": math.ceil(self.fence_settle),
            },
            invocation_seconds=self.task_budget,
            after_write_seconds=self.token_cache_max_age + self.authorizer_ttl,
            retries=retries,
        )

    def leaked_header_bound(self) -> float:
        """Edge-signed mode: the longest a header value an edge sent is accepted, counted from
        the start of its window, replayed by anyone: (T + 1)·W + TTL (docs/edge-signed.md)."""
        return (self.edge_tolerance + 1) * self.edge_window + self.authorizer_ttl

    def check_edge_signed(self) -> None:
        """Refuse timings edge-signed mode cannot keep its promises with."""
        low, high = self.kvs_propagation
        if not 0 <= low <= high:
            raise ValueError("kvs_propagation must be (min, max) with 0 <= min <= max")
        if self.edge_propagation_wait < high:
            raise ValueError(
                "edge_propagation_wait must cover kvs_propagation: the rotation would promote "
                "a key some edges do not sign with yet"
            )
        if self.authorizer_ttl > self.edge_window:
            raise ValueError("the authorizer's result TTL must not exceed the token window")

    def edge_env(self) -> dict[str, str]:
        """The rotate function's edge-signed settings (``LOCK_MODE`` and the store's ARN come
        from the deployment)."""
        return {
            "EDGE_PROPAGATION_SECONDS": f"{self.edge_propagation_wait}",
            "EDGE_WINDOW_SECONDS": f"{self.edge_window}",
            "EDGE_TOLERANCE_WINDOWS": f"{self.edge_tolerance}",
        }

    def rotate_env(self) -> dict[str, str]:
        return {
            "STAGE_WAIT_SECONDS": f"{self.stage_wait}",
            "REVOKE_STAGE_WAIT_SECONDS": f"{self.revoke_stage_wait}",
            "POLL_INTERVAL_SECONDS": f"{self.poll_interval}",
            "DRAIN_SECONDS": f"{self.drain}",
            "DEPLOY_TIMEOUT_SECONDS": f"{self.deploy_timeout}",
            "AUTHORIZER_REFRESH_INTERVAL_SECONDS": f"{self.token_refresh_interval}",
            "AUTHORIZER_MAX_AGE_SECONDS": f"{self.token_cache_max_age}",
            "FENCE_SETTLE_SECONDS": f"{self.fence_settle}",
        }

    def authorizer_env(self) -> dict[str, str]:
        env = {
            "TOKEN_CACHE_MAX_AGE_SECONDS": f"{self.token_cache_max_age}",
            "TOKEN_REFRESH_MIN_INTERVAL_SECONDS": f"{self.token_refresh_interval}",
            "METRICS_FLUSH_INTERVAL_SECONDS": "60",
        }
        if self.token_max_staleness is not None:
            env["TOKEN_MAX_STALENESS_SECONDS"] = f"{self.token_max_staleness}"
        return env


@dataclass
class SsmReadCounter:
    """Counts ``GetParameter``/``GetParameters`` of one parameter inside moto's SSM backend."""

    name: str
    reads: int = 0
    _originals: dict[str, Any] = field(default_factory=dict)

    def install(self) -> None:
        from moto.ssm.models import SimpleSystemManagerBackend as Backend

        self._originals = {"one": Backend.get_parameter, "many": Backend.get_parameters}
        counter, one, many = self, Backend.get_parameter, Backend.get_parameters

        def get_parameter(backend: Any, name: str) -> Any:
            if name.split(":")[0] == counter.name:
                counter.reads += 1
            return one(backend, name)

        def get_parameters(backend: Any, names: list[str]) -> Any:
            counter.reads += sum(1 for n in names if n.split(":")[0] == counter.name)
            return many(backend, names)

        Backend.get_parameter = get_parameter  # type: ignore[method-assign,assignment]
        Backend.get_parameters = get_parameters  # type: ignore[method-assign,assignment]

    def uninstall(self) -> None:
        from moto.ssm.models import SimpleSystemManagerBackend as Backend

        if self._originals:
            Backend.get_parameter = self._originals["one"]  # type: ignore[method-assign]
            Backend.get_parameters = self._originals["many"]  # type: ignore[method-assign]
            self._originals = {}


def percentile(values: list[float], q: float) -> float | None:
    """The *q* quantile (0..1) of *values*, nearest rank; ``None`` for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1))
    return ordered[rank]


class Sandbox:
    """originlock deployed in moto on loopback, with a local API Gateway and CloudFront.

    Parameters
    ----------
    edges:
        How many CloudFront edge servers.
    deploy_window:
        Shortcut for ``timings.deploy_window``.
    timings:
        Compressed timings (see :class:`SandboxTimings`).
    seed:
        For reproducible edge switch moments.
    state_file:
        Where to record the URLs for ``originlock --sandbox`` (``None``: nowhere).
    stack:
        Also create a CloudFormation stack with the CDK app's outputs.
    lock_mode:
        ``"header"`` (CloudFront sends a stored value) or ``"edge-signed"`` (a CloudFront
        Function signs each request with the KeyValueStore's key; docs/edge-signed.md).
    edge_skews:
        Edge-signed mode: edge index -> seconds its clock runs ahead of true time (negative:
        behind), as its function's ``Date.now()`` sees it.

    Examples
    --------
    >>> with Sandbox(edges=4, deploy_window=(1, 3)) as sb:  # doctest: +SKIP
    ...     requests.get(sb.edge_url).status_code
    200
    """

    def __init__(
        self,
        edges: int = 4,
        deploy_window: tuple[float, float] | None = None,
        *,
        timings: SandboxTimings | None = None,
        seed: int | None = None,
        state_file: Path | None = None,
        stack: bool = True,
        lock_mode: str = "header",
        edge_skews: Mapping[int, float] | None = None,
    ) -> None:
        if lock_mode not in LOCK_MODES:
            raise ValueError(f"lock_mode must be one of {', '.join(LOCK_MODES)}")
        timings = timings or SandboxTimings()
        if deploy_window is not None:
            low, high = deploy_window
            timings = dataclasses.replace(timings, deploy_window=(float(low), float(high)))
        if lock_mode == EDGE_SIGNED:
            timings.check_edge_signed()
        self.timings = timings
        self.lock_mode = lock_mode
        self.edge_skews = dict(edge_skews or {})
        self.edge_count = edges
        self.seed = seed
        self.state_file = state_file
        self.with_stack = stack
        self.region = REGION
        self._stack = ExitStack()
        self._started = False
        # Set by start().
        self.endpoint_url = ""
        self.deployment: harness.Deployment | None = None
        self.lambdas: SandboxLambda | None = None
        self.edges: harness.CloudFrontEdges | None = None
        self.api: LocalApiGateway | None = None
        self.cloudfront: LocalCloudFront | None = None
        self.output: ThreadOutput | None = None
        self.ssm_counter: SsmReadCounter | None = None
        self.ssm_faults: SsmFaults | None = None
        self.ssm_quota: SsmQuota | None = None
        self.session: Any = None
        # Edge-signed mode only.
        self.edge_services: EdgeServices | None = None
        self.signer: SignedEdges | None = None

    # -- lifecycle ---------------------------------------------------------------
    def __enter__(self) -> Sandbox:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        if self._started:
            raise RuntimeError("the sandbox is already started")
        self._started = True
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop every server and thread and restore what :meth:`start` changed."""
        self._stack.close()
        self._started = False

    def _start(self) -> None:
        stack = self._stack
        # Quiet: werkzeug logs a line per request (moto's server and ours), and
        # moto's interpreter logs every failed state with its whole repr: the CLI shows
        # failures from the execution history instead, as on AWS.
        for name, quiet in (
            ("werkzeug", logging.WARNING),
            ("moto.stepfunctions", logging.CRITICAL),
        ):
            logger = logging.getLogger(name)
            stack.callback(logger.setLevel, logger.level)
            logger.setLevel(quiet)

        capture = OutputCapture()
        self.output = capture.install()
        stack.callback(capture.uninstall)
        capture.bind_services(POWERTOOLS_SERVICES)

        wrap = None
        if self.edge_signed:
            # The KeyValueStore data plane, PublishFunction and TestFunction, on moto's
            # endpoint; the Node worker is started with the first function run and stopped by
            # uninstall().
            services = self.edge_services = EdgeServices()
            services.install()
            stack.callback(services.uninstall)
            wrap = services.dispatcher
        server = moto_server(wrap=wrap)
        server.start()
        stack.callback(server.stop)
        port = server.port
        self.endpoint_url = f"http://{LOOPBACK}:{port}"
        self._set_environment(port)
        self._configure_moto()
        _forget_function_clients()
        stack.callback(_forget_function_clients)

        base_env = {
            **FAKE_CREDENTIALS,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_REGION": self.region,
            "AWS_ENDPOINT_URL": self.endpoint_url,
        }
        self.lambdas = SandboxLambda(base_env, self.output)
        self.edges = harness.CloudFrontEdges(
            self.edge_count, self.timings.deploy_window, seed=self.seed
        )
        installed = harness.installed(self.lambdas, self.edges)
        installed.__enter__()
        stack.callback(installed.__exit__, None, None, None)

        header = "x-cf-api-gateway-token"
        self.api = LocalApiGateway(
            self.lambdas, header_name=header, ttl=self.timings.authorizer_ttl
        )
        stack.callback(self.api.stop)
        self.cloudfront = LocalCloudFront(self.edges, self.edge_count, self.api)
        stack.callback(self.cloudfront.stop)
        harness.RESET_LISTENERS.append(self.api.reset_cache)
        stack.callback(_remove, harness.RESET_LISTENERS, self.api.reset_cache)

        self.session = boto3.Session(
            region_name=self.region,
            aws_access_key_id=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            aws_session_token=FAKE_CREDENTIALS["AWS_SESSION_TOKEN"],
        )
        self.deployment = harness.deploy(
            _EndpointSession(self.session, self.endpoint_url),
            name=SANDBOX_NAME,
            header_name=header,
            rotate_env={
                **self.timings.rotate_env(),
                **(self.timings.edge_env() if self.edge_signed else {}),
                # The Verify step probes both, as it does on AWS.
                "PROBE_URL": f"{self.cloudfront.urls[0]}/",
                "API_URL": f"{self.api.url}/",
            },
            authorizer_env=self.timings.authorizer_env(),
            edge_signing=self._edge_signing(),
        )
        self.ssm_counter = SsmReadCounter(self.deployment.parameter_name)
        self.ssm_counter.install()
        stack.callback(self.ssm_counter.uninstall)
        self.ssm_faults = SsmFaults(self.deployment.parameter_name)
        self.ssm_faults.install()
        stack.callback(self.ssm_faults.uninstall)
        self.ssm_quota = SsmQuota(self.timings.ssm_quota)
        self.ssm_quota.install()
        stack.callback(self.ssm_quota.uninstall)
        stack.callback(self._finish_executions)

        self.api.configure(self.deployment.api_id, self.deployment.authorizer_function)
        self.cloudfront.configure(
            self.deployment.distribution_id,
            self.deployment.origin_id,
            self.deployment.distribution_domain,
        )
        if self.edge_signed:
            self._sign_at_the_edges(header)
        self.api.start()
        self.cloudfront.start()
        self._create_schedule()
        if self.with_stack:
            self._create_stack()
        if self.state_file is not None:
            write_sandbox_file(self.state_file, self.describe())
            stack.callback(_unlink, self.state_file)

    def _edge_signing(self) -> harness.EdgeSigning | None:
        if not self.edge_signed:
            return None
        assert self.edge_services is not None
        t = self.timings
        return harness.EdgeSigning(
            services=self.edge_services,
            edges=self.edge_count,
            propagation=t.kvs_propagation,
            propagation_wait=t.edge_propagation_wait,
            window_seconds=t.edge_window,
            tolerance_windows=t.edge_tolerance,
            function_name=EDGE_FUNCTION_NAME,
            seed=self.seed,
        )

    def _sign_at_the_edges(self, header: str) -> None:
        """Every edge runs the published function, reading its view of the store."""
        from edge import render

        assert self.edge_services is not None and self.cloudfront is not None
        deployment = self._need()
        assert deployment.kvs_arn is not None
        worker = self.edge_services.worker_for(render(header, self.timings.edge_window))
        self.signer = SignedEdges(
            worker,
            self.edge_services.store(deployment.kvs_arn),
            deployment.distribution_id,
            domain_name=deployment.distribution_domain,
        )
        for edge, skew in self.edge_skews.items():
            self.signer.set_skew(edge, skew)
        self.cloudfront.sign_with(self.signer, header)

    def _set_environment(self, port: int) -> None:
        """Point every boto3 client of this process (functions, CLI, harness) at moto."""
        values: dict[str, str | None] = {
            **FAKE_CREDENTIALS,
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "MOTO_PORT": str(port),  # moto's own aws-sdk tasks call localhost:$MOTO_PORT
            "AWS_DEFAULT_REGION": self.region,
            "AWS_REGION": self.region,
            "AWS_PROFILE": None,
            "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS": None,
        }
        saved = {key: os.environ.get(key) for key in values}
        self._stack.callback(_restore_environment, saved)
        for key, value in values.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value

    def _configure_moto(self) -> None:
        from moto.core.config import default_user_config

        saved = copy.deepcopy(dict(default_user_config))
        self._stack.callback(_restore_moto_config, saved)
        session = requests.Session()
        session.trust_env = False
        with session:
            session.post(f"{self.endpoint_url}/moto-api/reset", timeout=30).raise_for_status()
            session.post(
                f"{self.endpoint_url}/moto-api/config",
                json={"stepfunctions": {"execute_state_machine": True}},
                timeout=30,
            ).raise_for_status()
        self._stack.callback(self._reset_moto)

    def _reset_moto(self) -> None:
        with contextlib.suppress(requests.RequestException):
            requests.post(f"{self.endpoint_url}/moto-api/reset", timeout=10)

    def _create_schedule(self) -> None:
        assert self.deployment is not None
        role = self.client("iam").create_role(
            RoleName=f"{SANDBOX_NAME}-scheduler",
            AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []}),
        )["Role"]["Arn"]
        self.client("scheduler").create_schedule(
            Name=SCHEDULE_NAME,
            GroupName=SCHEDULE_GROUP,
            ScheduleExpression="rate(7 days)",
            FlexibleTimeWindow={"Mode": "OFF"},
            Target={
                "Arn": self.deployment.state_machine_arn,
                "RoleArn": role,
                "Input": json.dumps(SCHEDULED_INPUT),
            },
        )

    def _create_stack(self) -> None:
        """A stack whose outputs are the CDK app's output keys, for ``--stack``."""
        outputs = {key: {"Value": value} for key, value in self.stack_outputs().items()}
        template = {
            "Resources": {
                "Marker": {
                    "Type": "AWS::SSM::Parameter",
                    "Properties": {
                        "Name": f"/{SANDBOX_NAME}/sandbox-stack",
                        "Type": "String",
                        "Value": "outputs only",
                    },
                }
            },
            "Outputs": outputs,
        }
        self.client("cloudformation").create_stack(
            StackName=SANDBOX_STACK, TemplateBody=json.dumps(template)
        )

    def _finish_executions(self, timeout: float = 20.0) -> None:
        """Let running executions end (they call back into our servers), then stop the rest."""
        if self.deployment is None:
            return
        sfn = self.client("stepfunctions")
        deadline = time.monotonic() + timeout
        with contextlib.suppress(Exception):
            while time.monotonic() < deadline:
                running = sfn.list_executions(
                    stateMachineArn=self.deployment.state_machine_arn, statusFilter="RUNNING"
                )["executions"]
                if not running:
                    return
                time.sleep(0.2)
            for execution in running:
                sfn.stop_execution(executionArn=execution["executionArn"])

    # -- what tests, the demo and the CLI use ----------------------------------------
    def client(self, service: str) -> Any:
        """A boto3 client for moto (explicit endpoint; fake credentials)."""
        return self.session.client(
            service,
            endpoint_url=self.endpoint_url,
            config=Config(retries={"mode": "standard", "max_attempts": 3}),
        )

    def _need(self) -> harness.Deployment:
        if self.deployment is None:
            raise RuntimeError("the sandbox is not started")
        return self.deployment

    @property
    def api_url(self) -> str:
        assert self.api is not None
        return self.api.url

    @property
    def edge_urls(self) -> list[str]:
        assert self.cloudfront is not None
        return self.cloudfront.urls

    @property
    def edge_url(self) -> str:
        return self.edge_urls[0]

    @property
    def cloudfront_url(self) -> str:
        return self.edge_url

    @property
    def parameter_name(self) -> str:
        return self._need().parameter_name

    @property
    def edge_signed(self) -> bool:
        return self.lock_mode == EDGE_SIGNED

    @property
    def key_value_store(self) -> EmulatedKeyValueStore:
        """Edge-signed mode: the KeyValueStore the edges read their signing key from."""
        deployment = self._need()
        if self.edge_services is None or deployment.kvs_arn is None:
            raise RuntimeError("the sandbox is not in edge-signed mode")
        return self.edge_services.store(deployment.kvs_arn)

    def set_edge_skew(self, edge: int, seconds: float) -> None:
        """Edge-signed mode: edge *edge*'s clock runs *seconds* ahead of true time from now on
        (negative: behind); 0 puts it right."""
        if self.signer is None:
            raise RuntimeError("the sandbox is not in edge-signed mode")
        if not 0 <= edge < self.edge_count:
            raise ValueError(f"no edge {edge}")
        self.signer.set_skew(edge, seconds)
        self.edge_skews[edge] = seconds

    def captured_origin_header(self) -> str | None:
        """The origin header of the last request the API let through (what a backend that logs
        request headers holds). A secret: never print it."""
        assert self.api is not None
        return self.api.last_allowed_value

    @property
    def state_machine_arn(self) -> str:
        return self._need().state_machine_arn

    @property
    def distribution_id(self) -> str:
        return self._need().distribution_id

    @property
    def header_name(self) -> str:
        return self._need().header_name

    @property
    def authorizer_function(self) -> str:
        return self._need().authorizer_function

    @property
    def rotate_function(self) -> str:
        return self._need().rotate_function

    def stack_outputs(self) -> dict[str, str]:
        """The CDK app's stack output keys, with the sandbox's values."""
        deployment = self._need()
        return {
            "StateMachineArn": deployment.state_machine_arn,
            "ParameterName": deployment.parameter_name,
            "DistributionId": deployment.distribution_id,
            "ApiUrl": f"{self.api_url}/",
            "CloudFrontUrl": f"{self.cloudfront_url}/",
            "AuthorizerFunctionName": deployment.authorizer_function,
            "OriginHeaderName": deployment.header_name,
            "ScheduleName": SCHEDULE_NAME,
            "ScheduleGroupName": SCHEDULE_GROUP,
        }

    def describe(self) -> dict[str, Any]:
        """URLs and identifiers (no secret): the state file and ``originlock sandbox``."""
        return {
            "endpoint_url": self.endpoint_url,
            "region": self.region,
            "api_url": f"{self.api_url}/",
            "cloudfront_url": f"{self.cloudfront_url}/",
            "edge_urls": [f"{url}/" for url in self.edge_urls],
            "header_name": self.header_name,
            "lock_mode": self.lock_mode,
            "stack_name": SANDBOX_STACK if self.with_stack else None,
            "pid": os.getpid(),
            "outputs": self.stack_outputs(),
        }

    # counters
    @property
    def authorizer_invocations(self) -> int:
        assert self.api is not None
        return self.api.invocations

    @property
    def ssm_reads(self) -> int:
        """``GetParameter`` reads of the token parameter so far (functions and CLI)."""
        assert self.ssm_counter is not None
        return self.ssm_counter.reads

    def decision_latencies(self, cold: bool = False) -> list[float]:
        """Seconds per authorizer invocation by a warm instance (or, with *cold*, by a new
        one). API Gateway cache hits are not invocations."""
        assert self.api is not None
        return list(self.api.cold_latencies if cold else self.api.latencies)

    def latency_ms(self) -> dict[str, float | int | None]:
        """p50/p99 of warm decisions; cold starts counted apart (their p50)."""

        def ms(value: float | None) -> float | None:
            return None if value is None else round(value * 1000, 3)

        warm, cold = self.decision_latencies(), self.decision_latencies(cold=True)
        return {
            "p50_ms": ms(percentile(warm, 0.50)),
            "p99_ms": ms(percentile(warm, 0.99)),
            "cold_starts": len(cold),
            "cold_p50_ms": ms(percentile(cold, 0.50)),
        }

    def lambda_invocations(self, function: str) -> int:
        assert self.lambdas is not None
        return int(self.lambdas.invocations.get(function, 0))

    def lambda_output(self) -> str:
        """Everything the functions printed (their CloudWatch Logs, in AWS)."""
        return self.output.text() if self.output is not None else ""

    # secrets, for checking invariant 2 (never printed)
    def token_values(self) -> set[str]:
        """Every secret the sandbox has held: each value the token parameter has ever held
        (from its version history); in edge-signed mode also every signing key the edges'
        KeyValueStore has held and every origin header value an edge's function made (a
        token)."""
        from originlock.document import CorruptDocumentError, TokenDocument

        ssm = self.client("ssm")
        values: set[str] = set()
        kwargs: dict[str, Any] = {"Name": self.parameter_name, "WithDecryption": True}
        while True:
            page = ssm.get_parameter_history(**kwargs)
            for version in page["Parameters"]:
                with contextlib.suppress(CorruptDocumentError):
                    document = TokenDocument.parse(version["Value"])
                    values |= {value.decode() for _, value in document.accepted()}
            if not page.get("NextToken"):
                break
            kwargs["NextToken"] = page["NextToken"]
        if self.edge_signed:
            from tokens.edge import KVS_KEY_NAME

            values |= self.key_value_store.values_ever(KVS_KEY_NAME)
        if self.cloudfront is not None:
            values |= set(self.cloudfront.signed_values)
        captured = self.api.last_allowed_value if self.api is not None else None
        if captured:
            values.add(captured)
        return values

    def fire_schedule(self, name: str | None = None) -> str:
        """Start the execution the schedule would start now (moto's Scheduler never fires)."""
        schedule = self.client("scheduler").get_schedule(
            Name=SCHEDULE_NAME, GroupName=SCHEDULE_GROUP
        )
        target = schedule["Target"]
        response = self.client("stepfunctions").start_execution(
            stateMachineArn=target["Arn"],
            input=target.get("Input", "{}"),
            name=name or f"schedule-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}",
        )
        return str(response["executionArn"])

    def finish_deployments(self) -> None:
        """Every edge switches now (skip the rest of a deploy window)."""
        assert self.edges is not None
        self.edges.finish_deployments()

    # -- reconfiguring a running sandbox (benchmarks and fault injection) ------------------------
    def update_function_env(self, function: str, changes: dict[str, str | None]) -> None:
        """Set (or, with ``None``, remove) environment variables of *function*, as
        ``UpdateFunctionConfiguration`` does: new invocations run on fresh instances."""
        lam = self.client("lambda")
        config = lam.get_function_configuration(FunctionName=function)
        variables = dict((config.get("Environment") or {}).get("Variables") or {})
        for key, value in changes.items():
            if value is None:
                variables.pop(key, None)
            else:
                variables[key] = value
        lam.update_function_configuration(
            FunctionName=function, Environment={"Variables": variables}
        )

    @contextlib.contextmanager
    def retimed(self, timings: SandboxTimings) -> Iterator[SandboxTimings]:
        """Run the block with other timings: the functions' settings (fresh instances, as any
        configuration change), the deploy window and API Gateway's TTL. The timings in force
        before are put back at exit."""
        saved = self.timings
        self._apply_timings(timings)
        try:
            yield timings
        finally:
            self._apply_timings(saved)

    def _apply_timings(self, timings: SandboxTimings) -> None:
        assert self.edges is not None and self.api is not None
        authorizer: dict[str, str | None] = {"TOKEN_MAX_STALENESS_SECONDS": None}
        authorizer.update(timings.authorizer_env())
        self.update_function_env(self.authorizer_function, authorizer)
        self.update_function_env(self.rotate_function, dict(timings.rotate_env()))
        if self.edge_signed:
            timings.check_edge_signed()
            self.update_function_env(self.rotate_function, dict(timings.edge_env()))
            self.key_value_store.propagation = timings.kvs_propagation
        self.edges.deploy_window = timings.deploy_window
        self.api.ttl = timings.authorizer_ttl
        if self.ssm_quota is not None:
            self.ssm_quota.rate = self.ssm_quota.burst = timings.ssm_quota
        self.timings = timings

    def prewarm_authorizer(self, count: int) -> int:
        """Start authorizer instances until *count* are warm (each has read the document), as
        provisioned concurrency would; returns how many were started."""
        from moto.awslambda.models import lambda_backends

        from originlock.document import TokenDocument

        assert self.lambdas is not None
        value = self.client("ssm").get_parameter(Name=self.parameter_name, WithDecryption=True)
        current = TokenDocument.parse(value["Parameter"]["Value"]).current
        event = {
            "version": "2.0",
            "type": "REQUEST",
            "routeKey": "$default",
            "identitySource": [current],
            "headers": {self.header_name: current},
        }
        function = lambda_backends[harness.ACCOUNT][self.region].get_function(
            self.authorizer_function
        )
        return self.lambdas.prewarm(function, count, event)


class _EndpointSession:
    """A session whose clients talk to moto's endpoint (what :func:`harness.deploy` needs)."""

    def __init__(self, session: Any, endpoint_url: str) -> None:
        self._session = session
        self._endpoint_url = endpoint_url

    def client(self, service: str) -> Any:
        return self._session.client(service, endpoint_url=self._endpoint_url)


def _forget_function_clients() -> None:
    """The rotate function's adapters keep boto3 clients for the process: drop them, so they
    are built again against this sandbox's endpoint (and not reused after it stops)."""
    adapters = sys.modules.get("rotate.adapters")
    clients = getattr(getattr(adapters, "CLIENTS", None), "_clients", None)
    if isinstance(clients, dict):
        clients.clear()


def _restore_environment(saved: dict[str, str | None]) -> None:
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def _restore_moto_config(saved: dict[str, Any]) -> None:
    from moto.core.config import default_user_config

    config: dict[str, Any] = default_user_config  # type: ignore[assignment]
    config.clear()
    config.update(saved)


def _remove(items: list[Callable[[str, str], None]], item: Callable[[str, str], None]) -> None:
    with contextlib.suppress(ValueError):
        items.remove(item)


def _unlink(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()
