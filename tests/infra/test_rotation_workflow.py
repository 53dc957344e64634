"""The rotation workflow: the state machine is the file in statemachine/, logged without
execution data and traced; the rotate function's environment and least-privilege role;
the schedule."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from originlock.bundle import asl_file, functions_dir
from originlock.constants import SCHEDULE_INPUT
from rotate.settings import RotateSettings
from tests.infra.conftest import Synth, as_list, flatten, grants, of_type, policy_statements

pytestmark = pytest.mark.infra

PARTITION_REGION_ACCOUNT = "arn:<AWS::Partition>:{service}:eu-west-1:111111111111"


def state_machine(synth: Synth) -> dict[str, Any]:
    [resource] = of_type(synth.json(), "AWS::StepFunctions::StateMachine").values()
    properties: dict[str, Any] = resource["Properties"]
    return properties


def test_state_machine_logs_everything_but_execution_data(synth: Synth) -> None:
    properties = state_machine(synth)
    logging = properties["LoggingConfiguration"]
    assert logging["Level"] == "ALL"
    assert logging["IncludeExecutionData"] is False
    log_group = synth.logical_id(synth.main.rotation.log_group)
    assert logging["Destinations"] == [
        {"CloudWatchLogsLogGroup": {"LogGroupArn": {"Fn::GetAtt": [log_group, "Arn"]}}}
    ]
    assert properties["TracingConfiguration"] == {"Enabled": True}
    assert properties["StateMachineType"] == "STANDARD"
    assert properties["StateMachineName"] == "Originlock-rotation"


def test_state_machine_is_the_file_after_substitution(synth: Synth) -> None:
    # Given the definition CDK staged (an asset) and its substitutions
    properties = state_machine(synth)
    staged = synth.outdir / f"asset.{properties['DefinitionS3Location']['Key']}"
    text = asl_file().read_text()
    # Then the staged definition is the file, byte for byte
    assert staged.read_text() == text
    # And every placeholder of the file is substituted with the rotate function
    rotate = synth.logical_id(synth.main.rotation.rotate.function)
    assert set(re.findall(r"\$\{(\w+)\}", text)) == {"RotateFunctionArn"}
    assert properties["DefinitionSubstitutions"] == {
        "RotateFunctionArn": {"Fn::GetAtt": [rotate, "Arn"]}
    }
    substituted = json.loads(text.replace("${RotateFunctionArn}", "<rotate-function-arn>"))
    tasks = [s for s in substituted["States"].values() if s["Type"] == "Task"]
    assert tasks
    for task in tasks:
        assert task["Resource"] == "arn:aws:states:::lambda:invoke"
        assert task["Parameters"]["FunctionName"] == "<rotate-function-arn>"
    # The execution timeout is the file's own.
    assert substituted["TimeoutSeconds"] > 0


def test_state_machine_may_only_invoke_the_rotate_function(synth: Synth) -> None:
    role = synth.logical_id(synth.main.rotation.state_machine.role)
    granted = grants(synth.json(), role)
    rotate = synth.logical_id(synth.main.rotation.rotate.function)
    assert granted[frozenset({"lambda:InvokeFunction"})] == [f"<{rotate}.Arn>"]
    # The rest is CDK's tracing and log delivery grants, which name no resource.
    others = {
        action
        for actions in granted
        if "lambda:InvokeFunction" not in actions
        for action in actions
    }
    assert {a.split(":")[0] for a in others} == {"xray", "logs"}


def rotate_environment(synth: Synth) -> dict[str, Any]:
    properties = synth.resource(synth.main.rotation.rotate.function)["Properties"]
    variables: dict[str, Any] = properties["Environment"]["Variables"]
    return variables


def test_rotate_waits_as_long_as_the_authorizers_copy_lives(synth: Synth) -> None:
    # The stage wait is derived from the authorizer's max age: both from one setting
    env = rotate_environment(synth)
    props = synth.resource(synth.main.api.authorizer.function)["Properties"]
    authorizer = props["Environment"]["Variables"]
    assert env["AUTHORIZER_MAX_AGE_SECONDS"] == authorizer["TOKEN_CACHE_MAX_AGE_SECONDS"]
    assert (
        env["AUTHORIZER_REFRESH_INTERVAL_SECONDS"]
        == authorizer["TOKEN_REFRESH_MIN_INTERVAL_SECONDS"]
    )


def test_rotate_environment_is_what_its_settings_read(synth: Synth) -> None:
    env = rotate_environment(synth)
    expected = {
        "SSM_PARAMETER_NAME",
        "LOCK_PARAMETER_NAME",
        "DISTRIBUTION_ID",
        "ORIGIN_HEADER_NAME",
        "API_ID",
        "API_STAGE",
        "AUTHORIZER_FUNCTION_NAME",
        "AUTHORIZER_REFRESH_INTERVAL_SECONDS",
        "AUTHORIZER_MAX_AGE_SECONDS",
        "POLL_INTERVAL_SECONDS",
        "DEPLOY_TIMEOUT_SECONDS",
        "DRAIN_SECONDS",
        "PROBE_URL",
        "API_URL",
    }
    assert expected <= set(env)
    source = (functions_dir() / "rotate" / "settings.py").read_text()
    for name in env:
        if not name.startswith("POWERTOOLS_"):
            assert f'"{name}"' in source, f"{name} is not read by rotate/settings.py"
    # Values that resolve at deploy time stand in as text; the rest parse as they are.
    settings = RotateSettings.from_env(
        {name: value if isinstance(value, str) else flatten(value) for name, value in env.items()}
    )
    assert settings.parameter_name == "/originlock/Originlock/origin-token"
    assert settings.lock_parameter_name == "/originlock/Originlock/origin-token.lock"
    assert settings.api_stage == "$default"
    assert settings.drain_seconds == 300
    assert settings.poll_interval_seconds == 30
    assert settings.deploy_timeout_seconds == 1800
    # the authorizer's max age as the SSM read budget sets it; the stage wait follows it
    assert settings.authorizer_max_age == 125
    assert settings.authorizer_refresh_interval == 1
    assert settings.stage_wait_seconds == 125 + 1 + 5
    assert settings.kms_key_id is None
    assert env["DISTRIBUTION_ID"] == {"Ref": synth.logical_id(synth.main.edge.distribution)}
    assert flatten(env["PROBE_URL"]).startswith("https://<")


def test_rotate_gets_the_customer_key(variant: Synth) -> None:
    key = variant.main.token.key
    assert key is not None
    assert rotate_environment(variant)["KMS_KEY_ID"] == {
        "Fn::GetAtt": [variant.logical_id(key), "Arn"]
    }
    granted = grants(variant.json(), variant.logical_id(variant.main.rotation.rotate.role))
    assert granted[frozenset({"kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey"})] == [
        f"<{variant.logical_id(key)}.Arn>"
    ]


def test_rotate_role_is_least_privilege(synth: Synth) -> None:
    rotation = synth.main.rotation
    granted = grants(synth.json(), synth.logical_id(rotation.rotate.role))
    ssm = (
        PARTITION_REGION_ACCOUNT.format(service="ssm")
        + ":parameter/originlock/Originlock/origin-token"
    )
    distribution = synth.logical_id(synth.main.edge.distribution)
    api = synth.logical_id(synth.main.api.api)
    authorizer = synth.logical_id(synth.main.api.authorizer.function)
    logs = synth.logical_id(rotation.rotate.log_group)
    states = PARTITION_REGION_ACCOUNT.format(service="states")
    assert synth.main.edge.log_bucket is not None
    log_bucket = synth.logical_id(synth.main.edge.log_bucket)
    assert granted == {
        frozenset({"logs:CreateLogStream", "logs:PutLogEvents"}): [f"<{logs}.Arn>"],
        frozenset({"ssm:GetParameter", "ssm:PutParameter"}): [ssm],
        # Only the originlock:current-since tag (a condition on the tag keys, below).
        frozenset({"ssm:AddTagsToResource"}): [ssm],
        frozenset({"ssm:GetParameter", "ssm:PutParameter", "ssm:DeleteParameter"}): [f"{ssm}.lock"],
        # Takeover markers are only created (Overwrite=False): never read, never deleted.
        frozenset({"ssm:PutParameter"}): [f"{ssm}.lock.takeover.*"],
        frozenset(
            {
                "cloudfront:GetDistribution",
                "cloudfront:GetDistributionConfig",
                "cloudfront:UpdateDistribution",
            }
        ): [f"arn:<AWS::Partition>:cloudfront::111111111111:distribution/<{distribution}>"],
        frozenset({"apigateway:DELETE"}): [
            f"arn:<AWS::Partition>:apigateway:<AWS::Region>::/apis/<{api}>"
            "/stages/$default/cache/authorizers"
        ],
        frozenset({"lambda:GetFunctionConfiguration", "lambda:UpdateFunctionConfiguration"}): [
            f"<{authorizer}.Arn>"
        ],
        # the lock's holder: running? its step under way? stop it (a revoke preempts it)
        frozenset(
            {"states:DescribeExecution", "states:GetExecutionHistory", "states:StopExecution"}
        ): [f"{states}:execution:Originlock-rotation:*"],
        # CloudFront checks that UpdateDistribution's caller may read the web ACL,
        frozenset({"wafv2:GetWebACL"}): [flatten(web_acl(synth))],
        # and may read and write the log bucket's ACL (its log delivery's grant is there).
        frozenset({"s3:GetBucketAcl", "s3:PutBucketAcl"}): [f"<{log_bucket}.Arn>"],
    }


def test_rotate_gets_no_log_bucket_permission_without_standard_logs(variant: Synth) -> None:
    granted = grants(variant.json(), variant.logical_id(variant.main.rotation.rotate.role))
    assert not [actions for actions in granted if any(a.startswith("s3:") for a in actions)]


def web_acl(synth: Synth) -> Any:
    [distribution] = of_type(synth.json(), "AWS::CloudFront::Distribution").values()
    return distribution["Properties"]["DistributionConfig"]["WebACLId"]


def wafv2_statements(synth: Synth) -> list[dict[str, Any]]:
    role = synth.logical_id(synth.main.rotation.rotate.role)
    return [
        statement
        for statement in policy_statements(synth.json(), role)
        if any(action.startswith("wafv2:") for action in as_list(statement["Action"]))
    ]


@pytest.mark.parametrize("which", ["synth", "defaults"])
def test_rotate_may_read_exactly_the_distributions_web_acl(
    which: str, request: pytest.FixtureRequest
) -> None:
    # Given the web ACL the distribution names: across regions (synth) or a plain export
    synthesized: Synth = request.getfixturevalue(which)
    # Then the rotate role may read that one web ACL, and do nothing else with WAF
    [statement] = wafv2_statements(synthesized)
    assert statement["Action"] == "wafv2:GetWebACL"
    assert statement["Resource"] == web_acl(synthesized)


def test_rotate_gets_no_waf_permission_without_a_web_acl(variant: Synth) -> None:
    assert wafv2_statements(variant) == []


def test_schedule_starts_a_rotation_with_the_documented_input(synth: Synth) -> None:
    [schedule] = of_type(synth.json(), "AWS::Scheduler::Schedule").values()
    properties = schedule["Properties"]
    assert properties["Name"] == "Originlock-rotation"
    assert properties["ScheduleExpression"] == "rate(7 days)"
    assert properties["State"] == "ENABLED"
    target = properties["Target"]
    machine = synth.logical_id(synth.main.rotation.state_machine)
    assert target["Arn"] == {"Ref": machine}
    assert json.loads(target["Input"]) == SCHEDULE_INPUT
    role = target["RoleArn"]["Fn::GetAtt"][0]
    assert grants(synth.json(), role) == {frozenset({"states:StartExecution"}): [f"<{machine}>"]}


def test_cron_schedule(variant: Synth) -> None:
    [schedule] = of_type(variant.json(), "AWS::Scheduler::Schedule").values()
    assert schedule["Properties"]["ScheduleExpression"] == "cron(0 3 ? * MON *)"


def test_rotate_role_may_set_only_the_current_since_tag(synth: Synth) -> None:
    role = synth.logical_id(synth.main.rotation.rotate.role)
    [tagging] = [
        statement
        for statement in policy_statements(synth.json(), role)
        if "ssm:AddTagsToResource" in as_list(statement["Action"])
    ]
    assert tagging["Condition"] == {
        "ForAllValues:StringEquals": {"aws:TagKeys": ["originlock:current-since"]}
    }
