"""Two small loopback servers the rehearsal runs beside ministack.

* :class:`EdgeRelay` stands in for DNS: ministack serves a distribution only to requests whose
  ``Host`` is its domain name (``<id>.cloudfront.net``), which resolves to AWS, not to
  127.0.0.1. The relay is a plain ``http://127.0.0.1:<port>`` URL (what the smoke test's
  traffic and the rotate function's Verify probe can reach) that passes each request to
  ministack's CloudFront unchanged but for that ``Host``. CloudFront's behaviour (the origin
  custom header from the live configuration) is ministack's own.
* :class:`ResponseCollector` is an https ``ResponseURL`` for the custom-resource events the
  least-privilege proof sends its provider functions directly: it keeps each answer.
"""

from __future__ import annotations

import http.client
import json
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "host", "content-length"}


class _Quiet(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass  # requests are the checks' business, not the terminal's


class _Server:
    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.server.owner = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class _RelayHandler(_Quiet):
    def _relay(self) -> None:
        relay: EdgeRelay = self.server.owner  # type: ignore[attr-defined]
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else None
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
        headers["Host"] = relay.host
        connection = http.client.HTTPSConnection(
            "127.0.0.1", relay.ministack_port, timeout=30, context=relay.context
        )
        try:
            connection.request(self.command, self.path, body=body, headers=headers)
            response = connection.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException):
            self.send_error(502, "ministack did not answer")
            return
        finally:
            connection.close()
        self.send_response(response.status)
        for name, value in response.getheaders():
            if name.lower() not in _HOP_BY_HOP:
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _relay


class EdgeRelay(_Server):
    """``http://127.0.0.1:<port>`` -> ministack's CloudFront for the distribution *host*."""

    def __init__(self, ministack_port: int, certificate: Path) -> None:
        super().__init__(_RelayHandler)
        self.ministack_port = ministack_port
        self.context = ssl.create_default_context(cafile=str(certificate))
        self.host = ""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"


class _CollectorHandler(_Quiet):
    def do_PUT(self) -> None:
        collector: ResponseCollector = self.server.owner  # type: ignore[attr-defined]
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length)
        try:
            body = json.loads(raw)
        except ValueError:
            body = {"Status": "UNREADABLE"}
        with collector.lock:
            collector.answers[self.path.lstrip("/")] = body
            collector.arrived.notify_all()
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()


class ResponseCollector(_Server):
    """An https ResponseURL on loopback, with ministack's own certificate (which the functions
    ministack runs already trust)."""

    def __init__(self, certificate: Path, key: Path) -> None:
        super().__init__(_CollectorHandler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(certificate), str(key))
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.answers: dict[str, dict[str, Any]] = {}
        self.lock = threading.Lock()
        self.arrived = threading.Condition(self.lock)

    def url(self, token: str) -> str:
        return f"https://127.0.0.1:{self.port}/{token}"

    def answer(self, token: str, timeout: float) -> dict[str, Any] | None:
        with self.lock:
            self.arrived.wait_for(lambda: token in self.answers, timeout)
            return self.answers.pop(token, None)
