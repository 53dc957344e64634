"""The token document stored in the SSM SecureString parameter.

The parameter holds a JSON object::

    {"format": 1, "pending": null, "current": "<token>", "previous": null,
     "generation": 7, "updated_at": "2026-11-25T17:00:00Z",
     "current_since": "2026-11-25T17:00:00Z"}

The accepted set is the non-null values among ``pending``, ``current`` and
``previous``. A parameter that holds a bare token (not a JSON object), as the
blog's deployment leaves it, reads as ``{"current": <that value>}``.

Two optional fields serve the edge-signed mode (docs/edge-signed.md)::

    "mode": "edge-signed",
    "signing": {"distribution_id": "E2QWRUHAPOMQZL", "window_seconds": 60,
                "tolerance_windows": 1}

``mode`` says what the edges are meant to send: the slot's value itself (``header``, the
default) or a token signed with it (``edge-signed``: the slots then hold signing keys).
``signing`` says how to check a signed token. An accepted value is accepted in both forms
whatever the mode: sent as is, or as the key of a signed token when ``signing`` is set. That
is never weaker than one form alone (whoever knows a value can send it and sign with it
alike), and it lets a deployment switch modes with the other mode's value kept in a slot,
accepted until it is retired (docs/decisions.md, "Edge-signed mode").

Nothing here ever puts a token value into an exception message, a ``repr`` or
a log line: callers pass :func:`fingerprint` values around instead.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace

FORMAT_VERSION = 1
SLOTS: tuple[str, ...] = ("pending", "current", "previous")
HEADER_MODE = "header"
EDGE_SIGNED_MODE = "edge-signed"
LOCK_MODES: tuple[str, ...] = (HEADER_MODE, EDGE_SIGNED_MODE)
# 32 random bytes -> 43 URL-safe base64 characters (A-Z a-z 0-9 - _): 256 bits,
# fixed length, no comma (API Gateway joins repeated headers with commas).
TOKEN_BYTES = 32
TOKEN_LENGTH = 43
# CloudFront's limit for an origin custom header value.
MAX_TOKEN_LENGTH = 1783
FINGERPRINT_LENGTH = 12
_JSON_LITERALS = frozenset({"null", "true", "false"})
# The parameter's tag that mirrors ``current_since``: the token-age probe reads it (metadata)
# instead of the document.
CURRENT_SINCE_TAG = "originlock:current-since"


class CorruptDocumentError(Exception):
    """The parameter holds something that is neither a token document nor a bare token."""


def fingerprint(value: str | None) -> str | None:
    """Return a short, non-reversible identifier of a token value.

    Parameters
    ----------
    value:
        A token value, or ``None``.

    Returns
    -------
    str | None
        The first 12 hex digits of ``sha256("originlock:" + value)``, or ``None``.
    """
    if value is None:
        return None
    digest = hashlib.sha256(b"originlock:" + value.encode("utf-8", "surrogatepass"))
    return digest.hexdigest()[:FINGERPRINT_LENGTH]


def generate_token() -> str:
    """Return a fresh token: 256 bits from :mod:`secrets`, URL-safe, 43 characters."""
    import secrets  # here, not at import: the authorizer never generates (cold start)

    token = secrets.token_urlsafe(TOKEN_BYTES)
    assert len(token) == TOKEN_LENGTH
    return token


def valid_token(value: object) -> bool:
    """Whether *value* can be a token: printable ASCII without spaces or commas."""
    return (
        isinstance(value, str)
        and 0 < len(value) <= MAX_TOKEN_LENGTH
        and value.isascii()
        and value.isprintable()
        and " " not in value
        and "," not in value
    )


@dataclass(frozen=True)
class Signing:
    """How the edges sign (edge-signed mode): what the authorizer needs to check a token."""

    distribution_id: str
    window_seconds: int
    tolerance_windows: int

    @classmethod
    def parse(cls, data: object) -> Signing:
        from .edge import EdgeTokenError, check_signing_settings

        if not isinstance(data, dict):
            raise CorruptDocumentError("signing is not a JSON object")
        signing = cls(
            data.get("distribution_id"),  # type: ignore[arg-type]
            data.get("window_seconds"),  # type: ignore[arg-type]
            data.get("tolerance_windows"),  # type: ignore[arg-type]
        )
        try:
            check_signing_settings(
                signing.distribution_id, signing.window_seconds, signing.tolerance_windows
            )
        except EdgeTokenError as exc:
            raise CorruptDocumentError(f"signing: {exc}") from None
        return signing

    def to_dict(self) -> dict[str, object]:
        return {
            "distribution_id": self.distribution_id,
            "window_seconds": self.window_seconds,
            "tolerance_windows": self.tolerance_windows,
        }


def utc_now() -> str:
    from datetime import UTC, datetime

    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class TokenDocument:
    """The decoded parameter. Immutable: every change returns a new document."""

    current: str | None = field(default=None, repr=False)
    previous: str | None = field(default=None, repr=False)
    pending: str | None = field(default=None, repr=False)
    generation: int = 0
    updated_at: str | None = None
    # When the value in ``current`` became current (None: not known, e.g. adopted).
    current_since: str | None = None
    adopted_plain: bool = False
    # What the edges are meant to send (module docstring), and how they sign.
    mode: str = HEADER_MODE
    signing: Signing | None = None

    # -- reading ---------------------------------------------------------
    @classmethod
    def parse(cls, raw: object) -> TokenDocument:
        """Decode a parameter value.

        Raises
        ------
        CorruptDocumentError
            If the value is not a token document nor a bare token. The message
            never contains the value.
        """
        if not isinstance(raw, str) or not raw.strip():
            raise CorruptDocumentError("parameter value is empty or not a string")
        text = raw.strip()
        if not text.startswith("{"):
            # Another JSON value (null, true, an array, a quoted string) is a tool's
            # mistake, never a token someone chose: adopting it would make "null" a
            # password that opens the API.
            if text in _JSON_LITERALS or text[0] in '["' or not valid_token(text):
                raise CorruptDocumentError("bare parameter value is not a usable token")
            return cls(current=text, adopted_plain=True)
        try:
            data = json.loads(text)
        except (ValueError, RecursionError):
            # RecursionError: a deeply nested value (SSM's 8 KB holds enough brackets).
            raise CorruptDocumentError("parameter value is not valid JSON") from None
        if not isinstance(data, dict):
            raise CorruptDocumentError("token document is not a JSON object")
        fmt = data.get("format", FORMAT_VERSION)
        # Exactly the integer: in Python true == 1 == 1.0, and neither is a format we wrote.
        if type(fmt) is not int or fmt != FORMAT_VERSION:
            # Name the format only when it is a number: the field could hold anything.
            shown = f" {fmt}" if isinstance(fmt, int) and not isinstance(fmt, bool) else ""
            raise CorruptDocumentError(f"unsupported token document format{shown}")
        slots: dict[str, str | None] = {}
        for slot in SLOTS:
            value = data.get(slot)
            if value is not None and not valid_token(value):
                raise CorruptDocumentError(f"slot {slot} does not hold a usable token")
            slots[slot] = value
        generation = data.get("generation", 0)
        if isinstance(generation, bool) or not isinstance(generation, int) or generation < 0:
            raise CorruptDocumentError("generation is not a non-negative integer")
        updated_at = data.get("updated_at")
        if updated_at is not None and not isinstance(updated_at, str):
            raise CorruptDocumentError("updated_at is not a string")
        current_since = data.get("current_since")
        if current_since is not None and not isinstance(current_since, str):
            raise CorruptDocumentError("current_since is not a string")
        if not any(slots.values()):
            raise CorruptDocumentError("token document accepts no value")
        mode = data.get("mode", HEADER_MODE)
        if mode not in LOCK_MODES:
            raise CorruptDocumentError("mode is not 'header' or 'edge-signed'")
        raw_signing = data.get("signing")
        signing = None if raw_signing is None else Signing.parse(raw_signing)
        if mode == EDGE_SIGNED_MODE and signing is None:
            raise CorruptDocumentError("an edge-signed document has no signing settings")
        return cls(
            current=slots["current"],
            previous=slots["previous"],
            pending=slots["pending"],
            generation=generation,
            updated_at=updated_at,
            current_since=current_since,
            mode=mode,
            signing=signing,
        )

    def accepted(self) -> tuple[tuple[str, bytes], ...]:
        """The accepted set as ``(slot, value bytes)`` pairs, pending first."""
        return tuple(
            (slot, value.encode("ascii"))
            for slot in SLOTS
            if (value := getattr(self, slot)) is not None
        )

    def slot_of(self, value: str | None) -> str | None:
        """The slot holding *value*, or ``None`` when it is not accepted."""
        if value is None:
            return None
        for slot in SLOTS:
            if getattr(self, slot) == value:
                return slot
        return None

    def fingerprints(self) -> dict[str, str | None]:
        """Fingerprint of each slot (``None`` for an empty slot)."""
        return {slot: fingerprint(getattr(self, slot)) for slot in SLOTS}

    # -- writing ---------------------------------------------------------
    def to_json(self) -> str:
        """Encode for the parameter (always the JSON form, even for an adopted bare token).
        ``mode`` and ``signing`` only when set: a header-mode document stays as it was."""
        data: dict[str, object] = {
            "format": FORMAT_VERSION,
            "pending": self.pending,
            "current": self.current,
            "previous": self.previous,
            "generation": self.generation,
            "updated_at": self.updated_at,
            "current_since": self.current_since,
        }
        if self.mode != HEADER_MODE:
            data["mode"] = self.mode
        if self.signing is not None:
            data["signing"] = self.signing.to_dict()
        return json.dumps(data, separators=(",", ":"))

    def evolve(self, **changes: object) -> TokenDocument:
        """A copy with *changes*, the next generation and a fresh timestamp (``current_since``
        too when ``current`` changes)."""
        now = utc_now()
        since = self.current_since
        if "current" in changes and changes["current"] != self.current:
            since = now if changes["current"] is not None else None
        return replace(
            self,
            generation=self.generation + 1,
            updated_at=now,
            current_since=since,
            adopted_plain=False,
            **changes,  # type: ignore[arg-type]
        )

    def summary(self) -> dict[str, object]:
        """What may be shown to an operator: fingerprints, never values."""
        return {
            "generation": self.generation,
            "updated_at": self.updated_at,
            "current_since": self.current_since,
            "fingerprints": self.fingerprints(),
            "adopted_plain": self.adopted_plain,
            "mode": self.mode,
            "key_ids": self.key_ids(),
        }

    def key_ids(self) -> dict[str, str | None]:
        """In edge-signed mode, the key id (in every token it signs) of each slot's key; empty
        in header mode. Public: a kid is a hash that reveals nothing about the key."""
        if self.mode != EDGE_SIGNED_MODE:
            return {}
        from .edge import key_id, valid_signing_key

        return {
            slot: key_id(value) if valid_signing_key(value) else None
            for slot in SLOTS
            if (value := getattr(self, slot)) is not None
        }
