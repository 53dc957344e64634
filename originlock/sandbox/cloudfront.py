"""A local CloudFront distribution: one loopback HTTP socket per edge location.

Each edge forwards a viewer's request to the origin (the local API Gateway) with the origin
custom headers of the configuration *that edge* serves at that moment (the harness's
:meth:`~originlock.sandbox.harness.CloudFrontEdges.edge_headers`). After an
``UpdateDistribution`` each edge switches at its own random moment in the deploy window,
so during ``InProgress`` some edges send the old value and some the new one, as on AWS.
Like CloudFront, an edge replaces a viewer's header of the same name as an origin custom
header: a viewer cannot choose the value the origin sees. And like CloudFront, an edge caches
an error the origin answers a ``GET``/``HEAD`` with (per edge and URL) for the configuration's
error caching minimum TTL — 10 s for a status without a custom error response; 400, 403, 412
and 415 only when the origin sends ``Cache-Control: max-age`` — and serves it from its cache
meanwhile (https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/HTTPStatusCodes.html).
The CDK app sets every custom error response's TTL to 0, so nothing is cached.

In edge-signed mode (:meth:`LocalCloudFront.sign_with`) each edge runs the real CloudFront
Function on the viewer's request first (:class:`~originlock.sandbox.edgefunction.SignedEdges`:
the edge's view of the KeyValueStore, the edge's clock) and forwards the headers it returns;
an origin custom header of the same name, if the configuration still has one, wins over the
function's, as on CloudFront. A function that fails gets the viewer a 503, as CloudFront
answers a function execution error.

The edge hands the origin request to the local API Gateway's handler in process, the same
handler that serves the API URL: what the authorizer sees (the event, the header, API Gateway's
cache) is exactly what it sees from a viewer going straight at the API URL. A loopback HTTP hop
between them would measure only Python's HTTP stack, and cost the sandbox a third of its
throughput on two cores.
"""

from __future__ import annotations

import os
import re
import threading
import time
from dataclasses import dataclass
from typing import Any, Protocol

from werkzeug.wrappers import Request, Response

from originlock.sandbox.edgefunction import EdgeWorkerError, SignedEdges
from originlock.sandbox.harness import CloudFrontEdges
from originlock.sandbox.servers import ServerThread

# Not forwarded from viewer to origin (hop by hop, or set by the edge itself).
_DROPPED = {
    "host",
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "te",
    "upgrade",
    "content-length",
}


# CloudFront caches these from the origin whatever the headers, the others below only with a
# Cache-Control max-age (or s-maxage).
ALWAYS_CACHED_ERRORS = frozenset({404, 405, 414, 500, 501, 502, 503, 504})
CACHED_WITH_MAX_AGE = frozenset({400, 403, 412, 415})
DEFAULT_ERROR_CACHING_MIN_TTL = 10.0
_MAX_AGE = re.compile(r"(?:s-)?max-age=(\d+)")


@dataclass(frozen=True)
class CachedError:
    status: int
    body: bytes
    content_type: str
    expires_at: float


def error_ttl(status: int, cache_control: str, configured: dict[int, float]) -> float:
    """How long CloudFront keeps an origin's error answer in an edge cache (0: not at all)."""
    ages = [int(age) for age in _MAX_AGE.findall(cache_control or "")]
    if status in ALWAYS_CACHED_ERRORS or (status in CACHED_WITH_MAX_AGE and ages):
        return max(configured.get(status, DEFAULT_ERROR_CACHING_MIN_TTL), *ages, 0)
    return 0.0


class Origin(Protocol):
    """What an edge forwards to: the local API Gateway's request handler."""

    @property
    def url(self) -> str: ...

    def handle(self, request: Request) -> Response: ...


class Edge:
    """One edge location: a socket of the edges' server, forwarding with this edge's headers."""

    def __init__(self, index: int, url: str) -> None:
        self.index = index
        self.pop = f"SBX{index + 1}"
        self.url = url
        self.requests = 0


class LocalCloudFront:
    """N edges in front of one origin, each adding the origin headers it currently has.

    Parameters
    ----------
    edges:
        The harness's CloudFront behaviour (who switched to which configuration when).
    count:
        How many edge servers; must equal ``edges.edges``.
    origin:
        Where edges forward to: the local API Gateway, called in process (see the module
        docstring).
    """

    def __init__(self, edges: CloudFrontEdges, count: int, origin: Origin) -> None:
        if count != edges.edges:
            raise ValueError("one server per edge of the CloudFront behaviour")
        self.behaviour = edges
        self.origin = origin
        self.origin_host = origin.url.split("://", 1)[-1].rstrip("/")
        self.distribution_id: str | None = None
        self.origin_id = "api"
        self.domain_name = "sandbox.cloudfront.net"
        # One server, one socket per edge: a request's SERVER_PORT names its edge.
        self.server = ServerThread(self.wsgi, "edges", threads=12, sockets=count)
        self.edges = [Edge(i, url) for i, url in enumerate(self.server.urls)]
        self._by_port = {str(edge.url.rsplit(":", 1)[1]): edge for edge in self.edges}
        self._lock = threading.Lock()
        # (edge, method, URL) -> an error answer that edge serves from its cache.
        self._errors: dict[tuple[int, str, str], CachedError] = {}
        self.errors_served_from_cache = 0
        self.clock = time.monotonic
        # Edge-signed mode: the function every edge runs, and the distinct origin header values
        # it made (secrets: for the scans of invariant 2, never printed).
        self.signer: SignedEdges | None = None
        self.header_name = "x-cf-api-gateway-token"
        self.signed_values: set[str] = set()
        self.function_failures = 0

    @property
    def urls(self) -> list[str]:
        return [edge.url for edge in self.edges]

    def configure(self, distribution_id: str, origin_id: str, domain_name: str) -> None:
        self.distribution_id = distribution_id
        self.origin_id = origin_id
        self.domain_name = domain_name

    def sign_with(self, signer: SignedEdges, header_name: str) -> None:
        """Edge-signed mode: every edge runs *signer*'s function on viewer requests."""
        self.signer = signer
        self.header_name = header_name.lower()

    def _function_headers(self, edge: Edge, request: Request) -> dict[str, str]:
        """The viewer's headers as the edge's function returns them (names in lowercase, as
        CloudFront's event has them; repeated ones joined with commas)."""
        assert self.signer is not None
        viewer = [
            (name, value) for name, value in request.headers.items() if name.lower() not in _DROPPED
        ]
        returned = self.signer.origin_headers(
            edge.index, viewer, method=request.method, uri=request.path
        )
        headers: dict[str, str] = {}
        for name, value in returned:
            headers[name] = f"{headers[name]},{value}" if name in headers else value
        signed = headers.get(self.header_name)
        if signed is not None and signed not in self.signed_values:
            with self._lock:
                if len(self.signed_values) < 100_000:
                    self.signed_values.add(signed)
        return headers

    def origin_headers(self, edge: int) -> dict[str, str]:
        """The origin custom headers edge *edge* adds right now."""
        if self.distribution_id is None:
            return {}
        return dict(self.behaviour.edge_headers(self.distribution_id, edge).get(self.origin_id, {}))

    def forward(self, edge: Edge, request: Request) -> Response:
        with self._lock:
            edge.requests += 1
        cacheable = request.method in ("GET", "HEAD")
        key = (edge.index, request.method, request.full_path)
        if cacheable:
            cached = self._cached_error(key)
            if cached is not None:
                return Response(
                    cached.body,
                    status=cached.status,
                    content_type=cached.content_type,
                    headers={"X-Cache": "Error from cloudfront", "X-Amz-Cf-Pop": edge.pop},
                )
        custom = self.origin_headers(edge.index)
        if self.signer is not None:
            try:
                viewer = self._function_headers(edge, request)
            except EdgeWorkerError:
                with self._lock:
                    self.function_failures += 1
                return Response(
                    "<html><body><h1>503 Service Unavailable</h1></body></html>",
                    status=503,
                    content_type="text/html",
                    headers={"X-Cache": "FunctionExecutionError from cloudfront"},
                )
        else:
            viewer = dict(request.headers.items())
        headers = {
            name: value
            for name, value in viewer.items()
            if name.lower() not in _DROPPED and name.lower() not in custom
        }
        headers.update(custom)
        headers["Host"] = self.origin_host
        headers["X-Forwarded-For"] = request.remote_addr or "127.0.0.1"
        # os.urandom rather than uuid4: a third of the cost, and these are only identifiers.
        headers["Via"] = f"2.0 {os.urandom(16).hex()}.cloudfront.net (CloudFront)"
        headers["X-Amz-Cf-Id"] = os.urandom(16).hex()
        headers["CloudFront-Forwarded-Proto"] = "https"
        # The origin request: the viewer's environ (method, path, query, body) with the
        # headers CloudFront sends instead of the viewer's.
        environ = {
            key: value
            for key, value in request.environ.items()
            if not key.startswith(("HTTP_", "werkzeug."))
        }
        for name, value in headers.items():
            environ["HTTP_" + name.upper().replace("-", "_")] = value
        environ["REMOTE_ADDR"] = "127.0.0.1"
        try:
            response = self.origin.handle(Request(environ))
        except Exception:
            return Response(
                "<html><body><h1>502 Bad Gateway</h1></body></html>",
                status=502,
                content_type="text/html",
                headers={"X-Cache": "Error from cloudfront", "X-Amz-Cf-Pop": edge.pop},
            )
        if cacheable and response.status_code >= 400:
            self._maybe_cache_error(key, edge.index, response)
        response.headers["X-Cache"] = "Miss from cloudfront"
        response.headers["X-Amz-Cf-Pop"] = edge.pop
        response.headers["Via"] = headers["Via"]
        return response

    def _cached_error(self, key: tuple[int, str, str]) -> CachedError | None:
        with self._lock:
            cached = self._errors.get(key)
            if cached is None:
                return None
            if cached.expires_at <= self.clock():
                del self._errors[key]
                return None
            self.errors_served_from_cache += 1
            return cached

    def _maybe_cache_error(self, key: tuple[int, str, str], edge: int, response: Response) -> None:
        configured = (
            self.behaviour.edge_rollout(self.distribution_id, edge).error_ttls
            if self.distribution_id is not None
            else {}
        )
        ttl = error_ttl(response.status_code, response.headers.get("Cache-Control", ""), configured)
        if ttl <= 0:
            return
        with self._lock:
            self._errors[key] = CachedError(
                response.status_code,
                response.get_data(),
                response.content_type or "text/plain",
                self.clock() + ttl,
            )

    def wsgi(self, environ: dict[str, Any], start_response: Any) -> Any:
        edge = self._by_port[str(environ["SERVER_PORT"])]
        return self.forward(edge, Request(environ))(environ, start_response)

    def start(self) -> None:
        self.server.start()

    def stop(self) -> None:
        self.server.stop()
