"""Anything an attacker can put in a request ends in a deny, never in an exception.

Generated events: nested junk, random headers, near misses of the real values, 1 MB
values, the origin header in random case, lists, numbers and nulls where strings
belong. The handler turns any exception into a deny, so a deny alone proves nothing
about exceptions: each example also checks that the handler's last-resort ``except``
caught nothing. The heavy run (100,000 examples) belongs to the soak target; here a
modest number keeps the unit suite fast.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from tests.unit.fakes import (
    HEADER,
    AuthorizerInstance,
    Tokens,
    UnexpectedErrors,
    document_json,
    request_event,
)

# One fixed document for every example: the strategies need its values up front.
TOKENS = Tokens.fresh()
REAL = TOKENS.all()
MEGABYTE = 1 << 20

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True),
    st.text(max_size=60),
    st.binary(max_size=60),
)
junk = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=3),
        st.dictionaries(st.text(max_size=12), children, max_size=3),
    ),
    max_leaves=6,
)


@st.composite
def near_misses(draw: st.DrawFn) -> str:
    """A value close to an accepted one, never equal to it."""
    real = draw(st.sampled_from(REAL))
    i = draw(st.integers(0, len(real) - 1))
    mutated = draw(
        st.sampled_from(
            [
                real[:i],  # prefix
                real[i:],  # suffix
                real[:i] + real[i + 1 :],  # one character dropped
                real[:i] + draw(st.characters()) + real[i + 1 :],  # one character changed
                real[:i] + draw(st.characters()) + real[i:],  # one character inserted
                real.swapcase(),
                real + ",",
                "," + real,
                f"{real},{draw(st.sampled_from(REAL))}",  # joined repeat
                f" {real}",
                f"{real}\n",
                real + "\x00",
                real.upper(),
            ]
        )
    )
    # A "changed" character can be the same one: that is no near miss.
    assume(mutated not in REAL)
    return mutated


def random_case(name: str) -> st.SearchStrategy[str]:
    # One integer as a bit mask (bit i: upper-case character i): a single draw.
    return st.integers(0, 2 ** len(name) - 1).map(
        lambda mask: "".join(c.upper() if mask >> i & 1 else c for i, c in enumerate(name))
    )


@st.composite
def huge_values(draw: st.DrawFn) -> str:
    """A 1 MB value: an accepted one repeated, padded either side, or one character."""
    real = draw(st.sampled_from(REAL))
    shape = draw(st.sampled_from(["repeated", "extended", "suffixed", "one-character"]))
    # Built here from a few draws: Hypothesis drawing a megabyte of text would be slow.
    if shape == "repeated":
        return (real * (MEGABYTE // len(real) + 1))[:MEGABYTE]
    if shape == "extended":
        return real + "A" * (MEGABYTE - len(real))
    if shape == "suffixed":
        return "A" * (MEGABYTE - len(real)) + real
    return draw(st.characters()) * MEGABYTE


header_values = st.one_of(near_misses(), junk, st.text(max_size=100), huge_values())


@st.composite
def header_maps(draw: st.DrawFn) -> Any:
    headers = draw(st.dictionaries(st.text(max_size=20), header_values, max_size=3))
    # The origin header, once or repeated in different cases, with a bad value...
    for name in draw(st.lists(random_case(HEADER), max_size=3)):
        headers[name] = draw(header_values)
    # ...or the real value, but repeated under another case (API Gateway would join them)
    if draw(st.booleans()):
        first, second = draw(st.lists(random_case(HEADER), min_size=2, max_size=2, unique=True))
        headers[first] = draw(st.sampled_from(REAL))
        headers[second] = draw(st.one_of(st.sampled_from(REAL), header_values))
    return headers


@st.composite
def events(draw: st.DrawFn) -> Any:
    kind = draw(st.sampled_from(["junk", "junk-headers", "recorded"]))
    if kind == "junk":
        return draw(junk)
    if kind == "junk-headers":
        event = draw(st.dictionaries(st.text(max_size=12), junk, max_size=3))
        event["headers"] = draw(st.one_of(junk, header_maps()))
        return event
    event = request_event(draw(header_values))
    event["headers"].update(draw(header_maps()))
    return event


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(event=events())
def test_authorizer_fuzz_generated_events_never_raise_and_never_allow(
    instance: AuthorizerInstance, unexpected_errors: UnexpectedErrors, event: Any
) -> None:
    # The fixtures live across examples: start each one with no error recorded.
    unexpected_errors.clear()
    instance.parameter.value = document_json(
        pending=TOKENS.pending, current=TOKENS.current, previous=TOKENS.previous
    )
    instance.clock.advance(0.25)

    response = instance(event)

    assert response == {"isAuthorized": False}
    assert not unexpected_errors, unexpected_errors.report()


def test_authorizer_fuzz_instance_still_allows_the_real_values(
    instance: AuthorizerInstance,
) -> None:
    # The fuzz above would pass against an authorizer that denies everything.
    instance.parameter.value = document_json(
        pending=TOKENS.pending, current=TOKENS.current, previous=TOKENS.previous
    )

    for value in REAL:
        assert instance(request_event(value))["isAuthorized"] is True
