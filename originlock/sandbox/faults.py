"""SSM outages on purpose (the token parameter cannot be read for a while), and SSM's
account-wide read quota (:class:`SsmQuota`), which the sandbox always applies.

The other faults live with the behaviour they break: CloudFront throttling, a storm of
``PreconditionFailed`` and a deployment that never ends in
:class:`~originlock.sandbox.harness.CloudFrontEdges`, a crash in a rotate step in
:class:`~originlock.sandbox.harness.InProcessLambda`.

An outage can hit the authorizer only. Its reader is a bare botocore client
(``functions/tokens/store.py``: ``botocore.session...create_client``) whose User-Agent starts
with ``Botocore/``; the rotate function and the CLI use boto3 (``Boto3/``). That is how a read
is told apart in moto's server, where every caller is just an HTTP request.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from moto.core.exceptions import ServiceException

MODES = ("throttle", "timeout")
CALLERS = ("authorizer", "all")


class SsmThrottlingError(ServiceException):
    code = "ThrottlingException"
    message = "Rate exceeded"


class SsmFaults:
    """Make ``GetParameter``/``GetParameters`` of one parameter fail while an outage is on.

    Parameters
    ----------
    parameter_name:
        The token parameter (reads of other parameters, such as the lock, are untouched).
    hang:
        In ``timeout`` mode, how long a read hangs before it fails: longer than the
        authorizer client's read timeout (2 s), so the caller gives up first, as it would
        against an endpoint that does not answer.

    Modes: ``throttle`` answers ``ThrottlingException`` at once; ``timeout`` does not answer.
    """

    def __init__(self, parameter_name: str, hang: float = 2.5) -> None:
        self.parameter_name = parameter_name
        self.hang = hang
        self.mode: str | None = None
        self.callers = "authorizer"
        self.injected = 0
        self._lock = threading.Lock()
        self._originals: dict[str, Any] = {}

    # -- control ---------------------------------------------------------------------------------
    def start(self, mode: str, callers: str = "authorizer") -> None:
        if mode not in MODES or callers not in CALLERS:
            raise ValueError(f"mode must be one of {MODES}, callers one of {CALLERS}")
        with self._lock:
            self.mode, self.callers = mode, callers

    def stop(self) -> None:
        with self._lock:
            self.mode = None

    @property
    def active(self) -> bool:
        return self.mode is not None

    def _hits(self, names: list[str], user_agent: str) -> str | None:
        """The mode to apply to this read, or ``None``."""
        with self._lock:
            mode, callers = self.mode, self.callers
            if mode is None or not any(n.split(":")[0] == self.parameter_name for n in names):
                return None
            if callers == "authorizer" and not user_agent.startswith("Botocore/"):
                return None
            self.injected += 1
            return mode

    def _fail(self, mode: str) -> None:
        if mode == "timeout":
            time.sleep(self.hang)
        raise SsmThrottlingError()

    # -- moto ------------------------------------------------------------------------------------
    def install(self) -> None:
        from moto.ssm.responses import SimpleSystemManagerResponse as Response

        self._originals = {"one": Response.get_parameter, "many": Response.get_parameters}
        faults, one, many = self, Response.get_parameter, Response.get_parameters

        def get_parameter(response: Any) -> Any:
            mode = faults._hits([response._get_param("Name") or ""], _agent(response))
            if mode is not None:
                faults._fail(mode)
            return one(response)

        def get_parameters(response: Any) -> Any:
            mode = faults._hits(list(response._get_param("Names") or []), _agent(response))
            if mode is not None:
                faults._fail(mode)
            return many(response)

        Response.get_parameter = get_parameter  # type: ignore[method-assign,assignment]
        Response.get_parameters = get_parameters  # type: ignore[method-assign,assignment]

    def uninstall(self) -> None:
        from moto.ssm.responses import SimpleSystemManagerResponse as Response

        if self._originals:
            Response.get_parameter = self._originals["one"]  # type: ignore[method-assign]
            Response.get_parameters = self._originals["many"]  # type: ignore[method-assign]
            self._originals = {}


def _agent(response: Any) -> str:
    headers = getattr(response, "headers", None) or {}
    return str(headers.get("User-Agent") or headers.get("user-agent") or "")


class SsmQuota:
    """SSM's ``GetParameter``/``GetParameters`` quota: one token bucket for every caller in
    the account and region (the authorizer's instances, the rotate function, the CLI, the
    drift guard), as AWS applies it. A read beyond the bucket answers ``ThrottlingException``.

    Parameters
    ----------
    rate:
        Tokens per second (AWS's default quota: 40; "higher throughput" raises it).
    burst:
        The bucket's size: how many reads may come at once after a quiet spell.
    clock:
        Seconds, monotonic.
    """

    def __init__(
        self, rate: float = 40.0, burst: float | None = None, clock: Any = time.monotonic
    ) -> None:
        self.rate = rate
        self.burst = rate if burst is None else burst
        self.clock = clock
        self._tokens = self.burst
        self._at = clock()
        self._lock = threading.Lock()
        self.calls = 0
        self.throttled = 0
        # Reads per whole second since install, for the demo's and the bench's reports.
        self.per_second: dict[int, int] = {}
        self._started = clock()
        self._originals: dict[str, Any] = {}

    def take(self) -> bool:
        """One call: ``True`` if the bucket had a token (the call goes through)."""
        with self._lock:
            now = self.clock()
            self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
            self._at = now
            self.calls += 1
            second = int(now - self._started)
            self.per_second[second] = self.per_second.get(second, 0) + 1
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                return True
            self.throttled += 1
            return False

    def peak(self) -> int:
        """The most reads asked for in one second so far."""
        with self._lock:
            return max(self.per_second.values(), default=0)

    def install(self) -> None:
        from moto.ssm.responses import SimpleSystemManagerResponse as Response

        self._originals = {"one": Response.get_parameter, "many": Response.get_parameters}
        quota, one, many = self, Response.get_parameter, Response.get_parameters

        def get_parameter(response: Any) -> Any:
            if not quota.take():
                raise SsmThrottlingError()
            return one(response)

        def get_parameters(response: Any) -> Any:
            if not quota.take():
                raise SsmThrottlingError()
            return many(response)

        Response.get_parameter = get_parameter  # type: ignore[method-assign,assignment]
        Response.get_parameters = get_parameters  # type: ignore[method-assign,assignment]

    def uninstall(self) -> None:
        from moto.ssm.responses import SimpleSystemManagerResponse as Response

        if self._originals:
            Response.get_parameter = self._originals["one"]  # type: ignore[method-assign]
            Response.get_parameters = self._originals["many"]  # type: ignore[method-assign]
            self._originals = {}
