"""The token document: what an operator may put in the parameter and what the authorizer accepts."""

from __future__ import annotations

import json
import re
from dataclasses import replace

import pytest

from tests.unit.fakes import Tokens, document_json
from tokens.document import (
    MAX_TOKEN_LENGTH,
    TOKEN_LENGTH,
    CorruptDocumentError,
    TokenDocument,
    fingerprint,
    generate_token,
)


def test_document_parse_reads_the_json_form(tokens: Tokens) -> None:
    # Given a document as the rotation writes it
    raw = json.dumps(
        {
            "format": 1,
            "pending": tokens.pending,
            "current": tokens.current,
            "previous": tokens.previous,
            "generation": 7,
            "updated_at": "2026-11-25T17:00:00Z",
        }
    )

    # When it is parsed
    document = TokenDocument.parse(raw)

    # Then every field reads back as written
    assert (document.pending, document.current, document.previous) == tokens.all()
    assert document.generation == 7
    assert document.updated_at == "2026-11-25T17:00:00Z"
    assert document.adopted_plain is False


def test_document_parse_treats_missing_fields_as_empty(tokens: Tokens) -> None:
    document = TokenDocument.parse(json.dumps({"current": tokens.current}))

    assert document.accepted() == (("current", tokens.current.encode()),)
    assert document.generation == 0
    assert document.updated_at is None


@pytest.mark.parametrize("surrounding", ["", "\n", "  \n"])
def test_document_parse_adopts_a_bare_token_as_current(tokens: Tokens, surrounding: str) -> None:
    # Given a parameter as the blog's deployment leaves it: the token alone
    raw = tokens.current + surrounding

    # When it is parsed
    document = TokenDocument.parse(raw)

    # Then it is the current token and nothing else
    assert document.accepted() == (("current", tokens.current.encode()),)
    assert document.adopted_plain is True


def test_document_parse_adopts_a_hand_made_seed_value() -> None:
    # A blog deployment's value was whatever its operator chose, e.g. a UUID.
    document = TokenDocument.parse("3f2b8c1e-9d4a-4f6b-8e2a-7c5d9b1a0e3f")

    assert document.slot_of("3f2b8c1e-9d4a-4f6b-8e2a-7c5d9b1a0e3f") == "current"


@pytest.mark.parametrize(
    "raw",
    [
        None,
        42,
        b"bytes-are-not-text",
        "",
        "   \n",
        "{",
        '{"current": "abc"',
        "{}",
        '{"current": null, "previous": null, "pending": null}',
        '{"current": 5}',
        '{"current": ""}',
        '{"current": "two words"}',
        '{"current": "a,b"}',
        '{"current": "caf\\u00e9"}',
        '{"current": "tab\\tinside"}',
        '{"current": "ok-token", "previous": ["list"]}',
        '{"current": "ok-token", "format": 2}',
        '{"current": "ok-token", "format": "1"}',
        '{"current": "ok-token", "format": true}',
        '{"current": "ok-token", "format": 1.0}',
        '{"current": "ok-token", "generation": -1}',
        '{"current": "ok-token", "generation": true}',
        '{"current": "ok-token", "generation": "7"}',
        '{"current": "ok-token", "updated_at": 1795539600}',
        '{"current": "ok-token", "current_since": 1795539600}',
        json.dumps({"current": "x" * (MAX_TOKEN_LENGTH + 1)}),
        "null",
        "true",
        "false",
        '["ok-token"]',
        '"ok-token"',
        "two words",
        "a,b",
        "café",
        "line\nbreak",
        "x" * (MAX_TOKEN_LENGTH + 1),
    ],
)
def test_document_parse_rejects_corrupt_forms(raw: object) -> None:
    with pytest.raises(CorruptDocumentError):
        TokenDocument.parse(raw)


@pytest.mark.parametrize(
    "template",
    [
        '{{"current": "ok-token", "format": "{value}"}}',
        '{{"current": "{value}", "generation": -1}}',
        '{{"current": "{value} {value}"}}',
        '{{"current": "{value}", "previous": "{value},x"}}',
        "{value} {value}",
        '["{value}"]',
    ],
)
def test_document_parse_errors_never_quote_the_value(tokens: Tokens, template: str) -> None:
    # Given a corrupt parameter that holds a real token somewhere
    raw = template.format(value=tokens.current)

    # When it is parsed, Then the error says what is wrong without the value
    with pytest.raises(CorruptDocumentError) as caught:
        TokenDocument.parse(raw)
    assert tokens.current not in str(caught.value)
    assert tokens.current[:8] not in repr(caught.value)


def test_document_accepted_lists_pending_current_previous_in_that_order(tokens: Tokens) -> None:
    # Order matters to nobody's security, but the slot names do: pending first, as
    # in the document, so the allowed context names the slot that matched.
    document = TokenDocument.parse(
        document_json(current=tokens.current, previous=tokens.previous, pending=tokens.pending)
    )

    assert document.accepted() == (
        ("pending", tokens.pending.encode()),
        ("current", tokens.current.encode()),
        ("previous", tokens.previous.encode()),
    )


def test_document_accepted_skips_empty_slots(tokens: Tokens) -> None:
    document = TokenDocument.parse(document_json(pending=tokens.pending, previous=tokens.previous))

    assert [slot for slot, _ in document.accepted()] == ["pending", "previous"]


def test_document_slot_of_names_the_slot_holding_a_value(tokens: Tokens) -> None:
    document = TokenDocument(current=tokens.current, previous=tokens.previous)

    assert document.slot_of(tokens.current) == "current"
    assert document.slot_of(tokens.previous) == "previous"
    assert document.slot_of(tokens.pending) is None
    assert document.slot_of(None) is None


def test_fingershownis_short_stable_and_never_the_value(tokens: Tokens) -> None:
    for value in tokens.all():
        shown = fingerprint(value)
        assert shown is not None
        assert re.fullmatch(r"[0-9a-f]{12}", shown)
        assert shown == fingerprint(value)
        assert shown not in value and value not in shown
    assert len({fingerprint(value) for value in tokens.all()}) == 3
    assert fingerprint(None) is None


def test_document_fingerprints_tell_slots_apart_without_values(tokens: Tokens) -> None:
    document = TokenDocument(current=tokens.current, previous=tokens.previous)

    prints = document.fingerprints()

    assert prints == {
        "pending": None,
        "current": fingerprint(tokens.current),
        "previous": fingerprint(tokens.previous),
    }


def test_generate_token_is_43_url_safe_characters_without_a_comma() -> None:
    for _ in range(200):
        token = generate_token()
        assert len(token) == TOKEN_LENGTH == 43
        assert re.fullmatch(r"[A-Za-z0-9_-]{43}", token)
        assert "," not in token
        # A generated token is always a document the authorizer can read back.
        assert TokenDocument.parse(token).slot_of(token) == "current"


def test_generate_token_never_repeats() -> None:
    assert len({generate_token() for _ in range(10_000)}) == 10_000


def test_document_to_json_round_trips(tokens: Tokens) -> None:
    document = TokenDocument(
        current=tokens.current,
        previous=tokens.previous,
        pending=tokens.pending,
        generation=3,
        updated_at="2026-11-25T17:00:00Z",
        current_since="2026-11-18T17:00:00Z",
    )

    assert TokenDocument.parse(document.to_json()) == document
    assert json.loads(document.to_json())["format"] == 1


def test_document_adopted_bare_token_is_written_back_in_the_json_form(tokens: Tokens) -> None:
    # Given a seed-style parameter, When the rotation stages a new value
    adopted = TokenDocument.parse(tokens.current)
    staged = adopted.evolve(pending=tokens.pending)

    # Then what it writes is the JSON form, one generation on, both values kept
    written = TokenDocument.parse(staged.to_json())
    assert written.adopted_plain is False
    assert written.generation == adopted.generation + 1
    assert written.accepted() == (
        ("pending", tokens.pending.encode()),
        ("current", tokens.current.encode()),
    )


def test_document_repr_and_summary_hide_values(tokens: Tokens) -> None:
    document = TokenDocument(
        current=tokens.current, previous=tokens.previous, pending=tokens.pending, generation=2
    )

    shown = " ".join([repr(document), str(document), json.dumps(document.summary())])

    for value in tokens.all():
        assert value not in shown
    assert str(fingerprint(tokens.current)) in shown


def test_current_since_moves_only_when_the_current_value_changes(tokens: Tokens) -> None:
    # Given a document created with a value, then a rotation's stage, promote and retire
    created = TokenDocument().evolve(current=tokens.previous)
    staged = replace(created, current_since="2026-11-18T17:00:00Z").evolve(pending=tokens.current)
    promoted = staged.evolve(current=tokens.current, previous=tokens.previous, pending=None)
    retired = replace(promoted, current_since="2026-11-25T17:00:00Z").evolve(previous=None)

    # Then current_since is when each value became current, whatever else was written
    assert created.current_since == created.updated_at is not None
    assert staged.current_since == "2026-11-18T17:00:00Z"  # staging changes nothing current
    assert promoted.current_since == promoted.updated_at
    assert retired.current_since == "2026-11-25T17:00:00Z"
    # and an adopted bare value's age is not known
    assert TokenDocument.parse(tokens.current).current_since is None
