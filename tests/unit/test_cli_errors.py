"""Every error of the CLI is one line on stderr and a non-zero exit, never a traceback.

No network: these fail before any request is sent.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, NoRegionError
from typer.testing import CliRunner, Result

from originlock.cli import app, main
from originlock.errors import RotationRunningError, describe_error

NO_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": None,
    "AWS_SECRET_ACCESS_KEY": None,
    "AWS_SESSION_TOKEN": None,
    "AWS_PROFILE": None,
    "AWS_DEFAULT_PROFILE": None,
    "AWS_CONFIG_FILE": "/dev/null",
    "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": None,
    "AWS_CONTAINER_CREDENTIALS_FULL_URI": None,
    "AWS_WEB_IDENTITY_TOKEN_FILE": None,
    "AWS_ENDPOINT_URL": None,
    "AWS_REGION": None,
    "AWS_DEFAULT_REGION": None,
}


def run(args: list[str], env: Mapping[str, str | None] | None = None) -> Result:
    return CliRunner().invoke(app, args, env={**NO_CREDENTIALS, **(env or {})})


def error_line(result: Result) -> str:
    assert result.exit_code != 0
    assert "Traceback" not in result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


def test_cli_without_credentials_says_so_in_one_line() -> None:
    result = run(["--stack", "OriginLock", "--region", "eu-west-1", "status"])

    assert "no AWS credentials found" in error_line(result)
    assert result.exit_code == 1


def test_cli_without_a_region_says_so_in_one_line() -> None:
    result = run(["--stack", "OriginLock", "status"])

    assert "no AWS region" in error_line(result)


def test_cli_without_a_stack_asks_for_one() -> None:
    result = run(["--region", "eu-west-1", "rotate"])

    assert "--stack" in error_line(result)


def test_cli_unknown_profile_is_one_line() -> None:
    result = run(["--profile", "nobody", "--stack", "OriginLock", "status"])

    assert error_line(result) == "error: AWS profile not found: nobody"


def test_cli_sandbox_not_running_says_how_to_start_it(tmp_path: Path) -> None:
    env = {"ORIGINLOCK_SANDBOX_FILE": str(tmp_path / "none.json")}

    result = run(["--sandbox", "status"], env)

    assert "originlock sandbox" in error_line(result)


def test_cli_sandbox_and_endpoint_url_together_are_refused() -> None:
    result = run(["--sandbox", "--endpoint-url", "http://127.0.0.1:9", "status"])

    assert "use one of them" in error_line(result)


@pytest.mark.parametrize(
    "args",
    [
        ["revoke", "everything"],
        ["revoke"],
        ["rotate", "--now"],
        ["rotation"],
        ["history", "-n"],
        ["demo", "--settings", "{not json"],
        ["demo", "--settings", '{"baseline": "long"}'],
        ["demo", "--settings", '{"no_such_setting": 1}'],
        ["demo", "--settings", '{"timings": {"no_such_timing": 1}}'],
        ["demo", "--settings", '{"timings": {"deploy_window": [1]}}'],
        ["demo", "--settings", '{"timings": {"kvs_propagation": [0.5, "x"]}}'],
        ["demo", "--settings", '{"timings": {"edge_window": 10.5}}'],
        ["demo", "--lock-mode", "signed"],
        ["sandbox", "--lock-mode", "edge"],
    ],
)
def test_cli_bad_arguments_are_one_line_and_exit_2(args: list[str]) -> None:
    result = run(args)

    assert "see originlock --help" in error_line(result)
    assert result.exit_code == 2


def test_cli_main_returns_the_exit_code(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    assert "rotate" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exited:
        main(["revoke", "bogus"])
    assert exited.value.code == 2


def test_describe_error_is_one_line_for_aws_errors() -> None:
    denied = ClientError(
        {"Error": {"Code": "AccessDenied", "Message": "not allowed\nto do this"}}, "StartExecution"
    )

    assert describe_error(denied) == "StartExecution failed: AccessDenied: not allowed to do this"
    assert "no AWS region" in describe_error(NoRegionError())
    assert "cannot reach http://x" in describe_error(
        EndpointConnectionError(endpoint_url="http://x")
    )
    assert describe_error(RotationRunningError("a rotation is already running: r1")) == (
        "a rotation is already running: r1"
    )
    assert describe_error(ValueError("boom")) == "unexpected ValueError: boom"


@pytest.mark.parametrize("command", [["sandbox"], ["demo"]])
def test_cli_without_the_sandbox_extra_names_the_install_command(
    command: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a CLI-only install (`pip install originlock`): moto is not there
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "moto" else real(name, *a)
    )

    line = error_line(run(command))

    assert "moto missing" in line
    assert "pip install 'originlock[sandbox]'" in line
