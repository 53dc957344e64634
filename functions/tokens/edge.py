"""Edge-signed tokens: the origin header value a CloudFront Function computes for each request.

In edge-signed mode CloudFront does not send a stored secret. A CloudFront Function
(``functions/edge/viewer_request.js``) reads a signing key from a KeyValueStore and sets the
origin header to::

    v1.<window>.<kid>.<mac>

* ``window``: ``floor(unix_seconds / window_seconds)`` in decimal, no sign, no leading zero;
* ``kid``: :func:`key_id` of the key, 8 lowercase hex digits (a hash: it reveals nothing);
* ``mac``: base64url without padding (43 characters) of
  ``HMAC-SHA256(key, "originlock:v1:" + distribution_id + ":" + window + ":" + kid)``,
  the key taken as its ASCII bytes.

Every edge computes the same value for the same window, key and distribution, so API
Gateway's authorizer cache still answers almost every request. A leaked value is refused once
its window is more than the tolerance behind the authorizer's clock (docs/edge-signed.md).

The authorizer side is pure and allocation-light: no SDK import, no logging, nothing raised
because of a request. :class:`Verifier` is built once per accepted set and answers each request
with a few slices, a dictionary lookup and, for a plausible token, one HMAC per candidate key
(memoised per window). Nothing here puts a key or a token into an exception, a ``repr`` or a
return value other than the token :func:`sign` returns.
"""

from __future__ import annotations

import hashlib
import hmac
from base64 import urlsafe_b64encode
from collections.abc import Iterable
from dataclasses import dataclass, field

VERSION = "v1"
# The KeyValueStore key under which the store holds the active signing key (the value is the
# key itself: the function derives the kid, so the two can never disagree).
KVS_KEY_NAME = "signing-key"
KID_LENGTH = 8
MAC_LENGTH = 43  # base64url of 32 bytes, without the "=" padding
MAX_WINDOW_DIGITS = 12  # unix time / 1 s fits in 11 digits until the year 5138
SIGNING_KEY_LENGTH = 43  # tokens.document.generate_token: 32 random bytes, URL-safe base64
DEFAULT_WINDOW_SECONDS = 60
DEFAULT_TOLERANCE_WINDOWS = 1
MIN_WINDOW_SECONDS = 10
MAX_WINDOW_SECONDS = 3600
MAX_TOLERANCE_WINDOWS = 10
MAX_DISTRIBUTION_ID_LENGTH = 64

_PREFIX = b"v1."
_KID_DOMAIN = b"originlock:kid:"
_MAC_DOMAIN = b"originlock:v1:"
_KEY_ALPHABET = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
_ID_ALPHABET = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
# Shortest and longest token: "v1." + window + "." + kid + "." + mac.
_TAIL = 1 + KID_LENGTH + 1 + MAC_LENGTH
MIN_TOKEN_LENGTH = len(_PREFIX) + 1 + _TAIL
MAX_TOKEN_LENGTH = len(_PREFIX) + MAX_WINDOW_DIGITS + _TAIL
# Expected MACs kept per verifier: (2 * tolerance + 1) windows of up to 3 keys fit easily.
_MEMO_LIMIT = 64


class EdgeTokenError(ValueError):
    """A signing key, distribution id or window setting is not usable (configuration, never a
    request). The message names the problem, never the key."""


def valid_signing_key(key: object) -> bool:
    """Whether *key* has the form of a signing key: 43 URL-safe base64 characters."""
    return (
        isinstance(key, str)
        and len(key) == SIGNING_KEY_LENGTH
        and key.isascii()
        and _KEY_ALPHABET.issuperset(key.encode("ascii"))
    )


def _key_bytes(key: str | bytes) -> bytes:
    raw = key.encode("ascii", "replace") if isinstance(key, str) else bytes(key)
    if len(raw) != SIGNING_KEY_LENGTH or not _KEY_ALPHABET.issuperset(raw):
        raise EdgeTokenError("signing key is not 43 URL-safe base64 characters")
    return raw


def _distribution_bytes(distribution_id: str) -> bytes:
    if (
        not isinstance(distribution_id, str)
        or not 0 < len(distribution_id) <= MAX_DISTRIBUTION_ID_LENGTH
        or not distribution_id.isascii()
        or not _ID_ALPHABET.issuperset(distribution_id.encode("ascii"))
    ):
        raise EdgeTokenError("distribution id is not 1-64 ASCII letters and digits")
    return distribution_id.encode("ascii")


def check_window_settings(window_seconds: int, tolerance_windows: int) -> None:
    """Raise :class:`EdgeTokenError` unless the window settings are in their supported ranges."""
    if (
        type(window_seconds) is not int
        or not MIN_WINDOW_SECONDS <= window_seconds <= MAX_WINDOW_SECONDS
    ):
        raise EdgeTokenError(
            f"window must be {MIN_WINDOW_SECONDS}-{MAX_WINDOW_SECONDS} whole seconds"
        )
    if type(tolerance_windows) is not int or not 0 <= tolerance_windows <= MAX_TOLERANCE_WINDOWS:
        raise EdgeTokenError(f"tolerance must be 0-{MAX_TOLERANCE_WINDOWS} whole windows")


def check_signing_settings(
    distribution_id: object, window_seconds: object, tolerance_windows: object
) -> None:
    """Raise :class:`EdgeTokenError` unless a token document's signing settings are usable."""
    _distribution_bytes(distribution_id)  # type: ignore[arg-type]
    check_window_settings(window_seconds, tolerance_windows)  # type: ignore[arg-type]


def key_id(key: str | bytes) -> str:
    """The key id a token carries: ``sha256("originlock:kid:" + key)``, first 8 hex digits.

    Raises
    ------
    EdgeTokenError
        If *key* is not a signing key.
    """
    return hashlib.sha256(_KID_DOMAIN + _key_bytes(key)).hexdigest()[:KID_LENGTH]


def window_of(now: float, window_seconds: int) -> int:
    """The window number of unix time *now* (seconds): ``floor(now / window_seconds)``."""
    return int(now // window_seconds)


def _mac(state: hmac.HMAC, window: bytes, kid: bytes) -> bytes:
    mac = state.copy()
    mac.update(window + b":" + kid)
    return urlsafe_b64encode(mac.digest())[:MAC_LENGTH]


def _keyed_state(key: bytes, distribution: bytes) -> hmac.HMAC:
    # The per-key, per-distribution prefix is absorbed once; each token then costs a copy and
    # one short update.
    return hmac.new(key, _MAC_DOMAIN + distribution + b":", hashlib.sha256)


def sign(key: str | bytes, distribution_id: str, now: float, window_seconds: int) -> str:
    """The token the edge function sends at unix time *now* (what the sandbox, the tests and
    the demo's leaked-header replay use; the edges themselves run the JavaScript).

    Raises
    ------
    EdgeTokenError
        If the key, the distribution id or the window is not usable.
    """
    check_window_settings(window_seconds, 0)
    raw = _key_bytes(key)
    window = str(window_of(now, window_seconds)).encode("ascii")
    kid = key_id(raw).encode("ascii")
    mac = _mac(_keyed_state(raw, _distribution_bytes(distribution_id)), window, kid)
    return (_PREFIX + window + b"." + kid + b"." + mac).decode("ascii")


@dataclass(frozen=True)
class ParsedToken:
    """The parts of a well-formed token (the MAC is not checked here)."""

    window: int
    kid: str
    mac: bytes = field(repr=False)


def _as_bytes(value: object) -> bytes | None:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        if not value.isascii():
            return None
        return value.encode("ascii")
    return None


def _split(raw: bytes) -> tuple[bytes, bytes, bytes] | None:
    """``(window, kid, mac)`` of a well-formed token, else ``None``. Fixed-width fields are cut
    from the end, so no split list is built."""
    if not MIN_TOKEN_LENGTH <= len(raw) <= MAX_TOKEN_LENGTH or not raw.startswith(_PREFIX):
        return None
    if raw[-MAC_LENGTH - 1] != 0x2E or raw[-_TAIL] != 0x2E:  # "."
        return None
    window = raw[len(_PREFIX) : -_TAIL]
    # bytes.isdigit is ASCII-only; a leading zero would give one window two spellings.
    if not window.isdigit() or (window[0] == 0x30 and len(window) > 1):
        return None
    return window, raw[-_TAIL + 1 : -MAC_LENGTH - 1], raw[-MAC_LENGTH:]


def parse(value: object) -> ParsedToken | None:
    """Split a header value into its parts, or ``None`` when it is not a well-formed token.

    Never raises. The MAC is only checked for its length and alphabet here.
    """
    raw = _as_bytes(value)
    if raw is None:
        return None
    parts = _split(raw)
    if parts is None:
        return None
    window, kid, mac = parts
    if not set(kid) <= set(b"0123456789abcdef") or not _KEY_ALPHABET.issuperset(mac):
        return None
    return ParsedToken(int(window), kid.decode("ascii"), mac)


class Verifier:
    """Decides edge-signed tokens against one accepted set of signing keys.

    Build one per accepted set (the authorizer rebuilds it when it reads a new document);
    :meth:`verify` is the per-request hot path.

    Parameters
    ----------
    keys:
        ``(slot, key)`` pairs, the key as its ASCII bytes or ``str``, e.g.
        ``TokenDocument.accepted()``. A pair whose key is not a signing key is skipped (it can
        never match), so a header-mode value left in a slot does no harm.
    distribution_id:
        The distribution whose edges sign: a token signed for another distribution never
        matches.
    window_seconds, tolerance_windows:
        A token is accepted while its window is within ``tolerance_windows`` of the window of
        the time passed to :meth:`verify`.

    Raises
    ------
    EdgeTokenError
        If the distribution id or the window settings are not usable.
    """

    def __init__(
        self,
        keys: Iterable[tuple[str, str | bytes]],
        distribution_id: str,
        window_seconds: int = DEFAULT_WINDOW_SECONDS,
        tolerance_windows: int = DEFAULT_TOLERANCE_WINDOWS,
    ) -> None:
        check_window_settings(window_seconds, tolerance_windows)
        distribution = _distribution_bytes(distribution_id)
        self.window_seconds = window_seconds
        self.tolerance_windows = tolerance_windows
        by_kid: dict[bytes, list[tuple[str, hmac.HMAC]]] = {}
        for slot, key in keys:
            try:
                raw = _key_bytes(key)
            except EdgeTokenError:
                continue
            kid = key_id(raw).encode("ascii")
            by_kid.setdefault(kid, []).append((slot, _keyed_state(raw, distribution)))
        # Two keys with one kid (a 1 in 2**32 chance) both stay candidates.
        self._by_kid = {kid: tuple(entries) for kid, entries in by_kid.items()}
        self._memo: dict[tuple[bytes, int, bytes], bytes] = {}

    @property
    def kids(self) -> frozenset[str]:
        """The key ids this verifier accepts (public: they are in every token)."""
        return frozenset(kid.decode("ascii") for kid in self._by_kid)

    def __repr__(self) -> str:
        return f"Verifier(kids={sorted(self.kids)}, window_seconds={self.window_seconds})"

    def verify(self, header_value: object, now: float) -> str | None:
        """The slot whose key signed *header_value* for a window close enough to *now*, or
        ``None``. Never raises; a malformed value is ``None``.

        Every candidate key (those whose kid the token names) is compared, with
        :func:`hmac.compare_digest` and no early exit.
        """
        raw = _as_bytes(header_value)
        if raw is None:
            return None
        parts = _split(raw)
        if parts is None:
            return None
        window, kid, mac = parts
        candidates = self._by_kid.get(kid)
        if candidates is None:
            return None
        if abs(int(window) - window_of(now, self.window_seconds)) > self.tolerance_windows:
            return None
        matched: str | None = None
        for index, (slot, state) in enumerate(candidates):
            # Every edge sends one value per window: one HMAC per key and window, then lookups.
            memo_key = (kid, index, window)
            expected = self._memo.get(memo_key)
            if expected is None:
                expected = _mac(state, window, kid)
                if len(self._memo) >= _MEMO_LIMIT:
                    self._memo.clear()
                self._memo[memo_key] = expected
            if hmac.compare_digest(expected, mac) and matched is None:
                matched = slot
        return matched


def verify(
    header_value: object,
    keys: Iterable[tuple[str, str | bytes]],
    distribution_id: str,
    now: float,
    window_seconds: int = DEFAULT_WINDOW_SECONDS,
    tolerance_windows: int = DEFAULT_TOLERANCE_WINDOWS,
) -> str | None:
    """One-shot :meth:`Verifier.verify` (builds the verifier each call: for tests and tools;
    the authorizer keeps a :class:`Verifier` per accepted set).

    Raises
    ------
    EdgeTokenError
        For unusable settings (distribution id, window, tolerance), never for the value.
    """
    return Verifier(keys, distribution_id, window_seconds, tolerance_windows).verify(
        header_value, now
    )
