"""Edge-signed tokens, the authorizer's side: what it accepts, what it refuses, and that no
request can make it raise.

The JavaScript signer is checked against the same functions in test_edge_function.py.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tokens.document import TOKEN_LENGTH, generate_token, valid_token
from tokens.edge import (
    KID_LENGTH,
    MAX_TOKEN_LENGTH,
    EdgeTokenError,
    Verifier,
    key_id,
    parse,
    sign,
    valid_signing_key,
    verify,
    window_of,
)

DIST = "E2QWRUHAPOMQZL"
WINDOW = 60
T0 = 1_800_000_030.0  # 30 s into window 30,000,000
KEY = "OzHNzydqP8c4O7yogCGHCprpOjkYKq6P7pQekorDVOk"
# A second key with the same kid as KEY (found by search: the kid has 32 bits).
SAME_KID = "9FYAA-7ZjwFHBhnx3NW_zNnZv-qOzDHrgcLkeBAFLOQ"
# KEY's token for DIST at T0 with 60 s windows, as specified in docs/edge-signed.md.
VECTOR = "v1.30000000.46de59c9.LPlNooIpAeLVs2tn3ZlZawxQ1gXdU0Nd6LRHklMmNZQ"


def keys(*values: str) -> list[tuple[str, bytes]]:
    return [
        (slot, value.encode("ascii"))
        for slot, value in zip(("pending", "current", "previous"), values, strict=False)
    ]


def test_edge_token_matches_the_documented_construction() -> None:
    # Given the format written in docs/edge-signed.md, computed here step by step
    kid = hashlib.sha256(b"originlock:kid:" + KEY.encode()).hexdigest()[:8]
    message = f"originlock:v1:{DIST}:30000000:{kid}".encode()
    mac = base64.urlsafe_b64encode(hmac.new(KEY.encode(), message, "sha256").digest())
    expected = f"v1.30000000.{kid}.{mac.decode().rstrip('=')}"

    # Then the signer produces exactly it, and the pinned vector too
    assert sign(KEY, DIST, T0, WINDOW) == expected == VECTOR
    assert key_id(KEY) == kid and len(kid) == KID_LENGTH


def test_edge_token_is_a_valid_origin_header_value() -> None:
    token = sign(generate_token(), DIST, T0, WINDOW)

    assert valid_token(token)
    assert len(token) <= MAX_TOKEN_LENGTH
    assert parse(token) is not None


def test_edge_token_is_the_same_all_window_long_and_changes_with_the_next() -> None:
    first = window_of(T0, WINDOW) * WINDOW

    assert sign(KEY, DIST, first, WINDOW) == sign(KEY, DIST, first + WINDOW - 0.001, WINDOW)
    assert sign(KEY, DIST, first + WINDOW, WINDOW) != sign(KEY, DIST, first, WINDOW)


def test_edge_verify_names_the_slot_whose_key_signed() -> None:
    pending, current, previous = generate_token(), generate_token(), generate_token()
    verifier = Verifier(keys(pending, current, previous), DIST, WINDOW, 1)

    assert verifier.verify(sign(pending, DIST, T0, WINDOW), T0) == "pending"
    assert verifier.verify(sign(current, DIST, T0, WINDOW), T0) == "current"
    assert verifier.verify(sign(previous, DIST, T0, WINDOW), T0) == "previous"
    assert verifier.verify(sign(generate_token(), DIST, T0, WINDOW), T0) is None


def test_edge_verify_accepts_bytes_and_str() -> None:
    token = sign(KEY, DIST, T0, WINDOW)

    assert verify(token, keys(KEY), DIST, T0, WINDOW, 1) == "pending"
    assert verify(token.encode(), keys(KEY), DIST, T0, WINDOW, 1) == "pending"


def test_edge_verify_accepts_within_the_tolerance_and_refuses_beyond() -> None:
    verifier = Verifier(keys(KEY), DIST, WINDOW, 1)
    token = sign(KEY, DIST, T0, WINDOW)

    assert verifier.verify(token, T0 - WINDOW) == "pending"  # authorizer one window behind
    assert verifier.verify(token, T0 + WINDOW) == "pending"  # one window ahead
    assert verifier.verify(token, T0 + 2 * WINDOW) is None  # expired
    assert verifier.verify(token, T0 - 2 * WINDOW) is None  # from too far in the future


@settings(max_examples=300, deadline=None)
@given(
    now=st.floats(1_600_000_000, 2_500_000_000),
    skew=st.floats(-WINDOW, WINDOW),
)
def test_edge_verify_accepts_any_edge_within_one_window_of_skew(now: float, skew: float) -> None:
    # Tolerance 1 window: an edge clock (plus the request's transit) up to 60 s off is accepted
    token = sign(KEY, DIST, now + skew, WINDOW)

    assert verify(token, keys(KEY), DIST, now, WINDOW, 1) == "pending"


@settings(max_examples=300, deadline=None)
@given(
    now=st.floats(1_600_000_000, 2_500_000_000),
    skew=st.one_of(st.floats(2 * WINDOW, 10_000), st.floats(-10_000, -2 * WINDOW)),
)
def test_edge_verify_refuses_any_token_two_windows_or_more_away(now: float, skew: float) -> None:
    token = sign(KEY, DIST, now + skew, WINDOW)

    assert verify(token, keys(KEY), DIST, now, WINDOW, 1) is None


def test_edge_verify_refuses_a_token_for_another_distribution() -> None:
    token = sign(KEY, "EOTHERDISTRIBUTION", T0, WINDOW)

    assert verify(token, keys(KEY), DIST, T0, WINDOW, 1) is None


def test_edge_verify_refuses_an_unknown_kid() -> None:
    token = sign(generate_token(), DIST, T0, WINDOW)

    assert verify(token, keys(KEY), DIST, T0, WINDOW, 1) is None


def test_edge_verify_refuses_every_single_character_change() -> None:
    token = sign(KEY, DIST, T0, WINDOW)
    verifier = Verifier(keys(KEY), DIST, WINDOW, 1)
    alphabet = "0123456789abcdefABCDEF-_.v"

    for i, char in enumerate(token):
        for replacement in alphabet:
            if replacement != char:
                tampered = token[:i] + replacement + token[i + 1 :]
                assert verifier.verify(tampered, T0) is None, (i, replacement)


def test_edge_verify_refuses_other_spellings_of_the_same_token() -> None:
    token = sign(KEY, DIST, T0, WINDOW)
    version, window, kid, mac = token.split(".")
    spellings = [
        f"{version}.0{window}.{kid}.{mac}",  # leading zero
        f"{version}.+{window}.{kid}.{mac}",
        f"{version}.{window}.{kid.upper()}.{mac}",
        f"{version}.{window}.{kid}.{mac}=",  # padding
        f"V1.{window}.{kid}.{mac}",
        f" {token}",
        f"{token} ",
        f"{token},{token}",  # API Gateway's join of a repeated header
        token[:-1],
        token + "A",
    ]
    for spelling in spellings:
        assert verify(spelling, keys(KEY), DIST, T0, WINDOW, 1) is None, spelling


def test_edge_verify_refuses_a_header_mode_value_and_ignores_header_mode_slots() -> None:
    # Given a slot that still holds a header-mode value that is not a signing key's form
    legacy = "x" * 50
    verifier = Verifier([("previous", legacy.encode()), ("current", KEY.encode())], DIST, WINDOW)

    # Then neither a header-mode value nor a key itself passes as a token
    assert verifier.verify(legacy, T0) is None
    assert verifier.verify(KEY, T0) is None
    assert verifier.verify(sign(KEY, DIST, T0, WINDOW), T0) == "current"
    assert verifier.kids == {key_id(KEY)}


def test_edge_verify_with_two_keys_sharing_a_kid_accepts_each_with_its_slot() -> None:
    assert key_id(KEY) == key_id(SAME_KID)
    verifier = Verifier(keys(KEY, SAME_KID), DIST, WINDOW, 1)

    assert verifier.verify(sign(KEY, DIST, T0, WINDOW), T0) == "pending"
    assert verifier.verify(sign(SAME_KID, DIST, T0, WINDOW), T0) == "current"


def test_edge_verify_gives_the_same_answer_from_its_memo() -> None:
    verifier = Verifier(keys(KEY), DIST, WINDOW, 1)
    token = sign(KEY, DIST, T0, WINDOW)
    forged = token[:-1] + ("A" if token[-1] != "A" else "B")

    answers = [verifier.verify(value, T0) for value in (token, forged, token, forged) * 50]

    assert answers == ["pending", None] * 100


def test_edge_parse_splits_a_token_and_refuses_junk() -> None:
    parsed = parse(VECTOR)

    assert parsed is not None
    assert (parsed.window, parsed.kid) == (30_000_000, "46de59c9")
    assert KEY not in repr(parsed) and parsed.mac.decode() not in repr(parsed)
    for junk in (None, 7, "", "v1...", "v1.1.46de59c9." + "!" * 43, b"\xff" * 60, "é" * 60):
        assert parse(junk) is None


@pytest.mark.parametrize(
    ("key", "distribution_id", "window"),
    [
        ("short", DIST, WINDOW),
        ("é" * TOKEN_LENGTH, DIST, WINDOW),
        (KEY[:-1] + "=", DIST, WINDOW),
        (KEY, "", WINDOW),
        (KEY, "E2QWR:UHAPOMQZL", WINDOW),
        (KEY, DIST, 0),
        (KEY, DIST, 86_400),
        (KEY, DIST, 60.5),
    ],
)
def test_edge_sign_refuses_bad_settings_without_showing_the_key(
    key: str, distribution_id: str, window: int
) -> None:
    with pytest.raises(EdgeTokenError) as caught:
        sign(key, distribution_id, T0, window)

    assert KEY not in str(caught.value)


def test_edge_verifier_refuses_bad_settings() -> None:
    with pytest.raises(EdgeTokenError):
        Verifier(keys(KEY), "", WINDOW, 1)
    with pytest.raises(EdgeTokenError):
        Verifier(keys(KEY), DIST, WINDOW, -1)


def test_edge_verifier_repr_shows_kids_not_keys() -> None:
    text = repr(Verifier(keys(KEY), DIST, WINDOW, 1))

    assert KEY not in text and key_id(KEY) in text


def test_edge_signing_key_form_is_what_the_generator_makes() -> None:
    assert all(valid_signing_key(generate_token()) for _ in range(50))
    assert not valid_signing_key(KEY + "A")
    assert not valid_signing_key(KEY[:-1] + "+")
    assert not valid_signing_key(None)


# -- fuzzing -------------------------------------------------------------------------------
SIGNED = [sign(KEY, DIST, T0, WINDOW), sign(SAME_KID, DIST, T0 + WINDOW, WINDOW)]
anything = st.one_of(
    st.none(),
    st.integers(),
    st.floats(allow_nan=True),
    st.text(max_size=80),
    st.binary(max_size=80),
    st.lists(st.text(max_size=5), max_size=3),
    st.text(alphabet="v1.0123456789abcdef-_ABCXYZ", min_size=50, max_size=70),
    st.sampled_from(SIGNED).map(lambda token: token.encode()),
)


@settings(max_examples=1500, deadline=None)
@given(value=anything)
def test_edge_verify_never_raises_and_accepts_only_signed_tokens(value: object) -> None:
    verifier = Verifier(keys(KEY, SAME_KID), DIST, WINDOW, 1)

    slot = verifier.verify(value, T0)

    signed = value.decode("latin-1") if isinstance(value, bytes) else value
    assert slot is None or signed in SIGNED


@st.composite
def mutations(draw: st.DrawFn) -> str:
    token = draw(st.sampled_from(SIGNED))
    i = draw(st.integers(0, len(token) - 1))
    kind = draw(st.sampled_from(["drop", "insert", "replace", "swap"]))
    char = draw(st.characters(min_codepoint=32, max_codepoint=126))
    if kind == "drop":
        return token[:i] + token[i + 1 :]
    if kind == "insert":
        return token[:i] + char + token[i:]
    if kind == "replace":
        return token[:i] + char + token[i + 1 :]
    j = draw(st.integers(0, len(token) - 1))
    chars = list(token)
    chars[i], chars[j] = chars[j], chars[i]
    return "".join(chars)


@settings(max_examples=1500, deadline=None)
@given(value=mutations())
def test_edge_verify_refuses_every_mutation_of_a_signed_token(value: str) -> None:
    verifier = Verifier(keys(KEY, SAME_KID), DIST, WINDOW, 1)

    assert verifier.verify(value, T0) is None or value in SIGNED


@settings(max_examples=200, deadline=None)
@given(
    key=st.binary(min_size=32, max_size=32).map(
        lambda raw: base64.urlsafe_b64encode(raw).decode().rstrip("=")
    ),
    distribution_id=st.text(
        alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", min_size=1, max_size=20
    ),
    now=st.floats(0, 4_000_000_000),
    window=st.integers(10, 3600),
)
def test_edge_verify_accepts_what_the_signer_produced_inside_the_window(
    key: str, distribution_id: str, now: float, window: int
) -> None:
    token = sign(key, distribution_id, now, window)

    assert valid_token(token)
    assert verify(token, keys(key), distribution_id, now, window, 0) == "pending"


@pytest.mark.parametrize("presented", ["first", "second", "forged"])
def test_edge_verify_compares_every_candidate_in_constant_time(
    presented: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given two accepted keys that share a kid (both are candidates for any token naming it)
    verifier = Verifier(keys(KEY, SAME_KID), DIST, WINDOW)
    import tokens.edge

    compared: list[tuple[bytes, bytes]] = []
    original = tokens.edge.hmac.compare_digest

    def compare_digest(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return original(a, b)

    monkeypatch.setattr(tokens.edge.hmac, "compare_digest", compare_digest)
    token = {
        "first": sign(KEY, DIST, T0, WINDOW),
        "second": sign(SAME_KID, DIST, T0, WINDOW),
    }.get(presented) or sign(KEY, DIST, T0, WINDOW)[:-1] + "A"

    # When a token naming that kid is verified
    slot = verifier.verify(token, T0)

    # Then its MAC was compared, with hmac.compare_digest, against both keys' MACs, whichever
    # matched (or none): the timing tells neither which key nor whether any
    assert len(compared) == 2
    assert {a for a, _ in compared} == {token[-43:].encode()} or {b for _, b in compared} == {
        token[-43:].encode()
    }
    assert slot == {"first": "pending", "second": "current"}.get(presented)
