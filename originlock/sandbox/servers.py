"""Loopback HTTP servers for the sandbox: waitress, run from a thread.

waitress keeps connections alive (HTTP/1.1) and serves each server's requests from a pool of
worker threads. werkzeug's development server, which moto's ``ThreadedMotoServer`` uses,
answers every request with ``Connection: close``: each request then costs a TCP connect, a new
handler thread and a close, which capped the sandbox near 150 requests per second on two cores,
far below what the load benchmark drives through it (docs/decisions.md).
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable
from typing import Any

from waitress.server import BaseWSGIServer, create_server

LOOPBACK = "127.0.0.1"
# An idle keep-alive connection is closed after this many seconds.
IDLE_TIMEOUT = 30
# waitress warns when requests queue for a worker ("Task queue depth is N"): under the load
# benchmark that is the point, not news.
logging.getLogger("waitress.queue").setLevel(logging.ERROR)


class ServerThread:
    """A WSGI app served on ``127.0.0.1`` (never another interface) from a daemon thread.

    The sockets are bound in the constructor, so :attr:`urls` are known before :meth:`start`:
    the sandbox needs its URLs to configure the functions it deploys.

    Parameters
    ----------
    app:
        The WSGI application (``SERVER_PORT`` in its environ tells which socket a request
        came in on).
    name:
        Names the threads (``originlock-<name>``).
    port:
        The first socket's port; 0: any free port.
    threads:
        waitress's worker threads: requests served at once, over all sockets.
    sockets:
        How many listening sockets (further ones on free ports). One server for several
        sockets is a fifth faster on two cores than a server each: one loop thread and one
        pool of workers instead of several competing for the GIL.
    """

    def __init__(
        self, app: Any, name: str, port: int = 0, threads: int = 8, sockets: int = 1
    ) -> None:
        self.name = name
        listening = [_bound(port if index == 0 else 0) for index in range(sockets)]
        self.server: Any = create_server(
            app,
            sockets=listening,
            threads=threads,
            ident=None,
            channel_timeout=IDLE_TIMEOUT,
            connection_limit=1000,
            clear_untrusted_proxy_headers=False,
        )
        # One socket: the server itself; several: waitress's MultiSocketServer over them.
        self._map: dict[int, Any] = getattr(self.server, "map", None) or self.server._map
        listen = getattr(self.server, "effective_listen", None)
        self.ports = [int(p) for _, p in listen] if listen else [int(self.server.effective_port)]
        self.urls = [f"http://{LOOPBACK}:{p}" for p in self.ports]
        self.port, self.url = self.ports[0], self.urls[0]
        self._thread = threading.Thread(
            target=self.server.run, name=f"originlock-{name}", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """End the worker threads (each finishes its request), then close every connection and
        the listening sockets."""
        # First the workers: one that finishes a request wakes the loop through the trigger,
        # which must still be open then.
        self.server.task_dispatcher.shutdown(timeout=5)
        if self._thread.is_alive():
            # From inside the server's own loop (waitress's trigger): the loop ends once
            # nothing is left in its map.
            servers = [d for d in self._map.values() if isinstance(d, BaseWSGIServer)]
            trigger = servers[0].trigger if servers else None
            try:
                if trigger is not None and not trigger._closed:
                    trigger.pull_trigger(self._close_all)
            except OSError:
                pass  # the trigger went first (seen once at exit, EBADF): closed below
            self._thread.join(timeout=5)
        if self._map:
            self._close_all()

    def _close_all(self) -> None:
        for dispatcher in list(self._map.values()):
            dispatcher.close()


def _bound(port: int) -> socket.socket:
    listening = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listening.bind((LOOPBACK, port))
    return listening


def moto_server(
    name: str = "moto", threads: int = 16, wrap: Callable[[Any], Any] | None = None
) -> ServerThread:
    """moto's server application (what ``ThreadedMotoServer`` serves) behind waitress: the
    functions' and the CLI's boto3 clients keep their connections to moto, as they do to
    AWS. *wrap* puts a WSGI app in front of moto's (what moto lacks, on the same endpoint)."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    app: Any = DomainDispatcherApplication(create_backend_app)
    return ServerThread(app if wrap is None else wrap(app), name, threads=threads)
