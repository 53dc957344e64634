"""The custom resources of the CDK app: token parameter provisioning and the drift guard.

Pure decisions run against in-memory fakes; the boto3 adapters run against moto.
Every test that touches a value also checks that it never reaches a log line or
a failure reason.
"""

from __future__ import annotations

import io
import json
import logging
import urllib.error
import uuid
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import boto3
import pytest
from aws_lambda_powertools import Logger
from moto import mock_aws

import provision.handler as handler
from provision.aws import SsmParameterStore, StackDistribution
from provision.cloudformation import (
    FAILED,
    SUCCESS,
    ResponseNotSentError,
    build_response,
    send_response,
)
from provision.errors import (
    BadRequestError,
    LiveConfigUnavailableError,
    ParameterMissingError,
    ParameterTakenError,
    UnusableParameterError,
)
from provision.logic import (
    ORIGIN_HEADER_PHYSICAL_ID,
    HeaderChoice,
    choose_header_value,
    header_values,
    origin_header_value,
    parse_physical_id,
    physical_id_for,
    provision_parameter,
    remove_parameter,
)
from provision.token_age import ParameterNotFoundError, last_modified, token_age_seconds
from tokens.document import TokenDocument, fingerprint, generate_token

NAME = "/originlock/test/origin-token"
HEADER = "x-cf-api-gateway-token"
STACK_ID = "arn:aws:cloudformation:eu-west-1:123456789012:stack/Originlock/0f6e"


# -- fakes -------------------------------------------------------------------------


class FakeStore:
    """Parameter Store in a dict; records what was written."""

    def __init__(self, values: dict[str, str] | None = None, race: str | None = None) -> None:
        self.values = dict(values or {})
        self.created: list[tuple[str, str | None]] = []
        self.deleted: list[str] = []
        # A value another writer puts just before our create (ParameterAlreadyExists).
        self.race = race

    def get(self, name: str) -> str | None:
        return self.values.get(name)

    def create(self, name: str, value: str, key_id: str | None) -> bool:
        if self.race is not None:
            self.values[name] = self.race
            self.race = None
        if name in self.values:
            return False
        self.values[name] = value
        self.created.append((name, key_id))
        return True

    def delete(self, name: str) -> None:
        self.values.pop(name, None)
        self.deleted.append(name)


class FakeDistribution:
    def __init__(self, config: Mapping[str, Any] | None) -> None:
        self.config = config
        self.asked: list[tuple[str, str]] = []

    def distribution_config(self, stack_id: str, logical_id: str) -> Mapping[str, Any] | None:
        self.asked.append((stack_id, logical_id))
        return self.config


def live_config(*values: str, header: str = HEADER) -> dict[str, Any]:
    """A DistributionConfig whose origins send *values* in *header* (one origin each)."""
    return {
        "Origins": {
            "Quantity": len(values),
            "Items": [
                {
                    "Id": f"origin-{index}",
                    "CustomHeaders": {
                        "Quantity": 2,
                        "Items": [
                            {"HeaderName": "x-other", "HeaderValue": "unrelated"},
                            {"HeaderName": header, "HeaderValue": value},
                        ],
                    },
                }
                for index, value in enumerate(values)
            ],
        }
    }


def document(**slots: str | None) -> str:
    return TokenDocument(**slots).evolve().to_json()  # type: ignore[arg-type]


@pytest.fixture
def tokens() -> dict[str, str]:
    return {slot: generate_token() for slot in ("pending", "current", "previous", "stale")}


def guard_properties(**extra: str) -> dict[str, str]:
    return {
        "ParameterName": NAME,
        "HeaderName": HEADER,
        "DistributionLogicalId": "EdgeDistribution",
        **extra,
    }


# -- Custom::OriginlockTokenParameter ----------------------------------------------


def test_provision_parameter_creates_a_fresh_document_when_absent() -> None:
    # Given no parameter
    store = FakeStore()
    # When the resource is created
    outcome = provision_parameter("Create", {"ParameterName": NAME}, None, store)
    # Then a JSON token document with a fresh current value is stored, and owned
    created = TokenDocument.parse(store.values[NAME])
    assert created.current is not None and len(created.current) == 43
    assert created.pending is None and created.previous is None
    assert created.generation == 1 and not created.adopted_plain
    assert store.created == [(NAME, None)]
    assert outcome.physical_id == f"created:{NAME}"
    assert outcome.data() == {"ParameterName": NAME, "Adopted": "false"}
    assert outcome.fingerprint == fingerprint(created.current)


def test_provision_parameter_passes_the_kms_key() -> None:
    store = FakeStore()
    key = "arn:aws:kms:eu-west-1:123456789012:key/1234"
    provision_parameter("Create", {"ParameterName": NAME, "KeyId": key}, None, store)
    assert store.created == [(NAME, key)]


def test_provision_parameter_adopts_a_blog_style_plain_value_as_is(tokens: dict[str, str]) -> None:
    # Given the blog's parameter: a bare value
    store = FakeStore({NAME: tokens["current"]})
    # When
    outcome = provision_parameter("Create", {"ParameterName": NAME}, None, store)
    # Then it is adopted untouched (its first rotation converts it)
    assert store.values[NAME] == tokens["current"]
    assert store.created == []
    assert outcome.adopted and outcome.physical_id == f"adopted:{NAME}"
    assert outcome.fingerprint == fingerprint(tokens["current"])


def test_provision_parameter_adopts_an_existing_document(tokens: dict[str, str]) -> None:
    existing = document(current=tokens["current"], previous=tokens["previous"])
    store = FakeStore({NAME: existing})
    outcome = provision_parameter("Create", {"ParameterName": NAME}, None, store)
    assert store.values[NAME] == existing
    assert outcome.adopted


def test_provision_parameter_refuses_to_adopt_when_switched_off(tokens: dict[str, str]) -> None:
    store = FakeStore({NAME: tokens["current"]})
    with pytest.raises(ParameterTakenError) as caught:
        provision_parameter(
            "Create", {"ParameterName": NAME, "AdoptExisting": "false"}, None, store
        )
    assert tokens["current"] not in str(caught.value)


def test_provision_parameter_refuses_an_unusable_value_without_showing_it() -> None:
    secretish = "not a token, with spaces"
    store = FakeStore({NAME: secretish})
    with pytest.raises(UnusableParameterError) as caught:
        provision_parameter("Create", {"ParameterName": NAME}, None, store)
    assert secretish not in str(caught.value)


def test_provision_parameter_adopts_what_a_racing_writer_created(tokens: dict[str, str]) -> None:
    store = FakeStore(race=tokens["current"])
    outcome = provision_parameter("Create", {"ParameterName": NAME}, None, store)
    assert outcome.adopted
    assert store.values[NAME] == tokens["current"]


def test_provision_parameter_requires_a_name() -> None:
    with pytest.raises(BadRequestError):
        provision_parameter("Create", {"ParameterName": " "}, None, FakeStore())


def test_provision_parameter_update_with_the_same_name_changes_nothing(
    tokens: dict[str, str],
) -> None:
    # Given a parameter the stack created, since rotated
    rotated = document(current=tokens["current"], previous=tokens["previous"])
    store = FakeStore({NAME: rotated})
    # When an update (e.g. a new KeyId) arrives
    outcome = provision_parameter(
        "Update", {"ParameterName": NAME, "KeyId": "alias/other"}, f"created:{NAME}", store
    )
    # Then the value and the ownership are kept
    assert store.values[NAME] == rotated
    assert store.created == []
    assert outcome.physical_id == f"created:{NAME}" and not outcome.adopted


def test_provision_parameter_update_with_a_new_name_provisions_the_new_one() -> None:
    store = FakeStore()
    outcome = provision_parameter(
        "Update", {"ParameterName": NAME + "-2"}, f"created:{NAME}", store
    )
    assert outcome.physical_id == f"created:{NAME}-2"
    assert NAME + "-2" in store.values


@pytest.mark.parametrize(
    ("physical_id", "outcome", "deleted"),
    [
        (f"created:{NAME}", "deleted", [NAME]),
        (f"adopted:{NAME}", "kept", []),
        ("failed:request-1", "nothing", []),
        (None, "nothing", []),
    ],
)
def test_remove_parameter_deletes_only_what_the_stack_created(
    physical_id: str | None, outcome: str, deleted: list[str], tokens: dict[str, str]
) -> None:
    store = FakeStore({NAME: tokens["current"]})
    assert remove_parameter(physical_id, store) == outcome
    assert store.deleted == deleted


def test_physical_ids_round_trip() -> None:
    assert parse_physical_id(physical_id_for(NAME, adopted=True)) == ("adopted", NAME)
    assert parse_physical_id(physical_id_for(NAME, adopted=False)) == ("created", NAME)
    assert parse_physical_id("something-else") is None
    assert parse_physical_id("created:") is None


# -- Custom::OriginlockOriginHeaderValue (drift guard) ---------------------------------


def test_header_values_reads_every_origin_case_insensitively(tokens: dict[str, str]) -> None:
    config = live_config(tokens["current"], tokens["previous"], header=HEADER.upper())
    assert header_values(config, HEADER) == [tokens["current"], tokens["previous"]]
    assert header_values({"Origins": {"Quantity": 0}}, HEADER) == []
    assert header_values({}, HEADER) == []


def test_choose_keeps_the_live_value_after_rotations(tokens: dict[str, str]) -> None:
    # Given rotations since the last deploy: CloudFront sends what is now "previous"
    # (mid-drain), and current is newer
    doc = TokenDocument(current=tokens["current"], previous=tokens["previous"])
    # When
    choice = choose_header_value(doc, [tokens["previous"]])
    # Then the deploy keeps what CloudFront already sends
    assert choice.value == tokens["previous"] and choice.source == "live"


def test_choose_keeps_a_live_pending_value(tokens: dict[str, str]) -> None:
    # Given a rotation that switched CloudFront to pending and has not promoted yet
    doc = TokenDocument(pending=tokens["pending"], current=tokens["current"])
    choice = choose_header_value(doc, [tokens["pending"]])
    assert choice.value == tokens["pending"] and choice.source == "live"


def test_choose_falls_back_to_current_for_a_value_no_longer_accepted(
    tokens: dict[str, str],
) -> None:
    doc = TokenDocument(current=tokens["current"], previous=tokens["previous"])
    choice = choose_header_value(doc, [tokens["stale"]])
    assert choice.value == tokens["current"] and choice.source == "current"


def test_choose_uses_current_on_first_create(tokens: dict[str, str]) -> None:
    doc = TokenDocument(current=tokens["current"])
    assert choose_header_value(doc, None) == HeaderChoice(tokens["current"], "current")


def test_choose_takes_the_first_accepted_live_value(tokens: dict[str, str]) -> None:
    doc = TokenDocument(current=tokens["current"], previous=tokens["previous"])
    choice = choose_header_value(doc, [tokens["stale"], tokens["previous"], tokens["current"]])
    assert choice.value == tokens["previous"]


def test_choose_without_current_takes_pending(tokens: dict[str, str]) -> None:
    doc = TokenDocument(pending=tokens["pending"])
    assert choose_header_value(doc, []).source == "pending"


def test_header_choice_repr_hides_the_value(tokens: dict[str, str]) -> None:
    assert tokens["current"] not in repr(HeaderChoice(tokens["current"], "live"))


def test_origin_header_value_reads_the_live_distribution_of_the_stack(
    tokens: dict[str, str],
) -> None:
    store = FakeStore({NAME: document(current=tokens["current"], previous=tokens["previous"])})
    live = FakeDistribution(live_config(tokens["previous"]))
    choice = origin_header_value(guard_properties(), STACK_ID, store, live)
    assert choice.value == tokens["previous"]
    assert live.asked == [(STACK_ID, "EdgeDistribution")]


def test_origin_header_value_accepts_an_adopted_plain_parameter(tokens: dict[str, str]) -> None:
    store = FakeStore({NAME: tokens["current"]})
    choice = origin_header_value(guard_properties(), STACK_ID, store, FakeDistribution(None))
    assert choice.value == tokens["current"]


def test_origin_header_value_needs_the_parameter() -> None:
    with pytest.raises(ParameterMissingError):
        origin_header_value(guard_properties(), STACK_ID, FakeStore(), FakeDistribution(None))


def test_origin_header_value_needs_its_properties() -> None:
    with pytest.raises(BadRequestError):
        origin_header_value({"ParameterName": NAME}, STACK_ID, FakeStore(), FakeDistribution(None))


# -- answering CloudFormation --------------------------------------------------------


def cfn_event(request_type: str, resource_type: str, **extra: Any) -> dict[str, Any]:
    return {
        "RequestType": request_type,
        "ResponseURL": "https://cloudformation-custom-resource-response.example/signed",
        "StackId": STACK_ID,
        "RequestId": "request-1",
        "ResourceType": resource_type,
        "LogicalResourceId": "Resource",
        "ResourceProperties": {"ServiceToken": "arn:aws:lambda:fn", **extra.pop("props", {})},
        **extra,
    }


@pytest.fixture
def log_output(monkeypatch: pytest.MonkeyPatch) -> io.StringIO:
    """The provision logger writing to a buffer (Powertools binds its stream once per logger)."""
    buffer = io.StringIO()
    logger = Logger(
        service=f"provision-test-{uuid.uuid4().hex}", logger_handler=logging.StreamHandler(buffer)
    )
    monkeypatch.setattr(handler, "logger", logger)
    return buffer


LAMBDA_CONTEXT = SimpleNamespace(
    function_name="provider",
    memory_limit_in_mb=256,
    invoked_function_arn="arn:aws:lambda:eu-west-1:123456789012:function:provider",
    aws_request_id="aws-request-1",
)


class Recorder:
    def __init__(self) -> None:
        self.sent: list[tuple[str, Mapping[str, Any]]] = []

    def __call__(self, url: str, body: Mapping[str, Any]) -> None:
        self.sent.append((url, body))


def test_respond_answers_the_drift_guard_with_no_echo(
    tokens: dict[str, str], log_output: io.StringIO
) -> None:
    # Given
    store = FakeStore({NAME: document(current=tokens["current"])})
    event = cfn_event("Update", "Custom::OriginlockOriginHeaderValue", props=guard_properties())
    sender = Recorder()
    # When
    handler.respond(
        event, lambda: handler.origin_header(event, store, FakeDistribution(None)), sender
    )
    # Then
    [(url, body)] = sender.sent
    assert url == event["ResponseURL"]
    assert body["Status"] == SUCCESS
    assert body["NoEcho"] is True
    assert body["Data"] == {"Value": tokens["current"]}
    assert body["PhysicalResourceId"] == ORIGIN_HEADER_PHYSICAL_ID
    assert body["RequestId"] == "request-1" and body["StackId"] == STACK_ID
    # And the value never reached the logs; its fingerprint did
    logs = log_output.getvalue()
    assert tokens["current"] not in logs
    assert str(fingerprint(tokens["current"])) in logs
    assert '"source":"current"' in logs.replace(" ", "")


def test_respond_reports_a_failure_without_the_value(
    tokens: dict[str, str], log_output: io.StringIO
) -> None:
    store = FakeStore({NAME: tokens["current"]})
    event = cfn_event(
        "Create",
        "Custom::OriginlockTokenParameter",
        props={"ParameterName": NAME, "AdoptExisting": "false"},
    )
    sender = Recorder()
    handler.respond(event, lambda: handler.token_parameter(event, store), sender)
    [(_, body)] = sender.sent
    assert body["Status"] == FAILED
    assert body["Reason"].startswith("ParameterTakenError")
    # A failed create gets a physical id that a later Delete treats as nothing.
    assert body["PhysicalResourceId"] == "failed:request-1"
    assert tokens["current"] not in json.dumps(body) + log_output.getvalue()
    assert "ParameterTakenError" in log_output.getvalue()


def test_respond_answers_even_an_unexpected_error_with_its_type_only() -> None:
    event = cfn_event("Update", "Custom::OriginlockTokenParameter", PhysicalResourceId="x")
    sender = Recorder()

    def explode() -> handler.Answer:
        raise RuntimeError("something with a secret in it")

    handler.respond(event, explode, sender)
    [(_, body)] = sender.sent
    assert body["Status"] == FAILED
    assert body["Reason"] == "RuntimeError"
    assert body["PhysicalResourceId"] == "x"


def test_token_parameter_delete_keeps_an_adopted_parameter(tokens: dict[str, str]) -> None:
    store = FakeStore({NAME: tokens["current"]})
    event = cfn_event(
        "Delete", "Custom::OriginlockTokenParameter", PhysicalResourceId=f"adopted:{NAME}"
    )
    answer = handler.token_parameter(event, store)
    assert answer.physical_id == f"adopted:{NAME}"
    assert store.values[NAME] == tokens["current"]


def test_origin_header_delete_does_nothing() -> None:
    event = cfn_event(
        "Delete",
        "Custom::OriginlockOriginHeaderValue",
        PhysicalResourceId=ORIGIN_HEADER_PHYSICAL_ID,
    )
    store = FakeStore()
    answer = handler.origin_header(event, store, FakeDistribution(None))
    assert answer == handler.Answer(ORIGIN_HEADER_PHYSICAL_ID)


def test_build_response_truncates_the_reason() -> None:
    event = cfn_event("Create", "Custom::X")
    body = build_response(event, FAILED, "id", reason="x" * 5000)
    assert len(body["Reason"]) == 1000
    assert body["Data"] == {} and body["NoEcho"] is False


class FakeResponse(io.BytesIO):
    def __enter__(self) -> FakeResponse:
        return self

    def __exit__(self, *args: object) -> None:
        self.close()


def test_send_response_puts_json_with_an_empty_content_type() -> None:
    seen: list[Any] = []

    def opener(request: Any, timeout: float) -> FakeResponse:
        seen.append(request)
        return FakeResponse(b"")

    send_response("https://example.test/signed", {"Status": "SUCCESS"}, opener=opener)
    [request] = seen
    assert request.get_method() == "PUT"
    assert request.headers["Content-type"] == ""
    assert json.loads(request.data) == {"Status": "SUCCESS"}


def test_send_response_retries_then_gives_up_naming_only_the_error_type() -> None:
    calls: list[float] = []

    def opener(request: Any, timeout: float) -> FakeResponse:
        raise urllib.error.URLError("network down")

    with pytest.raises(ResponseNotSentError) as caught:
        send_response(
            "https://example.test/signed",
            {"Data": {"Value": "secret-value"}},
            opener=opener,
            sleep=calls.append,
        )
    assert calls == [1.0, 2.0]
    assert "secret-value" not in str(caught.value)


def test_send_response_refuses_a_non_https_url() -> None:
    with pytest.raises(ResponseNotSentError):
        send_response("file:///etc/passwd", {})


# -- boto3 adapters against moto -----------------------------------------------------


@pytest.fixture
def moto_aws(aws: None) -> Iterator[None]:
    with mock_aws():
        yield


def test_ssm_store_round_trip(moto_aws: None, tokens: dict[str, str]) -> None:
    store = SsmParameterStore(boto3.client("ssm"))
    assert store.get(NAME) is None
    assert store.create(NAME, tokens["current"], None) is True
    assert store.create(NAME, tokens["previous"], None) is False
    assert store.get(NAME) == tokens["current"]
    described = boto3.client("ssm").describe_parameters()["Parameters"][0]
    assert described["Type"] == "SecureString"
    store.delete(NAME)
    store.delete(NAME)  # a missing parameter is not an error
    assert store.get(NAME) is None


def test_ssm_store_uses_the_kms_key(moto_aws: None, tokens: dict[str, str]) -> None:
    key_id = boto3.client("kms").create_key()["KeyMetadata"]["Arn"]
    SsmParameterStore(boto3.client("ssm")).create(NAME, tokens["current"], key_id)
    described = boto3.client("ssm").describe_parameters()["Parameters"][0]
    assert described["KeyId"] == key_id


def create_distribution(header_value: str) -> str:
    cloudfront = boto3.client("cloudfront")
    response = cloudfront.create_distribution(
        DistributionConfig={
            "CallerReference": "originlock-test",
            "Comment": "test",
            "Enabled": True,
            "Origins": {
                "Quantity": 1,
                "Items": [
                    {
                        "Id": "api",
                        "DomainName": "abc.execute-api.eu-west-1.amazonaws.com",
                        "CustomHeaders": {
                            "Quantity": 1,
                            "Items": [{"HeaderName": HEADER, "HeaderValue": header_value}],
                        },
                        "CustomOriginConfig": {
                            "HTTPPort": 80,
                            "HTTPSPort": 443,
                            "OriginProtocolPolicy": "https-only",
                        },
                    }
                ],
            },
            "DefaultCacheBehavior": {
                "TargetOriginId": "api",
                "ViewerProtocolPolicy": "redirect-to-https",
                "CachePolicyId": "4135ea2d-6df8-44a3-9df3-4b5a84be39ad",
            },
        }
    )
    return str(response["Distribution"]["Id"])


class NotYetCreated:
    """CloudFormation before the distribution exists (moto raises AttributeError here)."""

    def describe_stack_resource(self, **kwargs: str) -> dict[str, Any]:
        from botocore.exceptions import ClientError

        raise ClientError(
            {"Error": {"Code": "ValidationError", "Message": "Resource does not exist"}},
            "DescribeStackResource",
        )


def test_stack_distribution_is_none_before_the_distribution_exists(moto_aws: None) -> None:
    live = StackDistribution(NotYetCreated(), boto3.client("cloudfront"))
    assert live.distribution_config(STACK_ID, "EdgeDistribution") is None


def test_stack_distribution_reads_the_live_header(moto_aws: None, tokens: dict[str, str]) -> None:
    # Given a live distribution that the stack's logical id points at
    # (moto's CloudFormation cannot create one, so DescribeStackResource is faked)
    distribution_id = create_distribution(tokens["current"])
    stack_id = STACK_ID

    class Pointing:
        def describe_stack_resource(self, **kwargs: str) -> dict[str, Any]:
            assert kwargs == {"StackName": stack_id, "LogicalResourceId": "EdgeDistribution"}
            return {
                "StackResourceDetail": {
                    "PhysicalResourceId": distribution_id,
                    "ResourceStatus": "UPDATE_COMPLETE",
                }
            }

    live = StackDistribution(Pointing(), boto3.client("cloudfront"))
    # When
    config = live.distribution_config(stack_id, "EdgeDistribution")
    # Then
    assert config is not None
    assert header_values(config, HEADER) == [tokens["current"]]


def test_stack_distribution_is_none_for_a_deleted_distribution(moto_aws: None) -> None:
    class Deleted:
        def describe_stack_resource(self, **kwargs: str) -> dict[str, Any]:
            return {"StackResourceDetail": {"PhysicalResourceId": "EGONE", "ResourceStatus": "x"}}

    live = StackDistribution(Deleted(), boto3.client("cloudfront"))
    assert live.distribution_config(STACK_ID, "EdgeDistribution") is None


def test_stack_distribution_fails_closed_when_cloudformation_is_unreadable(
    moto_aws: None,
) -> None:
    from botocore.exceptions import ClientError

    class Denied:
        def describe_stack_resource(self, **kwargs: str) -> dict[str, Any]:
            raise ClientError(
                {"Error": {"Code": "AccessDenied", "Message": "no"}}, "DescribeStackResource"
            )

    live = StackDistribution(Denied(), boto3.client("cloudfront"))
    with pytest.raises(LiveConfigUnavailableError):
        live.distribution_config(STACK_ID, "EdgeDistribution")


def test_origin_header_end_to_end_on_moto(moto_aws: None, tokens: dict[str, str]) -> None:
    # Given a token document that accepts current and previous, a distribution that
    # sends previous, and no stack record of the distribution (first create)
    boto3.client("ssm").put_parameter(
        Name=NAME,
        Value=document(current=tokens["current"], previous=tokens["previous"]),
        Type="SecureString",
    )
    sender = Recorder()
    event = cfn_event("Create", "Custom::OriginlockOriginHeaderValue", props=guard_properties())
    live = StackDistribution(NotYetCreated(), boto3.client("cloudfront"))
    # When
    handler.respond(event, lambda: handler.origin_header(event, SsmParameterStore(), live), sender)
    # Then first create answers current
    [(_, body)] = sender.sent
    assert body["Status"] == SUCCESS
    assert body["Data"]["Value"] == tokens["current"]


def test_token_parameter_handler_creates_on_moto(
    moto_aws: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    sender = Recorder()
    monkeypatch.setattr(handler, "send_response", sender)
    event = cfn_event("Create", "Custom::OriginlockTokenParameter", props={"ParameterName": NAME})
    handler.token_parameter_handler(event, LAMBDA_CONTEXT)
    [(_, body)] = sender.sent
    assert body["Status"] == SUCCESS
    assert body["PhysicalResourceId"] == f"created:{NAME}"
    value = boto3.client("ssm").get_parameter(Name=NAME, WithDecryption=True)["Parameter"]
    assert TokenDocument.parse(value["Value"]).current is not None
    # The response carries no value: only the name and the ownership.
    assert body["Data"] == {"ParameterName": NAME, "Adopted": "false"}


# -- token-age probe -----------------------------------------------------------------


def test_token_age_seconds() -> None:
    now = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    assert token_age_seconds(now - timedelta(days=14), now) == 14 * 86400
    assert token_age_seconds(now + timedelta(seconds=5), now) == 0.0
    assert token_age_seconds(datetime(2026, 11, 25, 11, 0), now) == 3600


def test_last_modified_reads_metadata_only(moto_aws: None, tokens: dict[str, str]) -> None:
    ssm = boto3.client("ssm")
    ssm.put_parameter(Name=NAME, Value=tokens["current"], Type="SecureString")
    ssm.put_parameter(Name=NAME + ".lock", Value="{}", Type="String")
    modified = last_modified(ssm, NAME)
    assert isinstance(modified, datetime)
    with pytest.raises(ParameterNotFoundError):
        last_modified(ssm, "/absent")
