"""The two ways an instance reads the parameter: the SDK (served by moto) and the
Parameters and Secrets extension (served by the local emulator)."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
from moto import mock_aws

import tokens.store as tokens_store
from authorizer.handler import UndecidedError, lambda_handler
from originlock.sandbox.extension import ExtensionEmulator, mapping_fetch, ssm_fetch
from tests.unit.fakes import (
    PARAMETER_NAME,
    Tokens,
    document_json,
    request_event,
)
from tokens.document import TokenDocument
from tokens.store import ExtensionReader, SdkReader, StoreError, ssm_client

SESSION_TOKEN = "session-token-for-the-emulator"


@pytest.fixture
def ssm(aws: None) -> Iterator[Any]:
    with mock_aws():
        yield ssm_client(region_name="eu-west-1")


@pytest.fixture
def values() -> dict[str, str]:
    return {}


@pytest.fixture
def extension(
    values: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[ExtensionEmulator]:
    monkeypatch.setenv("AWS_SESSION_TOKEN", SESSION_TOKEN)
    with ExtensionEmulator(mapping_fetch(values), SESSION_TOKEN) as emulator:
        yield emulator


def handle(event: dict[str, Any]) -> dict[str, Any]:
    return lambda_handler(event, None)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- SDK -------------------------------------------------------------------------


def test_sdk_reader_returns_the_decrypted_secure_string(ssm: Any, tokens: Tokens) -> None:
    document = document_json(current=tokens.current, previous=tokens.previous)
    ssm.put_parameter(Name=PARAMETER_NAME, Value=document, Type="SecureString")

    assert SdkReader(PARAMETER_NAME).read() == document


def test_sdk_reader_reports_a_missing_parameter_by_code(ssm: Any) -> None:
    with pytest.raises(StoreError) as caught:
        SdkReader("/originlock/absent").read()

    assert caught.value.code == "ParameterNotFound"


def test_sdk_reader_reports_an_unreachable_endpoint_without_raising_botocore(
    aws: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given an SSM endpoint where nothing listens
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")

    with pytest.raises(StoreError) as caught:
        SdkReader(PARAMETER_NAME).read()

    assert caught.value.code == "EndpointConnectionError"


def test_handler_sdk_path_serves_the_parameter_from_ssm(
    ssm: Any,
    handler_environ: dict[str, str],
    tokens: Tokens,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given the blog's parameter, still holding a bare token, read through the SDK
    ssm.put_parameter(Name=PARAMETER_NAME, Value=tokens.current, Type="SecureString")
    handler_environ["TOKEN_SOURCE"] = "sdk"
    handler_environ["TOKEN_REFRESH_MIN_INTERVAL_SECONDS"] = "30"
    get_parameter_calls = []

    def counted_client(**kwargs: Any) -> Any:
        client = ssm_client(**kwargs)
        client.meta.events.register(
            "before-call.ssm.GetParameter", lambda **_: get_parameter_calls.append(1)
        )
        return client

    monkeypatch.setattr(tokens_store, "ssm_client", counted_client)

    # When 100 requests with the real value arrive, then one with another value
    allowed = [handle(request_event(tokens.current)) for _ in range(100)]
    denied = handle(request_event(tokens.previous))

    # Then the real value is allowed, the other denied (certain: the copy is fresh), and
    # SSM was asked once
    assert allowed == [{"isAuthorized": True, "context": {"slot": "current"}}] * 100
    assert denied == {"isAuthorized": False}
    assert len(get_parameter_calls) == 1


def test_handler_sdk_path_decides_nothing_when_the_parameter_is_missing(
    ssm: Any, handler_environ: dict[str, str], tokens: Tokens
) -> None:
    handler_environ["TOKEN_SOURCE"] = "sdk"

    # No document, no certainty: the invocation fails (500, not cached), never a Deny
    with pytest.raises(UndecidedError):
        handle(request_event(tokens.current))


# -- extension ---------------------------------------------------------------------


def test_extension_reader_returns_the_value(
    extension: ExtensionEmulator, values: dict[str, str], tokens: Tokens
) -> None:
    values[PARAMETER_NAME] = document_json(current=tokens.current)

    value = ExtensionReader(PARAMETER_NAME, port=extension.port).read()

    assert TokenDocument.parse(value).slot_of(tokens.current) == "current"
    assert extension.requests == 1


@pytest.mark.parametrize(
    ("setup", "code"),
    [
        pytest.param(lambda emulator, env: env.setenv("AWS_SESSION_TOKEN", "x"), "Extension401"),
        pytest.param(lambda emulator, env: env.delenv("AWS_SESSION_TOKEN"), "Extension401"),
        pytest.param(lambda emulator, env: setattr(emulator, "fail_with", 500), "Extension500"),
        pytest.param(lambda emulator, env: setattr(emulator, "fail_with", 429), "Extension429"),
    ],
    ids=["wrong-session-token", "no-session-token", "extension-error", "throttled"],
)
def test_extension_reader_reports_refusals_by_status(
    extension: ExtensionEmulator,
    values: dict[str, str],
    tokens: Tokens,
    monkeypatch: pytest.MonkeyPatch,
    setup: Any,
    code: str,
) -> None:
    values[PARAMETER_NAME] = tokens.current
    setup(extension, monkeypatch)

    with pytest.raises(StoreError) as caught:
        ExtensionReader(PARAMETER_NAME, port=extension.port).read()

    assert caught.value.code == code
    assert tokens.current not in str(caught.value)


def http_response(body: bytes, *head: str, status: str = "200 OK") -> bytes:
    return "\r\n".join([f"HTTP/1.1 {status}", *head, "", ""]).encode() + body


def parameter_body(value: str) -> bytes:
    return json.dumps({"Parameter": {"Name": PARAMETER_NAME, "Value": value}}).encode()


@pytest.mark.parametrize(
    "framing",
    ["content-length", "chunked", "connection-close"],
)
def test_extension_reader_reads_every_http_framing(
    extension: ExtensionEmulator, tokens: Tokens, framing: str
) -> None:
    # Given an extension that frames its answer in any way HTTP/1.1 allows
    body = parameter_body(tokens.current)
    if framing == "content-length":
        raw = http_response(body, f"Content-Length: {len(body)}")
    elif framing == "chunked":
        chunks = b"".join(
            f"{len(part):x};ext=1\r\n".encode() + part + b"\r\n"
            for part in (body[:10], body[10:11], body[11:])
        )
        raw = http_response(chunks + b"0\r\n\r\n", "Transfer-Encoding: chunked")
    else:
        raw = http_response(body, "Content-Type: application/json")
    extension.raw_response = raw

    # Then the value reads back whole
    assert ExtensionReader(PARAMETER_NAME, port=extension.port).read() == tokens.current


def test_extension_reader_does_not_wait_for_a_connection_left_open(
    extension: ExtensionEmulator, values: dict[str, str], tokens: Tokens
) -> None:
    # Given an extension that ignores "Connection: close" and keeps the socket open
    values[PARAMETER_NAME] = tokens.current
    extension.linger = 6.0

    # Then the answer is read by its length: waiting for the close would hit the timeout
    started = time.monotonic()
    value = ExtensionReader(PARAMETER_NAME, port=extension.port, timeout=4.0).read()

    assert value == tokens.current
    assert time.monotonic() - started < 4.0


def test_extension_reader_times_out_on_a_silent_extension(extension: ExtensionEmulator) -> None:
    # Given an extension that accepts the connection, sends half a response and stalls
    extension.raw_response = b"HTTP/1.1 200 OK\r\nContent-Length: 500\r\n\r\n{"
    extension.linger = 3.0

    started = time.monotonic()
    with pytest.raises(StoreError) as caught:
        ExtensionReader(PARAMETER_NAME, port=extension.port, timeout=0.3).read()

    assert caught.value.code == "ExtensionUnavailable"
    assert time.monotonic() - started < extension.linger  # the reader's timeout, not the server


@pytest.mark.parametrize(
    "raw",
    [
        http_response(b"not json", "Content-Length: 8"),
        http_response(b"[]", "Content-Length: 2"),
        http_response(b'{"Parameter": {}}', "Content-Length: 17"),
        http_response(b'{"Parameter": {"Value": 5}}', "Content-Length: 27"),
        http_response(b"", "Content-Length: 0"),
        http_response(b"{}", "Content-Length: x"),
        http_response(b"{}", "Content-Length: -1"),
        http_response(b"zz\r\n", "Transfer-Encoding: chunked"),
        http_response(b"{}", "Content-Length: 10"),
        http_response(b"{}", "no colon here"),
        b"SSH-2.0-OpenSSH_9.6\r\n\r\n",
        b"",
        b"HTTP/1.1 200 OK\r\n" + b"x" * 2_000_000,
    ],
    ids=[
        "not-json",
        "list",
        "no-value",
        "number",
        "empty",
        "bad-length",
        "negative-length",
        "bad-chunk",
        "truncated",
        "bad-header",
        "not-http",
        "nothing",
        "endless-head",
    ],
)
def test_extension_reader_reports_a_broken_answer(extension: ExtensionEmulator, raw: bytes) -> None:
    extension.raw_response = raw

    # A generous timeout: some of these answers end only when the emulator closes the
    # socket, which a loaded machine can delay past the 1 s default (then it would be
    # ExtensionUnavailable, a different, timing-made outcome).
    with pytest.raises(StoreError) as caught:
        ExtensionReader(PARAMETER_NAME, port=extension.port, timeout=10.0).read()

    assert caught.value.code == "ExtensionBadResponse"


def test_extension_reader_quotes_the_parameter_name(
    extension: ExtensionEmulator, values: dict[str, str], tokens: Tokens
) -> None:
    # A name with characters that mean something in a URL still reaches the extension whole
    name = "/originlock/a b&c=d/é"
    values[name] = tokens.current

    assert ExtensionReader(name, port=extension.port).read() == tokens.current


def test_extension_reader_never_goes_through_an_http_proxy(
    extension: ExtensionEmulator,
    values: dict[str, str],
    tokens: Tokens,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a developer machine with a proxy configured (here: one that does not answer)
    dead_proxy = f"http://127.0.0.1:{free_port()}"
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(name, dead_proxy)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    values[PARAMETER_NAME] = tokens.current

    # Then the extension on localhost is still reached directly
    assert ExtensionReader(PARAMETER_NAME, port=extension.port).read() == tokens.current


def test_extension_reader_reports_a_missing_parameter(extension: ExtensionEmulator) -> None:
    with pytest.raises(StoreError) as caught:
        ExtensionReader("/originlock/absent", port=extension.port).read()

    assert caught.value.code == "Extension400"


def test_extension_reader_reports_an_absent_extension(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_SESSION_TOKEN", SESSION_TOKEN)

    with pytest.raises(StoreError) as caught:
        ExtensionReader(PARAMETER_NAME, port=free_port(), timeout=0.5).read()

    assert caught.value.code == "ExtensionUnavailable"


def test_handler_extension_path_serves_the_parameter_through_the_extension(
    extension: ExtensionEmulator,
    values: dict[str, str],
    handler_environ: dict[str, str],
    tokens: Tokens,
) -> None:
    # Given a function configured for the extension, and a parameter mid-rotation
    values[PARAMETER_NAME] = document_json(current=tokens.current, previous=tokens.previous)
    handler_environ["TOKEN_SOURCE"] = "extension"
    handler_environ["PARAMETERS_SECRETS_EXTENSION_HTTP_PORT"] = str(extension.port)
    # The session token comes from the instance's own environment, not the process's.
    handler_environ["AWS_SESSION_TOKEN"] = SESSION_TOKEN

    # When CloudFront's edges send either value
    responses = [handle(request_event(value)) for value in (tokens.current, tokens.previous) * 50]

    # Then both are allowed, from a single read
    assert {response["context"]["slot"] for response in responses} == {"current", "previous"}
    assert extension.requests == 1


def test_handler_extension_path_decides_nothing_while_the_extension_is_down(
    extension: ExtensionEmulator,
    values: dict[str, str],
    handler_environ: dict[str, str],
    tokens: Tokens,
) -> None:
    values[PARAMETER_NAME] = tokens.current
    handler_environ["TOKEN_SOURCE"] = "extension"
    handler_environ["PARAMETERS_SECRETS_EXTENSION_HTTP_PORT"] = str(extension.port)
    handler_environ["TOKEN_REFRESH_MIN_INTERVAL_SECONDS"] = "0.01"
    handler_environ["AWS_SESSION_TOKEN"] = SESSION_TOKEN
    extension.fail_with = 503

    # A cold instance retries within the invocation, then fails it rather than deny
    with pytest.raises(UndecidedError):
        handle(request_event(tokens.current))

    # and once the extension answers, the next request after the retry interval is decided
    extension.fail_with = None
    time.sleep(0.02)
    assert handle(request_event(tokens.current))["isAuthorized"] is True


def test_extension_emulator_reads_through_to_ssm(
    ssm: Any, tokens: Tokens, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The bench and the sandbox back the emulator with moto's SSM: one source of truth.
    monkeypatch.setenv("AWS_SESSION_TOKEN", SESSION_TOKEN)
    ssm.put_parameter(Name=PARAMETER_NAME, Value=tokens.current, Type="SecureString")

    with ExtensionEmulator(ssm_fetch(ssm), SESSION_TOKEN) as emulator:
        reader = ExtensionReader(PARAMETER_NAME, port=emulator.port)
        first = reader.read()
        ssm.put_parameter(
            Name=PARAMETER_NAME, Value=tokens.pending, Type="SecureString", Overwrite=True
        )
        second = reader.read()
        with pytest.raises(StoreError):
            ExtensionReader("/originlock/absent", port=emulator.port).read()

    assert (first, second) == (tokens.current, tokens.pending)
