"""The authorizer's Lambda handler, as API Gateway calls it (payload 2.0, simple responses)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from authorizer.handler import UndecidedError
from authorizer.telemetry import Telemetry
from tests.unit.fakes import (
    HEADER,
    AuthorizerInstance,
    Tokens,
    UnexpectedErrors,
    document_json,
    load_event,
    request_event,
)

FUNCTIONS = Path(__file__).resolve().parents[2] / "functions"
ALLOW_KEYS = {"isAuthorized", "context"}
DENY = {"isAuthorized": False}


def emf_documents(stdout: str) -> list[dict[str, Any]]:
    """The EMF metric documents Powertools printed."""
    documents = []
    for line in stdout.splitlines():
        if line.startswith("{") and '"_aws"' in line:
            documents.append(json.loads(line))
    return documents


def metric(document: dict[str, Any], name: str) -> float:
    """The value of one metric in an EMF document (Powertools writes a list of values)."""
    value = document[name]
    return float(sum(value)) if isinstance(value, list) else float(value)


def log_lines(stdout: str) -> list[dict[str, Any]]:
    """The structured log lines Powertools printed."""
    return [
        json.loads(line)
        for line in stdout.splitlines()
        if line.startswith("{") and '"_aws"' not in line
    ]


@pytest.fixture
def full_document(instance: AuthorizerInstance, tokens: Tokens) -> None:
    instance.parameter.value = document_json(
        pending=tokens.pending, current=tokens.current, previous=tokens.previous
    )


# -- allow -----------------------------------------------------------------------


@pytest.mark.parametrize("slot", ["pending", "current", "previous"])
def test_handler_allows_each_slot_and_names_it_never_the_value(
    instance: AuthorizerInstance, tokens: Tokens, full_document: None, slot: str
) -> None:
    # When CloudFront forwards a request with one of the accepted values
    response = instance(request_event(tokens.of(slot)))

    # Then it is allowed, and the context says which slot matched
    assert response == {"isAuthorized": True, "context": {"slot": slot}}
    assert tokens.of(slot) not in json.dumps(response)


def test_handler_allows_a_seed_style_plain_parameter(
    instance: AuthorizerInstance, tokens: Tokens
) -> None:
    instance.parameter.value = tokens.current + "\n"

    assert instance(request_event(tokens.current))["isAuthorized"] is True


@pytest.mark.parametrize("name", ["X-Cf-Api-Gateway-Token", "X-CF-API-GATEWAY-TOKEN"])
def test_handler_matches_the_header_name_in_any_case(
    instance: AuthorizerInstance, tokens: Tokens, name: str
) -> None:
    assert instance(request_event(tokens.current, header=name))["isAuthorized"] is True


def test_handler_reads_the_configured_header_name(
    instance: AuthorizerInstance, tokens: Tokens
) -> None:
    # Given an operator who chose another header name, in mixed case
    instance.environ["ORIGIN_HEADER_NAME"] = "X-Origin-Secret"

    # Then that header is checked, and the default one no longer counts
    assert instance(request_event(tokens.current, header="x-origin-secret"))["isAuthorized"]
    assert instance(request_event(tokens.current)) == DENY


def test_handler_accepts_a_staged_token_once_its_copy_has_expired(
    instance: AuthorizerInstance, tokens: Tokens
) -> None:
    # Given a warm instance
    assert instance(request_event(tokens.current))["isAuthorized"]
    instance.clock.advance(2)

    # When a pending value is staged, and CloudFront starts sending it after the rotation's
    # stage wait (the cache max age + the refresh interval + 5 s)
    instance.parameter.value = document_json(pending=tokens.pending, current=tokens.current)
    instance.clock.advance(60 + 1 + 5)

    # Then the first request with it is allowed: the expired copy is read again first
    assert instance(request_event(tokens.pending)) == {
        "isAuthorized": True,
        "context": {"slot": "pending"},
    }


# -- deny ------------------------------------------------------------------------


def test_handler_denies_a_value_outside_the_accepted_set(
    instance: AuthorizerInstance, tokens: Tokens
) -> None:
    assert instance(request_event(tokens.pending)) == DENY


def test_handler_denies_a_repeated_header_differing_in_case(
    instance: AuthorizerInstance, tokens: Tokens
) -> None:
    # Given two copies of the header, as a client could send next to CloudFront's
    event = request_event(tokens.current)
    event["headers"]["X-Cf-Api-Gateway-Token"] = tokens.current

    assert instance(event) == DENY


def test_handler_denies_a_comma_joined_value(instance: AuthorizerInstance, tokens: Tokens) -> None:
    # API Gateway joins a repeated header with commas: a real value plus anything
    for joined in (
        f"{tokens.current},{tokens.current}",
        f"{tokens.current},{tokens.previous}",
        f"{tokens.current}, attacker",
        f"attacker,{tokens.current}",
    ):
        assert instance(request_event(joined)) == DENY


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("", id="empty"),
        pytest.param(" ", id="space"),
        pytest.param(None, id="null"),
        pytest.param(42, id="int"),
        pytest.param(["token"], id="list"),
        pytest.param({"value": "token"}, id="object"),
        pytest.param(True, id="bool"),
        pytest.param("x" * 1_048_576, id="1MB"),
        pytest.param("tökén-ünïcode", id="non-ascii"),
        pytest.param("\u202e" + "A" * 42, id="bidi-override"),
        pytest.param("tok\x00en", id="nul"),
        pytest.param("tok\r\nX-Injected: 1", id="crlf"),
        pytest.param("tok\ten", id="tab"),
        pytest.param("\x7f" * 43, id="del"),
    ],
)
def test_handler_denies_malformed_values_without_reading_the_parameter(
    instance: AuthorizerInstance, tokens: Tokens, value: object
) -> None:
    # Given a warm instance
    assert instance(request_event(tokens.current))["isAuthorized"]
    reads = instance.parameter.reads
    instance.clock.advance(5)

    # When a request carries a value no token can be
    response = instance(request_event(value))

    # Then it is denied, and cost no read of the parameter
    assert response == DENY
    assert instance.parameter.reads == reads


@pytest.mark.parametrize(
    "near_miss",
    [
        pytest.param(lambda t: t[:-1], id="prefix"),
        pytest.param(lambda t: t[:1], id="first-char"),
        pytest.param(lambda t: t + "A", id="extended"),
        pytest.param(lambda t: t[1:], id="suffix"),
        pytest.param(lambda t: t.swapcase(), id="case-swapped"),
        pytest.param(lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"), id="last-char"),
        pytest.param(lambda t: " " + t, id="leading-space"),
        pytest.param(lambda t: t + "\n", id="trailing-newline"),
    ],
)
def test_handler_denies_near_misses_of_the_real_value(
    instance: AuthorizerInstance, tokens: Tokens, full_document: None, near_miss: Any
) -> None:
    value = near_miss(tokens.current)
    assert value != tokens.current

    assert instance(request_event(value)) == DENY


def test_handler_denies_a_request_without_the_header(instance: AuthorizerInstance) -> None:
    event = load_event()
    del event["headers"][HEADER]

    assert instance(event) == DENY


@pytest.mark.parametrize(
    "event",
    [
        pytest.param({}, id="empty-event"),
        pytest.param({"headers": None}, id="headers-null"),
        pytest.param({"headers": {}}, id="headers-empty"),
        pytest.param({"headers": [[HEADER, "x"]]}, id="headers-list"),
        pytest.param({"headers": "x-cf-api-gateway-token: x"}, id="headers-string"),
        pytest.param({"headers": {1: "x", None: "y"}}, id="non-string-keys"),
        pytest.param(None, id="none"),
        pytest.param([], id="list"),
        pytest.param("GET /", id="string"),
        pytest.param(42, id="int"),
    ],
)
def test_handler_denies_malformed_events(instance: AuthorizerInstance, event: object) -> None:
    assert instance(event) == DENY


def test_handler_fails_the_invocation_when_misconfigured(
    instance: AuthorizerInstance, tokens: Tokens, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given an instance whose function has no parameter name configured
    instance.environ.clear()

    # When requests arrive, with the real value among them
    failures = []
    for advance in (0, 0, 0, 60):
        instance.clock.advance(advance)
        with pytest.raises(UndecidedError) as raised:
            instance(request_event(tokens.current))
        failures.append(str(raised.value))

    # Then none gets a decision API Gateway would cache (a fixed configuration takes effect
    # at once, not a TTL later); the cause is logged once and counted, the store never asked
    assert set(failures) == {"no decision: the authorizer's settings are missing or malformed"}
    out = capsys.readouterr().out
    assert [line["message"] for line in log_lines(out)].count("authorizer misconfigured") == 1
    metrics = emf_documents(out)
    assert metrics and metric(metrics[0], "SettingsErrors") == 4
    assert metric(metrics[0], "Undecided") == 4
    assert instance.parameter.reads == 0


@pytest.mark.parametrize(
    "environ",
    [
        {"SSM_PARAMETER_NAME": "  "},
        {"SSM_PARAMETER_NAME": "/p", "TOKEN_SOURCE": "s3"},
        {"SSM_PARAMETER_NAME": "/p", "TOKEN_CACHE_MAX_AGE_SECONDS": "a minute"},
        {"SSM_PARAMETER_NAME": "/p", "TOKEN_REFRESH_MIN_INTERVAL_SECONDS": "0"},
        {"SSM_PARAMETER_NAME": "/p", "TOKEN_MAX_STALENESS_SECONDS": "1"},
        {"SSM_PARAMETER_NAME": "/p", "ORIGIN_HEADER_NAME": " "},
        {"SSM_PARAMETER_NAME": "/p", "PARAMETERS_SECRETS_EXTENSION_HTTP_PORT": "http"},
    ],
)
def test_handler_decides_nothing_with_each_malformed_setting(
    instance: AuthorizerInstance, tokens: Tokens, environ: dict[str, str]
) -> None:
    instance.environ.clear()
    instance.environ.update(environ)

    with pytest.raises(UndecidedError):
        instance(request_event(tokens.current))


@pytest.mark.parametrize(
    "failure",
    [
        RuntimeError("boom"),
        KeyError("Parameter"),
        TypeError("bad"),
        MemoryError(),
        RecursionError(),
    ],
    ids=type,
)
def test_handler_counts_an_unexpected_reader_exception_as_a_store_error(
    instance: AuthorizerInstance,
    tokens: Tokens,
    failure: BaseException,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given a fresh instance whose reader fails in a way no adapter promises
    instance.parameter.failure = failure

    # When a request arrives, Then it gets no decision (no good set yet: a Deny would be
    # cached against the value CloudFront sends), and each failed read (the first and its
    # retries within the invocation) is reported as a failed read, by its type name
    with pytest.raises(UndecidedError):
        instance(request_event(tokens.current))
    logged = log_lines(capsys.readouterr().out)
    assert {line["error_code"] for line in logged if "error_code" in line} == {
        type(failure).__name__
    }
    assert not [line for line in logged if "error_type" in line]

    # and once the reader works again, the instance serves as usual
    instance.parameter.failure = None
    instance.clock.advance(1)
    assert instance(request_event(tokens.current))["isAuthorized"] is True


def test_handler_serves_the_last_good_set_when_the_reader_raises_an_unexpected_exception(
    instance: AuthorizerInstance, tokens: Tokens, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a warm instance that allowed the current value
    assert instance(request_event(tokens.current))["isAuthorized"] is True

    # When its copy expires and the reader raises something no adapter promises,
    # with a message that quotes a value
    instance.parameter.failure = RuntimeError(f"reader bug holding {tokens.current}")
    instance.clock.advance(60)
    response = instance(request_event(tokens.current))
    instance.clock.advance(60)  # a second failed read; this request flushes the metrics
    assert instance(request_event(tokens.current))["isAuthorized"] is True

    # Then the same value is still allowed from the last good copy (a Deny here would be
    # cached by API Gateway for its TTL: a fleet-wide 403)
    assert response == {"isAuthorized": True, "context": {"slot": "current"}}
    # and the failure was counted and logged as a store error, by its type name only
    out = capsys.readouterr().out
    failed = [line for line in log_lines(out) if line["message"] == "token parameter read failed"]
    assert failed and {line["error_code"] for line in failed} == {"RuntimeError"}
    documents = emf_documents(out)
    assert sum(metric(d, "StoreErrors") for d in documents if "StoreErrors" in d) == 2
    assert not [d for d in documents if "AuthorizerErrors" in d]
    assert tokens.current not in out


@pytest.mark.parametrize("broken", ["count", "denied", "flush"])
def test_handler_answers_the_same_when_its_telemetry_raises(
    instance: AuthorizerInstance,
    tokens: Tokens,
    monkeypatch: pytest.MonkeyPatch,
    unexpected_errors: UnexpectedErrors,
    broken: str,
) -> None:
    # Given an instance whose logger or metrics sink fails (a full disk, a broken handler)
    def fail(*_args: object) -> None:
        raise OSError("telemetry sink broken")

    monkeypatch.setattr(Telemetry, broken, fail)

    # When requests keep arriving past several metric flush intervals
    answers = []
    for _ in range(4):
        answers.append(instance(request_event(tokens.current)))
        answers.append(instance(request_event(tokens.pending)))
        instance.clock.advance(61)

    # Then the current value is allowed and the unknown one denied every time, as without
    # telemetry: an Allow turned into a Deny would be cached by API Gateway for its TTL
    assert answers == [{"isAuthorized": True, "context": {"slot": "current"}}, DENY] * 4
    assert not unexpected_errors, unexpected_errors.report()


def test_handler_decides_nothing_after_a_long_outage_and_recovers(
    instance: AuthorizerInstance, tokens: Tokens
) -> None:
    from tokens.store import StoreError

    assert instance(request_event(tokens.current))["isAuthorized"]
    instance.parameter.failure = StoreError("ThrottlingException")

    # Through the outage the last good copy serves the real value, but an unknown value is
    # not denied from an expired copy (it could be newly staged): the invocation fails
    instance.clock.advance(899)
    assert instance(request_event(tokens.current))["isAuthorized"] is True
    with pytest.raises(UndecidedError):
        instance(request_event(tokens.pending))
    # and beyond the staleness bound nothing is decided
    instance.clock.advance(2)
    with pytest.raises(UndecidedError):
        instance(request_event(tokens.current))

    instance.parameter.failure = None
    instance.clock.advance(60)
    assert instance(request_event(tokens.current))["isAuthorized"] is True
    assert instance(request_event(tokens.pending)) == DENY


# -- observability -----------------------------------------------------------------


def test_handler_emits_decision_metrics_once_per_flush_interval(
    instance: AuthorizerInstance,
    tokens: Tokens,
    full_document: None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # When an instance serves a mix of requests within one minute
    for value in (tokens.current, tokens.current, tokens.previous, tokens.pending, "nope", ""):
        instance(request_event(value))
    first_minute = emf_documents(capsys.readouterr().out)
    instance.clock.advance(60)
    instance(request_event(tokens.current))

    # Then nothing is printed per request, and one EMF document comes at the interval
    assert first_minute == []
    (document,) = emf_documents(capsys.readouterr().out)
    assert document["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "originlock"
    assert metric(document, "Allowed_current") == 3
    assert metric(document, "Allowed_previous") == 1
    assert metric(document, "Allowed_pending") == 1
    assert metric(document, "Denied") == 2


def test_handler_never_logs_an_allowed_request(
    instance: AuthorizerInstance, tokens: Tokens, capsys: pytest.CaptureFixture[str]
) -> None:
    for _ in range(100):
        instance(request_event(tokens.current))
        instance.clock.advance(0.5)

    assert log_lines(capsys.readouterr().out) == []


def test_handler_logs_denials_at_a_bounded_rate(
    instance: AuthorizerInstance, tokens: Tokens, capsys: pytest.CaptureFixture[str]
) -> None:
    # When 1,000 bad requests arrive within a second, then one more a second later
    for _ in range(1000):
        instance(request_event("not-the-token"))
        instance.clock.advance(0.0005)
    instance.clock.advance(1)
    instance(request_event("not-the-token"))

    # Then two log lines were written, the second counting those it stood for
    lines = [
        line for line in log_lines(capsys.readouterr().out) if line["message"] == "request denied"
    ]
    assert [line["suppressed_since_last"] for line in lines] == [0, 999]
    assert {line["reason"] for line in lines} == {"no_match"}


class ExplodingHeaders(dict[str, object]):
    """Headers that fail when read: a bug inside the handler, not in its reader."""

    def items(self) -> Any:
        raise RuntimeError("handler bug")


def test_handler_counts_unexpected_errors_even_when_every_request_fails(
    instance: AuthorizerInstance, tokens: Tokens, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a fault inside the handler that fails every request
    event = request_event(tokens.current)
    event["headers"] = ExplodingHeaders(event["headers"])

    # When requests keep arriving for over a minute
    for _ in range(62):
        assert instance(event) == DENY
        instance.clock.advance(1)

    # Then the failures reach the metrics, and the log names the type only
    out = capsys.readouterr().out
    documents = emf_documents(out)
    assert documents and metric(documents[0], "AuthorizerErrors") >= 60
    assert {line["error_type"] for line in log_lines(out) if "error_type" in line} == {
        "RuntimeError"
    }


def test_importing_the_handler_loads_no_sdk() -> None:
    # A cold start pays for what the handler's module imports: with the extension reader,
    # neither botocore nor Powertools is needed before the first metrics flush
    code = (
        "import sys, authorizer.handler; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & "
        "{'boto3', 'botocore', 'aws_lambda_powertools', 'urllib3', 'http'}))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "PYTHONPATH": str(FUNCTIONS)},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()

    assert loaded == "[]"
