"""Loopback HTTP servers for the sandbox: werkzeug's threaded server with keep-alive.

werkzeug's development server answers every request with ``Connection: close``: each request
then costs a TCP connect, a new handler thread and a close, on each hop (viewer to edge, edge
to API Gateway). That capped the sandbox near 150 requests per second on two cores, far below
what the load benchmark drives through it. :class:`KeepAliveRequestHandler` keeps werkzeug's
request parsing and WSGI environ, reads the request body up front (so the next request line
is never confused with an unread body, the reason werkzeug closes), buffers the application's
answer and sends it in one write with a ``Content-Length``: connections persist, and one
handler thread serves a client's connection for as long as it stays open.
"""

from __future__ import annotations

import contextlib
import io
import socket
import threading
import time
from email.utils import formatdate
from typing import Any

from werkzeug.serving import DechunkedInput, ThreadedWSGIServer, WSGIRequestHandler

LOOPBACK = "127.0.0.1"
# An idle keep-alive connection is closed after this many seconds.
IDLE_TIMEOUT = 30.0
# Request bodies larger than this are refused (the sandbox's APIs take none to speak of).
MAX_BODY = 1 << 20


class _BodyError(Exception):
    def __init__(self, status: str) -> None:
        super().__init__(status)
        self.status = status


class KeepAliveRequestHandler(WSGIRequestHandler):
    """HTTP/1.1 with persistent connections; no access log line per request."""

    protocol_version = "HTTP/1.1"
    timeout = IDLE_TIMEOUT
    disable_nagle_algorithm = True
    server: KeepAliveWSGIServer

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection, True)

    def finish(self) -> None:
        self.server.track(self.connection, False)
        super().finish()

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        return None

    def log_error(self, format: str, *args: Any) -> None:
        # An idle keep-alive connection timing out is routine, not an error to print.
        return None

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            body = DechunkedInput(self.rfile).read(MAX_BODY + 1)  # type: ignore[arg-type]
        else:
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                raise _BodyError("400 Bad Request") from None
            if length < 0:
                raise _BodyError("400 Bad Request")
            if length > MAX_BODY:
                raise _BodyError("413 Content Too Large")
            body = self.rfile.read(length)
        if len(body) > MAX_BODY:
            raise _BodyError("413 Content Too Large")
        return bytes(body)

    def run_wsgi(self) -> None:
        try:
            body = self._read_body()
        except _BodyError as exc:
            self.close_connection = True
            self._send(exc.status, [("Content-Type", "text/plain")], exc.status.encode())
            return
        environ = self.make_environ()
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        environ.pop("HTTP_TRANSFER_ENCODING", None)
        environ.pop("wsgi.input_terminated", None)
        started: list[Any] = []
        chunks: list[bytes] = []

        def start_response(
            status: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Any:
            if exc_info is not None and started:
                raise exc_info[1].with_traceback(exc_info[2])
            started[:] = [status, headers]
            return chunks.append

        try:
            result = self.server.app(environ, start_response)
            try:
                chunks.extend(result)
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()
        except Exception:
            self.close_connection = True
            self._send("500 Internal Server Error", [("Content-Type", "text/plain")], b"error")
            return
        status, headers = started
        self._send(status, headers, b"".join(chunks))

    def _send(self, status: str, headers: list[tuple[str, str]], body: bytes) -> None:
        lines = [f"{self.protocol_version} {status}"]
        for name, value in headers:
            if name.lower() not in ("content-length", "connection", "transfer-encoding"):
                lines.append(f"{name}: {value}")
        lines.append(f"Server: {self.version_string()}")
        lines.append(f"Date: {_http_date()}")
        lines.append(f"Content-Length: {len(body)}")
        if self.close_connection:
            lines.append("Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        self.wfile.write(head if self.command == "HEAD" else head + body)


_DATE: list[Any] = [0, ""]


def _http_date() -> str:
    """The ``Date`` header, formatted once per second (email.utils is slow per request)."""
    now = int(time.time())
    if _DATE[0] != now:
        _DATE[:] = [now, formatdate(now, usegmt=True)]
    return str(_DATE[1])


class KeepAliveWSGIServer(ThreadedWSGIServer):
    """werkzeug's threaded server that knows its open connections, to close them at stop."""

    def __init__(
        self,
        host: str,
        port: int,
        app: Any,
        handler: type[KeepAliveRequestHandler] = KeepAliveRequestHandler,
    ) -> None:
        super().__init__(host, port, app, handler=handler)
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()

    def track(self, connection: socket.socket, is_open: bool) -> None:
        with self._connections_lock:
            if is_open:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)

    def close_connections(self) -> None:
        """End every keep-alive connection: their handler threads return."""
        with self._connections_lock:
            connections, self._connections = list(self._connections), set()
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


def moto_server(name: str = "moto") -> ServerThread:
    """moto's server application behind :class:`KeepAliveRequestHandler`: the functions' and
    the CLI's boto3 clients keep their connections to moto, as they do to AWS, instead of a
    connect, a handler thread and a close per call (``ThreadedMotoServer`` uses werkzeug's
    closing handler)."""
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )

    class MotoKeepAliveHandler(KeepAliveRequestHandler, MotoRequestHandler):
        """moto's environ (headers with underscores kept), our keep-alive answers."""

    return ServerThread(
        DomainDispatcherApplication(create_backend_app), name, handler=MotoKeepAliveHandler
    )


class ServerThread:
    """A WSGI app served on ``127.0.0.1`` (never another interface) from a daemon thread.

    The socket is bound in the constructor, so :attr:`url` is known before :meth:`start`:
    the sandbox needs its URLs to configure the functions it deploys.
    """

    def __init__(
        self,
        app: Any,
        name: str,
        port: int = 0,
        handler: type[KeepAliveRequestHandler] = KeepAliveRequestHandler,
    ) -> None:
        self.name = name
        self.server = KeepAliveWSGIServer(LOOPBACK, port, app, handler)
        self.port = int(self.server.server_port)
        self.url = f"http://{LOOPBACK}:{self.port}"
        self._thread = threading.Thread(
            target=self.server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=f"originlock-{name}",
            daemon=True,
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        if self._thread.is_alive():
            self.server.shutdown()
            self._thread.join(timeout=5)
        self.server.close_connections()
        self.server.server_close()
