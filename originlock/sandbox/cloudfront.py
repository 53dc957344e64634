"""A local CloudFront distribution: one loopback HTTP server per edge location.

Each edge forwards a viewer's request to the origin (the local API Gateway) with the origin
custom headers of the configuration *that edge* serves at that moment (the harness's
:meth:`~originlock.sandbox.harness.CloudFrontEdges.edge_headers`). After an
``UpdateDistribution`` each edge switches at its own random moment in the deploy window,
so during ``InProgress`` some edges send the old value and some the new one, as on AWS.
Like CloudFront, an edge replaces a viewer's header of the same name as an origin custom
header: a viewer cannot choose the value the origin sees.
"""

from __future__ import annotations

import threading
import uuid
from typing import Any

import requests
from werkzeug.wrappers import Request, Response

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
_RESPONSE_DROPPED = {"connection", "keep-alive", "transfer-encoding", "content-length", "server"}


class Edge:
    """One edge location: a server that forwards to the origin with this edge's headers."""

    def __init__(self, cloudfront: LocalCloudFront, index: int) -> None:
        self.cloudfront = cloudfront
        self.index = index
        self.pop = f"SBX{index + 1}"
        self.server = ServerThread(self.wsgi, f"edge-{index}")
        self.requests = 0

    @property
    def url(self) -> str:
        return self.server.url

    def wsgi(self, environ: dict[str, Any], start_response: Any) -> Any:
        return self.cloudfront.forward(self, Request(environ))(environ, start_response)


class LocalCloudFront:
    """N edges in front of one origin, each adding the origin headers it currently has.

    Parameters
    ----------
    edges:
        The harness's CloudFront behaviour (who switched to which configuration when).
    count:
        How many edge servers; must equal ``edges.edges``.
    origin_url:
        Where edges forward to (the local API Gateway).
    """

    def __init__(self, edges: CloudFrontEdges, count: int, origin_url: str) -> None:
        if count != edges.edges:
            raise ValueError("one server per edge of the CloudFront behaviour")
        self.behaviour = edges
        self.origin_url = origin_url.rstrip("/")
        self.distribution_id: str | None = None
        self.origin_id = "api"
        self.domain_name = "sandbox.cloudfront.net"
        self.edges = [Edge(self, i) for i in range(count)]
        self._local = threading.local()
        self._sessions: list[requests.Session] = []
        self._lock = threading.Lock()

    @property
    def urls(self) -> list[str]:
        return [edge.url for edge in self.edges]

    def configure(self, distribution_id: str, origin_id: str, domain_name: str) -> None:
        self.distribution_id = distribution_id
        self.origin_id = origin_id
        self.domain_name = domain_name

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.trust_env = False  # loopback only: never a proxy from the environment
            self._local.session = session
            with self._lock:
                self._sessions.append(session)
        return session

    def origin_headers(self, edge: int) -> dict[str, str]:
        """The origin custom headers edge *edge* adds right now."""
        if self.distribution_id is None:
            return {}
        return dict(self.behaviour.edge_headers(self.distribution_id, edge).get(self.origin_id, {}))

    def forward(self, edge: Edge, request: Request) -> Response:
        with self._lock:
            edge.requests += 1
        custom = self.origin_headers(edge.index)
        headers = {
            name: value
            for name, value in request.headers.items()
            if name.lower() not in _DROPPED and name.lower() not in custom
        }
        headers.update(custom)
        viewer = request.remote_addr or "127.0.0.1"
        headers["X-Forwarded-For"] = viewer
        headers["Via"] = f"2.0 {uuid.uuid4().hex}.cloudfront.net (CloudFront)"
        headers["X-Amz-Cf-Id"] = uuid.uuid4().hex
        headers["CloudFront-Forwarded-Proto"] = "https"
        try:
            upstream = self._session().request(
                request.method,
                f"{self.origin_url}{request.full_path.rstrip('?')}",
                headers=headers,
                data=request.get_data(),
                timeout=10,
                allow_redirects=False,
            )
        except requests.RequestException:
            return Response(
                "<html><body><h1>502 Bad Gateway</h1></body></html>",
                status=502,
                content_type="text/html",
                headers={"X-Cache": "Error from cloudfront", "X-Amz-Cf-Pop": edge.pop},
            )
        response = Response(upstream.content, status=upstream.status_code)
        for name, value in upstream.headers.items():
            if name.lower() not in _RESPONSE_DROPPED:
                response.headers[name] = value
        response.headers["X-Cache"] = "Miss from cloudfront"
        response.headers["X-Amz-Cf-Pop"] = edge.pop
        response.headers["Via"] = headers["Via"]
        return response

    def start(self) -> None:
        for edge in self.edges:
            edge.server.start()

    def stop(self) -> None:
        for edge in self.edges:
            edge.server.stop()
        with self._lock:
            for session in self._sessions:
                session.close()
            self._sessions = []
