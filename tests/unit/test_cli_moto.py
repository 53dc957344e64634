"""The operator commands against moto (in process), through ``--stack`` as on AWS: a
CloudFormation stack whose outputs name a state machine and the token parameter.

The state machine is a small one whose runs fail with a hostile error and cause; executions are
started with hostile inputs, as anyone allowed to call ``StartExecution`` could. What the
terminal gets must be text: escaped, never markup, never a control sequence.
"""

from __future__ import annotations

import json
import shlex
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from moto import mock_aws
from typer.testing import CliRunner, Result

from originlock import operations
from originlock.cli import app
from tokens.document import TokenDocument

STACK = "OriginlockTest"
REGION = "us-east-1"
PARAMETER = "/originlock-test/origin-token"
CURRENT = "c" * 43
PREVIOUS = "p" * 43
OSC_TITLE = "\x1b]0;pwned\x07"
CSI = "\x1b[2J\x1b[31m"
# Ends in a Fail state whose error and cause carry control sequences, markup and a newline.
DEFINITION = {
    "StartAt": "Pause",
    "States": {
        "Pause": {"Type": "Wait", "Seconds": 0, "Next": "Failed"},
        "Failed": {
            "Type": "Fail",
            "Error": f"Bad{OSC_TITLE}",
            "Cause": f"[/oops] {CSI}red\x9b\nerror: forged line",
        },
    },
}
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": None,
    "AWS_PROFILE": None,
    "AWS_ENDPOINT_URL": None,
    "ORIGINLOCK_STACK": None,
    "ORIGINLOCK_ENDPOINT_URL": None,
    "ORIGINLOCK_DEBUG": None,
}


@dataclass
class Deployment:
    """What the CLI finds through the stack: the state machine and the parameter."""

    state_machine_arn: str

    def client(self, service: str) -> Any:
        return boto3.client(service, region_name=REGION)

    def cli(self, args: Sequence[str], env: dict[str, str | None] | None = None) -> Result:
        """``originlock ARGS --stack STACK --region REGION`` (the target after the command)."""
        result = CliRunner().invoke(
            app, [*args, "--stack", STACK, "--region", REGION], env={**AWS_ENV, **(env or {})}
        )
        printed = result.stdout + result.stderr
        assert "Traceback" not in printed, printed
        assert CURRENT not in printed and PREVIOUS not in printed
        return result

    def set_document(self, value: str) -> None:
        self.client("ssm").put_parameter(
            Name=PARAMETER, Value=value, Type="SecureString", Overwrite=True
        )

    def start(self, name: str, request: dict[str, Any]) -> str:
        sfn = self.client("stepfunctions")
        arn = sfn.start_execution(
            stateMachineArn=self.state_machine_arn, name=name, input=json.dumps(request)
        )["executionArn"]
        deadline = time.monotonic() + 30
        while sfn.describe_execution(executionArn=arn)["status"] == "RUNNING":
            assert time.monotonic() < deadline, "the execution did not end"
            time.sleep(0.05)
        return str(arn)

    def executions(self) -> list[dict[str, Any]]:
        sfn = self.client("stepfunctions")
        return list(
            sfn.list_executions(stateMachineArn=self.state_machine_arn).get("executions", [])
        )


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[Deployment]:
    for key, value in AWS_ENV.items():
        if value is None:
            monkeypatch.delenv(key, raising=False)
        else:
            monkeypatch.setenv(key, value)
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        arn = boto3.client("stepfunctions", region_name=REGION).create_state_machine(
            name="originlock-test-rotation",
            definition=json.dumps(DEFINITION),
            roleArn="arn:aws:iam::123456789012:role/rotation",
        )["stateMachineArn"]
        template = {
            "Resources": {
                "Marker": {
                    "Type": "AWS::SSM::Parameter",
                    "Properties": {
                        "Name": "/originlock-test/marker",
                        "Type": "String",
                        "Value": "-",
                    },
                },
            },
            "Outputs": {
                "StateMachineArn": {"Value": arn},
                "ParameterName": {"Value": PARAMETER},
            },
        }
        boto3.client("cloudformation", region_name=REGION).create_stack(
            StackName=STACK, TemplateBody=json.dumps(template)
        )
        deployment = Deployment(arn)
        deployment.set_document(
            TokenDocument(current=CURRENT, previous=PREVIOUS, generation=4).to_json()
        )
        yield deployment


def raw_controls(text: str) -> list[str]:
    return [c for c in ("\x1b", "\x07", "\x9b") if c in text]


def one_error_line(result: Result) -> str:
    lines = result.stderr.strip().splitlines()
    assert result.exit_code != 0
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


HOSTILE_REQUEST = {
    "mode": "rotate",
    "trigger": "manual",
    "reason": "\x1b]8;;https://evil.example/\x1b\\click\x1b]8;;\x1b\\",
    "requested_by": f"[/oops] {OSC_TITLE}alice\nerror: forged",
}


# -- hostile text -------------------------------------------------------------------------
def test_history_of_hostile_executions_is_shown_as_text(aws: Deployment) -> None:
    # Given runs started with markup and escape sequences in their input (and a name)
    aws.start("manual-rotate-1", HOSTILE_REQUEST)
    aws.start(f"manual-rotate-{CSI}2", {**HOSTILE_REQUEST, "requested_by": "[bold]x[/bold"})

    # When the operator lists them
    human = aws.cli(["history"])
    as_json = aws.cli(["history", "--json"])

    # Then no MarkupError, nothing the terminal would obey, the strings visible as written
    assert human.exit_code == 0, human.stderr
    assert raw_controls(human.stdout) == []
    assert "[/oops]" in human.stdout and "\\x1b]0;pwned\\x07" in human.stdout
    assert "manual-rotate-\\x1b[2J\\x1b[31m2" in human.stdout
    assert "\\x9b" in human.stdout
    # JSON escapes control characters itself, and says requested_by is not verified
    assert raw_controls(as_json.stdout) == []
    runs = json.loads(as_json.stdout)["executions"]
    assert {run["requested_by"] for run in runs} == {
        HOSTILE_REQUEST["requested_by"],
        "[bold]x[/bold",
    }
    assert all(run["requested_by_verified"] is False for run in runs)


def test_status_with_a_hostile_last_run_is_shown_as_text(aws: Deployment) -> None:
    aws.start("manual-rotate-1", HOSTILE_REQUEST)

    result = aws.cli(["status"])

    assert result.exit_code == 0, result.stderr
    assert raw_controls(result.stdout) == []
    assert "requested by [/oops] \\x1b]0;pwned\\x07alice\\nerror: forged" in result.stdout
    assert "(as given by the caller, not verified)" in result.stdout
    assert not any(line.startswith("error: forged") for line in result.stdout.splitlines())


def test_watch_of_a_hostile_failure_prints_text_and_one_escaped_error_line(
    aws: Deployment,
) -> None:
    aws.start("manual-rotate-1", HOSTILE_REQUEST)

    result = aws.cli(["watch", "manual-rotate-1"])

    # The steps (StepPrinter, not a terminal), then the failure as one escaped line
    assert result.exit_code == 1
    assert raw_controls(result.stdout + result.stderr) == []
    assert "✗ Failed" in result.stdout
    line = one_error_line(result)
    assert "FAILED" in line and "[/oops] \\x1b[2J\\x1b[31mred\\x9b error: forged line" in line


# -- watch ----------------------------------------------------------------------------------
def test_watch_by_name_or_arn_follows_the_same_execution(aws: Deployment) -> None:
    arn = aws.start("manual-rotate-1", {"mode": "rotate"})

    by_name = aws.cli(["watch", "manual-rotate-1", "--json"])
    by_arn = aws.cli(["watch", arn, "--json"])

    assert by_name.exit_code == by_arn.exit_code == 1  # the run failed: as --wait says it
    assert json.loads(by_name.stdout)["execution_arn"] == arn
    assert json.loads(by_name.stdout) == json.loads(by_arn.stdout)
    assert json.loads(by_arn.stdout)["status"] == "FAILED"


def test_watch_without_a_running_execution_says_how_to_name_one(aws: Deployment) -> None:
    result = aws.cli(["watch"])

    line = one_error_line(result)
    assert "no execution is running" in line
    assert f"`originlock --stack {STACK} --region {REGION} history`" in line


def test_watch_of_an_unknown_execution_is_one_line(aws: Deployment) -> None:
    result = aws.cli(["watch", "manual-rotate-nope"])

    assert "no execution manual-rotate-nope" in one_error_line(result)


def test_rotate_hint_can_be_pasted_as_it_is(aws: Deployment) -> None:
    # Given a rotation started without --wait
    started = aws.cli(["rotate"])
    assert started.exit_code == 0, started.stderr

    # Then its hint names the target, and pasted as it is, it follows that execution
    hint = started.stdout.split("follow it with `", 1)[1].split("`", 1)[0]
    name = aws.executions()[0]["name"]
    assert hint == f"originlock --stack {STACK} --region {REGION} watch {name}"
    pasted = CliRunner().invoke(app, shlex.split(hint)[1:], env=AWS_ENV)
    assert f"rotate: {name}" in pasted.stdout and "✗ Failed" in pasted.stdout


def test_wait_interrupted_names_the_watch_command(
    aws: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given Ctrl-C while --wait follows the execution
    def interrupted(*_args: Any, **_kwargs: Any) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr(operations, "watch", interrupted)

    result = aws.cli(["rotate", "--wait"])

    assert result.exit_code == 130
    name = aws.executions()[0]["name"]
    assert one_error_line(result) == (
        f"error: stopped watching {name}; it keeps running: re-attach with "
        f"`originlock --stack {STACK} --region {REGION} watch {name}`"
    )


def test_rotate_refused_while_running_names_the_watch_command(aws: Deployment) -> None:
    # Given an execution that waits (a running rotation)
    sfn = aws.client("stepfunctions")
    waiting = {"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 30, "End": True}}}
    sfn.update_state_machine(stateMachineArn=aws.state_machine_arn, definition=json.dumps(waiting))
    arn = sfn.start_execution(stateMachineArn=aws.state_machine_arn, name="manual-rotate-run")[
        "executionArn"
    ]
    try:
        result = aws.cli(["rotate"])
    finally:
        sfn.stop_execution(executionArn=arn)

    assert (
        f"follow it with `originlock --stack {STACK} --region {REGION} watch manual-rotate-run`"
        in one_error_line(result)
    )


# -- revoke previous with nothing to drop ----------------------------------------------------
def test_revoke_previous_with_an_empty_slot_starts_nothing(aws: Deployment) -> None:
    aws.set_document(TokenDocument(current=CURRENT, generation=5).to_json())

    human = aws.cli(["revoke", "previous"])
    as_json = aws.cli(["revoke", "previous", "--json"])

    assert human.exit_code == 0 and as_json.exit_code == 0, human.stderr + as_json.stderr
    assert "nothing to revoke: the previous slot is empty" in human.stdout
    assert "drops the previous value" not in human.stdout
    data = json.loads(as_json.stdout)
    assert (data["status"], data["execution_arn"]) == ("NOTHING_TO_REVOKE", None)
    assert data["token"]["slots"]["previous"] is False
    assert aws.executions() == []


def test_revoke_previous_reset_starts_the_workflow_with_nothing_to_drop(aws: Deployment) -> None:
    # The runbook's recovery after a failed reset: replace the instances, empty the cache
    aws.set_document(TokenDocument(current=CURRENT, generation=5).to_json())

    result = aws.cli(["revoke", "previous", "--reset", "--json"])

    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["status"] == "RUNNING"
    assert len(aws.executions()) == 1


def test_revoke_previous_with_a_value_starts_the_workflow(aws: Deployment) -> None:
    result = aws.cli(["revoke", "previous", "--json"])

    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["status"] == "RUNNING"
    assert [e["name"] for e in aws.executions()] == [json.loads(result.stdout)["name"]]


# -- a document that is not one ----------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "reason"),
    [
        # Within SSM's 8 KB, deeper than Python's recursion limit
        ('{"format": 1, "current": ' + "[" * 4000 + "]" * 4000 + "}", ""),
        ('{"format": 1, "current": ' + '{"a":' * 1200 + "1" + "}" * 1201, ""),
        ('{"format": 1, "generation": ' + "9" * 5000 + "}", ""),
        ("{" + " " * 8200 + "}", "characters"),
        ('{"format": 1, "current": null}', "accepts no value"),
    ],
    ids=["nested-arrays", "nested-objects", "huge-number", "too-long", "empty"],
)
def test_status_of_a_document_that_is_not_one_is_one_line(
    aws: Deployment, value: str, reason: str
) -> None:
    aws.set_document(value)

    result = aws.cli(["status"])

    line = one_error_line(result)
    assert f"parameter {PARAMETER} does not hold a token document" in line
    assert reason in line
    assert len(line) < 300


# -- the region ---------------------------------------------------------------------------------
@pytest.mark.parametrize("variable", ["AWS_REGION", "AWS_DEFAULT_REGION"])
def test_either_region_variable_is_honoured(aws: Deployment, variable: str) -> None:
    env: dict[str, str | None] = {"AWS_REGION": None, "AWS_DEFAULT_REGION": None, variable: REGION}

    result = CliRunner().invoke(app, ["status", "--stack", STACK, "--json"], env={**AWS_ENV, **env})

    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["target"] == f"stack {STACK} ({REGION})"


def test_aws_region_wins_over_aws_default_region(aws: Deployment) -> None:
    env = {**AWS_ENV, "AWS_REGION": REGION, "AWS_DEFAULT_REGION": "eu-west-1"}

    result = CliRunner().invoke(app, ["status", "--stack", STACK, "--json"], env=env)

    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["target"] == f"stack {STACK} ({REGION})"
