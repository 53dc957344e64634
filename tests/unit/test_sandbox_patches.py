"""The sandbox's patches of moto come off whole: tests that use moto after a sandbox stopped,
in the same process, see moto as it is."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from originlock.sandbox.harness import CloudFrontEdges, create_distribution

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
