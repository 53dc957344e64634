"""The CloudFront Function of edge-signed mode, run as the sandbox's edges run it: the real
source in the Node worker, against the emulated KeyValueStore.

It must agree with the Python signer and verifier byte for byte, overwrite whatever a viewer
sends, send nothing when it has no key, follow each edge's view of the store and each edge's
clock, and fit CloudFront's limits.
"""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator

import pytest

from edge import (
    MAX_CODE_BYTES,
    SOURCE,
    EdgeFunctionConfigError,
    render,
)
from originlock.sandbox.edgefunction import (
    EdgeWorker,
    EdgeWorkerError,
    SignedEdges,
    forwarded_headers,
    viewer_request_event,
)
from originlock.sandbox.kvs import EmulatedKeyValueStore
from tests.unit.fakes import FakeClock
from tests.unit.test_edge_token import DIST, KEY, T0, VECTOR
from tokens.document import generate_token
from tokens.edge import KVS_KEY_NAME, Verifier, key_id, sign

HEADER = "x-cf-api-gateway-token"
WINDOW = 60
ARN = "arn:aws:cloudfront::123456789012:key-value-store/6b1c4d28-6ac1-4d0e-9d53-4ef1b8a0f1c3"


@pytest.fixture(scope="module")
def worker() -> Iterator[EdgeWorker]:
    with EdgeWorker(render(HEADER, WINDOW)) as running:
        yield running


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


def make_edges(
    worker: EdgeWorker,
    clock: FakeClock,
    edges: int = 3,
    key: str | None = KEY,
    **store_args: object,
) -> SignedEdges:
    store_args.setdefault("propagation", (0.0, 0.0))
    store = EmulatedKeyValueStore(ARN, edges, clock=clock, **store_args)  # type: ignore[arg-type]
    if key is not None:
        store.put_key(KVS_KEY_NAME, key, store.describe()["ETag"])
    return SignedEdges(worker, store, DIST, clock=clock)


def origin_values(headers: list[tuple[str, str]]) -> list[str]:
    return [value for name, value in headers if name.lower() == HEADER]


# -- the same token on both sides -------------------------------------------------------------
def test_edge_function_computes_the_documented_vector(worker: EdgeWorker, clock: FakeClock) -> None:
    edges = make_edges(worker, clock)

    assert origin_values(edges.origin_headers(0, [])) == [VECTOR]


def test_edge_function_agrees_with_the_python_signer_and_verifier(worker: EdgeWorker) -> None:
    # Given random keys, distributions and times (a fresh worker per window length)
    rng = random.Random(20261213)
    for window in (10, 60, 300):
        with EdgeWorker(render(HEADER, window)) as running:
            for _ in range(40):
                key = generate_token()
                dist = "".join(rng.choices("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", k=14))
                now = rng.uniform(1_000_000_000, 3_000_000_000)
                event = viewer_request_event([], distribution_id=dist)

                # When the function signs at that time with that key
                answer = running.invoke(event, edge=0, now=now, store=(key, {KVS_KEY_NAME: key}))

                # Then it sent exactly what the Python signer computes, and the verifier takes it
                token = answer["result"]["headers"][HEADER]["value"]
                assert token == sign(key, dist, now, window)
                verifier = Verifier([("current", key.encode())], dist, window, 0)
                assert verifier.verify(token, now) == "current"
                assert token.split(".")[2] == key_id(key)


# -- what a viewer cannot do ----------------------------------------------------------------
@pytest.mark.parametrize(
    "sent",
    [
        [("X-CF-API-Gateway-Token", "chosen-by-viewer")],
        [("x-cf-api-gateway-token", VECTOR)],
        [("X-Cf-Api-Gateway-Token", "a"), ("x-cf-api-gateway-token", "b")],
    ],
)
def test_edge_function_overwrites_the_viewers_header_in_any_case(
    worker: EdgeWorker, clock: FakeClock, sent: list[tuple[str, str]]
) -> None:
    edges = make_edges(worker, clock)
    clock.advance(600)  # the viewer replays an old token: it must not pass through either

    headers = edges.origin_headers(1, [*sent, ("Accept", "application/json")])

    assert origin_values(headers) == [sign(KEY, DIST, clock.now, WINDOW)]
    assert ("accept", "application/json") in headers


def test_edge_function_removes_a_header_in_a_case_cloudfront_would_not_send(
    worker: EdgeWorker,
) -> None:
    # CloudFront's event has lowercase names; the function still removes any other spelling
    event = viewer_request_event([], distribution_id=DIST)
    event["request"]["headers"]["X-CF-API-GATEWAY-TOKEN"] = {"value": "viewer"}

    answer = worker.invoke(event, edge=0, now=T0, store=("no-key", {}))

    assert answer["result"]["headers"] == {}


@pytest.mark.parametrize(
    ("store_key", "value"),
    [
        (None, None),  # no signing key in the store
        (KVS_KEY_NAME, ""),
        (KVS_KEY_NAME, "too-short"),
        (KVS_KEY_NAME, KEY + "A"),
        (KVS_KEY_NAME, KEY[:-1] + "+"),
        ("other-key", KEY),
    ],
)
def test_edge_function_without_a_usable_key_sends_no_header(
    worker: EdgeWorker, clock: FakeClock, store_key: str | None, value: str | None
) -> None:
    # Given a store without a usable signing key
    edges = make_edges(worker, clock, key=None)
    if store_key is not None:
        edges.store.put_key(store_key, value or "", edges.store.describe()["ETag"])

    # When a viewer sends its own value
    headers = edges.origin_headers(0, [(HEADER, "viewer-value")])

    # Then the origin gets no origin header at all (the authorizer answers 401)
    assert origin_values(headers) == []


def test_edge_function_with_an_unreadable_store_sends_no_header(
    worker: EdgeWorker, clock: FakeClock
) -> None:
    edges = make_edges(worker, clock)
    edges.store.make_unreadable(2, seconds=30)

    assert origin_values(edges.origin_headers(2, [(HEADER, "viewer-value")])) == []
    assert origin_values(edges.origin_headers(1, [])) == [sign(KEY, DIST, T0, WINDOW)]
    clock.advance(30)
    assert origin_values(edges.origin_headers(2, [])) == [sign(KEY, DIST, clock.now, WINDOW)]


def test_edge_function_without_a_distribution_id_sends_no_header(worker: EdgeWorker) -> None:
    event = viewer_request_event([(HEADER, "viewer")], distribution_id="")

    answer = worker.invoke(event, edge=0, now=T0, store=("key", {KVS_KEY_NAME: KEY}))

    assert HEADER not in answer["result"]["headers"]


def test_edge_function_unrendered_signs_nothing() -> None:
    # The raw template (placeholders not filled in; render refuses to produce such code) cannot
    # know the header's name, but it must not sign anything either
    with EdgeWorker(SOURCE.read_text()) as raw:
        event = viewer_request_event([("accept", "*/*")], distribution_id=DIST)
        answer = raw.invoke(event, edge=0, now=T0, store=("key", {KVS_KEY_NAME: KEY}))

    assert forwarded_headers(answer["result"]) == [("accept", "*/*")]


def test_edge_function_logs_nothing(worker: EdgeWorker, clock: FakeClock) -> None:
    edges = make_edges(worker, clock)
    event = viewer_request_event([], distribution_id=DIST)

    answer = worker.invoke(event, edge=0, now=T0, store=("logs", edges.store.edge_view(0)))

    assert answer["logs"] == []


# -- the store, per edge, and each edge's clock ----------------------------------------------
def test_edge_function_follows_each_edges_view_of_the_store(
    worker: EdgeWorker, clock: FakeClock
) -> None:
    # Given three edges that pick up a write after 2 s, 5 s and 9 s
    delays = {0: 2.0, 1: 5.0, 2: 9.0}
    edges = make_edges(
        worker, clock, delay=lambda version, edge: delays[edge] if version > 1 else 0
    )
    new = generate_token()
    verifier = Verifier([("current", KEY.encode()), ("pending", new.encode())], DIST, WINDOW)

    # When the signing key is replaced
    edges.store.put_key(KVS_KEY_NAME, new, edges.store.describe()["ETag"])

    # Then each edge signs with the new key from its own moment on
    signed_by: list[tuple[str | None, ...]] = []
    for _ in range(10):
        signed_by.append(
            tuple(
                verifier.verify(origin_values(edges.origin_headers(e, []))[0], clock.now)
                for e in range(3)
            )
        )
        clock.advance(1)
    old, fresh = "current", "pending"
    assert signed_by[0] == (old, old, old)
    assert signed_by[2] == (fresh, old, old)
    assert signed_by[5] == (fresh, fresh, old)
    assert signed_by[9] == (fresh, fresh, fresh)


def test_edge_function_uses_each_edges_clock(worker: EdgeWorker, clock: FakeClock) -> None:
    # Given edge 1 whose clock is 50 s ahead and edge 2 whose clock is 150 s behind
    edges = make_edges(worker, clock)
    edges.set_skew(1, 50.0)
    edges.set_skew(2, -150.0)
    verifier = Verifier([("current", KEY.encode())], DIST, WINDOW, 1)

    tokens = [origin_values(edges.origin_headers(e, []))[0] for e in range(3)]

    # Then the authorizer (true time) accepts the skew within one window, not beyond
    assert tokens[1] == sign(KEY, DIST, T0 + 50, WINDOW)
    assert [verifier.verify(token, T0) for token in tokens] == ["current", "current", None]


# -- CloudFront's limits and what the code holds -----------------------------------------------
def test_edge_function_code_fits_cloudfronts_size_quota() -> None:
    longest = render("x" * 128, 3600)

    assert len(longest.encode("utf-8")) <= MAX_CODE_BYTES
    assert len(SOURCE.read_bytes()) <= MAX_CODE_BYTES


def test_edge_function_source_holds_no_key_material() -> None:
    source = SOURCE.read_text()
    code = render(HEADER, WINDOW)

    # Every string literal (comments aside) is one of the function's fixed names
    statements = re.sub(r"^\s*//.*$", "", source, flags=re.MULTILINE)
    literals = set(re.findall(r"'([^'\n]*)'", statements))
    assert literals <= {
        "cloudfront",
        "crypto",
        "__HEADER_NAME__",
        "__WINDOW_SECONDS__",
        "signing-key",
        "sha256",
        "hex",
        "base64url",
        "originlock:kid:",
        "originlock:v1:",
        ":",
        "v1.",
        ".",
        "string",
        "",
    }
    # and nothing in the code looks like a key (43 URL-safe characters in a row)
    assert not re.search(r"[A-Za-z0-9_-]{40,}", code)


def test_edge_function_render_fills_in_both_placeholders_only() -> None:
    code = render("X-CF-Api-Gateway-Token", 30)

    assert "'x-cf-api-gateway-token'" in code and "'30'" in code
    assert "'__HEADER_NAME__'" not in code and "'__WINDOW_SECONDS__'" not in code
    assert (
        code.replace("'x-cf-api-gateway-token'", "'__HEADER_NAME__'").replace(
            "'30'", "'__WINDOW_SECONDS__'"
        )
        == SOURCE.read_text()
    )


@pytest.mark.parametrize(
    ("header", "window"),
    [("", 60), ("bad header", 60), ("it's", 60), ("x" * 129, 60), (HEADER, 5), (HEADER, 7200)],
)
def test_edge_function_render_refuses_what_cannot_be_written_in(header: str, window: int) -> None:
    with pytest.raises(EdgeFunctionConfigError):
        render(header, window)


def test_edge_function_render_refuses_an_oversized_or_incomplete_template() -> None:
    with pytest.raises(EdgeFunctionConfigError):
        render(HEADER, WINDOW, source=SOURCE.read_text() + "//" + "x" * MAX_CODE_BYTES)
    with pytest.raises(EdgeFunctionConfigError):
        render(HEADER, WINDOW, source="async function handler(event) { return event.request; }")


# -- the worker ------------------------------------------------------------------------------
def test_edge_worker_survives_ten_thousand_requests(worker: EdgeWorker, clock: FakeClock) -> None:
    edges = make_edges(worker, clock, edges=4)
    verifier = Verifier([("current", KEY.encode())], DIST, WINDOW, 1)
    accepted = 0

    for i in range(10_000):
        clock.advance(0.05)
        token = origin_values(edges.origin_headers(i % 4, [(HEADER, "viewer")]))
        accepted += verifier.verify(token[0], clock.now) == "current"

    assert accepted == 10_000
    assert worker.running


def test_edge_worker_answers_each_thread_its_own_request(
    worker: EdgeWorker, clock: FakeClock
) -> None:
    # Given 8 edges whose clocks differ by whole windows, so each edge's token is its own
    edges = make_edges(worker, clock, edges=8)
    for edge in range(8):
        edges.set_skew(edge, edge * WINDOW)
    wrong: list[int] = []

    def call(edge: int) -> None:
        expected = [sign(KEY, DIST, T0 + edge * WINDOW, WINDOW)]
        for _ in range(150):
            if origin_values(edges.origin_headers(edge, [])) != expected:
                wrong.append(edge)

    # When 8 threads call at once
    threads = [threading.Thread(target=call, args=(edge,)) for edge in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # Then no answer went to the wrong caller
    assert wrong == []


def test_edge_worker_never_serves_one_stores_view_for_another(
    worker: EdgeWorker, clock: FakeClock
) -> None:
    # Two stores at the same version number, on one worker: each edge reads its own store
    other = generate_token()
    first, second = make_edges(worker, clock), make_edges(worker, clock, key=other)

    assert origin_values(first.origin_headers(0, [])) == [sign(KEY, DIST, T0, WINDOW)]
    assert origin_values(second.origin_headers(0, [])) == [sign(other, DIST, T0, WINDOW)]
    assert origin_values(first.origin_headers(0, [])) == [sign(KEY, DIST, T0, WINDOW)]


def test_edge_worker_reports_a_function_that_does_not_load() -> None:
    for code in ("async function handler(event) { return event.request", "import fs from 'fs';"):
        worker = EdgeWorker(code)
        with pytest.raises(EdgeWorkerError):
            worker.start()
        assert worker.process is not None and worker.process.poll() is not None


def test_edge_worker_reports_a_function_that_throws() -> None:
    code = "async function handler(event) { throw new Error('boom'); }"
    with EdgeWorker(code) as failing:
        with pytest.raises(EdgeWorkerError, match="boom"):
            failing.invoke({"request": {}}, edge=0, now=T0, store=(None, None))
        # and it keeps serving
        with pytest.raises(EdgeWorkerError, match="boom"):
            failing.invoke({"request": {}}, edge=0, now=T0, store=(None, None))


def test_edge_worker_allows_only_the_crypto_cloudfront_documents() -> None:
    code = textwrap.dedent(
        """
        import crypto from 'crypto';
        async function handler(event) {
          return crypto.createHmac('sha256', 'k').update('m').digest(event.encoding);
        }
        """
    )
    with EdgeWorker(code) as running:
        assert running.invoke({"encoding": "base64url"}, edge=0, now=T0, store=(None, None))
        with pytest.raises(EdgeWorkerError, match="not supported"):
            running.invoke({"encoding": "latin1"}, edge=0, now=T0, store=(None, None))


def test_edge_worker_stops_cleanly_even_when_the_block_fails() -> None:
    with pytest.raises(RuntimeError), EdgeWorker(render(HEADER, WINDOW)) as running:
        process = running.process
        raise RuntimeError("a failing test")

    assert process is not None and process.poll() is not None
    with pytest.raises(EdgeWorkerError):
        running.invoke({"request": {}}, edge=0, now=T0, store=(None, None))


def test_edge_worker_dies_with_the_process_that_started_it() -> None:
    # Given a Python process that starts a worker and is then killed outright
    script = textwrap.dedent(
        """
        import os, signal, sys
        sys.path.insert(0, "functions")
        from edge import render
        from originlock.sandbox.edgefunction import EdgeWorker
        worker = EdgeWorker(render("x-h", 60)).start()
        print(worker.process.pid, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    parent = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert parent.returncode == -signal.SIGKILL
    node_pid = int(parent.stdout.split()[0])

    # Then its worker exits on its own (its stdin closed with its parent)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _alive(node_pid):
        time.sleep(0.05)
    assert not _alive(node_pid)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by init) counts as gone.
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ")[1][0] != "Z"
    except FileNotFoundError:
        return False
