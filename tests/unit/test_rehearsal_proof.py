"""The least-privilege proof's bookkeeping, without ministack: which actions there are, how one
is removed, how the table reads and where it is written. (The proof itself runs in
``make rehearse``.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from rehearsal.errors import RehearsalError
from rehearsal.exercises import stable
from rehearsal.least_privilege import (
    BEGIN,
    END,
    Grant,
    Row,
    committed_table,
    grants,
    table,
    without,
    write_table,
)


def _template() -> dict[str, Any]:
    def path(p: str) -> dict[str, Any]:
        return {"aws:cdk:path": f"Originlock/{p}"}

    return {
        "Resources": {
            "RotateRole1": {
                "Type": "AWS::IAM::Role",
                "Metadata": path("Rotation/Rotate/Role/Resource"),
            },
            "Dist1": {
                "Type": "AWS::CloudFront::Distribution",
                "Metadata": path("Edge/Distribution"),
            },
            "SchedRole": {
                "Type": "AWS::IAM::Role",
                "Metadata": path("SchedulerRoleForTarget-595f00/Resource"),
            },
            "RotatePolicy": {
                "Type": "AWS::IAM::Policy",
                "Properties": {
                    "PolicyName": "RotatePolicy",
                    "Roles": [{"Ref": "RotateRole1"}],
                    "PolicyDocument": {
                        "Statement": [
                            {
                                "Action": ["ssm:GetParameter", "ssm:PutParameter"],
                                "Effect": "Allow",
                                "Resource": {
                                    "Fn::Join": [
                                        "",
                                        [
                                            "arn:",
                                            {"Ref": "AWS::Partition"},
                                            ":ssm:us-east-1:",
                                            {"Ref": "AWS::AccountId"},
                                            ":parameter/p",
                                        ],
                                    ]
                                },
                            },
                            {
                                "Action": "cloudfront:UpdateDistribution",
                                "Effect": "Allow",
                                "Resource": {
                                    "Fn::Join": [
                                        "",
                                        [
                                            "arn:aws:cloudfront::123456789012:distribution/",
                                            {"Ref": "Dist1"},
                                        ],
                                    ]
                                },
                            },
                        ]
                    },
                },
            },
            "SchedPolicy": {
                "Type": "AWS::IAM::Policy",
                "Properties": {
                    "PolicyName": "SchedPolicy",
                    "Roles": [{"Ref": "SchedRole"}],
                    "PolicyDocument": {
                        "Statement": [
                            {
                                "Action": "states:StartExecution",
                                "Effect": "Allow",
                                "Resource": {"Ref": "Dist1"},
                                "Condition": {"StringEquals": {"k": "v"}},
                            }
                        ]
                    },
                },
            },
        }
    }


def test_grants_lists_every_action_of_every_statement_run_independently() -> None:
    found = grants(_template())
    assert [(g.role, g.statement, g.action) for g in found] == [
        ("Rotation/Rotate/Role", 0, "ssm:GetParameter"),
        ("Rotation/Rotate/Role", 0, "ssm:PutParameter"),
        ("Rotation/Rotate/Role", 1, "cloudfront:UpdateDistribution"),
        ("SchedulerRoleForTarget", 0, "states:StartExecution"),
    ]
    # Account and region never show: the table is the same for every run.
    assert found[0].resource == "arn:aws:ssm:<region>:<account>:parameter/p"
    assert found[2].resource == "arn:aws:cloudfront::<account>:distribution/<Edge/Distribution>"
    assert found[3].resource == '<Edge/Distribution> if {"StringEquals": {"k": "v"}}'


def test_without_removes_one_action_and_then_the_empty_statement() -> None:
    document = _template()["Resources"]["RotatePolicy"]["Properties"]["PolicyDocument"]
    one_less = without(document, 0, "ssm:PutParameter")
    assert one_less["Statement"][0]["Action"] == "ssm:GetParameter"
    assert len(one_less["Statement"]) == 2
    assert document["Statement"][0]["Action"] == ["ssm:GetParameter", "ssm:PutParameter"]
    none_left = without(document, 1, "cloudfront:UpdateDistribution")
    assert len(none_left["Statement"]) == 1
    with pytest.raises(RehearsalError):
        without(document, 1, "ssm:GetParameter")


def test_table_rows_and_the_document_markers(tmp_path: Path) -> None:
    grant = Grant("Rotation/Rotate/Role", "P", 0, "ssm:GetParameter", "arn:a|b")
    text = table([Row(grant, "rotate step stage: reading the token parameter: AccessDenied")])
    assert text.splitlines()[2] == (
        "| `Rotation/Rotate/Role` | `ssm:GetParameter` | `arn:a\\|b` "
        "| rotate step stage: reading the token parameter: AccessDenied |"
    )
    document = tmp_path / "security.md"
    document.write_text(f"# head\n\n{BEGIN}\nold\n{END}\n\ntail\n")
    assert write_table(document, text) is True
    assert committed_table(document) == text
    assert document.read_text().startswith("# head\n") and document.read_text().endswith("tail\n")
    assert write_table(document, text) is False
    document.write_text("no markers\n")
    with pytest.raises(RehearsalError):
        write_table(document, text)


def test_stable_keeps_the_operation_and_code_and_drops_what_changes() -> None:
    raw = (
        "Runtime.HandlerError: An error occurred (AccessDeniedException) when calling the "
        "DescribeParameters operation: User: arn:aws:sts::000000000000:assumed-role/R/F is "
        "not authorized"
    )
    assert stable(raw) == "DescribeParameters AccessDeniedException"
    assert stable("lock: AccessDeniedException") == "lock: AccessDeniedException"
    assert stable("no lock on arn:aws:states:us-east-1:0:execution:x:y") == "no lock on <arn>"
