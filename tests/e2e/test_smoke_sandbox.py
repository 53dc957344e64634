"""``python -m originlock.smoke`` against the sandbox, unchanged: every check passes, nothing it
prints holds a token value, and it says when it could not search the functions' logs."""

from __future__ import annotations

import pytest

from originlock import operations, smoke
from originlock.sandbox import Sandbox
from originlock.target import discover

pytestmark = pytest.mark.e2e


def _idle(sb: Sandbox) -> None:
    target = discover(sb.session, sb.endpoint_url, sb.region, sb.describe())
    for execution in operations.running_executions(target):
        operations.watch(target, execution["executionArn"], interval=0.25, timeout=60)


def _lines(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith("  ")]


def test_smoke_passes_against_the_sandbox_with_its_function_output(
    sandbox: Sandbox, capsys: pytest.CaptureFixture[str]
) -> None:
    _idle(sandbox)
    before = operations.read_document(
        discover(sandbox.session, sandbox.endpoint_url, sandbox.region, sandbox.describe())
    )

    # When the smoke test runs as a user runs it, with the sandbox's function output as logs
    code = smoke.main(["--sandbox"], logs=lambda since: sandbox.lambda_output().splitlines())

    # Then every check passes, one line each, and the rotation really happened
    out = capsys.readouterr().out
    assert code == 0, out
    lines = _lines(out)
    assert [line.split()[0] for line in lines] == [smoke.PASS] * 6, out
    assert "0 refused" in next(line for line in lines if "rotation under traffic" in line)
    assert out.splitlines()[-1].startswith("smoke test passed (6 checks")
    after = operations.read_document(
        discover(sandbox.session, sandbox.endpoint_url, sandbox.region, sandbox.describe())
    )
    assert after.current != before.current and after.previous is None
    assert not any(value in out for value in sandbox.token_values())


def test_smoke_through_the_sandbox_stack_says_it_did_not_search_the_logs(
    sandbox: Sandbox, capsys: pytest.CaptureFixture[str]
) -> None:
    _idle(sandbox)
    # Another process's view of the sandbox: its stack outputs, no log source.
    code = smoke.main(["--endpoint-url", sandbox.endpoint_url, "--stack", "originlock-sandbox"])
    out = capsys.readouterr().out
    assert code == 0, out
    outcomes = [line.split()[0] for line in _lines(out)]
    assert outcomes == [smoke.PASS] * 5 + [smoke.SKIP], out
    assert "logs not searched" in out
    assert not any(value in out for value in sandbox.token_values())
