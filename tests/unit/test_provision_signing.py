"""``Custom::OriginlockSigningKey``: an edge-signed deploy puts a key in place, in order.

What a user would notice: after the deploy, every edge signs with a key every authorizer
accepts; the header value CloudFront still sends during a switch stays accepted; the store is
written only after the stage wait; nothing happens while a rotation runs; no key is shown.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

import pytest

from provision.errors import BadRequestError, RotationRunningError
from provision.signing import (
    IN_PLACE,
    NO_DISTRIBUTION_YET,
    STAGED,
    SigningStateError,
    release_signing_key,
    signing_key,
)
from tests.unit.test_provision import (
    EXECUTION,
    LOCK,
    FakeLock,
    FakeStacks,
    held_by_running,
)
from tokens.document import Signing, TokenDocument, generate_token
from tokens.edge import key_id

PARAMETER = "/originlock/stack/origin-token"
STACK_ID = "arn:aws:cloudformation:eu-west-1:123456789012:stack/stack/0c1a"
DISTRIBUTION = "E2QWRUHAPOMQZL"
STAGE_WAIT = 131.0
PROPAGATION = 60.0


class Events(list[str]):
    """What happened, in order: the document written, the wait, the store written."""


class MemoryDocuments:
    def __init__(self, events: Events, document: TokenDocument | None) -> None:
        self.events = events
        self.value = document.to_json() if document else None

    def get(self, name: str) -> str | None:
        return self.value

    def put(self, name: str, value: str, key_id: str | None) -> None:
        self.events.append("document written")
        self.value = value

    @property
    def document(self) -> TokenDocument:
        assert self.value is not None
        return TokenDocument.parse(self.value)


class MemoryKeys:
    def __init__(self, events: Events, key: str | None = None) -> None:
        self.events = events
        self.key = key
        self.etag = "E1"

    def read(self) -> tuple[str | None, str]:
        return self.key, self.etag

    def write(self, key: str, etag: str) -> None:
        assert etag == self.etag
        self.events.append("store written")
        self.key, self.etag = key, "E2"


class Lookup:
    def __init__(self, distribution: str | None) -> None:
        self.distribution = distribution

    def distribution_id(self, stack_id: str, logical_id: str) -> str | None:
        return self.distribution


def properties(**extra: str) -> dict[str, str]:
    base = {
        "ParameterName": PARAMETER,
        "DistributionLogicalId": "EdgeDistribution",
        "LockParameterName": LOCK,
        "WindowSeconds": "60",
        "ToleranceWindows": "1",
        "StageWaitSeconds": str(STAGE_WAIT),
        "PropagationSeconds": str(PROPAGATION),
    }
    return base | extra


class World:
    def __init__(
        self,
        document: TokenDocument | None,
        key: str | None = None,
        distribution: str | None = DISTRIBUTION,
        lock: FakeLock | None = None,
    ) -> None:
        self.events = Events()
        self.documents = MemoryDocuments(self.events, document)
        self.keys = MemoryKeys(self.events, key)
        self.lookup = Lookup(distribution)
        self.lock = lock or FakeLock()
        self.waited: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.events.append("waited")
        self.waited.append(seconds)

    def run(self, props: Mapping[str, str] | None = None) -> object:
        return signing_key(
            props or properties(),
            STACK_ID,
            self.documents,
            self.keys,
            self.lookup,
            self.lock,
            FakeStacks(),
            self.sleep,
        )


def test_signing_key_switching_modes_stages_a_key_waits_then_writes_the_store() -> None:
    # Given a header-mode stack whose distribution exists and sends the current value
    header_value = generate_token()
    world = World(TokenDocument(current=header_value, generation=4))

    # When the resource before the distribution runs
    outcome = world.run()

    # Then the document accepts a new key (and still the header value), the deploy waited
    # the stage wait, and only then the store got the key
    document = world.documents.document
    assert document.mode == "edge-signed"
    assert document.signing == Signing(DISTRIBUTION, 60, 1)
    assert document.current == header_value
    assert document.pending is not None and document.pending == world.keys.key
    assert world.events == ["document written", "waited", "store written", "waited"]
    # (the stage wait, then the propagation wait before the distribution may deploy)
    assert world.waited == [STAGE_WAIT, PROPAGATION]
    # and CloudFormation learns the key id, never the key
    assert outcome.state == STAGED  # type: ignore[attr-defined]
    assert outcome.data() == {"KeyId": key_id(document.pending), "State": STAGED}  # type: ignore[attr-defined]


def test_signing_key_before_a_first_distribution_does_nothing() -> None:
    world = World(TokenDocument(current=generate_token(), generation=1), distribution=None)

    outcome = world.run()

    assert outcome.state == NO_DISTRIBUTION_YET  # type: ignore[attr-defined]
    assert world.events == []


def test_signing_key_after_the_distribution_is_a_no_op_when_in_place() -> None:
    world = World(TokenDocument(current=generate_token(), generation=1))
    world.run(properties(DistributionId=DISTRIBUTION))
    world.events.clear()

    outcome = world.run(properties(DistributionId=DISTRIBUTION))

    assert outcome.state == IN_PLACE  # type: ignore[attr-defined]
    assert world.events == []


def test_signing_key_refuses_while_a_rotation_runs() -> None:
    world = World(TokenDocument(current=generate_token(), generation=1), lock=held_by_running())

    with pytest.raises(RotationRunningError, match=EXECUTION.rsplit(":", 1)[-1]):
        world.run()

    assert world.events == []


def test_signing_key_never_turns_a_staged_header_value_into_a_key() -> None:
    # A header-mode rotation left a value staged: it may have been sent as a header
    staged = generate_token()
    world = World(TokenDocument(current=generate_token(), pending=staged, generation=2))

    with pytest.raises(SigningStateError, match="originlock rotate") as raised:
        world.run()

    assert world.events == []
    assert staged not in str(raised.value)


def test_signing_key_reuses_a_key_an_earlier_attempt_staged() -> None:
    # Given an attempt that staged a key and failed before it wrote the store
    world = World(TokenDocument(current=generate_token(), generation=1))
    world.keys.write = lambda key, etag: (_ for _ in ()).throw(RuntimeError("store down"))  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        world.run()
    staged = world.documents.document.pending

    # When the deploy is retried
    world.keys = MemoryKeys(world.events)
    world.run()

    # Then the same key is written, no second one staged
    assert world.keys.key == staged
    assert world.documents.document.pending == staged


def test_signing_key_stops_when_the_document_changed_during_the_wait() -> None:
    world = World(TokenDocument(current=generate_token(), generation=1))

    def rotation_meanwhile(seconds: float) -> None:
        world.documents.value = TokenDocument(current=generate_token(), generation=9).to_json()

    world.sleep = rotation_meanwhile  # type: ignore[method-assign]

    with pytest.raises(SigningStateError, match="changed while the deploy waited"):
        world.run()

    assert world.keys.key is None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"WindowSeconds": "5"}, "window"),
        ({"ToleranceWindows": "x"}, "ToleranceWindows"),
        ({"DistributionId": "E-1"}, "distribution id"),
        ({"StageWaitSeconds": "-1"}, "negative"),
    ],
)
def test_signing_key_refuses_malformed_settings(change: dict[str, str], message: str) -> None:
    world = World(TokenDocument(current=generate_token(), generation=1))

    with pytest.raises(BadRequestError, match=message):
        world.run(properties(**change))

    assert world.events == []


def test_signing_key_shows_no_key_anywhere() -> None:
    world = World(TokenDocument(current=generate_token(), generation=1))
    outcome = world.run()
    key = world.keys.key
    assert key is not None

    assert key not in json.dumps(outcome.data())  # type: ignore[attr-defined]
    assert key not in repr(outcome)


def test_signing_key_refuses_to_change_the_window_in_place() -> None:
    # Given a stack in edge-signed mode with 60 s windows
    world = World(TokenDocument(current=generate_token(), generation=1))
    world.run()
    world.events.clear()

    # When a deploy asks for 30 s windows
    with pytest.raises(SigningStateError, match="only through header mode"):
        world.run(properties(WindowSeconds="30"))

    # Then nothing changed: the authorizers and the edges still agree
    assert world.events == []
    assert world.documents.document.signing == Signing(DISTRIBUTION, 60, 1)


def test_release_drops_a_key_no_rotation_promoted_and_says_header_mode() -> None:
    # Given a switch to edge-signed mode that staged a key, then a deploy back (or a rollback)
    header_value = generate_token()
    world = World(TokenDocument(current=header_value, generation=1))
    world.run()
    staged = world.documents.document.pending
    assert staged is not None

    # When CloudFormation deletes the resource
    assert release_signing_key(properties(), world.documents) == "released"

    # Then the key is gone, the header value stays, and a header-mode rotation can stage again
    document = world.documents.document
    assert document.pending is None and document.current == header_value
    assert document.mode == "header"


def test_release_keeps_a_promoted_key_and_leaves_other_documents_alone() -> None:
    # A key promoted by a rotation is what the drift guard gives the static header: it stays
    key = generate_token()
    world = World(
        TokenDocument(
            current=key, generation=5, mode="edge-signed", signing=Signing(DISTRIBUTION, 60, 1)
        )
    )
    assert release_signing_key(properties(), world.documents) == "released"
    assert world.documents.document.current == key

    header = World(TokenDocument(current=generate_token(), generation=1))
    assert release_signing_key(properties(), header.documents) == "nothing to release"
    assert header.events == []
    gone = World(None)
    assert release_signing_key(properties(), gone.documents) == "no parameter"
