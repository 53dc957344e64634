"""Loopback HTTP servers for the sandbox: waitress, run from a thread.

waitress keeps connections alive (HTTP/1.1) and serves each server's requests from a pool of
worker threads. werkzeug's development server, which moto's ``ThreadedMotoServer`` uses,
answers every request with ``Connection: close``: each request then costs a TCP connect, a new
handler thread and a close, which capped the sandbox near 150 requests per second on two cores,
far below what the load benchmark drives through it (docs/decisions.md).
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from waitress.server import create_server

LOOPBACK = "127.0.0.1"
# An idle keep-alive connection is closed after this many seconds.
IDLE_TIMEOUT = 30
# waitress warns when requests queue for a worker ("Task queue depth is N"): under the load
# benchmark that is the point, not news.
logging.getLogger("waitress.queue").setLevel(logging.ERROR)


class ServerThread:
    """A WSGI app served on ``127.0.0.1`` (never another interface) from a daemon thread.

    The socket is bound in the constructor, so :attr:`url` is known before :meth:`start`:
    the sandbox needs its URLs to configure the functions it deploys.

    Parameters
    ----------
    app:
        The WSGI application.
    name:
        Names the threads (``originlock-<name>``).
    port:
        0: any free port.
    threads:
        waitress's worker threads: requests served at once.
    """

    def __init__(self, app: Any, name: str, port: int = 0, threads: int = 8) -> None:
        self.name = name
        self.server: Any = create_server(
            app,
            host=LOOPBACK,
            port=port,
            threads=threads,
            ident=None,
            channel_timeout=IDLE_TIMEOUT,
            connection_limit=1000,
            clear_untrusted_proxy_headers=False,
        )
        self.port = int(self.server.effective_port)
        self.url = f"http://{LOOPBACK}:{self.port}"
        self._thread = threading.Thread(
            target=self.server.run, name=f"originlock-{name}", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """End the worker threads (each finishes its request), then close every connection and
        the listening socket."""
        server = self.server
        # First the workers: one that finishes a request wakes the loop through the trigger,
        # which must still be open then.
        server.task_dispatcher.shutdown(timeout=5)
        if self._thread.is_alive():
            # From inside the server's own loop (waitress's trigger): the loop ends once
            # nothing is left in its map.
            server.trigger.pull_trigger(lambda: _close_all(server))
            self._thread.join(timeout=5)
        else:
            _close_all(server)


def _close_all(server: Any) -> None:
    for dispatcher in list(server._map.values()):
        dispatcher.close()


def moto_server(name: str = "moto", threads: int = 16) -> ServerThread:
    """moto's server application (what ``ThreadedMotoServer`` serves) behind waitress: the
    functions' and the CLI's boto3 clients keep their connections to moto, as they do to
    AWS."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    return ServerThread(DomainDispatcherApplication(create_backend_app), name, threads=threads)
