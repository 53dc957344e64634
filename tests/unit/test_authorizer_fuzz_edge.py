"""The authorizer's fuzz, in edge-signed mode: anything an attacker can put in a request ends
in a deny, never in an exception, and only a token an accepted key signed for a window within
the tolerance opens the API.

The same generated events as tests/unit/test_authorizer_fuzz.py (junk, random headers, the
origin header in random case and repeated, 1 MB values), with the near misses taken from
*signed tokens*: the real ones mutated, tokens of another key, another distribution, a window
out of the tolerance, a header-mode value sent where a token belongs. The real tokens are made
at the moment of the example (the handler reads the wall clock).
"""

from __future__ import annotations

import time
from typing import Any

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from tests.unit.fakes import HEADER, AuthorizerInstance, UnexpectedErrors, request_event
from tests.unit.test_authorizer_fuzz import junk, random_case
from tokens.document import Signing, TokenDocument, generate_token
from tokens.edge import sign

DISTRIBUTION = "E2QWRUHAPOMQZL"
WINDOW = 60
KEYS = (generate_token(), generate_token(), generate_token())
DOCUMENT = TokenDocument(
    pending=KEYS[0],
    current=KEYS[1],
    previous=KEYS[2],
    generation=3,
    mode="edge-signed",
    signing=Signing(DISTRIBUTION, WINDOW, 1),
).to_json()
OUTSIDER = generate_token()


def real_tokens(now: float) -> list[str]:
    return [sign(key, DISTRIBUTION, now, WINDOW) for key in KEYS]


@st.composite
def forged(draw: st.DrawFn) -> str:
    """A value close to a real token, or a token no accepted key signed for now."""
    now = time.time()
    real = draw(st.sampled_from(real_tokens(now)))
    i = draw(st.integers(0, len(real) - 1))
    shape = draw(
        st.sampled_from(
            [
                "prefix",
                "changed",
                "dropped",
                "inserted",
                "upper",
                "joined",
                "outsider",
                "distribution",
                "stale",
                "ahead",
                "key-as-token",
            ]
        )
    )
    if shape == "prefix":
        value = real[:i]
    elif shape == "changed":
        value = real[:i] + draw(st.characters()) + real[i + 1 :]
    elif shape == "dropped":
        value = real[:i] + real[i + 1 :]
    elif shape == "inserted":
        value = real[:i] + draw(st.characters()) + real[i:]
    elif shape == "upper":
        value = real.upper()
    elif shape == "joined":
        value = f"{real},{real}"
    elif shape == "outsider":
        value = sign(OUTSIDER, DISTRIBUTION, now, WINDOW)
    elif shape == "distribution":
        value = sign(draw(st.sampled_from(KEYS)), "EOTHERDISTRIB", now, WINDOW)
    elif shape == "stale":
        value = sign(draw(st.sampled_from(KEYS)), DISTRIBUTION, now - 3 * WINDOW, WINDOW)
    elif shape == "ahead":
        value = sign(draw(st.sampled_from(KEYS)), DISTRIBUTION, now + 3 * WINDOW, WINDOW)
    else:
        value = OUTSIDER  # a value that is no accepted key, sent as is
    # A mutation can leave the token as it was, or make the one for the next window: no miss.
    assume(value not in real_tokens(now) and value not in real_tokens(now + WINDOW))
    assume(value not in real_tokens(now - WINDOW))
    return value


header_values = st.one_of(forged(), junk, st.text(max_size=100))


@st.composite
def header_maps(draw: st.DrawFn) -> Any:
    headers = draw(st.dictionaries(st.text(max_size=20), header_values, max_size=3))
    for name in draw(st.lists(random_case(HEADER), max_size=3)):
        headers[name] = draw(header_values)
    # A real token, repeated under another case (API Gateway would join them)
    if draw(st.booleans()):
        first, second = draw(st.lists(random_case(HEADER), min_size=2, max_size=2, unique=True))
        headers[first] = draw(st.sampled_from(real_tokens(time.time())))
        headers[second] = draw(st.one_of(st.sampled_from(real_tokens(time.time())), header_values))
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
def test_authorizer_fuzz_edge_signed_events_never_raise_and_never_allow(
    instance: AuthorizerInstance, unexpected_errors: UnexpectedErrors, event: Any
) -> None:
    unexpected_errors.clear()
    instance.parameter.value = DOCUMENT
    instance.clock.advance(0.25)

    response = instance(event)

    assert response == {"isAuthorized": False}
    assert not unexpected_errors, unexpected_errors.report()


def test_authorizer_fuzz_edge_signed_instance_still_allows_the_real_tokens(
    instance: AuthorizerInstance,
) -> None:
    # The fuzz above would pass against an authorizer that denies everything.
    instance.parameter.value = DOCUMENT

    for slot, token in zip(
        ("pending", "current", "previous"), real_tokens(time.time()), strict=True
    ):
        assert instance(request_event(token)) == {"isAuthorized": True, "context": {"slot": slot}}
