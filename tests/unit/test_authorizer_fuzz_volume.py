"""100,000 hostile events at the real authorizer handler: zero exceptions, zero wrong allows.

Hostile: events the authorizer must deny. About a fifth more events carry an accepted value on
purpose (the one legitimate shape, in any header-name case), so the run ends once 100,000
must-deny events have been decided.

A seeded mutation fuzzer (fast enough for ``make test``; the structured Hypothesis fuzz is
in test_authorizer_fuzz.py). Each event starts from the recorded HTTP API request and is
mutated the way an attacker would: near misses of every accepted value (prefixes, suffixes,
one character changed, case flipped, padded, doubled, comma-joined), the header name in any
case and repeated, junk types, huge values, control and non-ASCII characters, and broken
event shapes. An independent oracle says which events carry exactly one accepted value; the
authorizer must allow exactly those. The handler turns any exception into a deny, so
"zero exceptions" is checked where it would be hidden: its last-resort ``except`` must catch
nothing.
"""

from __future__ import annotations

import os
import random
import string
from collections.abc import Callable
from typing import Any

from tests.unit.fakes import (
    HEADER,
    AuthorizerInstance,
    FakeParameter,
    Tokens,
    UnexpectedErrors,
    document_json,
    load_event,
)

HOSTILE = 200_000 if os.environ.get("ORIGINLOCK_SOAK") == "1" else 100_000
JUNK: list[Any] = [None, 0, -1, 1.5, True, [], {}, ["x"], {"a": 1}, b"bytes", "", " ", "\x00"]


def near_miss(rng: random.Random, real: str) -> str:
    i = rng.randrange(len(real))
    moves: list[Callable[[], str]] = [
        lambda: real[: rng.randrange(len(real))],
        lambda: real + rng.choice(string.printable),
        lambda: real[:i] + rng.choice(string.ascii_letters + "-_") + real[i + 1 :],
        lambda: real.swapcase(),
        lambda: " " + real,
        lambda: real + " ",
        lambda: real + "," + real,
        lambda: real + real,
        lambda: real[:i] + "\u00e9" + real[i + 1 :],
        lambda: real[:i] + "\x00" + real[i:],
        lambda: real[:i] + "\n" + real[i:],
        lambda: real * 25_000,  # ~1 MB
    ]
    return rng.choice(moves)()


def header_case(rng: random.Random) -> str:
    return "".join(c.upper() if rng.random() < 0.5 else c for c in HEADER)


def hostile(rng: random.Random, base: dict[str, Any], real: tuple[str, ...]) -> Any:
    kind = rng.randrange(10)
    if kind == 0:
        return rng.choice([None, [], "event", 42, {"headers": rng.choice(JUNK)}, {}])
    event = dict(base)
    headers = event["headers"] = dict(base["headers"])
    del headers[HEADER]
    if kind == 1:  # no header at all, random other headers
        headers[rng.choice(["x-cf-api-gateway", "x-cf-api-gateway-token-x", "token"])] = rng.choice(
            real
        )
    elif kind == 2:  # junk types
        headers[header_case(rng)] = rng.choice(JUNK)
    elif kind == 3:  # repeated under two spellings
        headers[HEADER] = rng.choice(real)
        headers[HEADER.upper()] = rng.choice(real)
    elif kind in (4, 5, 6):
        headers[header_case(rng)] = near_miss(rng, rng.choice(real))
    elif kind == 7:  # random printable / unicode noise
        size = rng.choice([1, 43, 44, 200, 5000])
        alphabet = rng.choice([string.printable, "ÀÉîõü€漢字", string.ascii_letters + "-_"])
        headers[header_case(rng)] = "".join(rng.choice(alphabet) for _ in range(size))
    else:  # a real value, in a random-case header name: the one legitimate shape
        headers[header_case(rng)] = rng.choice(real)
    if rng.random() < 0.05:
        event["headers"] = rng.choice([None, [], "headers"])
    return event


def oracle(event: Any, real: tuple[str, ...]) -> bool:
    """Exactly one header named like the origin header, whose value is exactly accepted."""
    if not isinstance(event, dict) or not isinstance(event.get("headers"), dict):
        return False
    values = [v for k, v in event["headers"].items() if isinstance(k, str) and k.lower() == HEADER]
    return len(values) == 1 and isinstance(values[0], str) and values[0] in real


def test_authorizer_fuzz_volume_never_raises_and_allows_only_exact_values(
    instance: AuthorizerInstance,
    parameter: FakeParameter,
    tokens: Tokens,
    unexpected_errors: UnexpectedErrors,
) -> None:
    # Given an instance whose document accepts three values
    parameter.value = document_json(
        pending=tokens.pending, current=tokens.current, previous=tokens.previous
    )
    real = tokens.all()
    base = load_event()
    rng = random.Random(20261125)
    wrong: list[int] = []
    allowed = must_deny = n = 0

    # When events arrive until 100,000 of them must be denied
    while must_deny < HOSTILE:
        event = hostile(rng, base, real)
        expected = oracle(event, real)
        response = instance(event)
        # A crash inside the handler would still answer a deny: stop at the first one.
        assert not unexpected_errors, f"event {n}: {unexpected_errors.report()}"
        decision = response["isAuthorized"]
        assert isinstance(decision, bool)
        if decision != expected:
            wrong.append(n)
        allowed += decision
        must_deny += not expected
        n += 1

    # Then only the events carrying exactly one accepted value were allowed
    assert not wrong, f"{len(wrong)} wrong decisions, first at event {wrong[0]}"
    assert n * 0.15 < allowed < n * 0.35  # the fuzzer exercised both outcomes
    # And header spraying stayed cheap: at most one SSM read per refresh interval
    assert parameter.reads <= 2
