"""``originlock demo --json`` and ``originlock sandbox --json`` as a script runs them: the
installed command in a child process, its stdout parsed as the one JSON object it promises.

Child processes, not ``CliRunner``: each command starts a sandbox of its own (moto in server
mode, the process's ``MOTO_PORT``), which cannot share a process with the e2e package's one.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

import pytest
import requests

from originlock.target import SANDBOX_FILE_ENV

pytestmark = pytest.mark.e2e

# The demo's phases and the sandbox's timings, shortened as in the e2e package's sandbox
# (about 20 s in all); generous limits, so that a loaded machine makes it slower, not broken.
SHORT_DEMO = {
    "baseline": 1.0,
    "pause": 0.3,
    "tail": 0.5,
    "time_limit": 150.0,
    "execution_timeout": 90.0,
    "timings": {
        "deploy_window": [0.3, 1.2],
        "authorizer_ttl": 1.0,
        "token_cache_max_age": 1.5,
        "token_refresh_interval": 0.25,
        "margin": 0.25,
        "drain": 1.0,
    },
}
STARTUP_TIMEOUT = 120.0  # a sandbox starts in 3-15 s, more on a loaded machine
# It exits in under a second idle, 2.6 s with every core busy.
EXIT_TIMEOUT = 10.0


def originlock() -> list[str]:
    """The console script next to this interpreter (what `make` runs), else the module."""
    command = Path(sys.executable).with_name("originlock")
    return [str(command)] if command.exists() else [sys.executable, "-m", "originlock.cli"]


def child_env(state_file: Path) -> dict[str, str]:
    """This environment without what a sandbox in this process may have set, and a state
    file of the child's own (never the operator's, nor the e2e package's)."""
    dropped = ("AWS_ENDPOINT_URL", "MOTO_PORT", "PYTHONPATH", SANDBOX_FILE_ENV, "ORIGINLOCK_DEBUG")
    env = {k: v for k, v in os.environ.items() if k not in dropped}
    env[SANDBOX_FILE_ENV] = str(state_file)
    env["PYTHONFAULTHANDLER"] = "1"  # a stack dump on SIGABRT, should it hang
    return env


def test_demo_json_prints_the_report_as_one_object(tmp_path: Path) -> None:
    # Given the demo, shortened, with two edges
    args = ["demo", "--json", "--edges", "2", "--settings", json.dumps(SHORT_DEMO)]

    # When it runs as the installed command
    done = subprocess.run(
        [*originlock(), *args],
        cwd=tmp_path,
        env=child_env(tmp_path / "sandbox.json"),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )

    # Then it succeeds, and stdout is one JSON object and nothing else (narration: stderr)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)  # fails on anything before or after the object
    assert isinstance(report, dict)
    assert done.stdout.startswith("{") and done.stdout.endswith("}\n")  # not even a blank line
    assert "the blog's test" in done.stderr and '"broken"' not in done.stderr
    # and it is the report: every invariant held
    assert (report["ok"], report["broken"]) == (True, [])
    assert report["blog_test"] == {
        "api_without_header": 401,
        "api_with_a_guessed_value": 403,
        "cloudfront": 200,
    }
    assert report["sandbox"]["edges"] == 2
    assert [phase["phase"] for phase in report["phases"]] == [
        "steady",
        "scheduled rotation",
        "manual rotation",
        "revoke all",
        "after the revoke",
        "revoke during a rotation",
        "after the preempting revoke",
    ]
    assert report["legit"]["requests"] > 0
    assert report["legit"]["rejected_outside_revoke_window"] == 0
    assert report["attacker"]["requests"] > 0 and report["attacker"]["accepted"] == 0
    revoke = report["revoke"]
    assert revoke["replayed"] > 0 and revoke["accepted_after_bound"] == 0
    assert 0 <= revoke["measured_bound_s"] <= revoke["stated_bound_s"]
    assert [run["status"] for run in report["rotations"]] == ["SUCCEEDED"] * 4
    assert report["revoke_during_rotation"]["preempted_status"] == "ABORTED"
    assert report["secrets"]["found"] == 0 and report["secrets"]["values_checked"] > 0
    assert report["total_seconds"] > 0


def test_demo_json_edge_signed_refuses_a_leaked_header_and_loses_nothing(tmp_path: Path) -> None:
    # Given the demo in edge-signed mode, shortened, with two edges
    settings = {
        **SHORT_DEMO,
        "timings": {**SHORT_DEMO["timings"], "kvs_propagation": [0.3, 1.2]},  # type: ignore[dict-item]
    }
    args = ["demo", "--json", "--lock-mode", "edge-signed", "--edges", "2"]

    # When it runs as the installed command
    done = subprocess.run(
        [*originlock(), *args, "--settings", json.dumps(settings)],
        cwd=tmp_path,
        env=child_env(tmp_path / "sandbox.json"),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )

    # Then every invariant held: a key rotation with no legitimate request lost, a leaked
    # header value refused within its bound, a leaked key refused within R
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert (report["ok"], report["broken"]) == (True, [])
    assert report["lock_mode"] == report["sandbox"]["lock_mode"] == "edge-signed"
    assert report["blog_test"]["api_with_a_forged_token"] == 403
    assert [phase["phase"] for phase in report["phases"]][:2] == ["steady", "leaked header value"]
    assert report["legit"]["rejected_outside_revoke_window"] == 0
    assert report["attacker"]["requests"] > 0 and report["attacker"]["accepted"] == 0
    leak = report["leaked_header"]
    assert leak["accepted"] > 0 and leak["refused"] > 0 and leak["accepted_after_bound"] == 0
    assert leak["lived_s"] <= leak["stated_bound_s"] == 2 * 10 + 1.0
    assert report["revoke"]["accepted_after_bound"] == 0
    assert [run["status"] for run in report["rotations"]] == ["SUCCEEDED"] * 4
    # key ids shown (8 hex digits), never a key or a token: the report's own scan found none
    assert all(len(run["key_id"]) == 8 for run in report["rotations"])
    assert list(report["key_ids"]) == ["current"]
    assert report["secrets"]["found"] == 0 and report["secrets"]["values_checked"] > 4
    assert "Leaked header value" not in done.stdout  # the narration went to stderr
    assert "a header value leaks from a backend's logs" in done.stderr


def first_json_object(stream: IO[str], timeout: float) -> dict[str, Any]:
    """Read *stream* until the lines so far parse as one JSON object (or fail at *timeout*)."""
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        for line in stream:
            lines.put(line)
        lines.put("")  # end of stream

    threading.Thread(target=pump, daemon=True).start()
    deadline = time.monotonic() + timeout
    text = ""
    while True:
        try:
            line = lines.get(timeout=max(deadline - time.monotonic(), 0.01))
        except queue.Empty:
            pytest.fail(f"no JSON object on stdout within {timeout:.0f} s: {text!r}")
        if not line:
            pytest.fail(f"stdout ended before a JSON object: {text!r}")
        text += line
        if line.rstrip() == "}":
            try:
                data = json.loads(text)
            except ValueError:
                continue
            assert isinstance(data, dict)
            return data


@pytest.mark.parametrize(
    ("stop_with", "mode", "sigint"),
    [
        (signal.SIGINT, "header", signal.SIG_DFL),
        (signal.SIGTERM, "header", signal.SIG_DFL),
        (signal.SIGINT, "edge-signed", signal.SIG_DFL),
        # started by a parent that ignores SIGINT (a script's background job, a test runner's
        # worker): the child inherits the ignore, and Ctrl-C must still stop it
        (signal.SIGINT, "header", signal.SIG_IGN),
    ],
    ids=["ctrl-c", "term", "edge-signed", "ctrl-c-inherited-ignore"],
)
def test_sandbox_json_serves_its_urls_until_stopped(
    tmp_path: Path, stop_with: signal.Signals, mode: str, sigint: signal.Handlers
) -> None:
    # Given `originlock sandbox --json` started as a user (or a script) starts it
    state_file = tmp_path / "sandbox.json"
    child = subprocess.Popen(
        [*originlock(), "sandbox", "--json", "--edges", "1", "--lock-mode", mode],
        cwd=tmp_path,
        env=child_env(state_file),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # (SIGINT's disposition as a terminal, or such a parent, leaves it at exec)
        preexec_fn=lambda: signal.signal(signal.SIGINT, sigint),
    )
    try:
        assert child.stdout is not None
        # When it has printed its description (the first and only JSON object on stdout)
        info = first_json_object(child.stdout, STARTUP_TIMEOUT)

        # Then it names its endpoint and URLs, all on loopback, and serves them
        assert info["endpoint_url"].startswith("http://127.0.0.1:")
        assert len(info["edge_urls"]) == 1 and info["cloudfront_url"] == info["edge_urls"][0]
        assert all(
            info[key].startswith("http://127.0.0.1:") for key in ("api_url", "cloudfront_url")
        )
        assert json.loads(state_file.read_text())["endpoint_url"] == info["endpoint_url"]
        assert info["lock_mode"] == mode
        with requests.Session() as session:
            session.trust_env = False  # loopback: never through a proxy
            assert session.get(info["cloudfront_url"], timeout=10).status_code == 200
            direct = session.get(info["api_url"], timeout=10)
        assert direct.status_code == 401  # no origin header: API Gateway refuses, 401

        # When it is stopped (Ctrl-C, or a process manager's SIGTERM)
        child.send_signal(stop_with)
        began = time.monotonic()
        try:
            code = child.wait(timeout=EXIT_TIMEOUT)
        except subprocess.TimeoutExpired:
            # Where it is stuck: faulthandler dumps every thread's stack on SIGABRT
            child.send_signal(signal.SIGABRT)
            _, stderr = child.communicate(timeout=30)
            pytest.fail(
                f"still running {EXIT_TIMEOUT:g} s after {stop_with.name}:\n{stderr[-6000:]}"
            )
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()

    # Then it exits 0 within seconds, says nothing more on stdout, and removes its state file
    assert code == 0, child.stderr.read() if child.stderr else ""
    assert time.monotonic() - began < EXIT_TIMEOUT
    assert child.stdout.read().strip() == ""
    stderr = child.stderr.read() if child.stderr else ""
    assert "Traceback" not in stderr and "error:" not in stderr, stderr
    assert not state_file.exists()
