"""Alarms into one SNS topic, and the token-age probe behind the staleness alarm."""

from __future__ import annotations

from typing import Any

import pytest

from tests.infra.conftest import Synth, grants, of_type

pytestmark = pytest.mark.infra


def alarms(synth: Synth) -> dict[str, dict[str, Any]]:
    found = of_type(synth.json(), "AWS::CloudWatch::Alarm").values()
    return {alarm["Properties"]["MetricName"]: alarm["Properties"] for alarm in found}


def test_alarms_watch_rotation_token_age_and_authorizer(synth: Synth) -> None:
    found = alarms(synth)
    assert set(found) == {
        "ExecutionsFailed",
        "ExecutionsTimedOut",
        "TokenAgeSeconds",
        "Denied",
        "Errors",
    }
    machine = {"Ref": synth.logical_id(synth.main.rotation.state_machine)}
    for name in ("ExecutionsFailed", "ExecutionsTimedOut"):
        assert found[name]["Namespace"] == "AWS/States"
        assert found[name]["Dimensions"] == [{"Name": "StateMachineArn", "Value": machine}]
    denied = found["Denied"]
    assert denied["Namespace"] == "originlock"
    assert denied["Dimensions"] == [{"Name": "service", "Value": "authorizer"}]
    errors = found["Errors"]
    assert errors["Namespace"] == "AWS/Lambda"
    function = synth.logical_id(synth.main.api.authorizer.function)
    assert errors["Dimensions"] == [{"Name": "FunctionName", "Value": {"Ref": function}}]


def test_token_age_alarm_is_twice_the_schedule_and_fires_without_data(synth: Synth) -> None:
    age = alarms(synth)["TokenAgeSeconds"]
    assert age["Threshold"] == 2 * 7 * 86400
    assert age["ComparisonOperator"] == "GreaterThanThreshold"
    assert age["TreatMissingData"] == "breaching"
    assert age["Dimensions"] == [{"Name": "service", "Value": "token-age"}]


def test_token_age_threshold_for_a_cron_schedule_comes_from_context(variant: Synth) -> None:
    assert alarms(variant)["TokenAgeSeconds"]["Threshold"] == 1209600


def test_every_alarm_notifies_the_topic(synth: Synth) -> None:
    topic = {"Ref": synth.logical_id(synth.main.monitoring.topic)}
    for alarm in alarms(synth).values():
        assert alarm["AlarmActions"] == [topic]
        assert alarm["OKActions"] == [topic]
    [subscription] = of_type(synth.json(), "AWS::SNS::Subscription").values()
    assert subscription["Properties"]["Protocol"] == "email"
    assert subscription["Properties"]["Endpoint"] == "ops@example.com"


def test_no_email_no_subscription(variant: Synth) -> None:
    assert not of_type(variant.json(), "AWS::SNS::Subscription")


def test_token_age_probe_reads_metadata_only(synth: Synth) -> None:
    probe = synth.main.monitoring.probe
    function = synth.resource(probe.function)["Properties"]
    assert function["Handler"] == "provision.token_age.lambda_handler"
    granted = grants(synth.json(), synth.logical_id(probe.role))
    logs = synth.logical_id(probe.log_group)
    assert granted == {
        frozenset({"logs:CreateLogStream", "logs:PutLogEvents"}): [f"<{logs}.Arn>"],
        # No GetParameter: the probe never sees the value.
        frozenset({"ssm:DescribeParameters"}): ["*"],
        frozenset({"ssm:ListTagsForResource"}): [
            "arn:<AWS::Partition>:ssm:eu-west-1:111111111111:parameter/originlock/Originlock/origin-token"
        ],
    }
    [rule] = of_type(synth.json(), "AWS::Events::Rule").values()
    assert rule["Properties"]["ScheduleExpression"] == "rate(30 minutes)"


def test_dashboard_exists(synth: Synth) -> None:
    assert of_type(synth.json(), "AWS::CloudWatch::Dashboard")


def test_the_tag_name_is_the_one_the_functions_use() -> None:
    from originlock.constants import CURRENT_SINCE_TAG
    from tokens.document import CURRENT_SINCE_TAG as FUNCTIONS_TAG

    assert CURRENT_SINCE_TAG == FUNCTIONS_TAG
