"""What the sandbox adds to moto for edge-signed mode, driven through real boto3 clients: the
KeyValueStore data plane over HTTP (SigV4A-signed, as botocore signs it with awscrt) and in
process, and PublishFunction / DescribeFunction(Stage) / TestFunction running the real
function in Node."""

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
from originlock.sandbox.kvs import MAX_VALUE_BYTES, EmulatedKeyValueStore
from originlock.sandbox.servers import ServerThread, moto_server
from tokens.document import generate_token
from tokens.edge import KVS_KEY_NAME, key_id, parse, verify

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


@pytest.fixture
def server(services: EdgeServices) -> Iterator[ServerThread]:
    running = moto_server(wrap=services.dispatcher, threads=4)
    running.start()
    try:
        yield running
    finally:
        running.stop()


def new_store(services: EdgeServices, key: str | None = None, edges: int = 2) -> str:
    initial = {KVS_KEY_NAME: key} if key else {}
    services.add_store(EmulatedKeyValueStore(ARN, edges, propagation=(30.0, 60.0), initial=initial))
    return ARN


def kvs_client(endpoint_url: str | None = None) -> Any:
    return boto3.client("cloudfront-keyvaluestore", endpoint_url=endpoint_url)


def error_of(raised: pytest.ExceptionInfo[ClientError]) -> tuple[str, int]:
    response = raised.value.response
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]


def test_edge_services_serve_the_data_plane_as_botocore_reads_it(
    services: EdgeServices, server: ServerThread
) -> None:
    # Given a store holding a key, behind moto's endpoint
    key = generate_token()
    arn = new_store(services, key)
    client = kvs_client(server.url)

    # When a real client describes it, reads the key and writes with the ETag
    described = client.describe_key_value_store(KvsARN=arn)
    got = client.get_key(KvsARN=arn, Key=KVS_KEY_NAME)
    new = generate_token()
    written = client.update_keys(
        KvsARN=arn, IfMatch=described["ETag"], Puts=[{"Key": KVS_KEY_NAME, "Value": new}]
    )
    put = client.put_key(KvsARN=arn, Key="a/b c", Value="x", IfMatch=written["ETag"])
    pages = client.get_paginator("list_keys").paginate(KvsARN=arn, PaginationConfig={"PageSize": 1})
    listed = [item["Key"] for page in pages for item in page["Items"]]
    deleted = client.delete_key(KvsARN=arn, Key="a/b c", IfMatch=put["ETag"])

    # Then every answer has the model's shape: timestamps parsed, ETags from the header
    assert described["KvsARN"] == arn and described["Status"] == "READY"
    assert (described["ItemCount"], described["TotalSizeInBytes"]) == (1, len(KVS_KEY_NAME) + 43)
    assert described["LastModified"].timestamp() == pytest.approx(services.store(arn).created)
    assert got["Value"] == key and got["Key"] == KVS_KEY_NAME
    assert written["ETag"] != described["ETag"] and written["ItemCount"] == 1
    assert listed == ["a/b c", KVS_KEY_NAME]  # a key with "/" and " " round-trips
    assert deleted["ItemCount"] == 1
    assert services.store(arn).get_key(KVS_KEY_NAME)["Value"] == new


def test_edge_services_answer_errors_with_the_models_names_and_statuses(
    services: EdgeServices, server: ServerThread
) -> None:
    arn = new_store(services, generate_token())
    client = kvs_client(server.url)
    stale = client.describe_key_value_store(KvsARN=arn)["ETag"]
    client.put_key(KvsARN=arn, Key="other", Value="1", IfMatch=stale)
    secret = generate_token()

    with pytest.raises(client.exceptions.ConflictException) as conflict:
        client.put_key(KvsARN=arn, Key=KVS_KEY_NAME, Value=secret, IfMatch=stale)
    with pytest.raises(client.exceptions.ResourceNotFoundException) as missing:
        client.get_key(KvsARN=arn, Key="nothing-here")
    with pytest.raises(client.exceptions.ResourceNotFoundException) as no_store:
        client.describe_key_value_store(KvsARN=OTHER_ARN)
    current = client.describe_key_value_store(KvsARN=arn)["ETag"]
    with pytest.raises(client.exceptions.ValidationException) as too_big:
        client.put_key(KvsARN=arn, Key="big", Value="x" * (MAX_VALUE_BYTES + 1), IfMatch=current)

    assert error_of(conflict) == ("ConflictException", 409)
    assert error_of(missing) == ("ResourceNotFoundException", 404)
    assert error_of(no_store) == ("ResourceNotFoundException", 404)
    assert error_of(too_big) == ("ValidationException", 400)
    # An error never carries the value that was sent
    assert secret not in str(conflict.value)


def test_edge_services_refuse_a_request_not_signed_with_sigv4a(
    services: EdgeServices, server: ServerThread
) -> None:
    key = generate_token()
    arn = new_store(services, key)
    url = f"{server.url}/key-value-stores/{requests.utils.quote(arn, safe='')}/keys/{KVS_KEY_NAME}"

    with requests.Session() as session:
        session.trust_env = False
        answer = session.get(
            url, headers={"Authorization": "AWS4-HMAC-SHA256 Credential=testing/x/y/z"}
        )

    assert answer.status_code == 403
    assert answer.headers["x-amzn-ErrorType"] == "AccessDeniedException"
    assert key not in answer.text


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


def test_edge_functions_publish_describe_the_live_stage_and_test_with_the_latest_key(
    services: EdgeServices, server: ServerThread
) -> None:
    # Given a store and the function associated with it, not yet published
    key = generate_token()
    arn = new_store(services, key)
    cloudfront = boto3.client("cloudfront", endpoint_url=server.url)
    created = cloudfront.create_function(
        Name="sign",
        FunctionConfig={
            "Comment": "test",
            "Runtime": RUNTIME,
            "KeyValueStoreAssociations": {"Quantity": 1, "Items": [{"KeyValueStoreARN": arn}]},
        },
        FunctionCode=render(HEADER, 60).encode(),
    )

    # Then its LIVE stage does not exist, and a publish needs its ETag
    with pytest.raises(cloudfront.exceptions.NoSuchFunctionExists):
        cloudfront.describe_function(Name="sign", Stage="LIVE")
    with pytest.raises(ClientError, match="PreconditionFailed"):
        cloudfront.publish_function(Name="sign", IfMatch="stale")
    published = cloudfront.publish_function(Name="sign", IfMatch=created["ETag"])
    assert published["FunctionSummary"]["FunctionMetadata"]["Stage"] == "LIVE"
    live = cloudfront.describe_function(Name="sign", Stage="LIVE")

    def signed_by_test_function() -> str:
        event = {
            "version": "1.0",
            "context": {"distributionId": DISTRIBUTION, "eventType": "viewer-request"},
            "viewer": {"ip": "198.51.100.7"},
            "request": {
                "method": "GET",
                "uri": "/",
                "querystring": {},
                "headers": {HEADER: {"value": "viewer-chosen"}},
                "cookies": {},
            },
        }
        result = cloudfront.test_function(
            Name="sign", IfMatch=live["ETag"], Stage="LIVE", EventObject=json.dumps(event).encode()
        )["TestResult"]
        assert result["ComputeUtilization"].isdigit()
        return str(json.loads(result["FunctionOutput"])["request"]["headers"][HEADER]["value"])

    # When CloudFront's own run of the function is asked: it signs with the store's key
    token = signed_by_test_function()
    parsed = parse(token)
    assert parsed is not None and parsed.kid == key_id(key)
    assert verify(token, [("current", key)], DISTRIBUTION, parsed.window * 60, 60) == "current"
    # and right after a write it signs with the new key, though no edge has it yet
    new = generate_token()
    store = services.store(arn)
    store.put_key(KVS_KEY_NAME, new, store.latest.etag)
    after = parse(signed_by_test_function())
    assert after is not None and after.kid == key_id(new)
    assert (store.edge_view(0) or {})[KVS_KEY_NAME] == key
    assert services.function_tests == 2


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
