"""The custom resources of the CDK app: token parameter provisioning and the drift guard.

Pure decisions run against in-memory fakes; the boto3 adapters run against moto.
Every test that touches a value also checks that it never reaches a log line or
a failure reason.
"""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import time
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
from provision.aws import (
    UNREADABLE_LOCK,
    SsmParameterStore,
    SsmRotationLock,
    StackDistribution,
    StackStatusReader,
)
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
    LockUnavailableError,
    ParameterMissingError,
    ParameterOwnedError,
    ParameterTakenError,
    RotationRunningError,
    StackUnavailableError,
    StoreUnavailableError,
    UnusableParameterError,
)
from provision.logic import (
    LOCK_FREE,
    LOCK_SKIPPED,
    LOCK_STALE,
    ORIGIN_HEADER_PHYSICAL_ID,
    OWNER_TAG,
    HeaderChoice,
    choose_header_value,
    header_values,
    origin_header_value,
    parse_physical_id,
    physical_id_for,
    provision_parameter,
    remove_parameter,
    stack_name_of,
)
from provision.token_age import (
    ParameterNotFoundError,
    current_value_set_at,
    last_modified,
    token_age_seconds,
)
from tokens.document import TokenDocument, fingerprint, generate_token

NAME = "/originlock/test/origin-token"
# The stack the test's custom resource events come from (STACK_ID's name), and another one.
OWNER = "Originlock"
OTHER = "Staging"
LOCK = NAME + ".lock"
HEADER = "x-cf-api-gateway-token"
STACK_ID = "arn:aws:cloudformation:eu-west-1:123456789012:stack/Originlock/0f6e"
EXECUTION = "arn:aws:states:eu-west-1:123456789012:execution:Originlock-rotation:revoke-1a2b"


# -- fakes -------------------------------------------------------------------------


class FakeStore:
    """Parameter Store in a dict, with each parameter's owner tag; records what was written."""

    def __init__(
        self,
        values: dict[str, str] | None = None,
        race: str | None = None,
        owners: dict[str, str] | None = None,
        race_owner: str | None = None,
    ) -> None:
        self.values = dict(values or {})
        self.owners = dict(owners or {})
        self.created: list[tuple[str, str | None]] = []
        self.deleted: list[str] = []
        # A value (and its owner tag) another writer puts just before our create
        # (ParameterAlreadyExists).
        self.race = race
        self.race_owner = race_owner
        self.read: list[str] = []
        # Owner tags set and removed, in order.
        self.tagged: list[tuple[str, str]] = []
        self.untagged: list[str] = []

    def get(self, name: str) -> str | None:
        self.read.append(name)
        return self.values.get(name)

    def create(self, name: str, value: str, key_id: str | None, owner: str | None = None) -> bool:
        if self.race is not None:
            self.values[name] = self.race
            if self.race_owner is not None:
                self.owners[name] = self.race_owner
            self.race = None
        if name in self.values:
            return False
        self.values[name] = value
        if owner is not None:
            self.owners[name] = owner
        self.created.append((name, key_id))
        return True

    def delete(self, name: str) -> None:
        self.values.pop(name, None)
        self.owners.pop(name, None)
        self.deleted.append(name)

    def owner(self, name: str) -> str | None:
        return self.owners.get(name) if name in self.values else None

    def set_owner(self, name: str, owner: str) -> None:
        self.owners[name] = owner
        self.tagged.append((name, owner))

    def clear_owner(self, name: str) -> None:
        self.owners.pop(name, None)
        self.untagged.append(name)


class FakeDistribution:
    def __init__(self, config: Mapping[str, Any] | None) -> None:
        self.config = config
        self.asked: list[tuple[str, str]] = []

    def distribution_config(self, stack_id: str, logical_id: str) -> Mapping[str, Any] | None:
        self.asked.append((stack_id, logical_id))
        return self.config


class FakeLock:
    """The workflow's lock parameters and which executions Step Functions reports RUNNING."""

    def __init__(self, holders: Mapping[str, str] | None = None, running: set[str] | None = None):
        self.holders = dict(holders or {})
        self.running_executions = set(running or ())
        self.asked: list[str] = []

    def holder(self, name: str) -> str | None:
        self.asked.append(f"holder {name}")
        return self.holders.get(name)

    def running(self, execution_arn: str) -> bool:
        self.asked.append(f"running {execution_arn}")
        return execution_arn in self.running_executions


def held_by_running() -> FakeLock:
    return FakeLock({LOCK: EXECUTION}, running={EXECUTION})


class FakeStacks:
    """CloudFormation's view of the stack being deployed."""

    def __init__(self, status: str = "UPDATE_IN_PROGRESS", readable: bool = True) -> None:
        self.value = status
        self.readable = readable
        self.asked: list[str] = []

    def status(self, stack_id: str) -> str:
        self.asked.append(stack_id)
        if not self.readable:
            raise StackUnavailableError("DescribeStacks failed: Throttling")
        return self.value


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
        "LockParameterName": LOCK,
        **extra,
    }


# -- Custom::OriginlockTokenParameter ----------------------------------------------


def test_provision_parameter_creates_a_fresh_document_when_absent() -> None:
    # Given no parameter
    store = FakeStore()
    # When the resource is created
    outcome = provision_parameter("Create", {"ParameterName": NAME}, None, store, owner=OWNER)
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
    provision_parameter("Create", {"ParameterName": NAME, "KeyId": key}, None, store, owner=OWNER)
    assert store.created == [(NAME, key)]


def test_provision_parameter_adopts_a_blog_style_plain_value_as_is(tokens: dict[str, str]) -> None:
    # Given the blog's parameter: a bare value
    store = FakeStore({NAME: tokens["current"]})
    # When
    outcome = provision_parameter("Create", {"ParameterName": NAME}, None, store, owner=OWNER)
    # Then it is adopted untouched (its first rotation converts it)
    assert store.values[NAME] == tokens["current"]
    assert store.created == []
    assert outcome.adopted and outcome.physical_id == f"adopted:{NAME}"
    assert outcome.fingerprint == fingerprint(tokens["current"])


def test_provision_parameter_adopts_an_existing_document(tokens: dict[str, str]) -> None:
    existing = document(current=tokens["current"], previous=tokens["previous"])
    store = FakeStore({NAME: existing})
    outcome = provision_parameter("Create", {"ParameterName": NAME}, None, store, owner=OWNER)
    assert store.values[NAME] == existing
    assert outcome.adopted


def test_provision_parameter_refuses_to_adopt_when_switched_off(tokens: dict[str, str]) -> None:
    store = FakeStore({NAME: tokens["current"]})
    with pytest.raises(ParameterTakenError) as caught:
        provision_parameter(
            "Create", {"ParameterName": NAME, "AdoptExisting": "false"}, None, store, owner=OWNER
        )
    assert tokens["current"] not in str(caught.value)


def test_provision_parameter_refuses_an_unusable_value_without_showing_it() -> None:
    secretish = "not a token, with spaces"
    store = FakeStore({NAME: secretish})
    with pytest.raises(UnusableParameterError) as caught:
        provision_parameter("Create", {"ParameterName": NAME}, None, store, owner=OWNER)
    assert secretish not in str(caught.value)


def test_provision_parameter_adopts_what_a_racing_writer_created(tokens: dict[str, str]) -> None:
    store = FakeStore(race=tokens["current"])
    outcome = provision_parameter("Create", {"ParameterName": NAME}, None, store, owner=OWNER)
    assert outcome.adopted
    assert store.values[NAME] == tokens["current"]


def test_provision_parameter_requires_a_name() -> None:
    with pytest.raises(BadRequestError):
        provision_parameter("Create", {"ParameterName": " "}, None, FakeStore(), owner=OWNER)


def test_provision_parameter_update_with_the_same_name_changes_nothing(
    tokens: dict[str, str],
) -> None:
    # Given a parameter the stack created, since rotated
    rotated = document(current=tokens["current"], previous=tokens["previous"])
    store = FakeStore({NAME: rotated})
    # When an update (e.g. a new KeyId) arrives
    outcome = provision_parameter(
        "Update",
        {"ParameterName": NAME, "KeyId": "alias/other"},
        f"created:{NAME}",
        store,
        owner=OWNER,
    )
    # Then the value and the ownership are kept
    assert store.values[NAME] == rotated
    assert store.created == []
    assert outcome.physical_id == f"created:{NAME}" and not outcome.adopted


def test_provision_parameter_update_with_a_new_name_provisions_the_new_one() -> None:
    store = FakeStore()
    outcome = provision_parameter(
        "Update", {"ParameterName": NAME + "-2"}, f"created:{NAME}", store, owner=OWNER
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
    assert remove_parameter(physical_id, store, owner=OWNER) == outcome
    assert store.deleted == deleted


# -- the owner tag: two stacks never share a token ------------------------------------


def test_provision_parameter_tags_what_it_creates_with_its_stack() -> None:
    store = FakeStore()
    provision_parameter("Create", {"ParameterName": NAME}, None, store, owner=OWNER)
    assert store.owners == {NAME: OWNER}
    # In the same call as the create: never untagged, even briefly.
    assert store.tagged == []


def test_provision_parameter_tags_an_untagged_parameter_it_adopts(tokens: dict[str, str]) -> None:
    store = FakeStore({NAME: tokens["current"]})
    outcome = provision_parameter("Create", {"ParameterName": NAME}, None, store, owner=OWNER)
    assert outcome.adopted
    assert store.tagged == [(NAME, OWNER)]


def test_provision_parameter_readopts_its_own_parameter(tokens: dict[str, str]) -> None:
    # Given a parameter this stack's name already tags (left behind by an earlier life)
    store = FakeStore({NAME: tokens["current"]}, owners={NAME: OWNER})
    outcome = provision_parameter("Create", {"ParameterName": NAME}, None, store, owner=OWNER)
    assert outcome.adopted and store.tagged == []


@pytest.mark.parametrize("adopt", ["true", "false"])
def test_provision_parameter_refuses_a_parameter_another_stack_manages(
    adopt: str, tokens: dict[str, str]
) -> None:
    # Given the parameter of stack Originlock, and a second stack deployed with its name
    store = FakeStore({NAME: document(current=tokens["current"])}, owners={NAME: OWNER})
    # When the second stack's resource is created
    with pytest.raises(ParameterOwnedError) as caught:
        provision_parameter(
            "Create", {"ParameterName": NAME, "AdoptExisting": adopt}, None, store, owner=OTHER
        )
    # Then it is refused before anything is read or written, saying whose it is and what to do
    message = str(caught.value)
    assert message.startswith(
        f"parameter {NAME} is managed by originlock stack {OWNER} (tag originlock:stack), "
        f"not by {OTHER}: two stacks must not share a token. Deploy {OTHER} with its own "
        f"parameterName (or none: /originlock/{OTHER}/origin-token)."
    )
    assert f"--resource-id {NAME} --tag-keys originlock:stack" in message
    assert store.read == [] and store.tagged == [] and store.created == []
    assert store.owners == {NAME: OWNER}
    assert tokens["current"] not in message


def test_provision_parameter_refuses_what_another_stack_created_while_it_raced(
    tokens: dict[str, str],
) -> None:
    store = FakeStore(race=document(current=tokens["current"]), race_owner=OTHER)
    with pytest.raises(ParameterOwnedError, match=f"managed by originlock stack {OTHER}"):
        provision_parameter("Create", {"ParameterName": NAME}, None, store, owner=OWNER)
    assert store.owners == {NAME: OTHER}


def test_provision_parameter_update_tags_a_parameter_made_before_the_tag(
    tokens: dict[str, str],
) -> None:
    # Given a stack deployed before parameters were tagged
    store = FakeStore({NAME: document(current=tokens["current"])})
    # When its next deploy updates the resource
    provision_parameter("Update", {"ParameterName": NAME}, f"created:{NAME}", store, owner=OWNER)
    # Then the parameter is tagged with it: a second stack can no longer adopt it
    assert store.owners == {NAME: OWNER}


def test_provision_parameter_update_never_fails_over_the_tag(tokens: dict[str, str]) -> None:
    # Given two stacks that already shared the parameter before the tag existed: the first
    # one's update tagged it. The second one's update must still succeed (refusing would
    # roll back into the same request); the tag stays the first one's.
    store = FakeStore({NAME: document(current=tokens["current"])}, owners={NAME: OWNER})
    outcome = provision_parameter(
        "Update", {"ParameterName": NAME}, f"adopted:{NAME}", store, owner=OTHER
    )
    assert outcome.adopted
    assert store.owners == {NAME: OWNER} and store.tagged == []


def test_provision_parameter_update_succeeds_when_the_tag_cannot_be_read(
    tokens: dict[str, str],
) -> None:
    class Denied(FakeStore):
        def owner(self, name: str) -> str | None:
            raise StoreUnavailableError("ListTagsForResource failed: AccessDenied")

    store = Denied({NAME: document(current=tokens["current"])})
    outcome = provision_parameter(
        "Update", {"ParameterName": NAME}, f"created:{NAME}", store, owner=OWNER
    )
    assert outcome.physical_id == f"created:{NAME}" and store.tagged == []


@pytest.mark.parametrize(
    ("owners", "outcome", "left"),
    [
        ({NAME: OWNER}, "kept, released", {}),
        ({NAME: OTHER}, "kept", {NAME: OTHER}),
        ({}, "kept", {}),
    ],
)
def test_remove_parameter_leaves_an_adopted_parameter_as_it_found_it(
    owners: dict[str, str], outcome: str, left: dict[str, str], tokens: dict[str, str]
) -> None:
    store = FakeStore({NAME: tokens["current"]}, owners=owners)
    assert remove_parameter(f"adopted:{NAME}", store, owner=OWNER) == outcome
    assert store.owners == left
    assert store.values == {NAME: tokens["current"]} and store.deleted == []


def test_remove_parameter_never_fails_a_delete_over_the_tag(tokens: dict[str, str]) -> None:
    class Denied(FakeStore):
        def clear_owner(self, name: str) -> None:
            raise StoreUnavailableError("RemoveTagsFromResource failed: AccessDenied")

    store = Denied({NAME: tokens["current"]}, owners={NAME: OWNER})
    assert remove_parameter(f"adopted:{NAME}", store, owner=OWNER) == "kept, tag left"


def test_stack_name_of_a_stack_id() -> None:
    assert stack_name_of(STACK_ID) == OWNER
    assert (
        stack_name_of("arn:aws-cn:cloudformation:cn-north-1:1:stack/Staging-2/0f6e-11")
        == "Staging-2"
    )
    with pytest.raises(BadRequestError):
        stack_name_of("not-an-arn")


def test_owner_tag_is_the_infra_constant() -> None:
    from originlock.constants import OWNER_TAG as INFRA_TAG

    assert OWNER_TAG == INFRA_TAG == "originlock:stack"


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
    choice = origin_header_value(
        guard_properties(), STACK_ID, store, live, FakeLock(), FakeStacks()
    )
    assert choice.value == tokens["previous"]
    assert choice.lock == LOCK_FREE
    assert live.asked == [(STACK_ID, "EdgeDistribution")]


def test_origin_header_value_accepts_an_adopted_plain_parameter(tokens: dict[str, str]) -> None:
    store = FakeStore({NAME: tokens["current"]})
    choice = origin_header_value(
        guard_properties(), STACK_ID, store, FakeDistribution(None), FakeLock(), FakeStacks()
    )
    assert choice.value == tokens["current"]


def test_origin_header_value_needs_the_parameter() -> None:
    with pytest.raises(ParameterMissingError):
        origin_header_value(
            guard_properties(),
            STACK_ID,
            FakeStore(),
            FakeDistribution(None),
            FakeLock(),
            FakeStacks(),
        )


def test_origin_header_value_needs_its_properties() -> None:
    with pytest.raises(BadRequestError):
        origin_header_value(
            {"ParameterName": NAME},
            STACK_ID,
            FakeStore(),
            FakeDistribution(None),
            FakeLock(),
            FakeStacks(),
        )


# -- the drift guard and a running rotation ----------------------------------------------


@pytest.mark.parametrize("status", ["UPDATE_IN_PROGRESS", "CREATE_IN_PROGRESS"])
def test_origin_header_value_refuses_while_a_rotation_runs_before_reading_anything(
    status: str, tokens: dict[str, str]
) -> None:
    # Given a revoke that holds the lock: it may switch CloudFront away from the live
    # value and revoke it before CloudFormation writes what the guard answers
    store = FakeStore({NAME: document(current=tokens["current"], pending=tokens["pending"])})
    live = FakeDistribution(live_config(tokens["current"]))
    stacks = FakeStacks(status)
    # When a deploy asks the guard
    with pytest.raises(RotationRunningError) as caught:
        origin_header_value(guard_properties(), STACK_ID, store, live, held_by_running(), stacks)
    # Then it is refused, naming the execution, before the distribution is touched
    message = str(caught.value)
    assert message.startswith("a rotation is running (execution revoke-1a2b): deploy after it ends")
    assert live.asked == [] and store.read == []
    assert stacks.asked == [STACK_ID]
    assert not any(value in message for value in tokens.values())


@pytest.mark.parametrize(
    "status", ["UPDATE_ROLLBACK_IN_PROGRESS", "ROLLBACK_IN_PROGRESS", "IMPORT_ROLLBACK_IN_PROGRESS"]
)
def test_origin_header_value_never_refuses_a_rollback(status: str, tokens: dict[str, str]) -> None:
    # Given a refused deploy that CloudFormation now rolls back, the rotation still running,
    # and the old properties (from before LockParameterName existed)
    store = FakeStore({NAME: document(current=tokens["current"], pending=tokens["pending"])})
    live = FakeDistribution(live_config(tokens["current"]))
    lock = held_by_running()
    old_properties = guard_properties()
    del old_properties["LockParameterName"]
    # When the rollback asks the guard again
    choice = origin_header_value(old_properties, STACK_ID, store, live, lock, FakeStacks(status))
    # Then it answers the live value and never looks at the lock: the rollback completes
    assert choice == HeaderChoice(tokens["current"], "live", LOCK_SKIPPED, "read")
    assert lock.asked == []


def test_origin_header_value_treats_a_lock_of_a_stopped_execution_as_free(
    tokens: dict[str, str],
) -> None:
    # Given a lock left by an execution that was stopped before it could release it:
    # the next execution takes it over, so nothing is running
    store = FakeStore({NAME: document(current=tokens["current"])})
    lock = FakeLock({LOCK: EXECUTION}, running=set())
    # When
    choice = origin_header_value(
        guard_properties(), STACK_ID, store, FakeDistribution(None), lock, FakeStacks()
    )
    # Then the deploy goes on, and the holder was asked about
    assert choice.lock == LOCK_STALE and choice.value == tokens["current"]
    assert lock.asked == [f"holder {LOCK}", f"running {EXECUTION}"]


def test_origin_header_value_treats_an_unreadable_lock_as_stale(tokens: dict[str, str]) -> None:
    store = FakeStore({NAME: document(current=tokens["current"])})
    lock = FakeLock({LOCK: UNREADABLE_LOCK}, running={UNREADABLE_LOCK})
    choice = origin_header_value(
        guard_properties(), STACK_ID, store, FakeDistribution(None), lock, FakeStacks()
    )
    assert choice.lock == LOCK_STALE
    assert lock.asked == [f"holder {LOCK}"]  # not an execution: nothing to describe


def test_origin_header_value_checks_the_lock_when_the_stack_status_is_unreadable(
    tokens: dict[str, str],
) -> None:
    # An unknown status is not taken for a rollback: a forward deploy stays guarded
    store = FakeStore({NAME: document(current=tokens["current"])})
    unreadable = FakeStacks(readable=False)
    with pytest.raises(RotationRunningError):
        origin_header_value(
            guard_properties(),
            STACK_ID,
            store,
            FakeDistribution(None),
            held_by_running(),
            unreadable,
        )
    choice = origin_header_value(
        guard_properties(), STACK_ID, store, FakeDistribution(None), FakeLock(), unreadable
    )
    assert choice.lock == LOCK_FREE
    # and the guard says it could not read the status (a missing DescribeStacks grant shows
    # up in the deploy's log, not only in a refused rollback)
    assert choice.stack_status == "unreadable (DescribeStacks failed: Throttling)"
    readable = origin_header_value(
        guard_properties(), STACK_ID, store, FakeDistribution(None), FakeLock(), FakeStacks()
    )
    assert readable.stack_status == "read"


def test_origin_header_value_needs_the_lock_name_outside_a_rollback(
    tokens: dict[str, str],
) -> None:
    properties = guard_properties()
    del properties["LockParameterName"]
    store = FakeStore({NAME: document(current=tokens["current"])})
    with pytest.raises(BadRequestError):
        origin_header_value(
            properties, STACK_ID, store, FakeDistribution(None), FakeLock(), FakeStacks()
        )


def test_origin_header_value_fails_closed_when_the_lock_is_unreadable(
    tokens: dict[str, str],
) -> None:
    class Unreadable(FakeLock):
        def holder(self, name: str) -> str | None:
            raise LockUnavailableError("GetParameter on the rotation lock failed: AccessDenied")

    store = FakeStore({NAME: document(current=tokens["current"])})
    live = FakeDistribution(None)
    with pytest.raises(LockUnavailableError):
        origin_header_value(guard_properties(), STACK_ID, store, live, Unreadable(), FakeStacks())
    assert live.asked == []


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
        event,
        lambda: handler.origin_header(
            event, store, FakeDistribution(None), FakeLock(), FakeStacks()
        ),
        sender,
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
    assert '"rotation_lock":"free"' in logs.replace(" ", "")


def test_respond_fails_a_deploy_during_a_rotation_with_a_safe_reason(
    tokens: dict[str, str], log_output: io.StringIO
) -> None:
    # Given a rotation that holds the lock
    store = FakeStore({NAME: document(current=tokens["current"], pending=tokens["pending"])})
    live = FakeDistribution(live_config(tokens["current"]))
    event = cfn_event("Update", "Custom::OriginlockOriginHeaderValue", props=guard_properties())
    sender = Recorder()
    # When CloudFormation asks the guard
    handler.respond(
        event,
        lambda: handler.origin_header(event, store, live, held_by_running(), FakeStacks()),
        sender,
    )
    # Then the update fails (and rolls back) with a reason an operator can act on
    [(_, body)] = sender.sent
    assert body["Status"] == FAILED
    assert body["Reason"] == (
        "RotationRunningError: a rotation is running (execution revoke-1a2b): "
        "deploy after it ends (originlock status shows it)"
    )
    assert body["Data"] == {}
    assert body["PhysicalResourceId"] == "failed:request-1"
    shown = json.dumps(body) + log_output.getvalue()
    assert not any(value in shown for value in tokens.values())


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
    stacks = FakeStacks("DELETE_IN_PROGRESS")
    lock = held_by_running()
    answer = handler.origin_header(event, store, FakeDistribution(None), lock, stacks)
    assert answer == handler.Answer(ORIGIN_HEADER_PHYSICAL_ID)
    # A delete never refuses, whatever runs.
    assert lock.asked == [] and stacks.asked == []


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


class CreatingStack:
    """CloudFormation during the first create (moto cannot run the real stack)."""

    def describe_stacks(self, **kwargs: str) -> dict[str, Any]:
        assert kwargs == {"StackName": STACK_ID}
        return {"Stacks": [{"StackId": STACK_ID, "StackStatus": "CREATE_IN_PROGRESS"}]}


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
    stacks = StackStatusReader(CreatingStack())
    # When
    handler.respond(
        event,
        lambda: handler.origin_header(event, SsmParameterStore(), live, SsmRotationLock(), stacks),
        sender,
    )
    # Then first create answers current
    [(_, body)] = sender.sent
    assert body["Status"] == SUCCESS
    assert body["Data"]["Value"] == tokens["current"]


def rotation_state_machine() -> str:
    role = "arn:aws:iam::123456789012:role/states"
    definition = json.dumps({"StartAt": "Wait", "States": {"Wait": {"Type": "Pass", "End": True}}})
    response = boto3.client("stepfunctions").create_state_machine(
        name="Originlock-rotation", definition=definition, roleArn=role
    )
    return str(response["stateMachineArn"])


def test_rotation_lock_reads_what_the_rotate_function_writes(moto_aws: None) -> None:
    # Given an execution holding the lock, taken by the rotate function's own adapter
    from rotate.adapters import Lock, _LazyClients
    from rotate.settings import RotateSettings

    sfn = boto3.client("stepfunctions")
    execution = sfn.start_execution(stateMachineArn=rotation_state_machine())["executionArn"]
    settings = RotateSettings.from_env({"SSM_PARAMETER_NAME": NAME, "DISTRIBUTION_ID": "E1"})
    rotate_lock = Lock(settings, _LazyClients())
    assert rotate_lock.acquire(execution, {"mode": "revoke"})["acquired"]
    lock = SsmRotationLock(boto3.client("ssm"), sfn)
    # Then the guard sees the same holder, running
    assert lock.holder(LOCK) == execution
    assert lock.running(execution) is True
    # And once the execution stops without releasing, the lock is stale
    sfn.stop_execution(executionArn=execution)
    assert lock.running(execution) is False
    # And once released, there is no lock
    assert rotate_lock.release(execution)
    assert lock.holder(LOCK) is None


def test_rotation_lock_edge_cases(moto_aws: None) -> None:
    ssm = boto3.client("ssm")
    lock = SsmRotationLock(ssm, boto3.client("stepfunctions"))
    ssm.put_parameter(Name=LOCK, Value="not json", Type="String")
    assert lock.holder(LOCK) == UNREADABLE_LOCK
    rotation_state_machine()
    assert lock.running(EXECUTION) is False  # no such execution


def test_rotation_lock_fails_closed_naming_only_the_code() -> None:
    from botocore.exceptions import ClientError

    class Denied:
        def get_parameter(self, **kwargs: str) -> dict[str, Any]:
            raise ClientError({"Error": {"Code": "AccessDenied", "Message": "x"}}, "GetParameter")

        def describe_execution(self, **kwargs: str) -> dict[str, Any]:
            raise ClientError(
                {"Error": {"Code": "AccessDenied", "Message": "x"}}, "DescribeExecution"
            )

    lock = SsmRotationLock(Denied(), Denied())
    with pytest.raises(LockUnavailableError, match="AccessDenied"):
        lock.holder(LOCK)
    with pytest.raises(LockUnavailableError, match="AccessDenied"):
        lock.running(EXECUTION)


def test_stack_status_reader(moto_aws: None) -> None:
    from botocore.exceptions import ClientError

    cloudformation = boto3.client("cloudformation")
    template = {"Resources": {"Topic": {"Type": "AWS::SNS::Topic"}}}
    stack_id = cloudformation.create_stack(
        StackName="Originlock", TemplateBody=json.dumps(template)
    )["StackId"]
    assert StackStatusReader(cloudformation).status(stack_id) == "CREATE_COMPLETE"

    class Throttled:
        def describe_stacks(self, **kwargs: str) -> dict[str, Any]:
            raise ClientError({"Error": {"Code": "Throttling", "Message": "x"}}, "DescribeStacks")

    with pytest.raises(StackUnavailableError, match="Throttling"):
        StackStatusReader(Throttled()).status(stack_id)


def test_ssm_store_owner_tag_round_trip(moto_aws: None, tokens: dict[str, str]) -> None:
    ssm = boto3.client("ssm")
    store = SsmParameterStore(ssm)
    # Given a parameter created with its owner, and one without a tag
    assert store.create(NAME, tokens["current"], None, OWNER) is True
    ssm.put_parameter(Name=NAME + "-bare", Value=tokens["previous"], Type="SecureString")
    # Then the tag reads back; no tag and no parameter both read as no owner
    assert store.owner(NAME) == OWNER
    assert store.owner(NAME + "-bare") is None
    assert store.owner("/absent") is None
    store.set_owner(NAME + "-bare", OTHER)
    assert store.owner(NAME + "-bare") == OTHER
    store.clear_owner(NAME)
    store.clear_owner("/absent")  # a missing parameter is not an error
    assert store.owner(NAME) is None
    # And a rotation's overwrite keeps the tag
    ssm.put_parameter(Name=NAME + "-bare", Value=tokens["pending"], Overwrite=True)
    assert store.owner(NAME + "-bare") == OTHER


def test_ssm_store_owner_tag_fails_naming_only_the_code() -> None:
    from botocore.exceptions import ClientError

    class Denied:
        def __getattr__(self, operation: str) -> Any:
            def call(**kwargs: Any) -> Any:
                raise ClientError({"Error": {"Code": "AccessDenied", "Message": "x"}}, operation)

            return call

    store = SsmParameterStore(Denied())
    for attempt in (
        lambda: store.owner(NAME),
        lambda: store.set_owner(NAME, OWNER),
        lambda: store.clear_owner(NAME),
    ):
        with pytest.raises(StoreUnavailableError, match="AccessDenied"):
            attempt()


def test_two_stacks_never_share_a_parameter_on_moto(
    moto_aws: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given stack Originlock's token parameter, created by its custom resource
    sender = Recorder()
    monkeypatch.setattr(handler, "send_response", sender)
    props = {"ParameterName": NAME}
    handler.token_parameter_handler(
        cfn_event("Create", "Custom::OriginlockTokenParameter", props=props), LAMBDA_CONTEXT
    )
    ssm = boto3.client("ssm")
    tags = ssm.list_tags_for_resource(ResourceType="Parameter", ResourceId=NAME)["TagList"]
    assert tags == [{"Key": "originlock:stack", "Value": OWNER}]
    before = ssm.get_parameter(Name=NAME, WithDecryption=True)["Parameter"]["Value"]
    # When a second stack is deployed with the same parameterName
    other_stack = STACK_ID.replace(f"stack/{OWNER}/", f"stack/{OTHER}/")
    handler.token_parameter_handler(
        cfn_event("Create", "Custom::OriginlockTokenParameter", props=props, StackId=other_stack),
        LAMBDA_CONTEXT,
    )
    # Then its deploy fails with the named error, and the parameter is untouched
    [_, (_, refused)] = sender.sent
    assert refused["Status"] == FAILED
    assert refused["Reason"].startswith(
        f"ParameterOwnedError: parameter {NAME} is managed by originlock stack {OWNER}"
    )
    assert ssm.get_parameter(Name=NAME, WithDecryption=True)["Parameter"]["Value"] == before
    assert ssm.list_tags_for_resource(ResourceType="Parameter", ResourceId=NAME)["TagList"] == tags
    assert before not in json.dumps(refused)


def test_deleting_an_adopting_stack_releases_the_parameter_on_moto(
    moto_aws: None, monkeypatch: pytest.MonkeyPatch, tokens: dict[str, str]
) -> None:
    # Given a blog-style parameter adopted by stack Originlock
    ssm = boto3.client("ssm")
    ssm.put_parameter(Name=NAME, Value=tokens["current"], Type="SecureString")
    sender = Recorder()
    monkeypatch.setattr(handler, "send_response", sender)
    props = {"ParameterName": NAME}
    handler.token_parameter_handler(
        cfn_event("Create", "Custom::OriginlockTokenParameter", props=props), LAMBDA_CONTEXT
    )
    [(_, created)] = sender.sent
    assert created["PhysicalResourceId"] == f"adopted:{NAME}"
    assert SsmParameterStore(ssm).owner(NAME) == OWNER
    # When the stack is deleted
    handler.token_parameter_handler(
        cfn_event(
            "Delete",
            "Custom::OriginlockTokenParameter",
            props=props,
            PhysicalResourceId=f"adopted:{NAME}",
        ),
        LAMBDA_CONTEXT,
    )
    # Then the parameter stays, as it was found: value kept, no tag of ours
    assert sender.sent[-1][1]["Status"] == SUCCESS
    assert (
        ssm.get_parameter(Name=NAME, WithDecryption=True)["Parameter"]["Value"]
        == (tokens["current"])
    )
    assert ssm.list_tags_for_resource(ResourceType="Parameter", ResourceId=NAME)["TagList"] == []


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


def test_token_age_is_the_current_values_age_not_the_last_writes(moto_aws: None) -> None:
    from rotate.adapters import Fence, TokenStore, _LazyClients
    from rotate.settings import RotateSettings

    ssm = boto3.client("ssm")
    store = TokenStore(
        RotateSettings.from_env({"SSM_PARAMETER_NAME": NAME, "DISTRIBUTION_ID": "E1"}),
        _LazyClients(),
    )
    # Given a value promoted ten days ago, and a rotation that staged a new one just now
    # (and then failed: the write moved LastModifiedDate, not the current value)
    ten_days_ago = datetime.now(UTC) - timedelta(days=10)
    promoted = dataclasses.replace(
        TokenDocument().evolve(current=generate_token()),
        current_since=ten_days_ago.strftime("%Y-%m-%dT%H:%M:%SZ"),
    )
    fence = Fence("arn:execution", time.monotonic())
    store.write(promoted, fence)
    store.write(promoted.evolve(pending=generate_token()), fence)

    # Then the probe reports the current value's age, from the parameter's tag
    set_at = current_value_set_at(ssm, NAME)
    assert abs((set_at - ten_days_ago).total_seconds()) < 1
    assert (datetime.now(UTC) - last_modified(ssm, NAME)).total_seconds() < 60


def test_token_age_of_a_parameter_no_rotation_wrote_is_its_last_write(moto_aws: None) -> None:
    # Given an adopted blog-style parameter (no tag of ours)
    ssm = boto3.client("ssm")
    ssm.put_parameter(Name=NAME, Value=generate_token(), Type="SecureString")
    # Then its age is its LastModifiedDate's
    assert current_value_set_at(ssm, NAME) == last_modified(ssm, NAME)


def test_origin_header_warns_when_the_stack_status_is_unreadable(
    tokens: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    # Given a guard role without a working DescribeStacks (a missing grant, throttling)
    event = cfn_event("Update", "Custom::OriginlockOriginHeaderValue", props=guard_properties())
    store = FakeStore({NAME: document(current=tokens["current"])})

    handler.origin_header(
        event, store, FakeDistribution(None), FakeLock(), FakeStacks(readable=False)
    )

    # Then the deploy's log says so, with the reason (and no value)
    warnings = [r for r in caplog.records if r.levelname == "WARNING"]
    assert [r.getMessage() for r in warnings] == [
        "stack status unreadable: a rollback during a rotation would be refused"
    ]
    assert "DescribeStacks failed: Throttling" in str(warnings[0].__dict__.get("stack_status"))
    assert tokens["current"] not in caplog.text
    assert all(tokens["current"] not in str(r.__dict__) for r in caplog.records)
