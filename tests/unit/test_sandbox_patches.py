"""The sandbox's patches of moto: those that come off do so whole (tests that use moto after a
sandbox stopped, in the same process, see moto as it is), and those that stay make moto answer
as AWS does."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from originlock.sandbox.harness import (
    CloudFrontEdges,
    create_distribution,
    install_execution_history_pages,
)

HEADER = "x-cf-api-gateway-token"


@pytest.fixture
def cloudfront(aws: None) -> Iterator[Any]:
    with mock_aws():
        yield boto3.client("cloudfront")


def test_a_sandbox_that_stopped_leaves_cloudfront_as_moto_has_it(cloudfront: Any) -> None:
    # Given the sandbox's CloudFront edges installed into moto, then removed (a sandbox or a
    # statemachine test that ended earlier in this process)
    edges = CloudFrontEdges()
    edges.install()
    edges.uninstall()

    # Then a distribution reports its status again (the patch had left Status out for good)
    created = create_distribution(cloudfront, "api.example.com", HEADER, "value")
    assert cloudfront.get_distribution(Id=created["Id"])["Distribution"]["Status"]


def test_the_sandbox_lists_an_execution_history_latest_first_and_in_pages(aws: None) -> None:
    # Given the sandbox's Step Functions (moto 5.2.5 ignores reverseOrder, maxResults and
    # nextToken) and an execution with a history
    install_execution_history_pages()
    with mock_aws():
        sfn = boto3.client("stepfunctions")
        definition = '{"StartAt": "A", "States": {"A": {"Type": "Pass", "End": true}}}'
        role = "arn:aws:iam::123456789012:role/unused"
        machine = sfn.create_state_machine(name="history", definition=definition, roleArn=role)
        arn = sfn.start_execution(stateMachineArn=machine["stateMachineArn"])["executionArn"]
        ids = [e["id"] for e in sfn.get_execution_history(executionArn=arn)["events"]]
        assert len(ids) > 2 and ids == sorted(ids)

        # Then reverseOrder lists the latest events first, maxResults bounds the page and
        # nextToken goes on from there, as AWS answers (a revoke reads the latest events of
        # the execution it preempts)
        latest = sfn.get_execution_history(executionArn=arn, reverseOrder=True, maxResults=2)
        assert [e["id"] for e in latest["events"]] == ids[::-1][:2]
        rest = sfn.get_execution_history(
            executionArn=arn, reverseOrder=True, maxResults=2, nextToken=latest["nextToken"]
        )
        assert [e["id"] for e in rest["events"]] == ids[::-1][2:4]
        pages = sfn.get_paginator("get_execution_history").paginate(
            executionArn=arn, PaginationConfig={"PageSize": 1}
        )
        assert [e["id"] for page in pages for e in page["events"]] == ids
