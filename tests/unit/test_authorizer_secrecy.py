"""No token value in any output: every path of the authorizer, everything at DEBUG.

Invariant 2: a secret value never appears in logs, metrics, exceptions or return
values. This test drives a real instance (SSM through the SDK, served by moto, and
the extension path through the emulator) across allow, deny, store-error, corrupt,
unexpected-error and misconfigured paths with Powertools and the root logger at
DEBUG, forces the metrics out, and searches all of stdout, stderr, every log record
and every response for each value, its hex and base64 forms and its first 16
characters.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import time
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from moto import mock_aws

import authorizer.handler
from originlock.sandbox.extension import ExtensionEmulator, ssm_fetch
from tests.unit.fakes import (
    PARAMETER_NAME,
    FakeClock,
    FakeParameter,
    Tokens,
    document_json,
    request_event,
)
from tokens.document import generate_token
from tokens.store import ssm_client

METRIC_NAMES = (
    "Allowed_pending",
    "Allowed_current",
    "Allowed_previous",
    "Denied",
    "Undecided",
    "StoreErrors",
    "SettingsErrors",
    "AuthorizerErrors",
)


@contextlib.contextmanager
def unrecorded() -> Iterator[None]:
    """The test's own writes to SSM are not the authorizer's output: keep them out of the logs."""
    logging.disable(logging.CRITICAL)
    try:
        yield
    finally:
        logging.disable(logging.NOTSET)


class HeadersThatRaise(dict[str, object]):
    """Headers whose reading fails with a message that quotes a value: a handler bug."""

    def __init__(self, headers: dict[str, object], secret: str) -> None:
        super().__init__(headers)
        self.secret = secret

    def items(self) -> Any:
        raise RuntimeError(f"handler bug holding {self.secret}")


def forms(value: str) -> list[str]:
    raw = value.encode()
    return [value, value[:16], raw.hex(), base64.b64encode(raw).decode(), repr(raw)]


def test_authorizer_secrecy_no_token_value_in_any_output(
    aws: None,
    handler_environ: dict[str, str],
    tokens: Tokens,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Given everything at DEBUG, and a clock the test moves
    monkeypatch.setenv("POWERTOOLS_LOG_LEVEL", "DEBUG")
    caplog.set_level(logging.DEBUG)
    clock = FakeClock()
    monkeypatch.setattr(
        authorizer.handler,
        "time",
        SimpleNamespace(monotonic=clock, sleep=clock.advance, time=time.time),
    )
    later = generate_token()  # written into a corrupt document, never accepted
    secrets = [*tokens.all(), later]
    responses: list[dict[str, Any]] = []
    undecided: list[str] = []

    def call(event: Any) -> None:
        try:
            responses.append(authorizer.handler.lambda_handler(event, None))
        except authorizer.handler.UndecidedError as exc:
            # The failed invocation's error is what Lambda logs and API Gateway records.
            undecided.append(f"{type(exc).__name__}: {exc}")
            responses.append({"undecided": True})

    def request(value: object, **headers: object) -> None:
        event = request_event(value)
        event["headers"].update(headers)
        call(event)

    def flush_metrics() -> None:
        clock.advance(61)
        request("flush")

    with mock_aws():
        ssm = ssm_client(region_name="eu-west-1")
        with unrecorded():
            ssm.put_parameter(
                Name=PARAMETER_NAME,
                Type="SecureString",
                Value=document_json(
                    pending=tokens.pending, current=tokens.current, previous=tokens.previous
                ),
            )
        handler_environ["TOKEN_SOURCE"] = "sdk"
        capfd.readouterr()
        caplog.clear()

        # When an instance reading through the SDK serves every kind of request:
        # allow, each slot
        for value in tokens.all():
            request(value)
        # deny: unknown, near misses, joined and repeated headers, malformed
        clock.advance(2)
        request(generate_token())
        request(tokens.current[:-1])
        request(tokens.current[:-1] + ("A" if tokens.current[-1] != "A" else "B"))
        request(f"{tokens.current},{tokens.previous}")
        request(tokens.current, **{"X-CF-API-GATEWAY-TOKEN": tokens.previous})
        request(tokens.current + "\n")
        request(None)
        # corrupt document, holding real values, within and past the staleness bound
        with unrecorded():
            ssm.put_parameter(
                Name=PARAMETER_NAME,
                Type="SecureString",
                Overwrite=True,
                Value=json.dumps({"format": later, "current": tokens.current, "previous": later}),
            )
        clock.advance(60)
        request(tokens.current)
        request(later)
        # store errors: the parameter gone, then past the staleness bound
        with unrecorded():
            ssm.delete_parameter(Name=PARAMETER_NAME)
        clock.advance(60)
        request(tokens.current)
        clock.advance(900)
        request(tokens.current)
        flush_metrics()

        # an unexpected exception from the reader that quotes a value (a store error)
        authorizer.handler.reset()
        broken = FakeParameter()
        broken.failure = RuntimeError(f"reader bug holding {tokens.current}")
        real_reader = authorizer.handler.default_reader
        monkeypatch.setattr(authorizer.handler, "default_reader", lambda *_args: broken)
        request(tokens.current)
        # an unexpected error inside the handler that quotes a value
        event = request_event(tokens.current)
        event["headers"] = HeadersThatRaise(event["headers"], tokens.current)
        call(event)
        flush_metrics()
        monkeypatch.setattr(authorizer.handler, "default_reader", real_reader)

        # the extension path: allow, deny, and a refused read
        with unrecorded():
            ssm.put_parameter(Name=PARAMETER_NAME, Type="SecureString", Value=tokens.current)
        with ExtensionEmulator(ssm_fetch(ssm), "session-token") as extension:
            monkeypatch.setenv("AWS_SESSION_TOKEN", "session-token")
            monkeypatch.setattr(
                authorizer.handler,
                "ENVIRON",
                {
                    "SSM_PARAMETER_NAME": PARAMETER_NAME,
                    "TOKEN_SOURCE": "extension",
                    "PARAMETERS_SECRETS_EXTENSION_HTTP_PORT": str(extension.port),
                    "AWS_SESSION_TOKEN": "session-token",
                },
            )
            authorizer.handler.reset()
            request(tokens.current)
            request(tokens.pending)
            extension.fail_with = 401
            clock.advance(61)
            request(tokens.current)
            flush_metrics()

        # a misconfigured instance
        monkeypatch.setattr(authorizer.handler, "ENVIRON", {})
        authorizer.handler.reset()
        request(tokens.current)
        flush_metrics()

    out, err = capfd.readouterr()
    records = "\n".join(
        f"{record.name} {record.getMessage()} {record.args!r} {record.__dict__!r}"
        for record in caplog.records
    )
    everything = "\n".join([out, err, caplog.text, records, json.dumps(responses), *undecided])

    # Then the paths really ran: allows, denials, undecided (failed invocations), each error,
    # all at DEBUG
    assert [r["context"]["slot"] for r in responses[:3]] == ["pending", "current", "previous"]
    answers = [r.get("isAuthorized", "undecided") for r in responses]
    assert answers == [
        *[True] * 3,  # each slot
        *[False] * 7,  # unknown, near misses, joined, repeated, malformed
        True,  # corrupt document: the last good set is served
        "undecided",  # the value only the corrupt document holds: not in an expired copy
        True,  # parameter gone: last good served within the staleness bound
        "undecided",  # past it
        "undecided",  # flush
        "undecided",  # reader exception (no good set yet)
        False,  # an error in the handler because of the request
        "undecided",  # flush
        *[True, False, True, "undecided"],  # extension: allow, deny, refused read, flush
        *["undecided", "undecided"],  # misconfigured, flush
    ]
    assert "token parameter read failed" in out
    assert "CorruptDocument" in out and "ParameterNotFound" in out and "Extension401" in out
    assert "authorizer misconfigured" in out and "RuntimeError" in out
    assert "authorizer error" in out
    assert any(record.levelno == logging.DEBUG for record in caplog.records)
    for name in METRIC_NAMES:
        assert f'"{name}"' in out, name
    # and no value, in any form, anywhere
    for value in secrets:
        for form in forms(value):
            assert form not in everything
