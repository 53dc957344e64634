"""Conventional options: ``--version``, ``-h``, the target options on either side of the
command, and hints that name the target. No network: these fail (or answer) before any
request is sent."""

from __future__ import annotations

from importlib.metadata import version

import pytest
from typer.testing import CliRunner, Result

from originlock.cli import app
from originlock.target import TargetOptions
from tests.unit.test_cli_errors import NO_CREDENTIALS, error_line


def run(args: list[str], env: dict[str, str | None] | None = None) -> Result:
    return CliRunner().invoke(app, args, env={**NO_CREDENTIALS, **(env or {})})


def test_cli_version_prints_the_package_version() -> None:
    result = run(["--version"])

    assert result.exit_code == 0
    assert result.stdout == f"originlock {version('originlock')}\n"


@pytest.mark.parametrize("args", [["-h"], ["status", "-h"], ["watch", "-h"], ["doctor", "-h"]])
def test_cli_short_help_is_the_help(args: list[str]) -> None:
    result = run(args)

    assert result.exit_code == 0, result.stderr
    assert "Usage: originlock" in result.stdout


def test_cli_command_help_lists_the_target_options() -> None:
    result = run(["history", "--help"])

    for option in ("--stack", "--sandbox", "--endpoint-url", "--profile", "--region"):
        assert option in result.stdout


@pytest.mark.parametrize(
    "args",
    [
        ["--region", "eu-west-1", "status", "--stack", "OriginLock"],
        ["status", "--stack", "OriginLock", "--region", "eu-west-1"],
        ["--stack", "OriginLock", "status", "--region", "eu-west-1"],
        ["--stack", "OriginLock", "--region", "eu-west-1", "status", "--stack", "OriginLock"],
    ],
)
def test_cli_target_options_work_after_the_command(args: list[str]) -> None:
    # Each form gets as far as the credentials: the stack and the region were both taken
    result = run(args)

    assert "no AWS credentials found" in error_line(result)


def test_cli_target_option_after_the_command_overrides_the_environment() -> None:
    result = run(["rotate", "--region", "eu-west-1"], {"ORIGINLOCK_STACK": "FromEnv"})

    assert "no AWS credentials found" in error_line(result)  # not "which deployment?"


def test_cli_target_option_given_twice_differently_is_a_usage_error() -> None:
    result = run(["--stack", "A", "status", "--stack", "B"])

    assert result.exit_code == 2
    assert error_line(result) == (
        "error: Invalid value for '--stack': given before the command (A) and after it (B): "
        "give it once (see originlock --help)"
    )


def test_cli_sandbox_after_the_command_reaches_the_sandbox(tmp_path: object) -> None:
    result = run(["history", "--sandbox"], {"ORIGINLOCK_SANDBOX_FILE": f"{tmp_path}/none.json"})

    assert "no sandbox is running" in error_line(result)


@pytest.mark.parametrize(
    ("options", "command"),
    [
        (TargetOptions(stack="Originlock"), "originlock --stack Originlock status"),
        (
            TargetOptions(stack="Prod", region="eu-west-1", profile="ops admin"),
            "originlock --stack Prod --region eu-west-1 --profile 'ops admin' status",
        ),
        (TargetOptions(sandbox=True), "originlock --sandbox status"),
        (
            TargetOptions(endpoint_url="http://127.0.0.1:4566"),
            "originlock --endpoint-url http://127.0.0.1:4566 status",
        ),
        (TargetOptions(), "originlock status"),
    ],
)
def test_target_command_is_a_command_line_to_paste(options: TargetOptions, command: str) -> None:
    assert options.command("status") == command
