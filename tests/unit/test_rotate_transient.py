"""Transient AWS errors reach Step Functions under names its retriers match.

Errors moto never produces, injected with botocore's ``Stubber`` (responses checked against
the service model) or a socket that does not answer: API Gateway's throttling on
``ResetAuthorizersCache``, Lambda's ``ResourceConflictException`` and
``TooManyRequestsException`` on ``UpdateFunctionConfiguration``, network errors in the lock,
CloudFront's 5xx. Each must become ``TransientAwsError``, ``StoreUnavailableError`` or
``CloudFrontThrottledError`` — retried by every task (tests/statemachine/test_definition.py) —
and never an unretried ``ClientError``.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator

import boto3
import pytest
from botocore.config import Config
from botocore.stub import Stubber

from rotate.adapters import AuthorizerCaches, Distribution, Lock, _LazyClients
from rotate.errors import (
    CloudFrontError,
    CloudFrontThrottledError,
    StateConflictError,
    StoreUnavailableError,
    TransientAwsError,
)
from rotate.settings import RotateSettings

SETTINGS = RotateSettings.from_env(
    {
        "SSM_PARAMETER_NAME": "/p",
        "DISTRIBUTION_ID": "E1",
        "API_ID": "api1",
        "AUTHORIZER_FUNCTION_NAME": "authorizer",
    }
)
FAKE = {
    "region_name": "eu-west-1",
    "aws_access_key_id": "testing",
    "aws_secret_access_key": "testing",
}


def stubbed(service: str) -> tuple[_LazyClients, Stubber]:
    clients = _LazyClients()
    client = boto3.client(
        service, config=Config(retries={"mode": "standard", "max_attempts": 1}), **FAKE
    )
    clients._clients[(service, False)] = client
    return clients, Stubber(client)


@pytest.mark.parametrize("code", ["TooManyRequestsException", "ServiceUnavailableException"])
def test_a_throttled_cache_reset_is_retried(code: str) -> None:
    clients, stub = stubbed("apigatewayv2")
    stub.add_client_error("reset_authorizers_cache", code, http_status_code=429)
    with stub, pytest.raises(TransientAwsError, match=code):
        AuthorizerCaches(SETTINGS, clients).reset_api_cache()


LAMBDA_CONFIG = {
    "FunctionName": "authorizer",
    "RevisionId": "r1",
    "Environment": {"Variables": {"SSM_PARAMETER_NAME": "/p"}},
}


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("ResourceConflictException", 409),  # an update in progress (a cdk deploy)
        ("TooManyRequestsException", 429),
        ("PreconditionFailedException", 412),  # the RevisionId moved under us
        ("ServiceException", 500),
    ],
)
def test_a_conflicting_or_throttled_configuration_update_is_retried(code: str, status: int) -> None:
    clients, stub = stubbed("lambda")
    stub.add_response("get_function_configuration", LAMBDA_CONFIG)
    stub.add_client_error("update_function_configuration", code, http_status_code=status)
    with stub, pytest.raises(TransientAwsError):
        AuthorizerCaches(SETTINGS, clients).replace_instances("7")


def test_the_configuration_update_is_awaited_with_the_sdks_waiter() -> None:
    clients, stub = stubbed("lambda")
    stub.add_response("get_function_configuration", LAMBDA_CONFIG)
    stub.add_response("update_function_configuration", {"FunctionName": "authorizer"})
    # the function_updated waiter polls GetFunctionConfiguration until Successful
    stub.add_response("get_function_configuration", {"LastUpdateStatus": "InProgress"})
    stub.add_response("get_function_configuration", {"LastUpdateStatus": "Successful"})
    with stub:
        assert AuthorizerCaches(SETTINGS, clients).replace_instances("7") is True
    stub.assert_no_pending_responses()


def test_a_failed_configuration_update_is_a_state_conflict() -> None:
    clients, stub = stubbed("lambda")
    stub.add_response(
        "get_function_configuration",
        {**LAMBDA_CONFIG, "Environment": {"Variables": {"ORIGINLOCK_REVOKE_EPOCH": "7"}}},
    )
    stub.add_response("get_function_configuration", {"LastUpdateStatus": "Failed"})
    with stub, pytest.raises(StateConflictError, match="failed"):
        AuthorizerCaches(SETTINGS, clients).replace_instances("7")


def test_a_throttled_wait_for_the_update_is_retried() -> None:
    clients, stub = stubbed("lambda")
    stub.add_response(
        "get_function_configuration",
        {**LAMBDA_CONFIG, "Environment": {"Variables": {"ORIGINLOCK_REVOKE_EPOCH": "7"}}},
    )
    stub.add_client_error(
        "get_function_configuration", "TooManyRequestsException", http_status_code=429
    )
    with stub, pytest.raises(TransientAwsError, match="TooManyRequestsException"):
        AuthorizerCaches(SETTINGS, clients).replace_instances("7")


def test_an_unanswered_wait_for_the_update_is_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    # The waiter turns a ClientError into its last response, but lets a call that got no
    # answer (a read timeout, no connection) through as is
    from botocore.exceptions import ReadTimeoutError

    clients, stub = stubbed("lambda")
    stub.add_response(
        "get_function_configuration",
        {**LAMBDA_CONFIG, "Environment": {"Variables": {"ORIGINLOCK_REVOKE_EPOCH": "7"}}},
    )

    class Unanswered:
        def wait(self, **_: object) -> None:
            raise ReadTimeoutError(endpoint_url="https://lambda.eu-west-1.amazonaws.com")

    monkeypatch.setattr(clients.get("lambda"), "get_waiter", lambda name: Unanswered())
    with stub, pytest.raises(TransientAwsError, match="ReadTimeoutError"):
        AuthorizerCaches(SETTINGS, clients).replace_instances("7")


@pytest.mark.parametrize("code", ["ServiceUnavailable", "InternalError"])
def test_a_cloudfront_server_error_is_retried(code: str) -> None:
    clients, stub = stubbed("cloudfront")
    stub.add_client_error("get_distribution_config", code, http_status_code=503)
    with stub, pytest.raises(CloudFrontThrottledError, match=code):
        Distribution(SETTINGS, clients).config()


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections and never answers (a read timeout)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield int(server.getsockname()[1])
    finally:
        stop.set()
        thread.join()
        for connection in accepted:
            connection.close()
        server.close()


def closed_port() -> int:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = int(probe.getsockname()[1])
    probe.close()
    return port


def lock_at(endpoint: str) -> Lock:
    clients = _LazyClients()
    config = Config(
        connect_timeout=0.5, read_timeout=0.5, retries={"mode": "standard", "max_attempts": 1}
    )
    for fenced in (False, True):
        for service in ("ssm", "stepfunctions"):
            clients._clients[(service, fenced)] = boto3.client(
                service, endpoint_url=endpoint, config=config, **FAKE
            )
    return Lock(SETTINGS, clients)


def test_the_lock_retries_an_unreachable_endpoint() -> None:
    # EndpointConnectionError: nothing listens
    lock = lock_at(f"http://127.0.0.1:{closed_port()}")
    with pytest.raises(StoreUnavailableError, match="EndpointConnectionError"):
        lock.acquire("arn:aws:states:eu-west-1:1:execution:m:e", {"mode": "rotate"})
    with pytest.raises(StoreUnavailableError, match="EndpointConnectionError"):
        lock.fence("arn:aws:states:eu-west-1:1:execution:m:e")


def test_the_lock_retries_a_read_timeout(silent_port: int) -> None:
    # ReadTimeoutError: a connection, no answer
    lock = lock_at(f"http://127.0.0.1:{silent_port}")
    with pytest.raises(StoreUnavailableError, match="ReadTimeoutError"):
        lock.holder()
    with pytest.raises(StoreUnavailableError, match="ReadTimeoutError"):
        lock.release("arn:aws:states:eu-west-1:1:execution:m:e")


def test_every_retried_name_is_one_the_workflow_retries() -> None:
    # The names above are in every task's retrier (and none of them is a plain ClientError)
    from originlock.sandbox.harness import STATE_MACHINE_FILE

    states = json.loads(STATE_MACHINE_FILE.read_text())["States"]
    for name, state in states.items():
        if state["Type"] != "Task":
            continue
        retried: set[str] = {e for r in state.get("Retry", []) for e in r["ErrorEquals"]}
        assert {"StoreUnavailableError", "TransientAwsError"} <= retried, name


def test_a_cloudfront_refusal_is_named_with_its_code_only() -> None:
    # A validation error could quote the configuration sent (the header value among it)
    clients, stub = stubbed("cloudfront")
    stub.add_client_error(
        "get_distribution_config",
        "AccessDenied",
        service_message="User is not authorized; header value secret-value-quoted",
        http_status_code=403,
    )
    with stub, pytest.raises(CloudFrontError) as raised:
        Distribution(SETTINGS, clients).config()
    assert str(raised.value) == "CloudFront get_distribution_config: AccessDenied"


def test_an_unlisted_code_with_a_429_is_retried() -> None:
    clients, stub = stubbed("apigatewayv2")
    stub.add_client_error("reset_authorizers_cache", "SlowDownPlease", http_status_code=429)
    with stub, pytest.raises(TransientAwsError, match="SlowDownPlease"):
        AuthorizerCaches(SETTINGS, clients).reset_api_cache()
