"""``originlock doctor`` finds what would stop a first ``cdk deploy``, and says what to run.

moto 5.2.5 answers STS, SSM parameters, CloudFormation and Lambda's function concurrency, so
the bootstrap checks and a redeploy's existing reservation run against it. It implements
neither Lambda's ``GetAccountSettings`` nor SSM's ``GetServiceSetting``: those two answers come
from an in-memory :class:`FakeAccountSettings` through the ``AccountSettings`` port, and the
boto3 adapter for them is checked against botocore's ``Stubber`` (which validates the
response shapes against the service model).
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws
from typer.testing import CliRunner

from originlock import doctor
from originlock.cli import app
from originlock.doctor import (
    FAIL,
    OK,
    UNKNOWN,
    WARN,
    AwsAccount,
    AwsAccountSettings,
    CannotTell,
    Concurrency,
    DeploySettings,
    diagnose,
)
from originlock.errors import OriginlockError

ACCOUNT = "123456789012"  # moto's
REGION = "eu-west-1"
ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
}


@dataclass
class FakeAccountSettings:
    """The account settings moto does not implement, in memory."""

    total: int = 1000
    unreserved: int = 1000
    high_throughput_on: bool = False
    denied: set[str] = field(default_factory=set)

    def lambda_concurrency(self, region: str) -> Concurrency:
        if "lambda" in self.denied:
            raise CannotTell("AccessDeniedException")
        return Concurrency(self.total, self.unreserved)

    def high_throughput(self, region: str) -> bool:
        if "ssm" in self.denied:
            raise CannotTell("AccessDeniedException")
        return self.high_throughput_on


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    for key in ("AWS_PROFILE", "AWS_REGION", "AWS_ENDPOINT_URL", "ORIGINLOCK_STACK"):
        monkeypatch.delenv(key, raising=False)
    with mock_aws():
        yield boto3.Session(region_name=REGION)


def bootstrap(session: Any, region: str, version: int = 28) -> None:
    session.client("ssm", region_name=region).put_parameter(
        Name="/cdk-bootstrap/hnb659fds/version", Value=str(version), Type="String"
    )


def account(session: Any, **settings: Any) -> AwsAccount:
    return AwsAccount(session, settings=FakeAccountSettings(**settings))


def check(report: doctor.Report, name: str) -> doctor.Check:
    [found] = [c for c in report.checks if c.name == name]
    return found


# -- the bootstrap ------------------------------------------------------------------------------
def test_doctor_bootstrap_in_both_regions_is_ok(aws: Any) -> None:
    bootstrap(aws, REGION)
    bootstrap(aws, "us-east-1")

    report = diagnose(account(aws), DeploySettings(), REGION)

    assert report.ok, report.checks
    assert [c.status for c in report.checks] == [OK] * 6
    assert check(report, "cdk bootstrap eu-west-1").summary == "bootstrap version 28"
    assert check(report, "credentials").summary.startswith(f"account {ACCOUNT} as arn:aws")


def test_doctor_bootstrap_missing_in_us_east_1_blocks_with_the_command(aws: Any) -> None:
    bootstrap(aws, REGION)

    report = diagnose(account(aws), DeploySettings(), REGION)

    found = check(report, "cdk bootstrap us-east-1")
    assert (found.status, found.blocks) == (FAIL, True)
    assert "web ACL" in found.summary
    assert found.command == f"npx --no-install cdk bootstrap aws://{ACCOUNT}/us-east-1"
    assert not report.ok and report.blocking == [found]


def test_doctor_bootstrap_too_old_blocks(aws: Any) -> None:
    bootstrap(aws, REGION, version=5)
    bootstrap(aws, "us-east-1")

    found = check(diagnose(account(aws), DeploySettings(), REGION), "cdk bootstrap eu-west-1")

    assert found.status == FAIL and "version 5" in found.summary
    assert found.command == f"npx --no-install cdk bootstrap aws://{ACCOUNT}/{REGION}"


def test_doctor_without_waf_checks_only_the_deploy_region(aws: Any) -> None:
    bootstrap(aws, REGION)

    report = diagnose(account(aws), DeploySettings(waf_enabled=False), REGION)

    assert report.ok
    assert [c.name for c in report.checks if c.name.startswith("cdk")] == [
        "cdk bootstrap eu-west-1"
    ]


def test_doctor_bootstrap_custom_qualifier_is_looked_up_and_named(aws: Any) -> None:
    aws.client("ssm", region_name=REGION).put_parameter(
        Name="/cdk-bootstrap/team42/version", Value="28", Type="String"
    )

    report = diagnose(account(aws), DeploySettings(qualifier="team42"), REGION)

    assert check(report, "cdk bootstrap eu-west-1").status == OK
    assert check(report, "cdk bootstrap us-east-1").command == (
        f"npx --no-install cdk bootstrap aws://{ACCOUNT}/us-east-1 --qualifier team42"
    )


def test_doctor_bootstrap_read_from_the_toolkit_stack_when_ssm_is_denied(aws: Any) -> None:
    # Given SSM denies the parameter, and the CDKToolkit stack says version 28
    template = {
        "Resources": {
            "Version": {
                "Type": "AWS::SSM::Parameter",
                "Properties": {"Name": "/toolkit-marker", "Type": "String", "Value": "28"},
            }
        },
        "Outputs": {"BootstrapVersion": {"Value": "28"}},
    }
    aws.client("cloudformation", region_name=REGION).create_stack(
        StackName="CDKToolkit", TemplateBody=json.dumps(template)
    )
    subject = account(aws)
    stubber = Stubber(subject.client("ssm", REGION))
    stubber.add_client_error("get_parameter", "AccessDeniedException", http_status_code=400)

    with stubber:
        version = subject.bootstrap_version(REGION, "hnb659fds")

    assert version == 28


# -- Lambda's concurrency ------------------------------------------------------------------------
def test_doctor_no_reservation_is_ok_on_a_normal_account(aws: Any) -> None:
    found = check(diagnose(account(aws), DeploySettings(), REGION), "lambda concurrency")

    assert found.status == OK
    assert found.summary == "no reservation asked (1000 in all, 1000 unreserved, in eu-west-1)"


def test_doctor_reservation_on_a_new_account_blocks_with_both_ways_out(aws: Any) -> None:
    # Given a new account (50 in all) and a stack that asks for 50
    subject = account(aws, total=50, unreserved=50)

    found = check(
        diagnose(subject, DeploySettings(reserved_concurrency=50), REGION), "lambda concurrency"
    )

    assert found.status == FAIL
    assert "would leave 0 unreserved" in found.summary
    assert "set authorizerReservedConcurrency to 0 (no reservation)" in found.summary
    assert found.command == (
        "aws service-quotas request-service-quota-increase --service-code lambda "
        f"--quota-code L-B99A9384 --desired-value 1000 --region {REGION}"
    )


def test_doctor_reservation_that_leaves_100_is_ok(aws: Any) -> None:
    subject = account(aws, total=1000, unreserved=150)

    found = check(
        diagnose(subject, DeploySettings(reserved_concurrency=50), REGION), "lambda concurrency"
    )

    assert found.status == OK and "leaves 100 unreserved" in found.summary
    tight = check(
        diagnose(subject, DeploySettings(reserved_concurrency=60), REGION), "lambda concurrency"
    )
    assert tight.status == FAIL
    assert "to 50 or less (cdk.json, or -c authorizerReservedConcurrency=50)" in tight.summary


def test_doctor_counts_what_the_stack_already_reserves(aws: Any) -> None:
    # Given a deployed stack whose authorizer already reserves 50 (150 left unreserved of 200)
    iam = aws.client("iam")
    role = iam.create_role(RoleName="authorizer", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as archive:
        archive.writestr("handler.py", "def handler(event, context):\n    return {}\n")
    lam = aws.client("lambda", region_name=REGION)
    lam.create_function(
        FunctionName="Originlock-Authorizer",
        Runtime="python3.13",
        Role=role,
        Handler="handler.handler",
        Code={"ZipFile": code.getvalue()},
    )
    lam.put_function_concurrency(
        FunctionName="Originlock-Authorizer", ReservedConcurrentExecutions=50
    )
    template = {
        "Resources": {
            "Marker": {
                "Type": "AWS::SSM::Parameter",
                "Properties": {"Name": "/marker", "Type": "String", "Value": "-"},
            }
        },
        "Outputs": {"AuthorizerFunctionName": {"Value": "Originlock-Authorizer"}},
    }
    aws.client("cloudformation", region_name=REGION).create_stack(
        StackName="Originlock", TemplateBody=json.dumps(template)
    )
    subject = account(aws, total=200, unreserved=150)

    # When a redeploy asks for 50 again (150 + 50 held - 50 = 150 >= 100), or for 100
    again = diagnose(subject, DeploySettings(reserved_concurrency=50), REGION)
    more = diagnose(subject, DeploySettings(reserved_concurrency=100), REGION)

    # Then the reservation it holds counts as available
    assert check(again, "lambda concurrency").status == OK
    assert "leaves 150 unreserved" in check(again, "lambda concurrency").summary
    assert check(more, "lambda concurrency").status == OK
    assert subject.reserved_by_stack(REGION, "Originlock") == 50
    assert subject.reserved_by_stack(REGION, "NoSuchStack") == 0


def test_doctor_tiny_account_without_reservation_warns_but_does_not_block(aws: Any) -> None:
    report = diagnose(account(aws, total=10, unreserved=10), DeploySettings(), REGION)

    found = check(report, "lambda concurrency")
    assert (found.status, found.blocks) == (WARN, False)
    assert "at most 10 Lambda executions at once" in found.summary
    assert found.command is not None and "L-B99A9384" in found.command


def test_doctor_denied_reads_are_unknown_not_blocking(aws: Any) -> None:
    bootstrap(aws, REGION)
    bootstrap(aws, "us-east-1")

    report = diagnose(account(aws, denied={"lambda", "ssm"}), DeploySettings(), REGION)

    assert report.ok
    assert check(report, "lambda concurrency").status == UNKNOWN
    assert "less than 100 unreserved" in check(report, "lambda concurrency").summary
    assert check(report, "parameter store throughput").status == UNKNOWN


# -- Parameter Store ------------------------------------------------------------------------------
def test_doctor_parameter_store_throughput_is_reported_with_the_command(aws: Any) -> None:
    standard = check(diagnose(account(aws), DeploySettings(), REGION), "parameter store throughput")
    high = check(
        diagnose(account(aws, high_throughput_on=True), DeploySettings(), REGION),
        "parameter store throughput",
    )

    assert standard.status == OK and "40 GetParameter/s shared" in standard.summary
    assert standard.command == (
        "aws ssm update-service-setting --setting-id "
        f"arn:aws:ssm:{REGION}:{ACCOUNT}:servicesetting/ssm/parameter-store/high-throughput-enabled"
        f" --setting-value true --region {REGION}"
    )
    assert high.status == OK and high.command is None


def test_doctor_account_settings_adapter_reads_aws_answers(aws: Any) -> None:
    # The boto3 adapter of the two calls moto lacks, against botocore's validated stubs
    clients = {
        "lambda": boto3.client("lambda", region_name=REGION),
        "ssm": boto3.client("ssm", region_name=REGION),
    }
    adapter = AwsAccountSettings(lambda service, region: clients[service])
    limits = {
        "TotalCodeSize": 80530636800,
        "CodeSizeUnzipped": 262144000,
        "CodeSizeZipped": 52428800,
        "ConcurrentExecutions": 50,
        "UnreservedConcurrentExecutions": 40,
    }
    setting = {
        "SettingId": "/ssm/parameter-store/high-throughput-enabled",
        "SettingValue": "true",
        "Status": "Default",
    }
    with Stubber(clients["lambda"]) as lam, Stubber(clients["ssm"]) as ssm:
        lam.add_response("get_account_settings", {"AccountLimit": limits, "AccountUsage": {}})
        ssm.add_response(
            "get_service_setting",
            {"ServiceSetting": setting},
            {"SettingId": "/ssm/parameter-store/high-throughput-enabled"},
        )
        lam.add_client_error("get_account_settings", "AccessDeniedException", http_status_code=403)

        assert adapter.lambda_concurrency(REGION) == Concurrency(50, 40)
        assert adapter.high_throughput(REGION) is True
        with pytest.raises(CannotTell, match="AccessDeniedException"):
            adapter.lambda_concurrency(REGION)


# -- the account ----------------------------------------------------------------------------------
def test_doctor_context_for_another_account_blocks(aws: Any) -> None:
    bootstrap(aws, REGION)
    bootstrap(aws, "us-east-1")

    report = diagnose(account(aws), DeploySettings(account="999999999999"), REGION)

    found = check(report, "credentials")
    assert found.status == FAIL and "deploys to account 999999999999" in found.summary


# -- settings -------------------------------------------------------------------------------------
def test_doctor_settings_come_from_cdk_json_then_context_overrides(tmp_path: Path) -> None:
    cdk_json = tmp_path / "cdk.json"
    context = {
        "stackName": "Staging",
        "region": "eu-central-1",
        "authorizerReservedConcurrency": 20,
        "wafEnabled": True,
        "@aws-cdk/core:bootstrapQualifier": "team42",
    }
    cdk_json.write_text(json.dumps({"app": "x", "context": context}))

    settings = DeploySettings.load(
        cdk_json, {"authorizerReservedConcurrency": "50", "wafEnabled": "false"}
    )

    assert (settings.stack_name, settings.region, settings.qualifier) == (
        "Staging",
        "eu-central-1",
        "team42",
    )
    assert (settings.reserved_concurrency, settings.waf_enabled) == (50, False)
    assert DeploySettings.load(tmp_path / "none.json", {}) == DeploySettings(
        source="defaults (no cdk.json)"
    )


def test_doctor_settings_in_attach_mode_need_no_us_east_1_stack(tmp_path: Path) -> None:
    # Given cdk.json as it ships (WAF on) and attach mode asked on the command line
    cdk_json = tmp_path / "cdk.json"
    cdk_json.write_text(json.dumps({"app": "x", "context": {"wafEnabled": True}}))

    settings = DeploySettings.load(cdk_json, {"attach": "true"})

    # Then no web ACL stack is deployed, so us-east-1's bootstrap is not a prerequisite
    assert settings.waf_enabled is False
    assert DeploySettings.load(cdk_json, {}).waf_enabled is True


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"authorizerReservedConcurrency": "many"}, "whole number"),
        ({"authorizerReservedConcurrency": "-1"}, "whole number"),
        ({"wafEnabled": "maybe"}, "true or false"),
    ],
)
def test_doctor_settings_of_the_wrong_type_are_refused(
    overrides: dict[str, str], message: str
) -> None:
    with pytest.raises(OriginlockError, match=message):
        DeploySettings.load(None, overrides)


# -- the command ----------------------------------------------------------------------------
@pytest.fixture
def fake_settings(monkeypatch: pytest.MonkeyPatch) -> FakeAccountSettings:
    """The account settings the command reads, answered in memory (moto lacks both calls)."""
    fake = FakeAccountSettings(total=50, unreserved=50)
    monkeypatch.setattr(doctor, "AwsAccountSettings", lambda _clients: fake)
    return fake


def run_doctor(args: list[str]) -> Any:
    return CliRunner().invoke(app, ["doctor", *args], env=ENV)


def test_doctor_command_blocking_findings_exit_1_with_one_error_line(
    aws: Any, fake_settings: FakeAccountSettings, tmp_path: Path
) -> None:
    # Given a new account, bootstrapped only in eu-west-1, and a cdk.json asking for 50
    bootstrap(aws, REGION)
    cdk_json = tmp_path / "cdk.json"
    cdk_json.write_text(json.dumps({"context": {"authorizerReservedConcurrency": 50}}))

    result = run_doctor(["--cdk-json", str(cdk_json), "--region", REGION])

    # Then one line per check, each problem with the command to run, then one error line
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"originlock doctor: account {ACCOUNT}, region {REGION}")
    assert len(lines) == 1 + 6
    [bootstrap_line] = [line for line in lines if "cdk bootstrap us-east-1" in line]
    assert re.match(r"\s+FAIL\s+cdk bootstrap us-east-1: not bootstrapped", bootstrap_line)
    assert bootstrap_line.endswith(
        f"; run: npx --no-install cdk bootstrap aws://{ACCOUNT}/us-east-1"
    )
    [error] = result.stderr.strip().splitlines()
    assert error == (
        "error: 2 finding(s) would stop a deploy (lambda concurrency, cdk bootstrap us-east-1): "
        f"run the commands above, then `originlock --region {REGION} doctor` again"
    )


def test_doctor_command_json_and_a_clean_account(
    aws: Any, fake_settings: FakeAccountSettings, tmp_path: Path
) -> None:
    bootstrap(aws, REGION)
    bootstrap(aws, "us-east-1")
    fake_settings.total = fake_settings.unreserved = 1000

    human = run_doctor(["--cdk-json", str(tmp_path / "none.json")])
    as_json = run_doctor(["--json", "-c", "authorizerReservedConcurrency=0"])

    assert human.exit_code == 0, human.stderr
    assert human.stdout.splitlines()[-1] == "nothing found that would stop a deploy"
    assert as_json.exit_code == 0, as_json.stderr
    data = json.loads(as_json.stdout)
    assert data["ok"] is True and data["account"] == ACCOUNT and data["region"] == REGION
    assert {c["name"]: c["status"] for c in data["checks"]} == {
        "credentials": OK,
        "lambda concurrency": OK,
        "authorizer fleet": OK,
        "cdk bootstrap eu-west-1": OK,
        "cdk bootstrap us-east-1": OK,
        "parameter store throughput": OK,
    }


def test_doctor_command_region_comes_from_the_context_first(
    aws: Any, fake_settings: FakeAccountSettings
) -> None:
    result = run_doctor(["--json", "-c", "region=ap-southeast-2", "-c", "wafEnabled=false"])

    assert json.loads(result.stdout)["region"] == "ap-southeast-2"
    assert "cdk bootstrap ap-southeast-2" in result.stderr


def test_doctor_command_refuses_the_sandbox_and_bad_context(aws: Any) -> None:
    sandbox = CliRunner().invoke(app, ["--sandbox", "doctor"], env=ENV)
    bad = run_doctor(["-c", "authorizerReservedConcurrency"])

    assert sandbox.exit_code == 1 and "drop --sandbox" in sandbox.stderr
    assert bad.exit_code == 2 and "is not KEY=VALUE" in bad.stderr


def test_make_deploy_runs_the_doctor_before_cdk_deploy() -> None:
    makefile = (Path(__file__).resolve().parents[2] / "Makefile").read_text()
    recipe = makefile.split("\ndeploy:", 1)[1].split("\n\n", 1)[0]

    doctor_at = recipe.index("originlock doctor")
    assert doctor_at < recipe.index("cdk deploy")


# -- the fleet the SSM budget is planned for ---------------------------------------------------
def test_doctor_fleet_on_a_default_account_matches_the_plan(aws: Any) -> None:
    found = check(diagnose(account(aws), DeploySettings(), REGION), "authorizer fleet")

    assert found.status == OK
    # 1000 instances within 10 reads/s: a max age of 125 s (1000 / (0.8 * 10))
    assert found.summary.startswith("the max age (125 s) keeps a fleet of 1000 within 10 ")


def test_doctor_fleet_beyond_the_plan_warns_with_the_setting_to_use(aws: Any) -> None:
    # Given an account whose concurrency quota was raised to 5000, and no reservation
    report = diagnose(account(aws, total=5000, unreserved=5000), DeploySettings(), REGION)

    found = check(report, "authorizer fleet")
    # Then the doctor warns (5000 / (0.8 * 125) = 50 reads/s, beyond SSM's 40/s) and names the
    # setting, with the max age it would give (5000 / 8 = 625 s)
    assert (found.status, found.blocks) == (WARN, False)
    assert "up to 50.0/s" in found.summary
    assert "set authorizerMaxInstances=5000 (the max age becomes 625 s)" in found.summary


def test_doctor_fleet_counts_the_reservation_not_the_quota(aws: Any) -> None:
    # Given a reservation of 200 on a large account: Lambda never runs more than 200
    subject = account(aws, total=5000, unreserved=5000)
    reserved = check(
        diagnose(subject, DeploySettings(reserved_concurrency=200), REGION), "authorizer fleet"
    )
    # And a plan for fewer instances than the reservation
    smaller = check(
        diagnose(subject, DeploySettings(reserved_concurrency=200, max_instances=50), REGION),
        "authorizer fleet",
    )

    assert reserved.status == OK and "a fleet of 200" in reserved.summary
    assert smaller.status == WARN and "the reservation (200)" in smaller.summary


def test_doctor_fleet_unreadable_quota_is_unknown(aws: Any) -> None:
    found = check(
        diagnose(account(aws, denied={"lambda"}), DeploySettings(), REGION), "authorizer fleet"
    )

    assert (found.status, found.blocks) == (UNKNOWN, False)


def test_doctor_settings_read_the_fleet_plan_from_the_context(tmp_path: Path) -> None:
    cdk_json = tmp_path / "cdk.json"
    cdk_json.write_text(json.dumps({"context": {"authorizerMaxInstances": 3000}}))

    settings = DeploySettings.load(cdk_json, {"ssmReadBudgetPerSecond": "20"})

    assert (settings.planned_fleet, settings.read_budget_per_second) == (3000, 20)
    # 3000 / (0.8 * 20) = 187.5: the max age rounds up
    assert settings.planned_max_age == 188
