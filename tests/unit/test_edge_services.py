"""What the sandbox adds to moto for edge-signed mode, in process: the KeyValueStore data plane
as moto's request stubber hands it over (a real boto3 client, SigV4A-signed), its answers
against botocore's model, fault injection, and uninstalling. Over HTTP, on the sandbox's own
endpoint: tests/e2e_edge/test_edge_services_http.py."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import botocore.session
import pytest
import requests
from botocore.exceptions import ClientError
from moto import mock_aws

from edge import RUNTIME, render
from originlock.sandbox.edgeservices import FOREIGN_KEY, EdgeServices
from originlock.sandbox.kvs import EmulatedKeyValueStore
from tokens.document import generate_token
from tokens.edge import KVS_KEY_NAME

ARN = "arn:aws:cloudfront::123456789012:key-value-store/6b1c4d28-6ac1-4d0e-9d53-4ef1b8a0f1c3"
OTHER_ARN = "arn:aws:cloudfront::123456789012:key-value-store/00000000-0000-0000-0000-000000000000"
HEADER = "x-cf-api-gateway-token"
DISTRIBUTION = "E2QWRUHAPOMQZL"
# What a SigV4A signature's header looks like (handle() checks the scheme and the service).
SIGNED = {
    "Authorization": "AWS4-ECDSA-P256-SHA256 Credential=t/d/cloudfront-keyvaluestore/aws4_request"
}


@pytest.fixture
def services(aws: None) -> Iterator[EdgeServices]:
    found = EdgeServices()
    with found.installed():
        yield found


def new_store(services: EdgeServices, key: str | None = None, edges: int = 2) -> str:
    initial = {KVS_KEY_NAME: key} if key else {}
    services.add_store(EmulatedKeyValueStore(ARN, edges, propagation=(30.0, 60.0), initial=initial))
    return ARN


def kvs_client(endpoint_url: str | None = None) -> Any:
    return boto3.client("cloudfront-keyvaluestore", endpoint_url=endpoint_url)


def error_of(raised: pytest.ExceptionInfo[ClientError]) -> tuple[str, int]:
    response = raised.value.response
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]


def test_edge_services_answer_in_process_as_they_do_over_http(services: EdgeServices) -> None:
    # Given moto in process (the statemachine tests), where the client goes to AWS's own
    # endpoint for the store's account
    with mock_aws():
        key = generate_token()
        arn = new_store(services, key)
        client = kvs_client()

        etag = client.describe_key_value_store(KvsARN=arn)["ETag"]
        client.update_keys(KvsARN=arn, IfMatch=etag, Puts=[{"Key": "k", "Value": "v"}])
        with pytest.raises(client.exceptions.ConflictException):
            client.update_keys(KvsARN=arn, IfMatch=etag, Deletes=[{"Key": "k"}])

        assert client.get_key(KvsARN=arn, Key=KVS_KEY_NAME)["Value"] == key
    assert services.calls["UpdateKeys"] == 2 and services.conflicts == 1


def test_edge_services_send_only_members_the_model_names(services: EdgeServices) -> None:
    model = botocore.session.get_session().get_service_model("cloudfront-keyvaluestore")
    arn = new_store(services, generate_token())
    path = f"/key-value-stores/{requests.utils.quote(arn, safe='')}"
    signed = SIGNED
    etag = services.store(arn).latest.etag
    calls = {
        "DescribeKeyValueStore": ("GET", path, ""),
        "GetKey": ("GET", f"{path}/keys/{KVS_KEY_NAME}", ""),
        "ListKeys": ("GET", f"{path}/keys", "MaxResults=5"),
        "PutKey": ("PUT", f"{path}/keys/x", json.dumps({"Value": "1"})),
    }
    for operation, (method, raw_path, payload) in calls.items():
        query = payload if method == "GET" else ""
        body = payload.encode() if method != "GET" else b""
        status, headers, answer = services.handle(
            method, raw_path, query, {**signed, "If-Match": etag}, body
        )
        shape = model.operation_model(operation).output_shape
        in_body = {n for n, m in shape.members.items() if "location" not in m.serialization}
        in_headers = {
            m.serialization["name"] for m in shape.members.values() if "location" in m.serialization
        }
        assert status == 200, operation
        assert set(json.loads(answer)) <= in_body, operation
        assert set(shape.required_members) - in_headers <= set(json.loads(answer)), operation
        assert in_headers <= set(headers), operation


def test_edge_services_foreign_writes_make_the_next_write_conflict(
    services: EdgeServices,
) -> None:
    arn = new_store(services, generate_token())
    store = services.store(arn)
    services.foreign_writes_before_next = 1
    signed = SIGNED
    path = f"/key-value-stores/{requests.utils.quote(arn, safe='')}/keys"
    body = json.dumps({"Puts": [{"Key": KVS_KEY_NAME, "Value": generate_token()}]}).encode()

    first = services.handle("POST", path, "", {**signed, "If-Match": store.latest.etag}, body)
    second = services.handle("POST", path, "", {**signed, "If-Match": store.latest.etag}, body)

    assert first[0] == 409 and second[0] == 200
    assert store.get_key(FOREIGN_KEY)["Value"] == "1"


def test_edge_services_uninstall_puts_moto_and_the_resolver_back(aws: None) -> None:
    from urllib3.util import connection

    original = connection.create_connection
    services = EdgeServices()
    with services.installed():
        assert connection.create_connection is not original
        worker = services.worker_for(render(HEADER, 60))
        assert worker.running

    assert connection.create_connection is original
    assert not worker.running
    with mock_aws():
        cloudfront = boto3.client("cloudfront")
        cloudfront.create_function(
            Name="f",
            FunctionConfig={"Comment": "", "Runtime": RUNTIME},
            FunctionCode=b"function handler(e) { return e.request; }",
        )
        # moto's own DescribeFunction again: it knows no stages
        described = cloudfront.describe_function(Name="f", Stage="LIVE")
        assert described["FunctionSummary"]["FunctionMetadata"]["Stage"] == "DEVELOPMENT"


def test_edge_services_show_no_value(services: EdgeServices) -> None:
    key = generate_token()
    arn = new_store(services, key)

    status, _, answer = services.handle(
        "GET", f"/key-value-stores/{requests.utils.quote(arn, safe='')}", "", {}, b""
    )

    assert status == 403
    assert key not in repr(services) and key not in answer.decode()
