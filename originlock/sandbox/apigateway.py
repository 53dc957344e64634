"""A local HTTP API (``$default`` stage) guarded by the real Lambda authorizer.

What it does, as API Gateway HTTP APIs do:

* the identity source is ``$request.header.<origin header>``: a request where it is missing
  or empty gets ``401 {"message":"Unauthorized"}`` and the authorizer is **not** invoked;
* otherwise the request becomes a payload-2.0 ``REQUEST`` authorizer event (header names in
  lower case, repeated headers joined with commas, cookies apart) and the authorizer function
  is invoked through the harness's :class:`~originlock.sandbox.harness.InProcessLambda`
  (per-instance module copies; a configuration change of the function means fresh instances);
* the result (simple response format) is cached per identity-source value for the TTL, a
  Deny as well as an Allow, until ``ResetAuthorizersCache`` empties the cache;
* allowed requests reach a hello backend (``200`` JSON); denied ones get
  ``403 {"message":"Forbidden"}``; an authorizer that fails gets ``500``.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

from werkzeug.wrappers import Request, Response

from originlock.sandbox.lambdas import SandboxLambda
from originlock.sandbox.servers import ServerThread

ACCOUNT = "123456789012"
STAGE = "$default"


@dataclass(frozen=True)
class CachedDecision:
    allowed: bool
    context: dict[str, Any]
    expires_at: float


def _json(status: int, body: dict[str, Any], request_id: str) -> Response:
    return Response(
        json.dumps(body, separators=(",", ":")),
        status=status,
        content_type="application/json",
        headers={"apigw-requestid": request_id},
    )


class LocalApiGateway:
    """An HTTP API with a Lambda REQUEST authorizer and its result cache, on 127.0.0.1.

    Parameters
    ----------
    lambdas:
        The harness's in-process Lambda runtime (installed into moto).
    header_name:
        The origin header: the authorizer's identity source.
    ttl:
        Authorizer result cache TTL in seconds (AWS: 0 to 3600; 0 disables the cache).
    region:
        Where the authorizer function lives in moto.
    """

    def __init__(
        self,
        lambdas: SandboxLambda,
        *,
        header_name: str,
        ttl: float,
        region: str = "us-east-1",
        clock: Any = time.monotonic,
    ) -> None:
        self.lambdas = lambdas
        self.header_name = header_name.lower()
        self.ttl = ttl
        self.region = region
        self.clock = clock
        self.api_id = "pending"
        self.function_name: str | None = None
        self._cache: dict[tuple[str, ...], CachedDecision] = {}
        self._lock = threading.Lock()
        # Counters the demo and the benchmarks read.
        self.invocations = 0
        self.cache_hits = 0
        self.responses: Counter[int] = Counter()
        self.allowed_by_slot: Counter[str] = Counter()
        self.cache_resets = 0
        # The origin header of the last request let through: what a backend that logs request
        # headers would have written down (the demo's leak). Held in memory only.
        self.last_allowed_value: str | None = None
        # Seconds per authorizer invocation, warm instances and cold starts apart.
        self.latencies: deque[float] = deque(maxlen=200_000)
        self.cold_latencies: deque[float] = deque(maxlen=10_000)
        # CPU seconds of the invoking thread per warm invocation: the decision's own cost,
        # without the time spent waiting for the GIL while the sandbox is loaded.
        self.cpu_latencies: deque[float] = deque(maxlen=200_000)
        self.server = ServerThread(self.wsgi, "apigateway")

    @property
    def url(self) -> str:
        return self.server.url

    def configure(self, api_id: str, function_name: str) -> None:
        self.api_id = api_id
        self.function_name = function_name

    # -- the authorizer result cache -----------------------------------------
    def reset_cache(self, api_id: str, stage: str) -> None:
        """``ResetAuthorizersCache`` for this API and stage (a RESET_LISTENERS callback)."""
        if api_id == self.api_id and stage == STAGE:
            with self._lock:
                self._cache.clear()
                self.cache_resets += 1

    def cache_size(self) -> int:
        with self._lock:
            return len(self._cache)

    def _cached(self, key: tuple[str, ...]) -> CachedDecision | None:
        with self._lock:
            entry = self._cache.get(key)
            if entry is None:
                return None
            if entry.expires_at <= self.clock():
                del self._cache[key]
                return None
            self.cache_hits += 1
            return entry

    def _store(self, key: tuple[str, ...], allowed: bool, context: dict[str, Any]) -> None:
        if self.ttl <= 0:
            return
        with self._lock:
            now = self.clock()
            if len(self._cache) >= 50_000:
                # Values never presented again (an attacker's guesses) would stay forever.
                self._cache = {k: v for k, v in self._cache.items() if v.expires_at > now}
            self._cache[key] = CachedDecision(allowed, context, now + self.ttl)

    # -- the event ---------------------------------------------------------------
    def event(self, request: Request, request_id: str) -> dict[str, Any]:
        """The payload-2.0 REQUEST authorizer event API Gateway would send for *request*."""
        headers: dict[str, str] = {}
        for name, value in request.headers.items():
            key = name.lower()
            # werkzeug has already joined a repeated header with commas, as API Gateway does.
            headers[key] = f"{headers[key]},{value}" if key in headers else value
        cookies = [c.strip() for c in headers.pop("cookie", "").split(";") if c.strip()]
        source_ip = request.remote_addr or "127.0.0.1"
        forwarded = headers.get("x-forwarded-for")
        headers["x-forwarded-for"] = f"{forwarded}, {source_ip}" if forwarded else source_ip
        headers.setdefault("x-forwarded-proto", "https")
        headers.setdefault("x-forwarded-port", "443")
        query: dict[str, str] = {}
        for key, value in parse_qsl(request.query_string.decode("latin-1"), True):
            query[key] = f"{query[key]},{value}" if key in query else value
        now = datetime.now(UTC)
        domain = f"{self.api_id}.execute-api.{self.region}.amazonaws.com"
        event: dict[str, Any] = {
            "version": "2.0",
            "type": "REQUEST",
            "routeArn": (
                f"arn:aws:execute-api:{self.region}:{ACCOUNT}:{self.api_id}/{STAGE}/"
                f"{request.method}{request.path}"
            ),
            "identitySource": [headers[self.header_name]],
            "routeKey": "$default",
            "rawPath": request.path,
            "rawQueryString": request.query_string.decode("latin-1"),
            "headers": headers,
            "requestContext": {
                "accountId": ACCOUNT,
                "apiId": self.api_id,
                "domainName": domain,
                "domainPrefix": self.api_id,
                "http": {
                    "method": request.method,
                    "path": request.path,
                    "protocol": request.environ.get("SERVER_PROTOCOL", "HTTP/1.1"),
                    "sourceIp": source_ip,
                    "userAgent": headers.get("user-agent", ""),
                },
                "requestId": request_id,
                "routeKey": "$default",
                "stage": STAGE,
                "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
                "timeEpoch": int(now.timestamp() * 1000),
            },
            "pathParameters": {},
            "stageVariables": {},
        }
        if cookies:
            event["cookies"] = cookies
        if query:
            event["queryStringParameters"] = query
        return event

    # -- one request ---------------------------------------------------------------
    def _authorize(self, event: dict[str, Any]) -> tuple[bool, dict[str, Any]] | None:
        """Invoke the authorizer; ``None`` when it failed (API Gateway answers 500)."""
        from moto.awslambda.models import lambda_backends

        if self.function_name is None:
            return None
        # Looked up per call: an UpdateFunctionConfiguration must reach the next request.
        function = lambda_backends[ACCOUNT][self.region].get_function(self.function_name)
        started, cpu = time.perf_counter(), time.thread_time()
        result, errored = self.lambdas.run(function, event)
        elapsed, cpu = time.perf_counter() - started, time.thread_time() - cpu
        cold = self.lambdas.last_was_cold()
        with self._lock:
            self.invocations += 1
            (self.cold_latencies if cold else self.latencies).append(elapsed)
            if not cold:
                self.cpu_latencies.append(cpu)
        if errored or not isinstance(result, dict):
            return None
        allowed = result.get("isAuthorized")
        if not isinstance(allowed, bool):
            return None
        context = result.get("context") if isinstance(result.get("context"), dict) else {}
        return allowed, dict(context or {})

    def handle(self, request: Request) -> Response:
        request_id = os.urandom(8).hex()
        value = request.headers.get(self.header_name)
        if not value:
            return self._respond(401, {"message": "Unauthorized"}, request_id)
        key = (",".join(request.headers.getlist(self.header_name)),)
        cached = self._cached(key)
        if cached is not None:
            allowed, context = cached.allowed, cached.context
        else:
            decision = self._authorize(self.event(request, request_id))
            if decision is None:
                return self._respond(500, {"message": "Internal Server Error"}, request_id)
            allowed, context = decision
            self._store(key, allowed, context)
        if not allowed:
            return self._respond(403, {"message": "Forbidden"}, request_id)
        with self._lock:
            self.allowed_by_slot[str(context.get("slot", "unknown"))] += 1
            self.last_allowed_value = value
        return self._respond(
            200, {"message": "hello from the origin", "path": request.path}, request_id
        )

    def _respond(self, status: int, body: dict[str, Any], request_id: str) -> Response:
        with self._lock:
            self.responses[status] += 1
        return _json(status, body, request_id)

    def wsgi(self, environ: dict[str, Any], start_response: Any) -> Any:
        return self.handle(Request(environ))(environ, start_response)

    # -- lifecycle -----------------------------------------------------------------
    def start(self) -> None:
        self.server.start()

    def stop(self) -> None:
        self.server.stop()
