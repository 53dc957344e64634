"""No token value in the logs of the rotate function, the custom resources or the CLI, even with
every logger at DEBUG (Lambda's application log level, a developer's ``basicConfig``).

botocore logs every request and response body at DEBUG: PutParameter's request and
GetParameter's response carry the document, CloudFront's GetDistribution(Config) responses and
UpdateDistribution's request carry the origin header's value. Each test starts from a process
in which nothing has silenced those loggers yet, and drives the first client of its kind.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from originlock.sandbox.harness import create_distribution
from originlock.target import Target
from provision.aws import SsmParameterStore
from rotate.adapters import Distribution, Fence, TokenStore, _LazyClients
from rotate.settings import RotateSettings
from tests.unit.fakes import Tokens
from tokens import store
from tokens.document import TokenDocument

HEADER = "x-cf-api-gateway-token"
PARAMETER = "/originlock/secrecy/token"


@pytest.fixture
def unsilenced() -> Iterator[None]:
    """botocore's body loggers as a fresh process has them: no filter of ours."""
    loggers = [logging.getLogger(name) for name in store._BODY_LOGGERS]
    for logger in loggers:
        logger.removeFilter(store._above_debug)
    yield
    for logger in loggers:
        logger.addFilter(store._above_debug)


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for key in ("AWS_PROFILE", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    with mock_aws():
        yield


@pytest.fixture
def world(aws: None, tokens: Tokens) -> dict[str, Any]:
    """A parameter holding a document and a distribution sending its current value."""
    document = TokenDocument(current=tokens.current, previous=tokens.previous).evolve()
    boto3.client("ssm").put_parameter(Name=PARAMETER, Value=document.to_json(), Type="SecureString")
    distribution = create_distribution(
        boto3.client("cloudfront"), "api.example.com", HEADER, tokens.current
    )
    return {"distribution_id": distribution["Id"], "document": document}


def debug_logs(caplog: pytest.LogCaptureFixture) -> str:
    return "\n".join(record.getMessage() for record in caplog.records)


def test_the_rotate_function_logs_no_value_at_debug(
    world: dict[str, Any], unsilenced: None, caplog: pytest.LogCaptureFixture, tokens: Tokens
) -> None:
    settings = RotateSettings.from_env(
        {"SSM_PARAMETER_NAME": PARAMETER, "DISTRIBUTION_ID": world["distribution_id"]}
    )
    # Given everything at DEBUG and fresh clients, CloudFront's first (as in CheckDeployed)
    caplog.set_level(logging.DEBUG)
    clients = _LazyClients()
    distribution = Distribution(settings, clients)

    # When the function reads the distribution, switches its header and rewrites the document
    assert distribution.describe().header_values == {"api": tokens.current}
    fence = Fence("arn:execution", time.monotonic())
    distribution.send(distribution.config(), tokens.pending, fence)
    parameter = TokenStore(settings, clients)
    parameter.write(parameter.read().evolve(pending=tokens.pending), fence)

    # Then botocore logged those calls, but none of the values
    logs = debug_logs(caplog)
    assert "UpdateDistribution" in logs
    for value in tokens.all():
        assert value not in logs


def test_the_custom_resources_log_no_value_at_debug(
    world: dict[str, Any], unsilenced: None, caplog: pytest.LogCaptureFixture, tokens: Tokens
) -> None:
    caplog.set_level(logging.DEBUG)
    parameters = SsmParameterStore()

    assert parameters.get(PARAMETER) == world["document"].to_json()
    parameters.create(f"{PARAMETER}-new", tokens.pending, key_id=None)

    logs = debug_logs(caplog)
    assert "GetParameter" in logs
    for value in tokens.all():
        assert value not in logs


def test_the_cli_logs_no_value_at_debug(
    world: dict[str, Any], unsilenced: None, caplog: pytest.LogCaptureFixture, tokens: Tokens
) -> None:
    caplog.set_level(logging.DEBUG)
    target = Target(
        session=boto3.Session(),
        endpoint_url=None,
        region="eu-west-1",
        description="test",
        state_machine_arn="arn:aws:states:eu-west-1:123456789012:stateMachine:unused",
        parameter_name=PARAMETER,
    )

    ssm = target.client("ssm")
    ssm.get_parameter(Name=PARAMETER, WithDecryption=True)
    target.client("cloudfront").get_distribution(Id=world["distribution_id"])

    logs = debug_logs(caplog)
    assert "GetDistribution" in logs
    for value in tokens.all():
        assert value not in logs
