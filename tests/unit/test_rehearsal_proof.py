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
    EDGE_TABLE,
    END,
    Grant,
    Row,
    committed_table,
    grants,
    roles_differing,
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


def test_roles_differing_names_new_roles_and_roles_granted_otherwise() -> None:
    def grant(role: str, action: str, resource: str = "<store>", statement: int = 0) -> Grant:
        return Grant(role, f"{role}Policy", statement, action, resource)

    header = [
        grant("Rotation/Rotate/Role", "ssm:GetParameter"),
        grant("Rotation/Rotate/Role", "cloudfront:UpdateDistribution"),
        grant("LockdownApi/Authorizer/Role", "ssm:GetParameter"),
        grant("Edge/OriginHeaderValue/Provider/Role", "ssm:GetParameter"),
        grant("Monitoring/TokenAgeProbe/Role", "ssm:DescribeParameters", "*"),
    ]
    edge = [
        # The same actions on the same resources, in another statement: not a difference
        grant("LockdownApi/Authorizer/Role", "ssm:GetParameter", statement=3),
        # An action swapped for another
        grant("Rotation/Rotate/Role", "ssm:GetParameter"),
        grant("Rotation/Rotate/Role", "cloudfront-keyvaluestore:UpdateKeys"),
        # A role header mode has not
        grant("EdgeSigning/Provider/Role", "cloudfront-keyvaluestore:GetKey"),
        # The same action on another resource
        grant("Monitoring/TokenAgeProbe/Role", "ssm:DescribeParameters", "<parameter>"),
    ]
    # A role only header mode has (the drift guard's) is not edge-signed mode's to prove
    assert roles_differing(header, edge) == [
        "EdgeSigning/Provider/Role",
        "Monitoring/TokenAgeProbe/Role",
        "Rotation/Rotate/Role",
    ]
    assert roles_differing(header, header) == []


def test_the_two_tables_are_written_between_their_own_markers(tmp_path: Path) -> None:
    document = tmp_path / "security.md"
    begin, end = EDGE_TABLE
    document.write_text(f"{BEGIN}\nheader rows\n{END}\n\n{begin}\n{end}\n")
    assert write_table(document, "edge rows", EDGE_TABLE) is True
    assert committed_table(document, EDGE_TABLE) == "edge rows"
    assert committed_table(document) == "header rows"
    assert write_table(document, "new header rows") is True
    assert committed_table(document, EDGE_TABLE) == "edge rows"
    document.write_text(f"{BEGIN}\nheader rows\n{END}\n")
    assert committed_table(document, EDGE_TABLE) == ""
    with pytest.raises(RehearsalError):
        write_table(document, "edge rows", EDGE_TABLE)


def test_the_kvs_host_of_an_account_resolves_to_loopback_and_nothing_else() -> None:
    import importlib.util
    import socket

    from rehearsal.emulator import LAMBDA_SITE

    spec = importlib.util.spec_from_file_location(
        "site_under_test", LAMBDA_SITE / "sitecustomize.py"
    )
    assert spec is not None and spec.loader is not None
    saved = socket.getaddrinfo
    try:
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)  # installs it
        assert socket.getaddrinfo is not saved
        module.install()  # a second time changes nothing
        [(*_, address)] = socket.getaddrinfo("000000000000.127.0.0.1", 443, type=socket.SOCK_STREAM)
        assert address[0] == "127.0.0.1"
        assert module.ACCOUNT_HOST.match("123456789012.127.0.0.1")
        for other in ("000000000000.localhost", "x000000000000.127.0.0.1", "000.127.0.0.1"):
            assert not module.ACCOUNT_HOST.match(other), other
        with pytest.raises(socket.gaierror):
            socket.getaddrinfo("000000000000.invalid", 443)
    finally:
        socket.getaddrinfo = saved
