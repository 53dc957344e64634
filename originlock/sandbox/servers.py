"""Loopback HTTP servers for the sandbox: werkzeug's threaded server, run from a thread."""

from __future__ import annotations

import threading
from typing import Any

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

LOOPBACK = "127.0.0.1"


class QuietRequestHandler(WSGIRequestHandler):
    """No access log line per request: the demo's terminal is for the demo."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        return None


class ServerThread:
    """A WSGI app served on ``127.0.0.1`` (never another interface) from a daemon thread.

    The socket is bound in the constructor, so :attr:`url` is known before :meth:`start`:
    the sandbox needs its URLs to configure the functions it deploys.
    """

    def __init__(self, app: Any, name: str, port: int = 0) -> None:
        self.name = name
        self.server: BaseWSGIServer = make_server(
            LOOPBACK, port, app, threaded=True, request_handler=QuietRequestHandler
        )
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
        self.server.server_close()
