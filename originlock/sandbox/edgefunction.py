"""The sandbox's edges run the real CloudFront Function, in a persistent Node worker.

:class:`EdgeWorker` starts ``node edge_worker.mjs`` once and loads the function's code (the
same text :func:`edge.render` gives the CDK construct). Each request is one JSON line each way
over the worker's stdin and stdout; several threads may call at once (the worker answers in
order, a reader thread hands each answer to its caller).

:class:`SignedEdges` is what an edge server calls: it builds CloudFront's viewer-request
event, gives the worker the edge's view of the emulated KeyValueStore (only when it changed)
and the edge's clock (true time plus that edge's skew), and returns the headers the edge
forwards to the origin.

No orphan process: the worker exits when its stdin closes, which happens on :meth:`stop`,
when the wrapper is garbage-collected, at interpreter exit, and when this process dies in any
way (the kernel closes the pipe).
"""

from __future__ import annotations

import collections
import itertools
import json
import os
import shutil
import subprocess
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import IO, Any

from originlock.sandbox.kvs import EmulatedKeyValueStore

WORKER_SCRIPT = Path(__file__).with_name("edge_worker.mjs")
# vm.SourceTextModule (an ES module with imports, as CloudFront runs it) needs this in Node 20.
NODE_FLAGS = ("--experimental-vm-modules", "--no-warnings")
START_TIMEOUT = 15.0
REQUEST_TIMEOUT = 10.0
STOP_TIMEOUT = 3.0
_UNSENT = object()  # no store view sent to the worker yet for an edge


class EdgeWorkerError(Exception):
    """The worker could not start, load the function, or answer; or the function failed (the
    message is the function's error, which never carries the key)."""


class _Pending:
    __slots__ = ("answer", "done")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.answer: dict[str, Any] | None = None


def _close_worker(process: subprocess.Popen[bytes]) -> None:
    """Close the worker's stdin (it exits on EOF), then make sure it is gone."""
    if process.poll() is not None:
        return
    try:
        if process.stdin is not None:
            process.stdin.close()
        process.wait(timeout=STOP_TIMEOUT)
    except (OSError, subprocess.TimeoutExpired):
        process.kill()
        process.wait(timeout=STOP_TIMEOUT)


class EdgeWorker:
    """One Node process running one CloudFront Function.

    Parameters
    ----------
    code:
        The function's code, placeholders filled in (:func:`edge.render`).
    node:
        The ``node`` executable; found on ``PATH`` when omitted.
    request_timeout:
        Seconds to wait for one answer before :class:`EdgeWorkerError`.
    """

    def __init__(
        self, code: str, *, node: str | None = None, request_timeout: float = REQUEST_TIMEOUT
    ) -> None:
        self.code = code
        self.node = node or shutil.which("node") or "node"
        self.request_timeout = request_timeout
        self.process: subprocess.Popen[bytes] | None = None
        self._stdin: IO[bytes] | None = None
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._pending: dict[int, _Pending] = {}
        self._sent_views: dict[int, object] = {}
        self._stderr: collections.deque[str] = collections.deque(maxlen=20)
        self._threads: list[threading.Thread] = []
        self._ready = _Pending()
        self._finalizer: weakref.finalize[Any, Any] | None = None
        self.invocations = 0

    # -- lifecycle ------------------------------------------------------------
    def start(self) -> EdgeWorker:
        """Start the worker and load the function; raise if either fails."""
        if self.process is not None:
            raise EdgeWorkerError("the worker is already started")
        try:
            process = subprocess.Popen(
                [self.node, *NODE_FLAGS, str(WORKER_SCRIPT)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env={**os.environ, "NODE_OPTIONS": ""},
            )
        except OSError as exc:
            raise EdgeWorkerError(f"cannot start node: {exc.strerror or exc}") from None
        self.process = process
        self._stdin = process.stdin
        # Garbage collection or interpreter exit closes the worker too (the finalizer must not
        # hold a reference to self).
        self._finalizer = weakref.finalize(self, _close_worker, process)
        for target, name in ((self._read_answers, "answers"), (self._read_stderr, "stderr")):
            thread = threading.Thread(target=target, name=f"originlock-edge-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)
        self._write({"init": {"code": self.code}})
        if not self._ready.done.wait(START_TIMEOUT):
            self.stop()
            raise EdgeWorkerError("the worker did not load the function in time")
        answer = self._ready.answer or {}
        if not answer.get("ready"):
            self.stop()
            raise EdgeWorkerError(f"the function did not load: {answer.get('error', 'no answer')}")
        return self

    def stop(self) -> None:
        """End the worker (idempotent); callers still waiting get :class:`EdgeWorkerError`."""
        process = self.process
        if process is None:
            return
        if self._finalizer is not None:
            self._finalizer()  # closes stdin, waits, kills if needed
        for thread in self._threads:
            thread.join(timeout=STOP_TIMEOUT)
        self._fail_pending("the worker stopped")

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def __enter__(self) -> EdgeWorker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- plumbing ------------------------------------------------------------
    def _write(self, message: Mapping[str, Any]) -> None:
        line = json.dumps(message, separators=(",", ":")).encode("utf-8") + b"\n"
        if self._stdin is None:
            raise EdgeWorkerError("the worker is not started")
        try:
            self._stdin.write(line)
            self._stdin.flush()
        except (OSError, ValueError):
            raise EdgeWorkerError(f"the worker is gone{self._last_words()}") from None

    def _read_answers(self) -> None:
        process = self.process
        assert process is not None and process.stdout is not None
        for line in process.stdout:
            try:
                answer = json.loads(line)
            except ValueError:
                continue
            key = answer.get("id")
            pending = self._ready if key is None else self._pending.pop(key, None)
            if pending is not None:
                pending.answer = answer
                pending.done.set()
        self._fail_pending(f"the worker exited{self._last_words()}")

    def _read_stderr(self) -> None:
        process = self.process
        assert process is not None and process.stderr is not None
        for line in process.stderr:
            self._stderr.append(line.decode("utf-8", "replace").rstrip())

    def _last_words(self) -> str:
        return f": {self._stderr[-1]}" if self._stderr else ""

    def _fail_pending(self, reason: str) -> None:
        with self._lock:
            waiting = [self._ready, *self._pending.values()]
            self._pending.clear()
        for pending in waiting:
            if not pending.done.is_set():
                pending.answer = {"error": reason}
                pending.done.set()

    # -- requests --------------------------------------------------------------
    def invoke(
        self,
        event: Mapping[str, Any],
        *,
        edge: int,
        now: float,
        store: tuple[object, Mapping[str, str] | None],
    ) -> dict[str, Any]:
        """Run the function on *event* at edge *edge*, its clock reading *now* (unix seconds).

        Parameters
        ----------
        store:
            ``(version, data)``: the edge's view of its KeyValueStore and a token naming that
            view (``data`` ``None``: the edge cannot read it). The data crosses to the worker
            only when the token differs from the one last sent for this edge.

        Returns
        -------
        dict
            The worker's answer: ``result`` (the request or response the function returned),
            ``logs`` (its ``console.log`` lines) and ``micros`` (its run time).

        Raises
        ------
        EdgeWorkerError
            If the function throws, the worker is gone, or no answer comes in time.
        """
        pending = _Pending()
        version, data = store
        with self._lock:
            if self.process is None:
                raise EdgeWorkerError("the worker is not started")
            key = next(self._ids)
            message: dict[str, Any] = {
                "id": key,
                "edge": edge,
                "now": int(now * 1000),
                "event": event,
            }
            if self._sent_views.get(edge, _UNSENT) != version:
                message["store"] = {"data": None if data is None else dict(data)}
                self._sent_views[edge] = version
            self._pending[key] = pending
            self.invocations += 1
            try:
                self._write(message)
            except EdgeWorkerError:
                self._pending.pop(key, None)
                raise
        if not pending.done.wait(self.request_timeout):
            with self._lock:
                self._pending.pop(key, None)
            raise EdgeWorkerError("the worker did not answer in time")
        answer = pending.answer or {}
        if "error" in answer:
            raise EdgeWorkerError(str(answer["error"]))
        return answer


def viewer_request_event(
    headers: Iterable[tuple[str, str]],
    *,
    distribution_id: str,
    domain_name: str = "sandbox.cloudfront.net",
    method: str = "GET",
    uri: str = "/",
    viewer_ip: str = "127.0.0.1",
    request_id: str = "",
) -> dict[str, Any]:
    """CloudFront's viewer-request event (version 1.0): header names lowercase, repeated headers
    in ``multiValue``."""
    merged: dict[str, dict[str, Any]] = {}
    for name, value in headers:
        lower = name.lower()
        entry = merged.get(lower)
        if entry is None:
            merged[lower] = {"value": value}
        else:
            entry.setdefault("multiValue", [{"value": entry["value"]}]).append({"value": value})
    return {
        "version": "1.0",
        "context": {
            "distributionDomainName": domain_name,
            "distributionId": distribution_id,
            "eventType": "viewer-request",
            "requestId": request_id or os.urandom(16).hex(),
        },
        "viewer": {"ip": viewer_ip},
        "request": {
            "method": method,
            "uri": uri,
            "querystring": {},
            "headers": merged,
            "cookies": {},
        },
    }


def forwarded_headers(request: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The headers of the request a viewer-request function returned, as ``(name, value)`` pairs
    (one pair per value of a multi-value header)."""
    pairs: list[tuple[str, str]] = []
    for name, entry in (request.get("headers") or {}).items():
        values = entry.get("multiValue") or [entry]
        pairs.extend((name, item["value"]) for item in values)
    return pairs


class SignedEdges:
    """The edge locations of one distribution in edge-signed mode.

    Parameters
    ----------
    worker:
        A started :class:`EdgeWorker` running the edge function.
    store:
        The KeyValueStore associated with the function; it knows how many edges there are and
        when each sees each write.
    distribution_id:
        Put in each event's context, as CloudFront does.
    clock:
        True time (unix seconds); each edge's function sees ``clock() + skew``.
    """

    def __init__(
        self,
        worker: EdgeWorker,
        store: EmulatedKeyValueStore,
        distribution_id: str,
        *,
        clock: Callable[[], float] = time.time,
        domain_name: str = "sandbox.cloudfront.net",
    ) -> None:
        self.worker = worker
        self.store = store
        self.distribution_id = distribution_id
        self.clock = clock
        self.domain_name = domain_name
        self.skews: dict[int, float] = {}

    def set_skew(self, edge: int, seconds: float) -> None:
        """Edge *edge*'s clock runs *seconds* ahead of true time (negative: behind)."""
        self.skews[edge] = seconds

    def run(
        self, edge: int, headers: Iterable[tuple[str, str]], *, method: str = "GET", uri: str = "/"
    ) -> dict[str, Any]:
        """The request edge *edge*'s function returns for a viewer request with *headers*."""
        now = self.clock()
        version = self.store.visible_version(edge, now)
        view = (
            (None, None) if version is None else ((self.store.serial, version.number), version.data)
        )
        event = viewer_request_event(
            headers,
            distribution_id=self.distribution_id,
            domain_name=self.domain_name,
            method=method,
            uri=uri,
        )
        answer = self.worker.invoke(
            event, edge=edge, now=now + self.skews.get(edge, 0.0), store=view
        )
        result: dict[str, Any] = answer["result"]
        return result

    def origin_headers(
        self, edge: int, headers: Iterable[tuple[str, str]], *, method: str = "GET", uri: str = "/"
    ) -> list[tuple[str, str]]:
        """The headers edge *edge* forwards to the origin for a viewer request with *headers*."""
        return forwarded_headers(self.run(edge, headers, method=method, uri=uri))
