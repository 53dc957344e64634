"""The accepted-set cache: max age, refresh-on-miss, last-known-good with a staleness bound.

Pure logic: the reader (SSM or the extension) and the clock are passed in, so the
unit tests drive it with fakes and the sandbox with the real adapters.

Bounds (``t`` = the moment the document changes in SSM):

* a value added to the document (a staged ``pending``) is accepted by every
  instance from ``t + refresh_min_interval`` on: a miss makes the instance re-read;
* a value removed from the document is refused by every instance from
  ``t + cache_max_age`` on (or at once by fresh instances);
* while SSM cannot be read (any exception from the reader, or a corrupt document),
  the last good set is served until ``max_staleness`` after the last good read; then
  everything is denied until a read succeeds.
"""

from __future__ import annotations

import contextlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass

from tokens.document import CorruptDocumentError, TokenDocument
from tokens.store import ParameterReader, StoreError


@dataclass(frozen=True)
class Decision:
    allowed: bool
    slot: str | None = None
    # Why a request was denied: "no_match", "store_unavailable".
    reason: str | None = None


ALLOW_PENDING = Decision(True, "pending")
ALLOW_CURRENT = Decision(True, "current")
ALLOW_PREVIOUS = Decision(True, "previous")
_ALLOW = {"pending": ALLOW_PENDING, "current": ALLOW_CURRENT, "previous": ALLOW_PREVIOUS}
DENY_NO_MATCH = Decision(False, reason="no_match")
DENY_UNAVAILABLE = Decision(False, reason="store_unavailable")


class AcceptedSetCache:
    """Holds one instance's copy of the accepted set and decides requests against it."""

    def __init__(
        self,
        reader: ParameterReader,
        clock: Callable[[], float],
        *,
        max_age: float,
        refresh_min_interval: float,
        max_staleness: float,
        on_error: Callable[[str], None] = lambda code: None,
    ) -> None:
        self._reader = reader
        self._clock = clock
        self.max_age = max_age
        self.refresh_min_interval = refresh_min_interval
        self.max_staleness = max_staleness
        self._on_error = on_error
        self._accepted: tuple[tuple[str, bytes], ...] = ()
        self.generation: int | None = None
        self.last_good: float | None = None
        self._last_attempt: float | None = None
        self.reads = 0

    def _refresh(self, now: float) -> None:
        self._last_attempt = now
        self.reads += 1
        try:
            document = TokenDocument.parse(self._reader.read())
        except StoreError as exc:
            self._report(exc.code)
            return
        except CorruptDocumentError:
            self._report("CorruptDocument")
            return
        except Exception as exc:
            # Any other failure (a reader bug, a botocore surprise) is an outage like the
            # ones above: serve the last good set. Raised from here it would deny the
            # current value, and API Gateway would cache that Deny for its whole TTL.
            # The type name only: the message could quote what was read.
            self._report(type(exc).__name__)
            return
        self._accepted = document.accepted()
        self.generation = document.generation
        self.last_good = now

    def _report(self, code: str) -> None:
        # Reporting a failed read must not turn it into a denial: a logger or metrics
        # sink that raises (a full disk, a broken handler) is dropped here, for the
        # same reason as the reader's own surprises above.
        with contextlib.suppress(Exception):
            self._on_error(code)

    def _may_attempt(self, now: float) -> bool:
        return self._last_attempt is None or now - self._last_attempt >= self.refresh_min_interval

    def _match(self, presented: bytes) -> str | None:
        # Compare with every accepted value, no early exit: the time taken does not
        # tell which slot (or whether any) matched.
        matched = None
        for slot, value in self._accepted:
            if hmac.compare_digest(presented, value):
                matched = slot
        return matched

    def decide(self, presented: bytes) -> Decision:
        """Decide one presented header value (already checked to be well formed)."""
        now = self._clock()
        expired = self.last_good is None or now - self.last_good >= self.max_age
        if expired and self._may_attempt(now):
            self._refresh(now)
        slot = self._match(presented)
        if slot is None and self._may_attempt(now):
            # Refresh-on-miss: the value may have been staged since our last read.
            # API Gateway caches a Deny per header value for its TTL, so a stale
            # instance must look again before it denies.
            self._refresh(now)
            slot = self._match(presented)
        if self.last_good is None or now - self.last_good > self.max_staleness:
            return DENY_UNAVAILABLE
        if slot is None:
            return DENY_NO_MATCH
        return _ALLOW[slot]
