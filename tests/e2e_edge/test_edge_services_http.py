"""The KeyValueStore data plane and the CloudFront Function APIs the sandbox adds to moto, over
HTTP on the sandbox's own endpoint, driven through real boto3 clients (SigV4A-signed, as
botocore signs with awscrt), on stores and functions of the tests' own."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
import requests
from botocore.exceptions import ClientError

from edge import RUNTIME, render
from originlock.sandbox import Sandbox
from originlock.sandbox.edgeservices import EdgeServices
from originlock.sandbox.kvs import MAX_VALUE_BYTES, EmulatedKeyValueStore
from tokens.document import generate_token
from tokens.edge import KVS_KEY_NAME, key_id, parse, verify

pytestmark = pytest.mark.e2e

HEADER = "x-cf-api-gateway-token"
DISTRIBUTION = "E2QWRUHAPOMQZL"


def services_of(sb: Sandbox) -> EdgeServices:
    assert sb.edge_services is not None
    return sb.edge_services


def new_store(sb: Sandbox, key: str | None = None) -> str:
    """A store of the test's own (not the one the edges sign with)."""
    arn = f"arn:aws:cloudfront::123456789012:key-value-store/{uuid.uuid4()}"
    initial = {KVS_KEY_NAME: key} if key else {}
    services_of(sb).add_store(
        EmulatedKeyValueStore(arn, 2, propagation=(30.0, 60.0), initial=initial)
    )
    return arn


def kvs_client(sb: Sandbox) -> Any:
    return sb.client("cloudfront-keyvaluestore")


def error_of(raised: pytest.ExceptionInfo[ClientError]) -> tuple[str, int]:
    response = raised.value.response
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]


def test_edge_services_serve_the_data_plane_as_botocore_reads_it(sandbox: Sandbox) -> None:
    # Given a store holding a key, behind moto's endpoint
    key = generate_token()
    arn = new_store(sandbox, key)
    client = kvs_client(sandbox)

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
    store = services_of(sandbox).store(arn)
    assert described["KvsARN"] == arn and described["Status"] == "READY"
    assert (described["ItemCount"], described["TotalSizeInBytes"]) == (1, len(KVS_KEY_NAME) + 43)
    assert described["LastModified"].timestamp() == pytest.approx(store.created)
    assert got["Value"] == key and got["Key"] == KVS_KEY_NAME
    assert written["ETag"] != described["ETag"] and written["ItemCount"] == 1
    assert listed == ["a/b c", KVS_KEY_NAME]  # a key with "/" and " " round-trips
    assert deleted["ItemCount"] == 1
    assert store.get_key(KVS_KEY_NAME)["Value"] == new


def test_edge_services_answer_errors_with_the_models_names_and_statuses(
    sandbox: Sandbox,
) -> None:
    arn = new_store(sandbox, generate_token())
    client = kvs_client(sandbox)
    stale = client.describe_key_value_store(KvsARN=arn)["ETag"]
    client.put_key(KvsARN=arn, Key="other", Value="1", IfMatch=stale)
    secret = generate_token()
    nowhere = f"arn:aws:cloudfront::123456789012:key-value-store/{uuid.uuid4()}"

    with pytest.raises(client.exceptions.ConflictException) as conflict:
        client.put_key(KvsARN=arn, Key=KVS_KEY_NAME, Value=secret, IfMatch=stale)
    with pytest.raises(client.exceptions.ResourceNotFoundException) as missing:
        client.get_key(KvsARN=arn, Key="nothing-here")
    with pytest.raises(client.exceptions.ResourceNotFoundException) as no_store:
        client.describe_key_value_store(KvsARN=nowhere)
    current = client.describe_key_value_store(KvsARN=arn)["ETag"]
    with pytest.raises(client.exceptions.ValidationException) as too_big:
        client.put_key(KvsARN=arn, Key="big", Value="x" * (MAX_VALUE_BYTES + 1), IfMatch=current)

    assert error_of(conflict) == ("ConflictException", 409)
    assert error_of(missing) == ("ResourceNotFoundException", 404)
    assert error_of(no_store) == ("ResourceNotFoundException", 404)
    assert error_of(too_big) == ("ValidationException", 400)
    # An error never carries the value that was sent
    assert secret not in str(conflict.value)


def test_edge_services_refuse_a_request_not_signed_with_sigv4a(sandbox: Sandbox) -> None:
    key = generate_token()
    arn = new_store(sandbox, key)
    quoted = requests.utils.quote(arn, safe="")
    url = f"{sandbox.endpoint_url}/key-value-stores/{quoted}/keys/{KVS_KEY_NAME}"

    with requests.Session() as session:
        session.trust_env = False
        answer = session.get(
            url, headers={"Authorization": "AWS4-HMAC-SHA256 Credential=testing/x/y/z"}
        )

    assert answer.status_code == 403
    assert answer.headers["x-amzn-ErrorType"] == "AccessDeniedException"
    assert key not in answer.text


def test_edge_functions_publish_describe_the_live_stage_and_test_with_the_latest_key(
    sandbox: Sandbox,
) -> None:
    # Given a store and a function of the test's own associated with it, not yet published
    key = generate_token()
    arn = new_store(sandbox, key)
    cloudfront = sandbox.client("cloudfront")
    name = f"sign-{uuid.uuid4().hex[:8]}"
    created = cloudfront.create_function(
        Name=name,
        FunctionConfig={
            "Comment": "test",
            "Runtime": RUNTIME,
            "KeyValueStoreAssociations": {"Quantity": 1, "Items": [{"KeyValueStoreARN": arn}]},
        },
        FunctionCode=render(HEADER, 60).encode(),
    )

    # Then its LIVE stage does not exist, and a publish needs its ETag
    with pytest.raises(cloudfront.exceptions.NoSuchFunctionExists):
        cloudfront.describe_function(Name=name, Stage="LIVE")
    with pytest.raises(ClientError, match="PreconditionFailed"):
        cloudfront.publish_function(Name=name, IfMatch="stale")
    published = cloudfront.publish_function(Name=name, IfMatch=created["ETag"])
    assert published["FunctionSummary"]["FunctionMetadata"]["Stage"] == "LIVE"
    live = cloudfront.describe_function(Name=name, Stage="LIVE")
    tests_before = services_of(sandbox).function_tests

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
            Name=name, IfMatch=live["ETag"], Stage="LIVE", EventObject=json.dumps(event).encode()
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
    store = services_of(sandbox).store(arn)
    store.put_key(KVS_KEY_NAME, new, store.latest.etag)
    after = parse(signed_by_test_function())
    assert after is not None and after.kid == key_id(new)
    assert (store.edge_view(0) or {})[KVS_KEY_NAME] == key
    assert services_of(sandbox).function_tests == tests_before + 2
