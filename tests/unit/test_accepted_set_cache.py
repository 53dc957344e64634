"""The accepted-set cache: what one warm instance accepts, and when it reads the parameter.

Bounds under test (settings defaults): max age 60 s, refresh-on-miss at most once per
1 s, last good set served for 900 s of outage.
"""

from __future__ import annotations

import hmac

import pytest

import authorizer.cache
from authorizer.cache import AcceptedSetCache, Decision
from authorizer.settings import AuthorizerSettings
from tests.unit.fakes import FakeClock, FakeParameter, Tokens, document_json
from tokens.document import generate_token
from tokens.store import StoreError

DEFAULTS = AuthorizerSettings(parameter_name="/unused")
MAX_AGE = DEFAULTS.cache_max_age
REFRESH = DEFAULTS.refresh_min_interval
STALENESS = DEFAULTS.max_staleness


class Errors(list[str]):
    """Collects the error codes the cache reports (the telemetry port)."""

    def __call__(self, code: str) -> None:
        self.append(code)


@pytest.fixture
def errors() -> Errors:
    return Errors()


@pytest.fixture
def cache(parameter: FakeParameter, clock: FakeClock, errors: Errors) -> AcceptedSetCache:
    return AcceptedSetCache(
        parameter,
        clock,
        max_age=MAX_AGE,
        refresh_min_interval=REFRESH,
        max_staleness=STALENESS,
        on_error=errors,
    )


def decide(cache: AcceptedSetCache, value: str) -> Decision:
    return cache.decide(value.encode())


@pytest.mark.parametrize("slot", ["pending", "current", "previous"])
def test_cache_accepts_every_slot(
    cache: AcceptedSetCache, parameter: FakeParameter, tokens: Tokens, slot: str
) -> None:
    # Given a document with all three slots filled
    parameter.value = document_json(
        pending=tokens.pending, current=tokens.current, previous=tokens.previous
    )

    # When each value is presented, Then it is allowed and its slot named
    assert decide(cache, tokens.of(slot)) == Decision(True, slot)


def test_cache_adopts_a_seed_style_plain_value(
    cache: AcceptedSetCache, parameter: FakeParameter, tokens: Tokens
) -> None:
    # Given the parameter as the blog's deployment left it
    parameter.value = tokens.current

    # Then CloudFront's value keeps working, as the current slot
    assert decide(cache, tokens.current) == Decision(True, "current")
    assert decide(cache, tokens.pending).allowed is False


def test_cache_denies_a_value_outside_the_accepted_set(
    cache: AcceptedSetCache, tokens: Tokens
) -> None:
    assert decide(cache, tokens.pending) == Decision(False, reason="no_match")
    assert decide(cache, tokens.current[:-1]).allowed is False
    assert decide(cache, tokens.current + "A").allowed is False


def test_cache_reads_once_while_fresh(
    cache: AcceptedSetCache, parameter: FakeParameter, clock: FakeClock, tokens: Tokens
) -> None:
    # When 1,000 allowed requests arrive within one max age
    for _ in range(1000):
        assert decide(cache, tokens.current).allowed
        clock.advance((MAX_AGE - 1) / 1000)

    # Then the parameter was read once
    assert parameter.reads == 1


def test_cache_accepts_a_staged_token_at_once_on_a_warm_instance(
    cache: AcceptedSetCache, parameter: FakeParameter, clock: FakeClock, tokens: Tokens
) -> None:
    # Given a warm instance that read the document a few seconds ago
    assert decide(cache, tokens.current).allowed
    clock.advance(5)

    # When the rotation stages a pending value and CloudFront sends it right away
    parameter.value = document_json(
        pending=tokens.pending, current=tokens.current, previous=tokens.previous
    )
    decision = decide(cache, tokens.pending)

    # Then the instance looks again before it denies, and allows it: a Deny would
    # have been cached by API Gateway for this value for the authorizer TTL.
    assert decision == Decision(True, "pending")
    assert parameter.reads == 2


def test_cache_bounds_reads_under_header_spraying(
    cache: AcceptedSetCache, parameter: FakeParameter, clock: FakeClock, tokens: Tokens
) -> None:
    # Given a warm instance
    assert decide(cache, tokens.current).allowed
    reads_before = parameter.reads

    # When 10,000 distinct unknown values arrive over 10 s (1,000 per second)
    for _ in range(10_000):
        clock.advance(0.001)
        assert decide(cache, generate_token()).allowed is False

    # Then each refresh interval cost at most one extra read
    extra = parameter.reads - reads_before
    assert 1 <= extra <= 10 / REFRESH
    # and the real value is still served from the cache
    assert decide(cache, tokens.current).allowed


def test_cache_accepts_a_staged_token_within_one_refresh_interval_even_under_spraying(
    cache: AcceptedSetCache, parameter: FakeParameter, clock: FakeClock, tokens: Tokens
) -> None:
    # Given an instance that just re-read because of a sprayed value
    assert decide(cache, tokens.current).allowed
    clock.advance(5)
    assert decide(cache, generate_token()).allowed is False

    # When a value is staged and presented within the same refresh interval
    parameter.value = document_json(pending=tokens.pending, current=tokens.current)
    clock.advance(REFRESH / 2)
    too_soon = decide(cache, tokens.pending)
    clock.advance(REFRESH / 2)
    in_time = decide(cache, tokens.pending)

    # Then it is accepted once the interval has passed: the documented bound
    assert too_soon.allowed is False
    assert in_time == Decision(True, "pending")


def test_cache_refuses_a_removed_value_after_the_max_age(
    cache: AcceptedSetCache, parameter: FakeParameter, clock: FakeClock, tokens: Tokens
) -> None:
    # Given an instance that accepts the previous value
    assert decide(cache, tokens.previous) == Decision(True, "previous")

    # When the rotation drops the previous value
    parameter.value = document_json(current=tokens.current)

    # Then the instance keeps its copy until the max age, and refuses it after
    clock.advance(MAX_AGE - 0.5)
    assert decide(cache, tokens.previous).allowed is True
    clock.advance(0.5)
    assert decide(cache, tokens.previous) == Decision(False, reason="no_match")
    assert parameter.reads == 2


def test_cache_serves_the_last_good_set_during_an_outage_within_the_staleness_bound(
    cache: AcceptedSetCache,
    parameter: FakeParameter,
    clock: FakeClock,
    tokens: Tokens,
    errors: Errors,
) -> None:
    # Given a warm instance, When SSM starts throttling
    assert decide(cache, tokens.current).allowed
    parameter.failure = StoreError("ThrottlingException")

    # Then requests keep being allowed up to the staleness bound
    clock.advance(MAX_AGE)
    assert decide(cache, tokens.current) == Decision(True, "current")
    clock.advance(STALENESS - MAX_AGE)
    assert decide(cache, tokens.current) == Decision(True, "current")
    # and each failed read was reported by its code
    assert errors and set(errors) == {"ThrottlingException"}


def test_cache_denies_everything_beyond_the_staleness_bound(
    cache: AcceptedSetCache, parameter: FakeParameter, clock: FakeClock, tokens: Tokens
) -> None:
    # Given a warm instance and an outage longer than the bound
    assert decide(cache, tokens.current).allowed
    parameter.failure = StoreError("AccessDeniedException")

    # When the last good read is older than the bound
    clock.advance(STALENESS + 0.001)

    # Then every value is denied, the real ones included
    for value in tokens.all():
        assert decide(cache, value) == Decision(False, reason="store_unavailable")


def test_cache_retries_at_most_once_per_refresh_interval_during_an_outage(
    cache: AcceptedSetCache, parameter: FakeParameter, clock: FakeClock, tokens: Tokens
) -> None:
    assert decide(cache, tokens.current).allowed
    parameter.failure = StoreError("ThrottlingException")
    clock.advance(MAX_AGE)
    reads_before = parameter.reads

    # When 1,000 requests per second arrive for 5 s, half of them unknown values
    for i in range(5000):
        decide(cache, tokens.current if i % 2 else generate_token())
        clock.advance(0.001)

    # Then the throttled parameter was asked at most once per interval
    assert parameter.reads - reads_before <= 5 / REFRESH + 1


def test_cache_recovers_after_an_outage(
    cache: AcceptedSetCache, parameter: FakeParameter, clock: FakeClock, tokens: Tokens
) -> None:
    # Given an instance that has denied everything after a long outage
    assert decide(cache, tokens.current).allowed
    parameter.failure = StoreError("InternalServerError")
    clock.advance(STALENESS + 1)
    assert decide(cache, tokens.current).reason == "store_unavailable"

    # When SSM answers again (with a document rotated meanwhile)
    parameter.failure = None
    parameter.value = document_json(current=tokens.pending, previous=tokens.current)
    clock.advance(REFRESH)

    # Then the next request reads it and is decided on it
    assert decide(cache, tokens.pending) == Decision(True, "current")
    assert decide(cache, tokens.current) == Decision(True, "previous")


def test_cache_denies_when_the_first_read_fails(
    cache: AcceptedSetCache, parameter: FakeParameter, tokens: Tokens, errors: Errors
) -> None:
    # Given a fresh instance and SSM unreachable
    parameter.failure = StoreError("EndpointConnectionError")

    # Then it has nothing to serve and denies, saying why
    assert decide(cache, tokens.current) == Decision(False, reason="store_unavailable")
    assert errors == ["EndpointConnectionError"]


def test_cache_keeps_the_last_good_set_when_the_document_turns_corrupt(
    cache: AcceptedSetCache,
    parameter: FakeParameter,
    clock: FakeClock,
    tokens: Tokens,
    errors: Errors,
) -> None:
    # Given a warm instance
    assert decide(cache, tokens.current).allowed

    # When someone edits the parameter by hand and breaks it
    parameter.value = '{"current": "' + tokens.pending + '", "previous": '
    clock.advance(MAX_AGE)

    # Then the last good set is still served, and the corruption reported
    assert decide(cache, tokens.current) == Decision(True, "current")
    assert decide(cache, tokens.previous) == Decision(True, "previous")
    assert decide(cache, tokens.pending).allowed is False
    assert errors and set(errors) == {"CorruptDocument"}
    # up to the staleness bound, like any other failed read
    clock.advance(STALENESS)
    assert decide(cache, tokens.current).reason == "store_unavailable"


def test_cache_denies_when_the_first_document_is_corrupt(
    cache: AcceptedSetCache, parameter: FakeParameter, tokens: Tokens, errors: Errors
) -> None:
    parameter.value = "null"

    assert decide(cache, "null") == Decision(False, reason="store_unavailable")
    assert errors == ["CorruptDocument"]


@pytest.mark.parametrize(
    "failure",
    [RuntimeError("reader bug"), KeyError("Parameter"), TypeError("bad"), MemoryError()],
    ids=type,
)
def test_cache_serves_the_last_good_set_when_the_reader_raises_an_unexpected_exception(
    cache: AcceptedSetCache,
    parameter: FakeParameter,
    clock: FakeClock,
    tokens: Tokens,
    errors: Errors,
    failure: Exception,
) -> None:
    # Given a warm instance that allowed the current value
    assert decide(cache, tokens.current) == Decision(True, "current")

    # When its copy expires and the reader fails in a way no adapter promises
    parameter.failure = failure
    clock.advance(MAX_AGE)
    decision = decide(cache, tokens.current)

    # Then the same value is still allowed from the last good copy: raised from here,
    # the failure would deny it, and API Gateway would cache that Deny for its TTL
    assert decision == Decision(True, "current")
    assert parameter.reads == 2
    # and the failure is reported like any failed read, by its type name only
    assert errors == [type(failure).__name__]
    # up to the staleness bound, like any other failed read
    clock.advance(STALENESS - MAX_AGE + 0.001)
    assert decide(cache, tokens.current) == Decision(False, reason="store_unavailable")


def test_cache_serves_the_last_good_set_when_reporting_the_failure_raises(
    parameter: FakeParameter, clock: FakeClock, tokens: Tokens
) -> None:
    # Given a warm instance whose error reporter (logger, metrics) itself fails
    def broken_reporter(code: str) -> None:
        raise OSError("log sink full")

    cache = AcceptedSetCache(
        parameter,
        clock,
        max_age=MAX_AGE,
        refresh_min_interval=REFRESH,
        max_staleness=STALENESS,
        on_error=broken_reporter,
    )
    assert decide(cache, tokens.current) == Decision(True, "current")

    # When its copy expires during an SSM outage
    parameter.failure = StoreError("ThrottlingException")
    clock.advance(MAX_AGE)

    # Then the current value is still allowed from the last good copy
    assert decide(cache, tokens.current) == Decision(True, "current")
    assert parameter.reads == 2


@pytest.mark.parametrize("presented", ["pending", "current", "previous", "unknown"])
def test_cache_compares_with_every_accepted_value_in_constant_time(
    parameter: FakeParameter,
    clock: FakeClock,
    tokens: Tokens,
    monkeypatch: pytest.MonkeyPatch,
    presented: str,
) -> None:
    # Given a document with all three slots filled
    parameter.value = document_json(
        pending=tokens.pending, current=tokens.current, previous=tokens.previous
    )
    cache = AcceptedSetCache(
        parameter, clock, max_age=MAX_AGE, refresh_min_interval=REFRESH, max_staleness=STALENESS
    )
    cache.decide(tokens.current.encode())  # the first read
    compared: list[tuple[bytes, bytes]] = []
    original = hmac.compare_digest

    def compare_digest(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return original(a, b)

    monkeypatch.setattr(authorizer.cache.hmac, "compare_digest", compare_digest)
    value = generate_token() if presented == "unknown" else tokens.of(presented)

    # When a value is decided on a warm instance (within the refresh interval: no re-read)
    decision = cache.decide(value.encode())

    # Then it was compared, by hmac.compare_digest, with every accepted value: whichever slot
    # matches (or none), the same comparisons run, so the timing tells neither
    assert sorted(b for _, b in compared) == sorted(v.encode() for v in tokens.all())
    assert {a for a, _ in compared} == {value.encode()}
    assert decision.slot == (None if presented == "unknown" else presented)
