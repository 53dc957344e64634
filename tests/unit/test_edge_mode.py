"""Edge-signed mode in the token document, the authorizer's cache and the rotation steps.

The token format and its verifier have their own tests (test_edge_token.py); here: what the
document says about the mode, that the authorizer allows exactly the tokens an accepted key
signed for a window close to now (and still the values sent as is, so a deployment can switch
modes), that its Deny stays certain, and that the rotation in this mode writes the key to the
KeyValueStore (never to a result) and waits for its propagation.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

import boto3
import pytest
from botocore.config import Config
from botocore.stub import ANY, Stubber

from authorizer.cache import DENY_NO_MATCH, NO_DECISION, AcceptedSetCache
from rotate import steps
from rotate.adapters import (
    KEY_VALUE_STORE,
    Fence,
    LiveDistribution,
    Ports,
    SigningKeys,
    _LazyClients,
)
from rotate.errors import (
    CloudFrontThrottledError,
    DistributionChangedError,
    KeyValueStoreError,
    NoSigningKeyError,
    StateConflictError,
)
from rotate.settings import RotateSettings, SettingsError
from tests.unit.fakes import FakeClock, FakeParameter
from tokens.document import (
    CorruptDocumentError,
    Signing,
    TokenDocument,
    fingerprint,
    generate_token,
)
from tokens.edge import KVS_KEY_NAME, key_id, sign

DISTRIBUTION = "E2QWRUHAPOMQZL"
WINDOW = 60
SIGNING = Signing(DISTRIBUTION, WINDOW, 1)
KVS_ARN = "arn:aws:cloudfront::123456789012:key-value-store/0f1e2d3c-aaaa-bbbb-cccc-0123456789ab"
NOW = 1_800_000_030.0
EDGE_ENV = {
    "SSM_PARAMETER_NAME": "/originlock/test/origin-token",
    "DISTRIBUTION_ID": DISTRIBUTION,
    "LOCK_MODE": "edge-signed",
    "KVS_ARN": KVS_ARN,
}


def edge_document(**slots: str | None) -> TokenDocument:
    return TokenDocument(generation=3, mode="edge-signed", signing=SIGNING, **slots)  # type: ignore[arg-type]


# -- the document -------------------------------------------------------------------------
def test_a_header_mode_document_is_written_as_before() -> None:
    # Given a header-mode document
    document = TokenDocument(current=generate_token(), generation=2)

    # Then its JSON has no mode or signing field (older readers see what they always saw)
    data = json.loads(document.to_json())
    assert "mode" not in data and "signing" not in data
    assert TokenDocument.parse(document.to_json()).mode == "header"


def test_an_edge_signed_document_round_trips_with_its_signing_settings() -> None:
    key = generate_token()
    document = edge_document(current=key)

    parsed = TokenDocument.parse(document.to_json())

    assert parsed.mode == "edge-signed"
    assert parsed.signing == SIGNING
    assert parsed.current == key
    # The operator's summary names the key by its id (public), never by value
    summary = parsed.summary()
    assert summary["key_ids"] == {"current": key_id(key)}
    assert key not in json.dumps(summary)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"mode": "signed"}, "mode is not"),
        ({"mode": "edge-signed", "signing": None}, "no signing settings"),
        ({"signing": "E1"}, "signing is not a JSON object"),
        (
            {"signing": {"distribution_id": "E-1", "window_seconds": 60, "tolerance_windows": 1}},
            "distribution id",
        ),
        (
            {"signing": {"distribution_id": "E1", "window_seconds": 5, "tolerance_windows": 1}},
            "window",
        ),
        (
            {"signing": {"distribution_id": "E1", "window_seconds": 60, "tolerance_windows": True}},
            "tolerance",
        ),
    ],
)
def test_a_malformed_mode_or_signing_field_is_corrupt(change: dict[str, Any], message: str) -> None:
    key = generate_token()
    data = json.loads(edge_document(current=key).to_json()) | change

    with pytest.raises(CorruptDocumentError, match=message) as raised:
        TokenDocument.parse(json.dumps(data))

    assert key not in str(raised.value)


# -- the authorizer's cache ---------------------------------------------------------------
@dataclass
class Instance:
    """One authorizer instance's cache, with a wall clock for the windows."""

    parameter: FakeParameter
    clock: FakeClock = field(default_factory=FakeClock)
    wall: FakeClock = field(default_factory=lambda: FakeClock(NOW))

    def __post_init__(self) -> None:
        self.cache = AcceptedSetCache(
            self.parameter,
            self.clock,
            max_age=60.0,
            retry_interval=1.0,
            max_staleness=900.0,
            wall_clock=self.wall,
        )

    def decide(self, value: str) -> Any:
        return self.cache.decide(value.encode("ascii"))


def test_tokens_an_accepted_key_signed_are_allowed_by_slot() -> None:
    # Given a document with a pending and a current key
    pending, current = generate_token(), generate_token()
    instance = Instance(FakeParameter(edge_document(pending=pending, current=current).to_json()))

    # Then each key's token is allowed, under its slot
    assert instance.decide(sign(pending, DISTRIBUTION, NOW, WINDOW)).slot == "pending"
    assert instance.decide(sign(current, DISTRIBUTION, NOW, WINDOW)).slot == "current"


def test_a_token_outside_the_tolerance_is_denied_with_certainty() -> None:
    key = generate_token()
    instance = Instance(FakeParameter(edge_document(current=key).to_json()))
    assert instance.decide(sign(key, DISTRIBUTION, NOW, WINDOW)).allowed

    # A leaked value, replayed: allowed for the next window, refused two windows on
    replayed = sign(key, DISTRIBUTION, NOW, WINDOW)
    instance.wall.advance(WINDOW)
    assert instance.decide(replayed).allowed
    instance.wall.advance(WINDOW)
    assert instance.decide(replayed) == DENY_NO_MATCH


@pytest.mark.parametrize(
    "forged",
    [
        "another key",
        "another distribution",
        "mac flipped",
    ],
)
def test_a_forged_token_is_denied(forged: str) -> None:
    key = generate_token()
    instance = Instance(FakeParameter(edge_document(current=key).to_json()))
    if forged == "another key":
        token = sign(generate_token(), DISTRIBUTION, NOW, WINDOW)
    elif forged == "another distribution":
        token = sign(key, "EOTHERDISTRIB", NOW, WINDOW)
    else:
        good = sign(key, DISTRIBUTION, NOW, WINDOW)
        token = good[:-1] + ("A" if good[-1] != "A" else "B")

    assert instance.decide(token) == DENY_NO_MATCH


def test_without_signing_settings_a_signed_token_is_not_accepted() -> None:
    # A header-mode document: its values are not signing keys for the edges
    value = generate_token()
    instance = Instance(FakeParameter(TokenDocument(current=value, generation=1).to_json()))

    assert instance.decide(sign(value, DISTRIBUTION, NOW, WINDOW)) == DENY_NO_MATCH
    assert instance.decide(value).slot == "current"


def test_both_forms_are_accepted_while_a_deployment_switches_modes() -> None:
    # Given the document a switch from header mode leaves: the key staged, the header value
    # still current (edges that have not switched yet send it as is)
    header_value, key = generate_token(), generate_token()
    document = edge_document(pending=key, current=header_value)
    instance = Instance(FakeParameter(document.to_json()))

    # Then both what the old edges send and what the new ones send are allowed
    assert instance.decide(header_value).slot == "current"
    assert instance.decide(sign(key, DISTRIBUTION, NOW, WINDOW)).slot == "pending"


def test_an_edge_token_whose_copy_is_stale_is_undecided_not_denied() -> None:
    key = generate_token()
    parameter = FakeParameter(edge_document(current=key).to_json())
    instance = Instance(parameter)
    assert instance.decide(sign(key, DISTRIBUTION, NOW, WINDOW)).allowed

    # When SSM fails and the copy is older than the max age
    from tokens.store import StoreError

    parameter.failure = StoreError("ThrottlingException")
    instance.clock.advance(61)
    new_key = generate_token()

    # Then a token from a key the copy does not know is undecided (it may have been staged)
    assert instance.decide(sign(new_key, DISTRIBUTION, NOW, WINDOW)) == NO_DECISION


# -- the rotate settings ------------------------------------------------------------------
def test_edge_signed_settings_need_the_store_and_a_usable_distribution_id() -> None:
    with pytest.raises(SettingsError, match="KVS_ARN"):
        RotateSettings.from_env({k: v for k, v in EDGE_ENV.items() if k != "KVS_ARN"})
    with pytest.raises(SettingsError, match="distribution id"):
        RotateSettings.from_env(EDGE_ENV | {"DISTRIBUTION_ID": "E-1"})
    with pytest.raises(SettingsError, match="LOCK_MODE"):
        RotateSettings.from_env(EDGE_ENV | {"LOCK_MODE": "signed"})
    settings = RotateSettings.from_env(EDGE_ENV)
    assert settings.edge_signed
    # Short polls and drain by default: no distribution deployment to wait for
    assert settings.poll_interval_seconds == 5.0
    assert settings.drain_seconds == 60.0


# -- the rotation steps, on in-memory ports ----------------------------------------------
class MemoryStore:
    def __init__(self, document: TokenDocument) -> None:
        self.document = document
        self.writes: list[TokenDocument] = []

    def read(self) -> TokenDocument:
        return self.document

    def write(self, document: TokenDocument, fence: Any) -> None:
        self.document = document
        self.writes.append(document)


class FreeLock:
    def acquire(self, execution_id: str, detail: dict[str, Any]) -> dict[str, Any]:
        return {"acquired": True}

    def fence(self, execution_id: str) -> Any:
        return None

    def release(self, execution_id: str) -> bool:
        return True


class NoCaches:
    def reset_api_cache(self) -> bool:
        return False

    def replace_instances(self, epoch: str) -> bool:
        return False


class MemoryKeyValueStore:
    """The KeyValueStore as the steps see it through the port: the key, propagated or not."""

    def __init__(self, key: str | None) -> None:
        self.key = key
        self.propagated = True
        self.etag = "E1"
        self.sent: list[str] = []

    def config(self) -> LiveDistribution:
        values = {KEY_VALUE_STORE: self.key} if self.key else {}
        return LiveDistribution({}, self.etag, header_values=values)

    def describe(self) -> LiveDistribution:
        live = self.config()
        live.status = "Deployed" if self.propagated else "InProgress"
        return live

    def send(self, live: LiveDistribution, value: str, fence: Any) -> None:
        self.key, self.propagated = value, False
        self.sent.append(value)


def edge_ports(
    document: TokenDocument, key: str | None
) -> tuple[Ports, MemoryStore, MemoryKeyValueStore]:
    store, edges = MemoryStore(document), MemoryKeyValueStore(key)
    return Ports(store, FreeLock(), edges, NoCaches()), store, edges


def call(state: dict[str, Any] | None = None) -> steps.StepCall:
    return steps.StepCall("arn:aws:states:eu-west-1:1:execution:sm:run", state or {}, {})


def test_a_rotation_stages_a_key_writes_it_to_the_store_and_promotes_it_once_propagated() -> None:
    settings = RotateSettings.from_env(EDGE_ENV)
    old = generate_token()
    ports, store, edges = edge_ports(edge_document(current=old), old)

    staged = steps.stage(call(), settings, ports)
    new = store.document.pending
    assert new is not None and new != old
    # The result names the key by fingerprint and key id, never by value
    assert staged == {
        "pending": fingerprint(new),
        "reused": False,
        "replaced": None,
        "generation": 4,
        "pending_kid": key_id(new),
    }

    switched = steps.switch(call(), settings, ports)
    assert edges.sent == [new]
    state = {"switch": {"result": switched}}
    # Not yet propagated: not deployed, and promote refuses
    assert steps.check_deployed(call(state), settings, ports)["deployed"] is False
    with pytest.raises(StateConflictError):
        steps.promote(call(state), settings, ports)

    edges.propagated = True
    assert steps.check_deployed(call(state), settings, ports)["deployed"] is True
    steps.promote(call(state), settings, ports)
    steps.retire(call(state), settings, ports)
    assert store.document.current == new
    assert store.document.previous is None
    results = json.dumps([staged, switched])
    assert new not in results and old not in results


def test_the_first_edge_signed_stage_writes_the_mode_and_how_the_edges_sign() -> None:
    # Given a header-mode document (the deployment switches to edge-signed mode)
    settings = RotateSettings.from_env(EDGE_ENV)
    header_value = generate_token()
    ports, store, _ = edge_ports(TokenDocument(current=header_value, generation=1), header_value)

    steps.stage(call(), settings, ports)

    document = store.document
    assert document.mode == "edge-signed"
    assert document.signing == SIGNING
    assert document.current == header_value  # still accepted while edges switch


def test_a_staged_key_never_shares_a_key_id_with_a_key_in_the_document(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = RotateSettings.from_env(EDGE_ENV)
    old = generate_token()
    clash = "A" * 43
    fresh = iter([clash, clash, "B" * 43])
    monkeypatch.setattr(steps, "generate_token", lambda: next(fresh))
    monkeypatch.setattr(
        "tokens.edge.key_id", lambda key: "00000000" if key in (old, clash) else "11111111"
    )
    ports, store, _ = edge_ports(edge_document(current=old), old)

    steps.stage(call(), settings, ports)

    assert store.document.pending == "B" * 43


# -- the KeyValueStore adapter, on botocore's Stubber --------------------------------------
FAKE = {
    "region_name": "us-east-1",
    "aws_access_key_id": "testing",
    "aws_secret_access_key": "testing",
}


def stubbed_store(settings: RotateSettings, now: float) -> tuple[SigningKeys, Stubber, Stubber]:
    clients = _LazyClients()
    config = Config(retries={"mode": "standard", "max_attempts": 1})
    kvs = boto3.client("cloudfront-keyvaluestore", config=config, **FAKE)
    cloudfront = boto3.client("cloudfront", config=config, **FAKE)
    clients._clients[("cloudfront-keyvaluestore", False)] = kvs
    clients._clients[("cloudfront-keyvaluestore", True)] = kvs
    clients._clients[("cloudfront", False)] = cloudfront
    return SigningKeys(settings, clients, clock=lambda: now), Stubber(kvs), Stubber(cloudfront)


def describe_store(modified: float) -> dict[str, Any]:
    when = datetime.fromtimestamp(modified, UTC)
    return {
        "KvsARN": KVS_ARN,
        "Created": when,
        "LastModified": when,
        "ETag": "ETAG2",
        "ItemCount": 1,
        "TotalSizeInBytes": 55,
    }


def distribution(headers: dict[str, str] | None = None, status: str = "Deployed") -> dict[str, Any]:
    items = [{"HeaderName": k, "HeaderValue": v} for k, v in (headers or {}).items()]
    origin = {
        "Id": "api",
        "DomainName": "abc.execute-api.eu-west-1.amazonaws.com",
        "CustomHeaders": {"Quantity": len(items), "Items": items},
    }
    config = {
        "CallerReference": "r",
        "Origins": {"Quantity": 1, "Items": [origin]},
        "DefaultCacheBehavior": {"TargetOriginId": "api", "ViewerProtocolPolicy": "https-only"},
        "Comment": "",
        "Enabled": True,
    }
    return {
        "Distribution": {
            "Id": DISTRIBUTION,
            "ARN": "arn",
            "Status": status,
            "LastModifiedTime": datetime(2026, 1, 1, tzinfo=UTC),
            "InProgressInvalidationBatches": 0,
            "DomainName": "d111.cloudfront.net",
            "ActiveTrustedSigners": {"Enabled": False, "Quantity": 0},
            "DistributionConfig": config,
        },
        "ETag": "DIST1",
    }


@pytest.mark.parametrize(("age", "status"), [(10.0, "InProgress"), (61.0, "Deployed")])
def test_the_store_reports_deployed_once_its_last_write_is_the_propagation_wait_old(
    age: float, status: str
) -> None:
    settings = RotateSettings.from_env(EDGE_ENV)
    key = generate_token()
    adapter, kvs, cloudfront = stubbed_store(settings, NOW)
    kvs.add_response("describe_key_value_store", describe_store(NOW - age), {"KvsARN": KVS_ARN})
    kvs.add_response(
        "get_key",
        {"Key": KVS_KEY_NAME, "Value": key, "ItemCount": 1, "TotalSizeInBytes": 55},
        {"KvsARN": KVS_ARN, "Key": KVS_KEY_NAME},
    )
    cloudfront.add_response("get_distribution", distribution(), {"Id": DISTRIBUTION})

    with kvs, cloudfront:
        live = adapter.describe()

    assert live.status == status
    assert live.header_values == {KEY_VALUE_STORE: key}
    assert key not in repr(live)


def test_the_function_run_by_cloudfront_must_sign_with_the_new_key() -> None:
    settings = RotateSettings.from_env(EDGE_ENV | {"EDGE_FUNCTION_NAME": "originlock-sign"})
    key, stale = generate_token(), generate_token()
    for signer, expected in ((stale, "InProgress"), (key, "Deployed")):
        adapter, kvs, cloudfront = stubbed_store(settings, NOW)
        kvs.add_response("describe_key_value_store", describe_store(NOW - 120), {"KvsARN": KVS_ARN})
        kvs.add_response(
            "get_key",
            {"Key": KVS_KEY_NAME, "Value": key, "ItemCount": 1, "TotalSizeInBytes": 55},
            {"KvsARN": KVS_ARN, "Key": KVS_KEY_NAME},
        )
        cloudfront.add_response("get_distribution", distribution(), {"Id": DISTRIBUTION})
        cloudfront.add_response(
            "describe_function",
            {
                "FunctionSummary": {
                    "Name": "originlock-sign",
                    "FunctionConfig": {"Comment": "", "Runtime": "cloudfront-js-2.0"},
                    "FunctionMetadata": {
                        "FunctionARN": "arn",
                        "LastModifiedTime": datetime(2026, 1, 1, tzinfo=UTC),
                    },
                },
                "ETag": "F1",
            },
            {"Name": "originlock-sign", "Stage": "LIVE"},
        )
        token = sign(signer, DISTRIBUTION, NOW, WINDOW)
        output = {"request": {"headers": {settings.header_name: {"value": token}}}}
        cloudfront.add_response(
            "test_function",
            {"TestResult": {"FunctionOutput": json.dumps(output), "ComputeUtilization": "12"}},
            {"Name": "originlock-sign", "IfMatch": "F1", "Stage": "LIVE", "EventObject": ANY},
        )
        sent: list[dict[str, Any]] = []
        cloudfront.client.meta.events.register(
            "before-parameter-build.cloudfront.TestFunction",
            lambda params, sent=sent, **_: sent.append(json.loads(params["EventObject"])),
        )
        with kvs, cloudfront:
            assert adapter.describe().status == expected
        # The test event names no real distribution: the token CloudFront returns opens nothing
        assert sent[0]["context"]["distributionId"] != DISTRIBUTION


def test_a_store_refusal_is_named_without_aws_text() -> None:
    settings = RotateSettings.from_env(EDGE_ENV)
    adapter, kvs, _ = stubbed_store(settings, NOW)
    key = generate_token()
    kvs.add_client_error(
        "update_keys",
        "ValidationException",
        service_message=f"Value {key} is not valid",
        http_status_code=400,
    )
    with kvs, pytest.raises(KeyValueStoreError) as raised:
        adapter.send(LiveDistribution({}, "ETAG2"), key, FRESH)
    assert str(raised.value) == "KeyValueStore update_keys: ValidationException"


def test_a_rotation_never_changes_the_window_the_edges_sign_with() -> None:
    # Given a document whose edges sign with 60 s windows, and a function set for 30 s
    settings = RotateSettings.from_env(EDGE_ENV | {"EDGE_WINDOW_SECONDS": "30"})
    key = generate_token()
    ports, store, edges = edge_ports(edge_document(current=key), key)

    with pytest.raises(StateConflictError, match="only through header mode"):
        steps.stage(call(), settings, ports)
    assert store.writes == [] and edges.sent == []


def test_a_static_origin_header_left_by_a_mode_switch_stops_the_wait_with_a_named_error() -> None:
    settings = RotateSettings.from_env(EDGE_ENV)
    adapter, kvs, cloudfront = stubbed_store(settings, NOW)
    kvs.add_response("describe_key_value_store", describe_store(NOW - 120), {"KvsARN": KVS_ARN})
    kvs.add_response(
        "get_key",
        {"Key": KVS_KEY_NAME, "Value": generate_token(), "ItemCount": 1, "TotalSizeInBytes": 55},
        {"KvsARN": KVS_ARN, "Key": KVS_KEY_NAME},
    )
    static = generate_token()
    cloudfront.add_response(
        "get_distribution", distribution({settings.header_name: static}), {"Id": DISTRIBUTION}
    )

    with kvs, cloudfront, pytest.raises(StateConflictError, match="static origin header") as raised:
        adapter.describe()
    assert static not in str(raised.value)


def test_an_empty_store_is_named_and_a_stale_etag_is_retried() -> None:
    settings = RotateSettings.from_env(EDGE_ENV)
    adapter, kvs, cloudfront = stubbed_store(settings, NOW)
    kvs.add_response("describe_key_value_store", describe_store(NOW - 120), {"KvsARN": KVS_ARN})
    kvs.add_client_error("get_key", "ResourceNotFoundException", http_status_code=404)
    cloudfront.add_response("get_distribution", distribution(), {"Id": DISTRIBUTION})
    with kvs, cloudfront, pytest.raises(NoSigningKeyError):
        adapter.describe()

    adapter, kvs, _ = stubbed_store(settings, NOW)
    kvs.add_client_error("update_keys", "ConflictException", http_status_code=409)
    live = LiveDistribution({}, "ETAG1")
    with kvs, pytest.raises(DistributionChangedError):
        adapter.send(live, generate_token(), FRESH)

    adapter, kvs, _ = stubbed_store(settings, NOW)
    kvs.add_client_error("update_keys", "ThrottlingException", http_status_code=429)
    with kvs, pytest.raises(CloudFrontThrottledError):
        adapter.send(live, generate_token(), FRESH)


def test_the_key_is_written_with_the_stores_etag() -> None:
    settings = RotateSettings.from_env(EDGE_ENV)
    adapter, kvs, _ = stubbed_store(settings, NOW)
    key = generate_token()
    kvs.add_response(
        "update_keys",
        {"ItemCount": 1, "TotalSizeInBytes": 55, "ETag": "ETAG3"},
        {"KvsARN": KVS_ARN, "IfMatch": "ETAG2", "Puts": [{"Key": KVS_KEY_NAME, "Value": key}]},
    )
    with kvs:
        adapter.send(LiveDistribution({}, "ETAG2"), key, FRESH)


class _Fresh:
    def ensure_fresh(self) -> None:
        pass


FRESH = cast(Fence, _Fresh())


def test_a_header_mode_rotation_never_sends_a_key_staged_for_edge_signed_mode() -> None:
    # Given a deploy switching to edge-signed mode has staged a key, and the rotate function
    # still runs with the header-mode settings (a schedule fired during the deploy)
    settings = RotateSettings.from_env({k: v for k, v in EDGE_ENV.items() if k != "LOCK_MODE"})
    header_value, key = generate_token(), generate_token()
    ports, store, edges = edge_ports(edge_document(pending=key, current=header_value), header_value)

    # Then its stage stops with a named error, before anything is sent
    with pytest.raises(StateConflictError, match="switching modes") as raised:
        steps.stage(call(), settings, ports)
    assert store.writes == [] and edges.sent == []
    assert key not in str(raised.value)
