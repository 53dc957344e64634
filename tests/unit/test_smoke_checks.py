"""The smoke test's checks on their own: what a user sees when something is wrong.

The whole smoke test against a sandbox is in tests/e2e/test_smoke_sandbox.py; against
ministack, in ``make rehearse``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from originlock import smoke
from originlock.target import SANDBOX_FILE_ENV, Target


class _AlwaysOk(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def open_api() -> Iterator[str]:
    """A loopback server that answers 200 to everything: an API nothing guards."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _AlwaysOk)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def _target() -> Target:
    return Target(None, None, "us-east-1", "test target", "", "/originlock/origin-token")


def test_smoke_blog_test_fails_an_api_that_answers_without_the_header(open_api: str) -> None:
    # Given an API that answers 200 to anyone
    # When the blog's test runs against it (CloudFront's URL too)
    checks = smoke.blog_test(smoke.http_pool(), _target(), open_api, open_api)

    # Then both direct requests fail, saying what came back and what was expected
    outcomes = {check.name: (check.outcome, check.detail) for check in checks}
    assert outcomes["direct to the API, no header"] == (smoke.FAIL, "200 (expected 401)")
    assert outcomes["direct to the API, a wrong value"] == (smoke.FAIL, "200 (expected 403)")
    assert outcomes["through CloudFront"] == (smoke.PASS, "200 (expected 200)")


def test_smoke_blog_test_reports_no_answer() -> None:
    # Nothing listens on this port (bound, then closed).
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{probe.getsockname()[1]}/"
    checks = smoke.blog_test(smoke.http_pool(), _target(), url, url)
    assert [check.outcome for check in checks] == [smoke.FAIL] * 3
    assert checks[0].detail == "no answer (expected 401)"


def test_smoke_no_secrets_finds_a_value_in_the_logs() -> None:
    value = "x" * 43
    check = smoke.no_secrets(
        _target(),
        {value},
        executions=[],
        logs=lambda since: ["START", f'{{"message": "oops", "token": "{value}"}}'],
        since=0.0,
        own_output="",
    )
    assert check.outcome == smoke.FAIL
    assert check.detail == "a token value is in: function logs"
    assert value not in check.line()


def test_smoke_no_secrets_passes_clean_logs_and_counts_them() -> None:
    check = smoke.no_secrets(
        _target(), {"y" * 43}, [], lambda since: ["a", "b", "c"], 0.0, own_output=""
    )
    assert (check.outcome, check.detail) == (
        smoke.PASS,
        "1 values in 0 history events of 0 executions and 3 log lines",
    )


def test_smoke_no_secrets_without_a_log_source_says_it_did_not_search() -> None:
    check = smoke.no_secrets(_target(), {"z" * 43}, [], None, 0.0, own_output="")
    assert check.outcome == smoke.SKIP
    assert "logs not searched" in check.detail


def test_smoke_no_secrets_with_nothing_to_search_for_fails() -> None:
    check = smoke.no_secrets(_target(), set(), [], None, 0.0, own_output="")
    assert check.outcome == smoke.FAIL


def test_smoke_exits_with_one_line_when_no_sandbox_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(SANDBOX_FILE_ENV, str(tmp_path / "absent.json"))
    assert smoke.main(["--sandbox"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("error: no sandbox is running")


def test_smoke_load_stops_at_its_time_limit(open_api: str) -> None:
    load = smoke.Load(open_api, clients=2, interval=0.05, time_limit=0.5)
    load.start()
    threading.Event().wait(1.0)
    records = load.stop()
    assert records
    assert all(record.status == 200 for record in records)
    assert max(record.started for record in records) < load.deadline
