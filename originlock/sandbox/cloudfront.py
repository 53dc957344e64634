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

import http.client
import os
import threading
from typing import Any
from urllib.parse import urlsplit

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


class OriginConnections:
    """Persistent HTTP/1.1 connections to the origin, one per edge handler thread.

    ``http.client`` rather than ``requests``: an edge forwards every request, and requests'
    per-call overhead (sessions, adapters, header merging) was a millisecond of the edge's
    CPU per request on two cores. A connection the origin closed while idle is reopened and
    the request sent again once, as urllib3 does for a stale pooled connection.
    """

    def __init__(self, origin_url: str, timeout: float = 30.0) -> None:
        parts = urlsplit(origin_url)
        if parts.hostname is None or parts.port is None:
            raise ValueError("the origin URL needs a host and a port")
        self.host, self.port = parts.hostname, parts.port
        self.timeout = timeout
        self._local = threading.local()
        self._all: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()

    def _connection(self) -> tuple[http.client.HTTPConnection, bool]:
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            return connection, True
        connection = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        self._local.connection = connection
        with self._lock:
            self._all.append(connection)
        return connection, False

    def _drop(self, connection: http.client.HTTPConnection) -> None:
        connection.close()
        self._local.connection = None
        with self._lock:
            if connection in self._all:
                self._all.remove(connection)

    def request(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        """Send one request; ``(status, headers, body)``. Raises ``OSError`` or
        ``http.client.HTTPException`` when the origin cannot be reached."""
        for _attempt in range(2):
            connection, reused = self._connection()
            try:
                connection.request(method, path, body=body or None, headers=headers)
                response = connection.getresponse()
                content = response.read()
            except (ConnectionError, http.client.RemoteDisconnected):
                self._drop(connection)
                if reused:
                    continue  # the origin closed an idle connection: once more, on a new one
                raise
            except (OSError, http.client.HTTPException):
                self._drop(connection)
                raise
            if response.will_close:
                self._drop(connection)
            return response.status, response.getheaders(), content
        raise ConnectionError("the origin closed the connection")

    def close(self) -> None:
        with self._lock:
            connections, self._all = self._all, []
        for connection in connections:
            connection.close()


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
        self.origin = OriginConnections(self.origin_url)
        self._lock = threading.Lock()

    @property
    def urls(self) -> list[str]:
        return [edge.url for edge in self.edges]

    def configure(self, distribution_id: str, origin_id: str, domain_name: str) -> None:
        self.distribution_id = distribution_id
        self.origin_id = origin_id
        self.domain_name = domain_name

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
        # os.urandom rather than uuid4: a third of the cost, and these are only identifiers.
        headers["Via"] = f"2.0 {os.urandom(16).hex()}.cloudfront.net (CloudFront)"
        headers["X-Amz-Cf-Id"] = os.urandom(16).hex()
        headers["CloudFront-Forwarded-Proto"] = "https"
        try:
            status, upstream_headers, content = self.origin.request(
                request.method, request.full_path.rstrip("?"), headers, request.get_data()
            )
        except (OSError, http.client.HTTPException):
            return Response(
                "<html><body><h1>502 Bad Gateway</h1></body></html>",
                status=502,
                content_type="text/html",
                headers={"X-Cache": "Error from cloudfront", "X-Amz-Cf-Pop": edge.pop},
            )
        response = Response(
            content,
            status=status,
            headers=[(n, v) for n, v in upstream_headers if n.lower() not in _RESPONSE_DROPPED],
        )
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
        self.origin.close()
