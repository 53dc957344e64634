"""What moto does not do on its own, supplied once for the tests, the sandbox and the benchmarks.

* :class:`InProcessLambda` runs the real handlers of ``functions/`` in this process when
  moto's Lambda is invoked (moto wants a Docker engine for that). Each warm *instance* is a
  separate copy of the handler module with its own globals and its own environment, as in
  Lambda; changing a function's configuration retires its warm instances, as Lambda does.
* :class:`CloudFrontEdges` makes moto's CloudFront behave like CloudFront after an update:
  a new ETag per update, ``PreconditionFailed`` on a stale ``IfMatch``, ``InProgress``
  until every edge has switched (each at a random moment in a deploy window), then
  ``Deployed``. It also says which header value each edge sends at any moment.
* ``ResetAuthorizersCache`` for API Gateway v2, which moto does not implement: the call is
  routed and reported to listeners (the sandbox's API Gateway empties its cache).
* A parsed definition is kept: moto's interpreter parses the ASL (with an ANTLR parser in pure
  Python) when a state machine is created and again at every execution's start, about 0.8 s
  of CPU for ours each time. The parsed program holds no execution state (that lives in each
  execution's ``Environment``), so one parse serves every execution of the same definition.
  Likewise its ``lambda:invoke`` tasks share one client instead of building one (20-30 ms of
  CPU) per invocation.

Pinned to moto 5.2.5: ``LambdaFunction._invoke_lambda`` and the CloudFront backend are
private API. ``tests/statemachine`` fails loudly if a moto upgrade changes them.
"""

from __future__ import annotations

import contextlib
import copy
import importlib.util
import io
import json
import random
import sys
import threading
import time
import traceback
import warnings
import zipfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import moto
from moto.awslambda.models import LambdaFunction
from moto.cloudfront import models as cf_models
from moto.cloudfront.exceptions import CloudFrontException

from originlock.bundle import asl_file, functions_dir
from originlock.constants import NOT_CACHED_ERRORS

FUNCTIONS_DIR = functions_dir()
STATE_MACHINE_FILE = asl_file()
MOTO_VERSION = "5.2.5"
ACCOUNT = "123456789012"  # moto's default account

# The sandbox stands in for the Lambda runtime, which puts the asset's root (functions/) on
# sys.path: the handlers import their packages (tokens, rotate...) by those top-level names.
# Only a process that runs the sandbox does this (docs/decisions.md, "Package data").
if str(FUNCTIONS_DIR) not in sys.path:
    sys.path.insert(0, str(FUNCTIONS_DIR))


def check_moto() -> None:
    if moto.__version__ != MOTO_VERSION:
        raise RuntimeError(
            f"the harness patches moto {MOTO_VERSION} internals; found {moto.__version__}"
        )


def placeholder_zip() -> bytes:
    """A zip for ``CreateFunction``: the code that runs is ``functions/`` itself."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("README.txt", "code runs from originlock's functions/ folder\n")
    return buffer.getvalue()


# --------------------------------------------------------------------------- Lambda
class FakeContext:
    """The parts of the Lambda context object our handlers (and Powertools) read."""

    def __init__(self, function_name: str, memory: int = 256) -> None:
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.invoked_function_arn = (
            f"arn:aws:lambda:us-east-1:123456789012:function:{function_name}"
        )
        self.memory_limit_in_mb = memory
        self.aws_request_id = f"req-{random.getrandbits(64):016x}"
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = "sandbox"

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 300_000


class SandboxCrashError(Exception):
    """An injected crash of a Lambda invocation."""


@dataclass
class Instance:
    module: ModuleType
    handler: Callable[[Any, Any], Any]
    invocations: int = 0


@dataclass
class FunctionPool:
    config_key: str
    free: list[Instance] = field(default_factory=list)
    created: int = 0


class InProcessLambda:
    """Runs ``functions/<package>/<module>.<handler>`` for moto's Lambda, in this process."""

    def __init__(self, base_env: Mapping[str, str] | None = None) -> None:
        self.base_env = dict(base_env or {})
        self._pools: dict[str, FunctionPool] = {}
        self._lock = threading.Lock()
        self._original: Any = None
        self.invocations: dict[str, int] = {}
        self.instances_created: dict[str, int] = {}
        # Fault injection: step name (or "step:tag", for the state that passes that tag) ->
        # "before" | "after". The next invocation of that rotate step crashes before it runs,
        # or after its side effects but before it answers (as a Lambda timeout would).
        # One-shot.
        self.crash_steps: dict[str, str] = {}
        # Step name -> seconds: the next invocation of that rotate step waits that long before
        # it runs (a slow step: its state stays entered, its task under way). One-shot.
        self.delay_steps: dict[str, float] = {}

    # -- instances ----------------------------------------------------------
    @staticmethod
    def _config_key(fn: LambdaFunction) -> str:
        return json.dumps(
            {"handler": fn.handler, "env": fn.environment_vars, "sha": fn.code_sha_256},
            sort_keys=True,
        )

    def _new_instance(self, fn: LambdaFunction, number: int) -> Instance:
        module_path, _, attribute = str(fn.handler).rpartition(".")
        source = FUNCTIONS_DIR / (module_path.replace(".", "/") + ".py")
        name = f"{module_path}__{fn.function_name}__{number}"
        spec = importlib.util.spec_from_file_location(name, source)
        if spec is None or spec.loader is None:
            raise RuntimeError(f"no handler module for {fn.handler}")
        module = importlib.util.module_from_spec(spec)
        # Registered under its own name: dataclasses look their module up in sys.modules.
        sys.modules[name] = module
        spec.loader.exec_module(module)
        env = {**self.base_env, **fn.environment_vars, "AWS_LAMBDA_FUNCTION_NAME": fn.function_name}
        setattr(module, "ENVIRON", env)
        return Instance(module, getattr(module, attribute))

    def _checkout(self, fn: LambdaFunction) -> tuple[FunctionPool, Instance]:
        key = self._config_key(fn)
        with self._lock:
            pool = self._pools.get(fn.function_arn)
            if pool is None or pool.config_key != key:
                # A new configuration: Lambda serves new invocations from fresh instances.
                pool = self._pools[fn.function_arn] = FunctionPool(key)
            if pool.free:
                return pool, pool.free.pop()
            pool.created += 1
            self.instances_created[fn.function_name] = (
                self.instances_created.get(fn.function_name, 0) + 1
            )
            number = pool.created
        return pool, self._new_instance(fn, number)

    def _checkin(self, fn: LambdaFunction, pool: FunctionPool, instance: Instance) -> None:
        with self._lock:
            if self._pools.get(fn.function_arn) is pool:
                pool.free.append(instance)

    def run(self, fn: LambdaFunction, event: Any) -> tuple[Any, bool]:
        """Invoke *fn* with *event*; returns ``(result, errored)`` like Lambda's payload."""
        pool, instance = self._checkout(fn)
        with self._lock:
            self.invocations[fn.function_name] = self.invocations.get(fn.function_name, 0) + 1
        instance.invocations += 1
        errored = False
        step = event.get("step") if isinstance(event, dict) else None
        tagged = f"{step}:{event.get('tag')}" if step and event.get("tag") else None
        with self._lock:
            crash = self.crash_steps.pop(tagged, None) if tagged else None
            crash = crash or (self.crash_steps.pop(step, None) if step else None)
            delay = self.delay_steps.pop(step, 0.0) if step else 0.0
        if delay:
            time.sleep(delay)
        try:
            if crash == "before":
                raise SandboxCrashError(f"injected crash before step {step}")
            result = instance.handler(event, FakeContext(fn.function_name))
            if crash == "after":
                raise SandboxCrashError(f"injected crash after step {step}")
        except Exception as exc:
            errored = True
            result = {
                "errorType": type(exc).__name__,
                "errorMessage": str(exc),
                "stackTrace": traceback.format_tb(exc.__traceback__)[-3:],
            }
        finally:
            self._checkin(fn, pool, instance)
        return result, errored

    def _invoke_lambda(self, fn: LambdaFunction, event: Any = None) -> tuple[str, bool, str]:
        if isinstance(event, str | bytes):
            event = json.loads(event or "{}")
        result, errored = self.run(fn, event if event is not None else {})
        return json.dumps(result), errored, ""

    # -- install ------------------------------------------------------------
    def install(self) -> None:
        check_moto()
        self._original = LambdaFunction._invoke_lambda
        harness = self

        def _invoke(fn: LambdaFunction, event: Any = None) -> tuple[str, bool, str]:
            return harness._invoke_lambda(fn, event)

        setattr(LambdaFunction, "_invoke_lambda", _invoke)

    def uninstall(self) -> None:
        if self._original is not None:
            LambdaFunction._invoke_lambda = self._original  # type: ignore[method-assign]
            self._original = None

    def recycle(self, function_name: str) -> None:
        """Drop the warm instances of a function, as Lambda does when it recycles them."""
        with self._lock:
            for arn in [a for a in self._pools if a.endswith(f":function:{function_name}")]:
                del self._pools[arn]

    def prewarm(self, fn: LambdaFunction, count: int, event: Any) -> int:
        """Have at least *count* instances of *fn*, each initialised with one *event* (as
        provisioned concurrency would): later concurrency up to *count* starts no new one.
        Returns how many were started."""
        taken = [self._checkout(fn) for _ in range(count)]
        started = sum(1 for _, instance in taken if instance.invocations == 0)
        try:
            for _, instance in taken:
                instance.invocations += 1
                # A failed first invocation (the authorizer could not read the document and
                # decided nothing) leaves the instance warm, as in Lambda.
                with contextlib.suppress(Exception):
                    instance.handler(event, FakeContext(fn.function_name))
        finally:
            for pool, instance in taken:
                self._checkin(fn, pool, instance)
        return started

    def warm_instances(self, function_name: str) -> int:
        with self._lock:
            return sum(
                len(pool.free)
                for arn, pool in self._pools.items()
                if arn.endswith(f":function:{function_name}")
            )


# --------------------------------------------------------------------------- CloudFront
class PreconditionFailed(CloudFrontException):
    def __init__(self) -> None:
        super().__init__(
            "PreconditionFailed",
            "The precondition given in one or more of the request-header fields"
            " evaluated to false.",
        )


class Throttling(CloudFrontException):
    def __init__(self) -> None:
        super().__init__("Throttling", "Rate exceeded")


# CloudFront answers Throttling, but botocore's CloudFront model has no shape for it: moto
# warns on every one it serialises. The fault is injected on purpose.
warnings.filterwarnings(
    "ignore", message=r"Exception\(Throttling\) with code Throttling", category=UserWarning
)


@dataclass
class Rollout:
    """One configuration version and the moment each edge starts serving it."""

    headers: dict[str, dict[str, str]]  # origin id -> header name (lower) -> value
    switch_at: list[float]
    # Status code -> ErrorCachingMinTTL of the configuration's custom error responses.
    error_ttls: dict[int, float] = field(default_factory=dict)


@dataclass
class DistributionState:
    rollouts: list[Rollout]
    etag: str


def _origin_headers(config: Any) -> dict[str, dict[str, str]]:
    origins = (
        config.Origins["Items"] if not isinstance(config, dict) else config["Origins"]["Items"]
    )
    found: dict[str, dict[str, str]] = {}
    for origin in origins:
        origin_id = origin.id if not isinstance(origin, dict) else origin["Id"]
        custom = (
            origin.custom_headers
            if not isinstance(origin, dict)
            else origin.get("CustomHeaders", {})
        )
        found[origin_id] = {
            item["HeaderName"].lower(): item["HeaderValue"]
            for item in (custom or {}).get("Items", []) or []
        }
    return found


def _error_ttls(config: Any) -> dict[int, float]:
    """``CustomErrorResponses`` as ``{status: ErrorCachingMinTTL}`` (in process moto keeps the
    request's dicts; through the server they come from XML, as strings and wrapped lists)."""
    found = (
        config.get("CustomErrorResponses")
        if isinstance(config, dict)
        else getattr(config, "CustomErrorResponses", None)
    ) or {}
    items: Any = found.get("Items") or []
    if isinstance(items, dict):
        items = items.get("CustomErrorResponse") or []
    if isinstance(items, dict):
        items = [items]
    ttls: dict[int, float] = {}
    for item in items:
        if "ErrorCachingMinTTL" in item:
            ttls[int(item["ErrorCode"])] = float(item["ErrorCachingMinTTL"])
    return ttls


class CloudFrontEdges:
    """Realistic deployment behaviour around moto's CloudFront backend, with N edges.

    Parameters
    ----------
    edges:
        How many edge locations serve the distribution.
    deploy_window:
        ``(low, high)`` seconds: after an update each edge switches at a uniformly random
        moment in this window; ``InProgress`` until the last one has.
    seed:
        For reproducible edge timings.
    """

    def __init__(
        self,
        edges: int = 4,
        deploy_window: tuple[float, float] = (0.5, 2.0),
        seed: int | None = None,
    ) -> None:
        self.edges = edges
        self.deploy_window = deploy_window
        self.random = random.Random(seed)
        self.clock: Callable[[], float] = time.monotonic
        self._state: dict[str, DistributionState] = {}
        self._lock = threading.RLock()
        self._originals: dict[str, Any] = {}
        # Fault injection.
        self.foreign_updates_before_next = 0  # someone else updates first: our IfMatch goes stale
        self.throttle_next = 0
        self.never_deploy = False
        self.updates = 0
        self.precondition_failures = 0
        self.throttled = 0
        # (monotonic time of each UpdateDistribution, when its last edge switches): CloudFront's
        # own deploy time, which the rotation benchmark subtracts from a rotation's wall time.
        self.deploy_log: list[tuple[float, float]] = []
        # Distribution id -> the configuration's XML as the last update sent it. CloudFront
        # keeps every element, even one no SDK knows yet; moto parses and renders through
        # botocore's model and drops those. GetDistributionConfig answers this XML.
        self.raw_configs: dict[str, str] = {}

    # -- state ----------------------------------------------------------------
    def _new_etag(self) -> str:
        return "E" + "".join(
            self.random.choice("ABCDEFGHJKLMNPQRSTUVWXYZ23456789") for _ in range(13)
        )

    def _ensure(self, dist: Any) -> DistributionState:
        state = self._state.get(dist.distribution_id)
        if state is None:
            config = dist.distribution_config
            rollout = Rollout(_origin_headers(config), [0.0] * self.edges, _error_ttls(config))
            state = DistributionState([rollout], dist.etag)
            self._state[dist.distribution_id] = state
        dist.etag = state.etag
        return state

    def _status(self, dist_id: str) -> str:
        state = self._state.get(dist_id)
        if state is None:
            return "Deployed"
        now = self.clock()
        return "InProgress" if any(t > now for t in state.rollouts[-1].switch_at) else "Deployed"

    def edge_rollout(self, dist_id: str, edge: int) -> Rollout:
        """The configuration edge *edge* serves right now."""
        with self._lock:
            now = self.clock()
            for rollout in reversed(self._state[dist_id].rollouts):
                if rollout.switch_at[edge] <= now:
                    return rollout
            return self._state[dist_id].rollouts[0]

    def edge_headers(self, dist_id: str, edge: int) -> dict[str, dict[str, str]]:
        """What edge *edge* adds to requests for each origin right now."""
        return self.edge_rollout(dist_id, edge).headers

    def values_in_flight(self, dist_id: str, origin_id: str, header: str) -> set[str]:
        """Every value some edge may send now (what invariant 1 quantifies over)."""
        values = set()
        for edge in range(self.edges):
            value = self.edge_headers(dist_id, edge).get(origin_id, {}).get(header)
            if value is not None:
                values.add(value)
        return values

    def finish_deployments(self) -> None:
        """Make every pending rollout complete now (the clock jumps for the edges)."""
        with self._lock:
            now = self.clock()
            for state in self._state.values():
                state.rollouts[-1].switch_at = [min(t, now) for t in state.rollouts[-1].switch_at]
            self.deploy_log = [(start, min(end, now)) for start, end in self.deploy_log]

    # -- patched backend calls ------------------------------------------------
    def install(self) -> None:
        check_moto()
        backend_cls = cf_models.CloudFrontBackend
        dist_cls = cf_models.Distribution
        self._originals = {
            "create": backend_cls.create_distribution_with_tags,
            "get": backend_cls.get_distribution,
            "get_config": backend_cls.get_distribution_config,
            "update": backend_cls.update_distribution,
            "status": dist_cls.__dict__.get("status"),
        }
        edges = self
        original = self._originals

        def create(backend: Any, config: Any, tags: Any) -> Any:
            dist, location, _ = original["create"](backend, config, tags)
            with edges._lock:
                state = edges._ensure(dist)
                state.etag = dist.etag = edges._new_etag()
            return dist, location, dist.etag

        def get(backend: Any, distribution_id: str) -> Any:
            edges._maybe_throttle()
            dist, _ = original["get"](backend, distribution_id)
            with edges._lock:
                return dist, edges._ensure(dist).etag

        def get_config(backend: Any, distribution_id: str) -> Any:
            edges._maybe_throttle()
            config, _ = original["get_config"](backend, distribution_id)
            dist = backend.distributions[distribution_id]
            with edges._lock:
                return config, edges._ensure(dist).etag

        def update(backend: Any, dist_config: Any, _id: str, if_match: Any) -> Any:
            edges._maybe_throttle()
            with edges._lock:
                dist = backend.distributions.get(_id)
                if dist is None:
                    return original["update"](backend, dist_config, _id, if_match)
                state = edges._ensure(dist)
                if edges.foreign_updates_before_next > 0:
                    edges.foreign_updates_before_next -= 1
                    state.etag = dist.etag = edges._new_etag()
                if if_match != state.etag:
                    edges.precondition_failures += 1
                    raise PreconditionFailed()
                result = original["update"](backend, dist_config, _id, if_match)
                edges.updates += 1
                now = edges.clock()
                low, high = edges.deploy_window
                switch_at = [
                    float("inf") if edges.never_deploy else now + edges.random.uniform(low, high)
                    for _ in range(edges.edges)
                ]
                config = dist.distribution_config
                state.rollouts.append(
                    Rollout(_origin_headers(config), switch_at, _error_ttls(config))
                )
                edges.deploy_log.append((now, max(switch_at)))
                state.rollouts = state.rollouts[-8:]
                state.etag = dist.etag = edges._new_etag()
                return dist, result[1], dist.etag

        def status(dist: Any) -> str:
            return edges._status(dist.distribution_id)

        self._install_raw_configs()
        setattr(backend_cls, "create_distribution_with_tags", create)
        setattr(backend_cls, "get_distribution", get)
        setattr(backend_cls, "get_distribution_config", get_config)
        setattr(backend_cls, "update_distribution", update)
        setattr(dist_cls, "status", property(status))

    def _install_raw_configs(self) -> None:
        from moto.cloudfront.responses import CloudFrontResponse

        edges = self
        self._originals["resp_update"] = CloudFrontResponse.update_distribution
        self._originals["resp_get_config"] = CloudFrontResponse.get_distribution_config
        update, get_config = (
            self._originals["resp_update"],
            self._originals["resp_get_config"],
        )

        def update_response(response: Any) -> Any:
            result = update(response)
            body = response.body
            with edges._lock:
                edges.raw_configs[response._get_param("Id")] = (
                    body.decode() if isinstance(body, bytes) else str(body)
                )
            return result

        def get_config_response(response: Any) -> Any:
            dist_id = response._get_param("Id")
            with edges._lock:
                raw = edges.raw_configs.get(dist_id)
            if raw is None:
                return get_config(response)
            _, etag = response.backend.get_distribution_config(dist_id)
            return 200, {"ETag": etag, "Content-Type": "text/xml"}, raw

        setattr(CloudFrontResponse, "update_distribution", update_response)
        setattr(CloudFrontResponse, "get_distribution_config", get_config_response)

    def _maybe_throttle(self) -> None:
        with self._lock:
            if self.throttle_next > 0:
                self.throttle_next -= 1
                self.throttled += 1
                raise Throttling()

    def uninstall(self) -> None:
        if not self._originals:
            return
        backend_cls = cf_models.CloudFrontBackend
        setattr(backend_cls, "create_distribution_with_tags", self._originals["create"])
        setattr(backend_cls, "get_distribution", self._originals["get"])
        setattr(backend_cls, "get_distribution_config", self._originals["get_config"])
        setattr(backend_cls, "update_distribution", self._originals["update"])
        from moto.cloudfront.responses import CloudFrontResponse

        setattr(CloudFrontResponse, "update_distribution", self._originals["resp_update"])
        setattr(CloudFrontResponse, "get_distribution_config", self._originals["resp_get_config"])
        if self._originals["status"] is None:
            # Distribution inherits ``status`` (moto's ManagedState): a class attribute left
            # here, even None, would hide it from every later distribution in this process.
            delattr(cf_models.Distribution, "status")
        else:
            setattr(cf_models.Distribution, "status", self._originals["status"])
        self._originals = {}


# --------------------------------------------------------------------------- API Gateway v2
RESET_LISTENERS: list[Callable[[str, str], None]] = []
_reset_installed = False


def install_reset_authorizers_cache() -> None:
    """Route ``DELETE /v2/apis/{id}/stages/{stage}/cache/authorizers`` and tell listeners."""
    global _reset_installed
    if _reset_installed:
        return
    from urllib.parse import unquote

    from moto.apigatewayv2 import urls
    from moto.apigatewayv2.responses import ApiGatewayV2Response

    def reset_authorizers_cache(self: Any) -> tuple[int, dict[str, str], str]:
        parts = self.path.split("?")[0].split("/")
        api_id, stage = parts[3], unquote(parts[5])
        self.apigatewayv2_backend.get_api(
            api_id
        )  # NotFoundException for an unknown API, as AWS answers
        for listener in list(RESET_LISTENERS):
            listener(api_id, stage)
        return 204, {}, ""

    setattr(ApiGatewayV2Response, "reset_authorizers_cache", reset_authorizers_cache)
    urls.url_paths[
        "{0}/v2/apis/(?P<api_id>[^/]+)/stages/(?P<stage_name>[^/]+)/cache/authorizers$"
    ] = ApiGatewayV2Response.dispatch
    _reset_installed = True


# --------------------------------------------------------------------------- Step Functions
_stop_details_installed = False


def install_stop_execution_details() -> None:
    """``StopExecution`` as AWS does it: ``error`` and ``cause`` recorded (``DescribeExecution``
    then shows them; moto 5.2.5 drops them), and a stopped execution stays stopped — a task
    that was under way and fails afterwards does not run the failure path and turn it
    ``FAILED`` (moto's interpreter lets it). A revoke stops the execution it preempts with
    ``PreemptedError`` and a cause naming itself: ``originlock history`` shows that."""
    global _stop_details_installed
    if _stop_details_installed:
        return
    from moto.stepfunctions.parser.asl.eval.environment import Environment
    from moto.stepfunctions.parser.asl.eval.program_state import ProgramStopped
    from moto.stepfunctions.responses import StepFunctionResponse

    set_error = Environment.set_error

    def set_error_unless_stopped(env: Any, error: Any) -> None:
        if isinstance(env._program_state, ProgramStopped):
            return
        set_error(env, error)

    setattr(Environment, "set_error", set_error_unless_stopped)

    original = StepFunctionResponse.stop_execution

    def stop_execution(self: Any) -> Any:
        result = original(self)
        arn = self._get_param("executionArn")
        execution = self.stepfunction_backend.describe_execution(arn)
        for key in ("error", "cause"):
            value = self._get_param(key)
            if value is not None:
                setattr(execution, key, value)
        return result

    setattr(StepFunctionResponse, "stop_execution", stop_execution)
    _stop_details_installed = True


_history_pages_installed = False
HISTORY_PAGE_DEFAULT = 100
HISTORY_PAGE_MAX = 1000


def install_execution_history_pages() -> None:
    """``GetExecutionHistory`` as AWS answers it: ``reverseOrder`` lists the latest event
    first, ``maxResults`` bounds a page (100 by default, at most 1,000) and ``nextToken``
    fetches the next one. moto 5.2.5 ignores all three and returns the whole history oldest
    first. A revoke reads the latest events of the execution it preempts to know whether a
    Lambda step of it is under way (``rotate.adapters.Lock.step_in_flight``); read oldest
    first, every execution looked as if its first task were under way, and every preemption
    settled, even one that met the rotation in a Wait state."""
    global _history_pages_installed
    if _history_pages_installed:
        return
    from moto.core.responses import ActionResult
    from moto.stepfunctions.exceptions import InvalidToken
    from moto.stepfunctions.responses import StepFunctionResponse

    def get_execution_history(self: Any) -> Any:
        arn = self._get_param("executionArn")
        # A copy: a running execution's thread appends to the list it returns.
        events = list(self.stepfunction_backend.get_execution_history(arn)["events"])
        reverse = bool(self._get_param("reverseOrder"))
        if reverse:
            events.reverse()
        size = min(
            int(self._get_param("maxResults") or 0) or HISTORY_PAGE_DEFAULT, HISTORY_PAGE_MAX
        )
        token = self._get_param("nextToken")
        if token:
            # The token names the last event of the page before (ids only grow), so a page
            # stays put while the execution adds events.
            try:
                after = int(token)
            except ValueError:
                raise InvalidToken(str(token)) from None
            events = [e for e in events if (e["id"] < after if reverse else e["id"] > after)]
        page = events[:size]
        result: dict[str, Any] = {"events": page}
        if len(events) > size:
            result["nextToken"] = str(page[-1]["id"])
        return ActionResult(result)

    setattr(StepFunctionResponse, "get_execution_history", get_execution_history)
    _history_pages_installed = True


# --------------------------------------------------------------------------- deployment
def load_definition(substitutions: Mapping[str, str]) -> str:
    """The ASL file with its ``${Placeholders}`` substituted, as CDK's DefinitionBody does."""
    text = STATE_MACHINE_FILE.read_text()
    for key, value in substitutions.items():
        text = text.replace("${" + key + "}", value)
    if "${" in text:
        raise ValueError("unsubstituted placeholder left in the state machine definition")
    return text


@dataclass
class Deployment:
    """A deployment of originlock inside moto: what the CDK app creates on AWS."""

    parameter_name: str
    distribution_id: str
    distribution_domain: str
    origin_id: str
    api_id: str
    state_machine_arn: str
    rotate_function: str
    authorizer_function: str
    header_name: str
    # Edge-signed mode: what signs (docs/edge-signed.md); header mode: "header" and None.
    lock_mode: str = "header"
    kvs_arn: str | None = None
    edge_function: str | None = None


def create_distribution(
    cloudfront: Any,
    api_domain: str,
    header_name: str,
    value: str | None,
    origin_id: str = "api",
    function_arn: str | None = None,
) -> dict[str, Any]:
    """The distribution the CDK app creates: in header mode the origin carries the header
    *value*; in edge-signed mode (*value* ``None``) it carries none, and the function
    *function_arn* runs on viewer request."""
    headers = [] if value is None else [{"HeaderName": header_name, "HeaderValue": value}]
    behaviour: dict[str, Any] = {
        "TargetOriginId": origin_id,
        "ViewerProtocolPolicy": "redirect-to-https",
        "CachePolicyId": "4135ea2d-6df8-44a3-9df3-4b5a84be39ad",
        "OriginRequestPolicyId": "b689b0a8-53d0-40ab-baf2-68738e2966ac",
    }
    if function_arn is not None:
        behaviour["FunctionAssociations"] = {
            "Quantity": 1,
            "Items": [{"FunctionARN": function_arn, "EventType": "viewer-request"}],
        }
    config = {
        "CallerReference": f"originlock-{time.time_ns()}",
        "Comment": "originlock sandbox",
        "Enabled": True,
        "Origins": {
            "Quantity": 1,
            "Items": [
                {
                    "Id": origin_id,
                    "DomainName": api_domain,
                    "CustomHeaders": {"Quantity": len(headers), "Items": headers},
                    "CustomOriginConfig": {
                        "HTTPPort": 80,
                        "HTTPSPort": 443,
                        "OriginProtocolPolicy": "https-only",
                        "OriginSslProtocols": {"Quantity": 1, "Items": ["TLSv1.2"]},
                    },
                }
            ],
        },
        "DefaultCacheBehavior": behaviour,
        # As the constructs configure it (originlock/cdk/distribution.py): no refusal or error
        # is served from CloudFront's cache.
        "CustomErrorResponses": {
            "Quantity": len(NOT_CACHED_ERRORS),
            "Items": [{"ErrorCode": code, "ErrorCachingMinTTL": 0} for code in NOT_CACHED_ERRORS],
        },
    }
    return dict(cloudfront.create_distribution(DistributionConfig=config)["Distribution"])


@dataclass(frozen=True)
class EdgeSigning:
    """How a deployment in edge-signed mode is made (what ``lockMode=edge-signed`` creates on
    AWS: a KeyValueStore holding the signing key, the CloudFront Function associated with it
    and with the distribution's viewer requests, no origin custom header).

    Attributes
    ----------
    services:
        Where the store's data plane and the function's runs are served (installed).
    edges:
        How many edge locations read the store.
    propagation:
        ``(min, max)`` seconds: each edge picks up a store write at a random moment in it.
    propagation_wait:
        The rotate function's ``EDGE_PROPAGATION_SECONDS`` (at least ``propagation[1]``).
    window_seconds, tolerance_windows:
        The token window and the authorizer's tolerance (the document's ``signing``).
    function_name:
        The CloudFront Function's name, given to the rotate function as
        ``EDGE_FUNCTION_NAME`` (it then checks through ``TestFunction``); ``None``: not given.
    delay:
        Instead of random delays: ``delay(version, edge) -> seconds`` (tests).
    seed:
        For reproducible propagation delays.
    """

    services: Any
    edges: int
    propagation: tuple[float, float] = (0.3, 1.5)
    propagation_wait: float = 2.0
    window_seconds: int = 10
    tolerance_windows: int = 1
    function_name: str | None = "originlock-sign"
    delay: Callable[[int, int], float] | None = None
    seed: int | None = None


def deploy(
    session: Any,
    *,
    name: str = "originlock",
    header_name: str = "x-cf-api-gateway-token",
    initial_document: str | None = None,
    rotate_env: Mapping[str, str] | None = None,
    authorizer_env: Mapping[str, str] | None = None,
    extra_origins: list[dict[str, Any]] | None = None,
    edge_signing: EdgeSigning | None = None,
) -> Deployment:
    """Create, in moto, what the CDK app creates on AWS: parameter, API, distribution,
    the two functions (running ``functions/`` through :class:`InProcessLambda`) and the
    state machine from ``statemachine/rotation.asl.json``; with *edge_signing*, the
    KeyValueStore and the CloudFront Function of edge-signed mode instead of the origin
    header."""
    from tokens.document import EDGE_SIGNED_MODE, Signing, TokenDocument, generate_token

    ssm = session.client("ssm")
    parameter_name = f"/{name}/origin-token"
    current = TokenDocument.parse(initial_document).current if initial_document else None
    if current is None:
        if initial_document:
            raise ValueError("the initial document has no current value for CloudFront to send")
        current = generate_token()
    apigw = session.client("apigatewayv2")
    api = apigw.create_api(Name=f"{name}-api", ProtocolType="HTTP")
    cloudfront = session.client("cloudfront")
    api_domain = f"{api['ApiId']}.execute-api.us-east-1.amazonaws.com"
    edge_env: dict[str, str] = {}
    kvs_arn = function_name = None
    if edge_signing is None:
        dist = create_distribution(cloudfront, api_domain, header_name, current)
        document = initial_document or TokenDocument().evolve(current=current).to_json()
    else:
        kvs_arn, function_arn, function_name = _edge_function(
            cloudfront, edge_signing, name, header_name, current
        )
        dist = create_distribution(
            cloudfront, api_domain, header_name, None, function_arn=function_arn
        )
        signing = Signing(dist["Id"], edge_signing.window_seconds, edge_signing.tolerance_windows)
        document = initial_document or (
            TokenDocument()
            .evolve(current=current, mode=EDGE_SIGNED_MODE, signing=signing)
            .to_json()
        )
        edge_env = {
            "LOCK_MODE": EDGE_SIGNED_MODE,
            "KVS_ARN": kvs_arn,
            "EDGE_PROPAGATION_SECONDS": f"{edge_signing.propagation_wait:g}",
            "EDGE_WINDOW_SECONDS": str(edge_signing.window_seconds),
            "EDGE_TOLERANCE_WINDOWS": str(edge_signing.tolerance_windows),
        }
        if edge_signing.function_name is not None:
            edge_env["EDGE_FUNCTION_NAME"] = edge_signing.function_name
    ssm.put_parameter(Name=parameter_name, Value=document, Type="SecureString", Overwrite=True)
    if extra_origins:
        response = cloudfront.get_distribution_config(Id=dist["Id"])
        config = response["DistributionConfig"]
        config["Origins"]["Items"].extend(extra_origins)
        config["Origins"]["Quantity"] = len(config["Origins"]["Items"])
        cloudfront.update_distribution(
            Id=dist["Id"], IfMatch=response["ETag"], DistributionConfig=config
        )

    # Short cache bounds by default (the function's own are 60 s and 1 s), and the rotate
    # function's waits derived from whatever the authorizer is given.
    authorizer_settings = {
        "TOKEN_CACHE_MAX_AGE_SECONDS": "1",
        "TOKEN_REFRESH_MIN_INTERVAL_SECONDS": "0.2",
        **(authorizer_env or {}),
    }
    max_age = float(authorizer_settings["TOKEN_CACHE_MAX_AGE_SECONDS"])
    refresh = float(authorizer_settings["TOKEN_REFRESH_MIN_INTERVAL_SECONDS"])
    iam = session.client("iam")
    role_arn = iam.create_role(
        RoleName=f"{name}-role-{time.time_ns()}",
        AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []}),
    )["Role"]["Arn"]
    lam = session.client("lambda")
    authorizer_name = f"{name}-authorizer"
    lam.create_function(
        FunctionName=authorizer_name,
        Runtime="python3.13",
        Role=role_arn,
        Handler="authorizer.handler.lambda_handler",
        Code={"ZipFile": placeholder_zip()},
        Environment={
            "Variables": {
                "SSM_PARAMETER_NAME": parameter_name,
                "ORIGIN_HEADER_NAME": header_name,
                **authorizer_settings,
            }
        },
    )
    rotate_name = f"{name}-rotate"
    rotate_fn = lam.create_function(
        FunctionName=rotate_name,
        Runtime="python3.13",
        Role=role_arn,
        Handler="rotate.handler.lambda_handler",
        Code={"ZipFile": placeholder_zip()},
        Timeout=120,
        Environment={
            "Variables": {
                "SSM_PARAMETER_NAME": parameter_name,
                "DISTRIBUTION_ID": dist["Id"],
                "ORIGIN_HEADER_NAME": header_name,
                "API_ID": api["ApiId"],
                "AUTHORIZER_FUNCTION_NAME": authorizer_name,
                "POLL_INTERVAL_SECONDS": "1",
                # The authorizer's max age + refresh interval + a margin, as on AWS: every
                # instance has read the staged value before any edge sends it.
                "STAGE_WAIT_SECONDS": f"{max_age + refresh + 0.3:g}",
                "FENCE_SETTLE_SECONDS": "1",
                "DRAIN_SECONDS": "1",
                "DEPLOY_TIMEOUT_SECONDS": "30",
                "AUTHORIZER_REFRESH_INTERVAL_SECONDS": f"{refresh:g}",
                "AUTHORIZER_MAX_AGE_SECONDS": f"{max_age:g}",
                "VERIFY_INTERVAL_SECONDS": "0.5",
                **edge_env,
                **(rotate_env or {}),
            }
        },
    )
    sfn = session.client("stepfunctions")
    definition = load_definition({"RotateFunctionArn": rotate_fn["FunctionArn"]})
    machine = sfn.create_state_machine(
        name=f"{name}-rotation", definition=definition, roleArn=role_arn
    )
    return Deployment(
        parameter_name=parameter_name,
        distribution_id=dist["Id"],
        distribution_domain=dist["DomainName"],
        origin_id="api",
        api_id=api["ApiId"],
        state_machine_arn=machine["stateMachineArn"],
        rotate_function=rotate_name,
        authorizer_function=authorizer_name,
        header_name=header_name,
        lock_mode="header" if edge_signing is None else "edge-signed",
        kvs_arn=kvs_arn,
        edge_function=function_name,
    )


def _edge_function(
    cloudfront: Any, signing: EdgeSigning, name: str, header_name: str, key: str
) -> tuple[str, str, str]:
    """The KeyValueStore (created holding *key*, at every edge) and the published function
    associated with it: ``(store ARN, function ARN, function name)``."""
    from edge import RUNTIME, render
    from originlock.sandbox.kvs import EmulatedKeyValueStore
    from tokens.edge import KVS_KEY_NAME

    created = cloudfront.create_key_value_store(
        Name=f"{name}-signing-keys", Comment="originlock: the edges' signing key"
    )["KeyValueStore"]
    arn = str(created["ARN"])
    signing.services.add_store(
        EmulatedKeyValueStore(
            arn,
            signing.edges,
            propagation=signing.propagation,
            rng=random.Random(signing.seed),
            delay=signing.delay,
            initial={KVS_KEY_NAME: key},
        )
    )
    function_name = signing.function_name or f"{name}-sign"
    function = cloudfront.create_function(
        Name=function_name,
        FunctionConfig={
            "Comment": "originlock: signs each viewer request for the origin",
            "Runtime": RUNTIME,
            "KeyValueStoreAssociations": {"Quantity": 1, "Items": [{"KeyValueStoreARN": arn}]},
        },
        FunctionCode=render(header_name, signing.window_seconds).encode(),
    )
    published = cloudfront.publish_function(Name=function_name, IfMatch=function["ETag"])
    return arn, str(published["FunctionSummary"]["FunctionMetadata"]["FunctionARN"]), function_name


@contextmanager
def shared_sdk_models() -> Iterator[None]:
    """While open, every new botocore session of this process shares one data loader, so an
    SDK model is read from disk and parsed once instead of once per session.

    For the tests only: every new in-process Lambda instance builds its own botocore session,
    as a fresh Lambda instance does, and its SDK client costs 50-150 ms of CPU for that; the
    statemachine tests start hundreds of instances. The sandbox does not use it, so the cold
    starts it reports keep that cost.
    """
    import functools

    import botocore.session

    original = botocore.session.create_loader
    botocore.session.create_loader = functools.lru_cache(maxsize=4)(original)  # type: ignore[assignment]
    try:
        yield
    finally:
        botocore.session.create_loader = original


_interpreter_caches_installed = False


def install_interpreter_caches() -> None:
    """Parse each ASL definition once, and build one Lambda client per region for the
    interpreter's ``lambda:invoke`` tasks (see the module docstring)."""
    global _interpreter_caches_installed
    if _interpreter_caches_installed:
        return
    import functools

    from moto.core.models import botocore_stubber
    from moto.settings import moto_server_port
    from moto.stepfunctions.parser.asl.component.state.exec.state_task import lambda_eval_utils
    from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser

    parse = functools.lru_cache(maxsize=16)(AmazonStateLanguageParser.parse)
    setattr(AmazonStateLanguageParser, "parse", staticmethod(parse))

    build = lambda_eval_utils.boto_client_for

    @functools.lru_cache(maxsize=16)
    def client(region: str, service: str, stubbed: bool, port: int) -> Any:
        return build(region=region, service=service)

    def boto_client_for(region: str, service: str, state_credentials: Any = None) -> Any:
        # moto's own builds its client with fixed dummy keys whatever the credentials: what
        # makes two clients differ is where they send (in-process stub or the server's port).
        return client(region, service, botocore_stubber.enabled, moto_server_port())

    setattr(lambda_eval_utils, "boto_client_for", boto_client_for)
    _interpreter_caches_installed = True


@contextmanager
def installed(
    lambdas: InProcessLambda | None = None, edges: CloudFrontEdges | None = None
) -> Iterator[tuple[InProcessLambda, CloudFrontEdges]]:
    """Install the Lambda runtime, the CloudFront behaviour, ResetAuthorizersCache,
    StopExecution's details, GetExecutionHistory's order and pages, and the interpreter's
    caches."""
    lambdas = lambdas or InProcessLambda()
    edges = edges or CloudFrontEdges()
    install_reset_authorizers_cache()
    install_stop_execution_details()
    install_execution_history_pages()
    install_interpreter_caches()
    lambdas.install()
    edges.install()
    try:
        yield lambdas, edges
    finally:
        edges.uninstall()
        lambdas.uninstall()


def deep_copy(value: Any) -> Any:
    return copy.deepcopy(value)
