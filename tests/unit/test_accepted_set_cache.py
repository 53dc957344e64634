"""The accepted-set cache: what one instance accepts, when it reads the parameter, and when
it is sure enough to deny.

Bounds under test (settings defaults): one read per max age (60 s) whatever the traffic, a
retry 1 s after a failed read (doubling), the last good set served for 900 s of outage, a
Deny only from a copy younger than the max age, no decision (the invocation fails) otherwise.
"""

from __future__ import annotations

import functools
import hmac
import itertools

import pytest

import authorizer.cache
from authorizer.cache import NO_DECISION, AcceptedSetCache, Decision
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
        retry_interval=REFRESH,
        max_staleness=STALENESS,
        on_error=errors,
        sleep=clock.advance,
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
    assert decide(cache, tokens.current[:-1]) == Decision(False, reason="no_match")
    assert decide(cache, tokens.current + "A") == Decision(False, reason="no_match")


def test_cache_reads_once_while_fresh(
    cache: AcceptedSetCache, parameter: FakeParameter, clock: FakeClock, tokens: Tokens
) -> None:
    # When 1,000 allowed requests arrive within one max age
    for _ in range(1000):
        assert decide(cache, tokens.current).allowed
        clock.advance((MAX_AGE - 1) / 1000)

    # Then the parameter was read once
    assert parameter.reads == 1


def test_cache_reads_once_per_max_age_under_header_spraying(
    cache: AcceptedSetCache, parameter: FakeParameter, clock: FakeClock, tokens: Tokens
) -> None:
    # Given a warm instance
    assert decide(cache, tokens.current).allowed

    # When 100,000 distinct unknown values arrive over 5 minutes (333 per second)
    decisions = []
    for _ in range(100_000):
        clock.advance(0.003)
        decisions.append(decide(cache, generate_token()))

    # Then a sprayed value costs no read: one per max age, as without traffic
    assert parameter.reads == 1 + int(300 // MAX_AGE)
    # and every sprayed value got a certain Deny (cacheable), none a failed invocation
    assert set(decisions) == {Decision(False, reason="no_match")}
    assert decide(cache, tokens.current).allowed


def test_cache_denies_only_from_a_copy_younger_than_the_max_age(
    cache: AcceptedSetCache, parameter: FakeParameter, clock: FakeClock, tokens: Tokens
) -> None:
    # Given an instance whose copy is almost max age old, and a rotation staging a value
    # (a rotation waits max age + refresh interval + 5 s before any edge sends it)
    assert decide(cache, tokens.current).allowed
    clock.advance(MAX_AGE - 0.001)
    parameter.value = document_json(pending=tokens.pending, current=tokens.current)
    young = decide(cache, generate_token())

    # When an edge sends the staged value once the copy has expired
    clock.advance(0.001)
    staged = decide(cache, tokens.pending)

    # Then the young copy's miss was a certain Deny, and the expired copy was read again
    # before anything was decided on it
    assert young == Decision(False, reason="no_match")
    assert staged == Decision(True, "pending")
    assert parameter.reads == 2


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
    # but an unknown value is not denied from the expired copy: it could have been staged
    # since, and API Gateway would cache the Deny
    assert decide(cache, generate_token()) == NO_DECISION
    # and each failed read was reported by its code
    assert errors and set(errors) == {"ThrottlingException"}


def test_cache_decides_nothing_beyond_the_staleness_bound(
    cache: AcceptedSetCache, parameter: FakeParameter, clock: FakeClock, tokens: Tokens
) -> None:
    # Given a warm instance and an outage longer than the bound
    assert decide(cache, tokens.current).allowed
    parameter.failure = StoreError("AccessDeniedException")

    # When the last good read is older than the bound
    clock.advance(STALENESS + 0.001)

    # Then no value gets a decision: allowing could admit a revoked one, denying would be
    # cached against the value CloudFront sends
    for value in (*tokens.all(), generate_token()):
        assert decide(cache, value) == NO_DECISION


def test_cache_backs_off_between_failed_reads_during_an_outage(
    cache: AcceptedSetCache, parameter: FakeParameter, clock: FakeClock, tokens: Tokens
) -> None:
    assert decide(cache, tokens.current).allowed
    parameter.failure = StoreError("ThrottlingException")
    clock.advance(MAX_AGE)
    reads_before = parameter.reads
    attempts: list[float] = []

    # When 1,000 requests per second arrive for 10 minutes, half of them unknown values
    for i in range(600_000):
        reads = parameter.reads
        decide(cache, tokens.current if i % 2 else generate_token())
        if parameter.reads != reads:
            attempts.append(clock.now)
        clock.advance(0.001)

    # Then the throttled parameter was asked after 1, 2, 4, ... seconds, never sooner than
    # the refresh interval and never less often than once per max age
    gaps = [b - a for a, b in itertools.pairwise(attempts)]
    assert gaps[:5] == pytest.approx([REFRESH * 2**k for k in range(5)], abs=0.002)
    assert max(gaps) <= MAX_AGE + 0.002
    assert min(gaps) >= REFRESH - 0.002
    assert parameter.reads - reads_before == len(attempts) < 20


def test_cache_recovers_after_an_outage(
    cache: AcceptedSetCache, parameter: FakeParameter, clock: FakeClock, tokens: Tokens
) -> None:
    # Given an instance that has denied everything after a long outage
    assert decide(cache, tokens.current).allowed
    parameter.failure = StoreError("InternalServerError")
    clock.advance(STALENESS + 1)
    assert decide(cache, tokens.current) == NO_DECISION

    # When SSM answers again (with a document rotated meanwhile)
    parameter.failure = None
    parameter.value = document_json(current=tokens.pending, previous=tokens.current)
    clock.advance(cache.retry_after())

    # Then the next request reads it and is decided on it
    assert decide(cache, tokens.pending) == Decision(True, "current")
    assert decide(cache, tokens.current) == Decision(True, "previous")


def test_cache_decides_nothing_when_every_first_read_fails(
    cache: AcceptedSetCache, parameter: FakeParameter, tokens: Tokens, errors: Errors
) -> None:
    # Given a fresh instance and SSM unreachable
    parameter.failure = StoreError("EndpointConnectionError")

    # Then it tried again within the invocation, has nothing to serve, and decides nothing
    # (a Deny would be cached by API Gateway against the value CloudFront sends)
    assert decide(cache, tokens.current) == NO_DECISION
    assert errors == ["EndpointConnectionError"] * 4


class FailsFirst(FakeParameter):
    """SSM that refuses the first *n* reads (throttled), then answers."""

    def __init__(self, value: str, n: int) -> None:
        super().__init__(value)
        self.refusals = n

    def read(self) -> str:
        if self.refusals > 0:
            self.refusals -= 1
            self.reads += 1
            raise StoreError("ThrottlingException")
        return super().read()


def test_cache_retries_a_cold_first_read_within_the_invocation(
    clock: FakeClock, tokens: Tokens
) -> None:
    # Given a fresh instance whose first two reads are throttled
    parameter = FailsFirst(document_json(current=tokens.current), n=2)
    cache = AcceptedSetCache(
        parameter,
        clock,
        max_age=MAX_AGE,
        retry_interval=REFRESH,
        max_staleness=STALENESS,
        sleep=clock.advance,
    )
    started = clock.now

    # When its first request arrives with 3 s left in the invocation
    decision = cache.decide(tokens.current.encode(), deadline=started + 3)

    # Then it read again, paused briefly, and allowed the request in that same invocation
    assert decision == Decision(True, "current")
    assert parameter.reads == 3
    assert clock.now - started < 1


def test_cache_stops_retrying_a_first_read_at_the_invocation_deadline(
    clock: FakeClock, tokens: Tokens
) -> None:
    # Given a fresh instance whose reads keep failing, and little time left
    parameter = FakeParameter(document_json(current=tokens.current))
    parameter.failure = StoreError("ThrottlingException")
    cache = AcceptedSetCache(
        parameter,
        clock,
        max_age=MAX_AGE,
        retry_interval=REFRESH,
        max_staleness=STALENESS,
        sleep=clock.advance,
        attempt_seconds=1.0,
    )

    # When a request comes with 1 s left: one read, no room for a pause and another read
    decision = cache.decide(tokens.current.encode(), deadline=clock.now + 1.0)

    # Then it gives up in time, undecided
    assert decision == NO_DECISION
    assert parameter.reads == 1


def test_cache_recovers_a_cold_instance_one_refresh_interval_after_ssm_does(
    cache: AcceptedSetCache, parameter: FakeParameter, clock: FakeClock, tokens: Tokens
) -> None:
    # Given a fresh instance that failed its reads through a long outage
    parameter.failure = StoreError("ThrottlingException")
    for _ in range(30):
        assert decide(cache, tokens.current) == NO_DECISION
        clock.advance(10)

    # When SSM answers again, Then the instance reads within one refresh interval (it has
    # no copy to serve, so it never backs off longer)
    parameter.failure = None
    clock.advance(REFRESH)
    assert decide(cache, tokens.current) == Decision(True, "current")


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
    assert decide(cache, tokens.pending) == NO_DECISION
    assert errors and set(errors) == {"CorruptDocument"}
    # up to the staleness bound, like any other failed read
    clock.advance(STALENESS)
    assert decide(cache, tokens.current) == NO_DECISION


def test_cache_decides_nothing_when_the_first_document_is_corrupt(
    cache: AcceptedSetCache, parameter: FakeParameter, tokens: Tokens, errors: Errors
) -> None:
    parameter.value = "null"

    assert decide(cache, "null") == NO_DECISION
    assert set(errors) == {"CorruptDocument"}


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
    assert decide(cache, tokens.current) == NO_DECISION


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
        retry_interval=REFRESH,
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
        parameter, clock, max_age=MAX_AGE, retry_interval=REFRESH, max_staleness=STALENESS
    )
    cache.decide(tokens.current.encode())  # the first read
    compared: list[tuple[bytes, bytes]] = []
    original = hmac.compare_digest

    def compare_digest(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return original(a, b)

    monkeypatch.setattr(authorizer.cache.hmac, "compare_digest", compare_digest)
    value = generate_token() if presented == "unknown" else tokens.of(presented)

    # When a value is decided on a warm instance (a fresh copy: no re-read)
    decision = cache.decide(value.encode())

    # Then it was compared, by hmac.compare_digest, with every accepted value: whichever slot
    # matches (or none), the same comparisons run, so the timing tells neither
    assert sorted(b for _, b in compared) == sorted(v.encode() for v in tokens.all())
    assert {a for a, _ in compared} == {value.encode()}
    assert decision.slot == (None if presented == "unknown" else presented)


class SlowParameter(FakeParameter):
    """SSM answering after *seconds* (a loaded machine, a slow network)."""

    def __init__(self, value: str, clock: FakeClock, seconds: float) -> None:
        super().__init__(value)
        self.clock = clock
        self.seconds = seconds

    def read(self) -> str:
        self.clock.advance(self.seconds)
        return super().read()


def test_cache_denies_with_certainty_from_a_copy_read_for_the_request_however_slow(
    clock: FakeClock, tokens: Tokens
) -> None:
    # Given an instance whose reads take longer than its max age
    parameter = SlowParameter(document_json(current=tokens.current), clock, MAX_AGE + 5)
    cache = AcceptedSetCache(
        parameter, clock, max_age=MAX_AGE, retry_interval=REFRESH, max_staleness=STALENESS
    )

    # When an unknown value arrives and the copy read for it is already "old" on arrival
    decision = decide(cache, generate_token())

    # Then the Deny is still certain: the request predates the read, so any value an edge
    # sent with it was staged (at least the stage wait) before the read began
    assert decision == Decision(False, reason="no_match")
    # while a later request on that copy, once expired and not refreshable, gets none
    parameter.failure = StoreError("ThrottlingException")
    assert decide(cache, generate_token()) == NO_DECISION


def test_cache_spreads_the_reads_of_instances_started_together(
    parameter: FakeParameter, clock: FakeClock, tokens: Tokens
) -> None:
    # Given instances started at the same moment (a revoke replacing them all), each drawing
    # its own random fraction
    parameter.value = document_json(current=tokens.current)
    fractions = [0.1, 0.4, 0.7, 0.95]
    caches = [
        AcceptedSetCache(
            parameter,
            clock,
            max_age=MAX_AGE,
            retry_interval=REFRESH,
            max_staleness=STALENESS,
            jitter=functools.partial(float, f),
        )
        for f in fractions
    ]
    for cache in caches:
        decide(cache, tokens.current)

    # Then each reads next after its own part of the max age (spread over all of it), not all
    # within its last fifth
    next_reads = []
    for cache in caches:
        moment = next(t for t in range(int(MAX_AGE) + 1) if cache.may_read(clock.now + t))
        next_reads.append(moment)
    for moment, fraction in zip(next_reads, fractions, strict=True):
        assert fraction * MAX_AGE <= moment < fraction * MAX_AGE + 1
    assert max(next_reads) - min(next_reads) > 0.5 * MAX_AGE
    # and after that first copy, each copy lives 80-100 % of the max age
    clock.advance(MAX_AGE)
    reads = parameter.reads
    decide(caches[0], tokens.current)
    assert parameter.reads == reads + 1
    assert not caches[0].may_read(clock.now + 0.79 * MAX_AGE)
