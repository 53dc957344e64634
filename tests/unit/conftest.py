"""Fixtures for the unit tests: fresh authorizer instances wired to in-memory fakes."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from types import SimpleNamespace

import pytest

import authorizer.handler
from authorizer.telemetry import Telemetry
from tests.unit.fakes import (
    PARAMETER_NAME,
    AuthorizerInstance,
    FakeClock,
    FakeParameter,
    Tokens,
    UnexpectedErrors,
    document_json,
)

POWERTOOLS_LOGGER = "authorizer"  # the Powertools Logger's service name


@pytest.fixture
def tokens() -> Tokens:
    return Tokens.fresh()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def parameter(tokens: Tokens) -> FakeParameter:
    """The parameter mid-rotation: a current and a previous value, nothing pending."""
    return FakeParameter(document_json(current=tokens.current, previous=tokens.previous))


def forget_powertools_logger() -> None:
    """Make the next Powertools Logger configure itself again.

    Powertools binds its handler to the ``sys.stdout`` of the moment and its level
    to the environment of the moment, once per process; a test that captures output
    or sets ``POWERTOOLS_LOG_LEVEL`` needs a logger configured inside it.
    """
    log = logging.getLogger(POWERTOOLS_LOGGER)
    for handler in list(log.handlers):
        log.removeHandler(handler)
    for attribute in ("init", "powertools_handler", "powertools_buffer_config"):
        if hasattr(log, attribute):
            delattr(log, attribute)
    if hasattr(log, "powertools_buffer_cache"):
        delattr(log, "powertools_buffer_cache")
    log.setLevel(logging.NOTSET)


@pytest.fixture
def fresh_output(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Powertools writes to this test's captured stdout; metrics are not disabled."""
    monkeypatch.delenv("POWERTOOLS_DEV", raising=False)
    monkeypatch.delenv("POWERTOOLS_METRICS_DISABLED", raising=False)
    forget_powertools_logger()
    yield
    forget_powertools_logger()


@pytest.fixture
def handler_environ(
    monkeypatch: pytest.MonkeyPatch, fresh_output: None
) -> Iterator[dict[str, str]]:
    """A fresh authorizer instance (module state forgotten) with its settings in a dict.

    Edit the dict before the first request: settings are read once per instance.
    """
    environ = {"SSM_PARAMETER_NAME": PARAMETER_NAME}
    monkeypatch.setattr(authorizer.handler, "ENVIRON", environ)
    authorizer.handler.reset()
    yield environ
    authorizer.handler.reset()


@pytest.fixture
def instance(
    monkeypatch: pytest.MonkeyPatch,
    handler_environ: dict[str, str],
    parameter: FakeParameter,
    clock: FakeClock,
) -> AuthorizerInstance:
    """A fresh authorizer instance whose reader is *parameter* and whose clock is *clock*."""
    monkeypatch.setattr(authorizer.handler, "default_reader", lambda *_args: parameter)
    monkeypatch.setattr(
        authorizer.handler,
        "time",
        SimpleNamespace(monotonic=clock, sleep=clock.advance, time=time.time),
    )
    return AuthorizerInstance(parameter, clock, handler_environ)


@pytest.fixture
def unexpected_errors(monkeypatch: pytest.MonkeyPatch) -> UnexpectedErrors:
    """Record each error the handler turns into a deny; the real telemetry still runs.

    The handler denies on any exception (right in production), so its responses alone
    cannot tell a clean deny from a crash: a test that must see no crash asserts this
    list stays empty.
    """
    caught = UnexpectedErrors()
    report = Telemetry.unexpected

    def recording(self: Telemetry, exc: BaseException) -> None:
        caught.append(exc)
        report(self, exc)

    monkeypatch.setattr(Telemetry, "unexpected", recording)
    return caught


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake, offline AWS credentials and region for moto."""
    for name, value in {
        "AWS_DEFAULT_REGION": "eu-west-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
        "AWS_EC2_METADATA_DISABLED": "true",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
