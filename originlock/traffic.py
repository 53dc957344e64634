"""Loopback traffic for the demo, the benchmarks and the e2e tests, and what it saw.

Each client is a thread with one keep-alive HTTP/1.1 connection (urllib3), bounded in
count and in time, sending only to ``127.0.0.1``. A client either waits ``interval`` seconds
after each answer (the demo's steady clients) or is *paced*: it sends on a fixed schedule of
one request per ``interval``, whatever the answers' latency, so N paced clients offer N /
``interval`` requests per second (the load benchmark). :class:`TrafficProcess` runs the same
clients in a child process, so that a load generator does not share the sandbox's GIL.

Only the standard library and urllib3 are imported here: the child process starts in a fraction
of a second.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import urllib3

LOOPBACK_PREFIX = "http://127.0.0.1:"
# CloudFront's default origin response timeout: a request slower than this counts as lost.
REQUEST_TIMEOUT = 30.0
# A paced client that falls this far behind its schedule skips the sends it missed rather
# than bursting to catch up: the offered rate stays bounded.
MAX_LAG = 1.0


@dataclass(frozen=True)
class Sent:
    """One request: who sent it, when (``time.monotonic()``, system-wide on Linux), and the
    status it got (0: no answer)."""

    kind: str
    client: int
    started: float
    ended: float
    status: int


def check_loopback(url: str) -> None:
    if not url.startswith(LOOPBACK_PREFIX):
        raise ValueError("traffic is only ever sent to 127.0.0.1")


class LoopbackClient:
    """One persistent connection to a loopback server; :meth:`get` returns the status, or 0
    when no answer came (refused, reset, timed out). Never retried: a lost request counts."""

    def __init__(self, url: str, timeout: float = REQUEST_TIMEOUT) -> None:
        check_loopback(url)
        parts = urlsplit(url)
        if parts.hostname is None or parts.port is None:
            raise ValueError(f"not a host:port URL: {url}")
        self.path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self._pool = urllib3.HTTPConnectionPool(
            parts.hostname, parts.port, maxsize=1, timeout=timeout, retries=False
        )

    def get(self, headers: dict[str, str]) -> int:
        try:
            return int(self._pool.request("GET", self.path, headers=headers).status)
        except urllib3.exceptions.HTTPError:
            return 0

    def close(self) -> None:
        self._pool.close()


class Traffic:
    """Clients in threads, each bounded in count and time, loopback only.

    Parameters
    ----------
    max_requests:
        At most this many requests per client.
    time_limit:
        No client sends after this many seconds from now, unless it was started with its own
        ``until`` (a bounded window, such as the demo's replay of a revoked value: on a loaded
        machine the scenario may reach it after ``time_limit``).
    """

    def __init__(self, max_requests: int = 3000, time_limit: float = 75.0) -> None:
        self.max_requests = max_requests
        self.deadline = time.monotonic() + time_limit
        self.records: list[Sent] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(
        self,
        kind: str,
        client: int,
        url: str,
        interval: float,
        headers: Callable[[], dict[str, str]] = dict,
        until: float | None = None,
        paced: bool = False,
    ) -> None:
        check_loopback(url)
        thread = threading.Thread(
            target=self._loop,
            args=(kind, client, url, interval, headers, until or self.deadline, paced),
            name=f"traffic-{kind}-{client}",
            daemon=True,
        )
        self._threads.append(thread)
        thread.start()

    def _loop(
        self,
        kind: str,
        client: int,
        url: str,
        interval: float,
        headers: Callable[[], dict[str, str]],
        until: float,
        paced: bool,
    ) -> None:
        connection = LoopbackClient(url)
        due = time.monotonic()
        try:
            for _ in range(self.max_requests):
                if self._stop.is_set() or time.monotonic() >= until:
                    return
                started = time.monotonic()
                status = connection.get(headers())
                sent = Sent(kind, client, started, time.monotonic(), status)
                with self._lock:
                    self.records.append(sent)
                if paced:
                    due = max(due + interval, time.monotonic() - MAX_LAG)
                    self._stop.wait(max(0.0, due - time.monotonic()))
                else:
                    self._stop.wait(interval)
        finally:
            connection.close()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=15)

    def snapshot(self) -> list[Sent]:
        with self._lock:
            return list(self.records)


# -- a load generator in a child process --------------------------------------------------------
@dataclass(frozen=True)
class ClientPlan:
    """One client of a :class:`TrafficProcess` (headers are fixed: they cross a process)."""

    kind: str
    client: int
    url: str
    interval: float
    headers: tuple[tuple[str, str], ...] = ()
    paced: bool = True


class TrafficProcess:
    """Clients in a child process (``python -m originlock.traffic``), so a load generator does
    not share the sandbox's GIL.

    The plan goes to the child's stdin as one JSON line; the child answers ``ready`` once its
    clients send, stops on ``stop`` (or when stdin closes, or after *time_limit* seconds)
    and writes what they saw as one JSON line. ``start()`` returns once the child is ready;
    ``stop()`` returns the records.
    """

    def __init__(
        self, plans: Iterable[ClientPlan], max_requests: int = 100_000, time_limit: float = 120.0
    ) -> None:
        self.plans = list(plans)
        for plan in self.plans:
            check_loopback(plan.url)
        self.max_requests = max_requests
        self.time_limit = time_limit
        self._process: subprocess.Popen[str] | None = None

    def start(self, timeout: float = 30.0) -> None:
        # The load generator measures the sandbox, not itself: no coverage tracing in it.
        env = {k: v for k, v in os.environ.items() if not k.startswith(("COV_CORE_", "COVERAGE_"))}
        self._process = subprocess.Popen(
            [sys.executable, "-m", "originlock.traffic"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        assert self._process.stdin is not None and self._process.stdout is not None
        plan = {
            "plans": [dataclasses.asdict(p) for p in self.plans],
            "max_requests": self.max_requests,
            "time_limit": self.time_limit,
        }
        self._process.stdin.write(json.dumps(plan) + "\n")
        self._process.stdin.flush()
        ready = _readline(self._process.stdout, timeout)
        if ready.strip() != "ready":
            self.stop(timeout=1.0)
            raise RuntimeError("the traffic process did not start")

    def stop(self, timeout: float = 60.0) -> list[Sent]:
        process = self._process
        if process is None:
            return []
        self._process = None
        try:
            out, _ = process.communicate("stop\n", timeout=timeout)
        except (subprocess.TimeoutExpired, BrokenPipeError, ValueError):
            process.kill()
            out, _ = process.communicate()
        lines = [line for line in (out or "").splitlines() if line.startswith("[")]
        return [Sent(*fields) for fields in json.loads(lines[-1])] if lines else []


def _readline(stream: Any, timeout: float) -> str:
    """One line from *stream*, or ``""`` after *timeout* seconds."""
    found: list[str] = []
    reader = threading.Thread(target=lambda: found.append(stream.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    return found[0] if found else ""


def _child_main() -> None:
    """The child's side of :class:`TrafficProcess`."""
    spec = json.loads(sys.stdin.readline())
    traffic = Traffic(max_requests=int(spec["max_requests"]), time_limit=spec["time_limit"])
    for raw in spec["plans"]:
        plan = ClientPlan(**{**raw, "headers": tuple(tuple(h) for h in raw["headers"])})
        traffic.start(
            plan.kind,
            plan.client,
            plan.url,
            plan.interval,
            functools.partial(dict, plan.headers),
            paced=plan.paced,
        )
    print("ready", flush=True)
    stop = threading.Event()

    def wait_for_stop() -> None:
        sys.stdin.readline()  # "stop", or end of file when the parent has gone
        stop.set()

    threading.Thread(target=wait_for_stop, daemon=True).start()
    stop.wait(float(spec["time_limit"]))
    traffic.stop()
    print(json.dumps([dataclasses.astuple(r) for r in traffic.snapshot()]), flush=True)


# -- what the records say ------------------------------------------------------------------------
def within(records: Iterable[Sent], start: float, end: float) -> list[Sent]:
    """The records of requests started in ``[start, end)``."""
    return [r for r in records if start <= r.started < end]


def status_counts(records: Iterable[Sent]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for record in records:
        counts[str(record.status)] = counts.get(str(record.status), 0) + 1
    return dict(sorted(counts.items()))


def rejected(records: Iterable[Sent]) -> list[Sent]:
    """Requests that did not get a 200 (refused, failed or unanswered)."""
    return [r for r in records if r.status != 200]


if __name__ == "__main__":
    _child_main()
