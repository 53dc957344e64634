"""The operator CLI against the sandbox, as a user runs it: same commands as on AWS."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from originlock import operations
from originlock.cli import app
from originlock.sandbox import Sandbox
from originlock.target import discover
from tokens.document import TokenDocument, fingerprint, generate_token

pytestmark = pytest.mark.e2e


def document(sb: Sandbox) -> TokenDocument:
    value = sb.client("ssm").get_parameter(Name=sb.parameter_name, WithDecryption=True)
    return TokenDocument.parse(value["Parameter"]["Value"])


def invoke(sb: Sandbox, args: Sequence[str], **kwargs: Any) -> Result:
    """Run the CLI; whatever it printed must not contain any value the parameter ever held."""
    result = CliRunner().invoke(app, list(args), **kwargs)
    printed = result.stdout + result.stderr
    assert "Traceback" not in printed
    for value in sb.token_values():
        assert value not in printed, "a token value was printed"
    return result


def one_error_line(result: Result) -> str:
    lines = result.stderr.strip().splitlines()
    assert result.exit_code != 0
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def wait_for_idle(sb: Sandbox) -> None:
    target = discover(sb.session, sb.endpoint_url, sb.region, sb.describe())
    for execution in operations.running_executions(target):
        operations.watch(target, execution["executionArn"], interval=0.25, timeout=60)


def test_status_shows_fingerprints_and_never_a_value(sandbox: Sandbox) -> None:
    current = document(sandbox)

    human = invoke(sandbox, ["--sandbox", "status"])
    as_json = invoke(sandbox, ["--sandbox", "status", "--json"])

    assert human.exit_code == 0, human.stderr
    assert str(fingerprint(current.current)) in human.stdout
    assert "Deployed" in human.stdout and "Next rotation" in human.stdout
    data = json.loads(as_json.stdout)
    assert data["token"]["generation"] == current.generation
    assert data["token"]["fingerprints"]["current"] == fingerprint(current.current)
    # The current value's age: since it became current, not since the last write
    assert data["token"]["current_since"] == current.current_since is not None
    assert data["token"]["current_age_seconds"] >= 0
    assert "current since" in human.stdout and str(current.current_since) in human.stdout
    assert data["distribution"]["sends"][0]["slot"] == "current"
    assert data["schedule"]["next_run"] is not None
    assert str(current.current) not in human.stdout + as_json.stdout


def test_rotate_wait_shows_the_steps_and_succeeds(sandbox: Sandbox) -> None:
    before = document(sandbox)

    result = invoke(sandbox, ["--sandbox", "rotate", "--wait"])

    assert result.exit_code == 0, result.stderr
    for step in ("Validate", "Stage", "SwitchOrigin", "CheckDeployed", "Promote", "Retire"):
        assert step in result.stdout
    assert "SUCCEEDED" in result.stdout
    after = document(sandbox)
    assert after.current != before.current and after.previous is None
    assert str(fingerprint(after.current)) in result.stdout


def test_revoke_all_explains_and_asks_before_doing_anything(sandbox: Sandbox) -> None:
    before = document(sandbox)

    result = invoke(sandbox, ["--sandbox", "revoke", "all"], input="n\n")

    assert "403" in result.stdout and "Deployed" in result.stdout
    # CliRunner does not echo the answer: the prompt and the error share a line here.
    prompt, _, error = result.stderr.partition("[y/N]:")
    assert "Revoke every accepted value now?" in prompt
    assert (
        result.exit_code == 1
        and error.strip() == "error: revoke all cancelled: nothing was changed"
    )
    assert document(sandbox).generation == before.generation


def test_revoke_all_yes_wait_json_replaces_every_value(sandbox: Sandbox) -> None:
    before = document(sandbox)

    result = invoke(sandbox, ["--sandbox", "revoke", "all", "--yes", "--wait", "--json"])

    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)  # the explanation went to stderr
    assert data["status"] == "SUCCEEDED"
    assert "RevokeAll" in [step["name"] for step in data["steps"]]
    assert "403" in result.stderr
    after = document(sandbox)
    assert after.accepted() == (("current", str(after.current).encode()),)
    assert data["token"]["fingerprints"]["current"] == fingerprint(after.current)
    assert before.current != after.current


def set_previous(sb: Sandbox, previous: str | None) -> None:
    """Set the document's previous slot (to a value CloudFront does not send: what a rotation
    leaves until its drain ends; or to nothing, as Retire leaves it)."""
    current = document(sb)
    value = TokenDocument(
        current=current.current,
        previous=previous,
        generation=current.generation + 1,
        current_since=current.current_since,
    ).to_json()
    sb.client("ssm").put_parameter(
        Name=sb.parameter_name, Value=value, Type="SecureString", Overwrite=True
    )


def test_revoke_previous_with_an_empty_slot_starts_nothing(sandbox: Sandbox) -> None:
    wait_for_idle(sandbox)
    set_previous(sandbox, None)
    before = invoke(sandbox, ["--sandbox", "history", "--json"]).stdout

    result = invoke(sandbox, ["--sandbox", "revoke", "previous", "--wait"])

    assert result.exit_code == 0, result.stderr
    assert "nothing to revoke" in result.stdout
    assert invoke(sandbox, ["--sandbox", "history", "--json"]).stdout == before


def test_revoke_previous_then_history_lists_it_first(sandbox: Sandbox) -> None:
    wait_for_idle(sandbox)
    set_previous(sandbox, generate_token())

    revoked = invoke(sandbox, ["--sandbox", "revoke", "previous", "--wait"])
    human = invoke(sandbox, ["--sandbox", "history"])
    as_json = invoke(sandbox, ["--sandbox", "history", "--limit", "2", "--json"])

    assert revoked.exit_code == 0, revoked.stderr
    assert "no legitimate request is refused" in revoked.stdout
    assert document(sandbox).previous is None
    assert human.exit_code == 0 and "revoke previous" in human.stdout
    runs = json.loads(as_json.stdout)["executions"]
    assert 1 <= len(runs) <= 2
    assert (runs[0]["mode"], runs[0]["revoke"], runs[0]["status"]) == (
        "revoke",
        "previous",
        "SUCCEEDED",
    )
    assert runs[0]["started_at"] >= runs[-1]["started_at"]


def test_rotate_hint_reattaches_with_watch_as_pasted(sandbox: Sandbox) -> None:
    # Given a rotation started without --wait, and the command its hint gives
    started = invoke(sandbox, ["--sandbox", "rotate"])
    assert started.exit_code == 0, started.stderr
    hint = started.stdout.split("follow it with `", 1)[1].split("`", 1)[0]
    name = started.stdout.split("started rotate: ", 1)[1].split()[0]
    assert hint == f"originlock --sandbox watch {name}"

    # When it is run as it is
    watched = invoke(sandbox, shlex.split(hint)[1:])

    # Then it follows that execution to its end, as --wait does
    assert watched.exit_code == 0, watched.stderr
    assert f"rotate: {name}" in watched.stdout
    assert "✓ Promote" in watched.stdout and f"{name} SUCCEEDED" in watched.stdout


def test_a_rotation_already_running_is_refused_in_one_line(sandbox: Sandbox) -> None:
    first = invoke(sandbox, ["--sandbox", "rotate", "--json"])
    assert first.exit_code == 0, first.stderr
    try:
        second = invoke(sandbox, ["--sandbox", "rotate"])
        status = json.loads(invoke(sandbox, ["--sandbox", "status", "--json"]).stdout)
    finally:
        wait_for_idle(sandbox)

    assert "already running" in one_error_line(second)
    assert second.exit_code == 1
    assert status["running_execution"]["name"] == json.loads(first.stdout)["name"]


def test_a_failed_execution_exits_non_zero_with_the_step_and_cause(sandbox: Sandbox) -> None:
    assert sandbox.lambdas is not None
    sandbox.lambdas.crash_steps["stage"] = "before"

    result = invoke(sandbox, ["--sandbox", "rotate", "--wait"])

    line = one_error_line(result)
    assert "FAILED" in line and "at step Stage" in line and "SandboxCrashError" in line
    assert "Stage" in result.stdout


def test_stack_outputs_resolve_the_same_deployment(sandbox: Sandbox) -> None:
    args = ["--endpoint-url", sandbox.endpoint_url, "--stack", "originlock-sandbox"]

    result = invoke(sandbox, [*args, "status", "--json"])

    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["target"].startswith("stack originlock-sandbox")
    assert data["state_machine"] == sandbox.state_machine_arn
    assert data["distribution"]["id"] == sandbox.distribution_id


def test_a_stack_that_does_not_exist_is_one_line(sandbox: Sandbox) -> None:
    args = ["--endpoint-url", sandbox.endpoint_url, "--stack", "nope", "status"]

    result = invoke(sandbox, args)

    assert one_error_line(result) == "error: stack nope not found in us-east-1"


def test_the_installed_command_works_outside_the_checkout(sandbox: Sandbox, tmp_path: Path) -> None:
    # Given the console script `make` runs, started from elsewhere, without pytest's paths
    command = Path(sys.executable).with_name("originlock")
    if not command.exists():
        pytest.skip("the console script is not installed in this environment")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "AWS_ENDPOINT_URL")}

    # When it asks the sandbox (found through the state file) for its status
    done = subprocess.run(
        [str(command), "--sandbox", "status", "--json"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    # Then it answers like the in-process CLI
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["state_machine"] == sandbox.state_machine_arn
