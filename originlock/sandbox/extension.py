"""A local stand-in for the AWS Parameters and Secrets Lambda Extension.

On Lambda the extension listens on ``localhost:2773`` and answers
``GET /systemsmanager/parameters/get?name=<name>&withDecryption=true`` with the
``GetParameter`` response as JSON (``{"Parameter": {"Value": ...}}``) when the
request carries ``X-Aws-Parameters-Secrets-Token: $AWS_SESSION_TOKEN``. This
emulator answers the same request from a ``fetch`` function (a dictionary, or an
SSM client such as moto's), so the authorizer's ``TOKEN_SOURCE=extension`` path
runs unchanged in tests, the benchmark and the sandbox.

Like the extension configured by originlock (``SSM_PARAMETER_STORE_TTL=0``), it
keeps no cache: every request reads through to ``fetch``. It never logs.
Status codes for failures approximate the real extension's: 401 without the
right token header, 400 for an unknown parameter or a malformed request, and
whatever :attr:`ExtensionEmulator.fail_with` says when a test injects an outage.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

TOKEN_HEADER = "X-Aws-Parameters-Secrets-Token"  # noqa: S105 - a header name
PATH = "/systemsmanager/parameters/get"
PORT_ENV = "PARAMETERS_SECRETS_EXTENSION_HTTP_PORT"

# Returns the decrypted value of a parameter, or None when there is no such parameter.
Fetch = Callable[[str], "str | None"]


def mapping_fetch(values: Mapping[str, str]) -> Fetch:
    """A ``fetch`` over a (mutable) mapping: changes to it are served at once."""
    return values.get


def ssm_fetch(client: Any) -> Fetch:
    """A ``fetch`` that calls ``GetParameter(WithDecryption=True)`` on a botocore SSM client."""

    def fetch(name: str) -> str | None:
        try:
            response = client.get_parameter(Name=name, WithDecryption=True)
        except client.exceptions.ParameterNotFound:
            return None
        return str(response["Parameter"]["Value"])

    return fetch


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hangs up mid-answer (a test of a broken extension) is expected.
        return


class ExtensionEmulator:
    """Serve the extension's parameter endpoint on ``127.0.0.1`` from a thread.

    Parameters
    ----------
    fetch:
        Where values come from; see :func:`mapping_fetch` and :func:`ssm_fetch`.
    session_token:
        The value the ``X-Aws-Parameters-Secrets-Token`` header must carry (on
        Lambda, ``$AWS_SESSION_TOKEN``).
    port:
        0 (the default) picks a free port; read it from :attr:`port` after
        :meth:`start`.

    Attributes
    ----------
    requests:
        Parameter requests answered with a value so far.
    fail_with:
        When set to an HTTP status, every request gets that status: an outage.
    raw_response:
        When set, every request gets exactly these bytes on the wire: a broken or
        unusual extension (chunked encoding, no Content-Length, garbage).
    linger:
        Seconds to keep each connection open after answering, as a server that
        ignores ``Connection: close`` would.
    """

    def __init__(self, fetch: Fetch, session_token: str, port: int = 0) -> None:
        self.fetch = fetch
        self.session_token = session_token
        self.requests = 0
        self.fail_with: int | None = None
        self.raw_response: bytes | None = None
        self.linger = 0.0
        self._lock = threading.Lock()
        self._server = _QuietServer(("127.0.0.1", port), self._handler_class())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def env(self) -> dict[str, str]:
        """The environment a function needs to reach this emulator."""
        return {PORT_ENV: str(self.port), "AWS_SESSION_TOKEN": self.session_token}

    def start(self) -> ExtensionEmulator:
        # A short poll interval: stop() waits for one poll (tests stop it often).
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.02},
            name="extension-emulator",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> ExtensionEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _answer(self, path: str, token: str | None) -> tuple[int, dict[str, Any]]:
        if self.fail_with is not None:
            return self.fail_with, {"error": "injected failure"}
        if token != self.session_token:
            return 401, {"error": "missing or wrong " + TOKEN_HEADER}
        url = urlsplit(path)
        if url.path != PATH:
            return 404, {"error": "unknown path"}
        names = parse_qs(url.query).get("name", [])
        if len(names) != 1:
            return 400, {"error": "exactly one name is required"}
        value = self.fetch(names[0])
        if value is None:
            return 400, {"error": "ParameterNotFound"}
        with self._lock:
            self.requests += 1
        parameter = {"Name": names[0], "Type": "SecureString", "Value": value, "Version": 1}
        return 200, {"Parameter": parameter, "ResultMetadata": {}}

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        emulator = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if emulator.raw_response is not None:
                    self.wfile.write(emulator.raw_response)
                else:
                    status, body = emulator._answer(self.path, self.headers.get(TOKEN_HEADER))
                    payload = json.dumps(body).encode()
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                if emulator.linger:
                    self.wfile.flush()
                    time.sleep(emulator.linger)

            def log_message(self, format: str, *args: Any) -> None:
                # Silent: request lines go nowhere (the test output stays clean).
                return

        return Handler
