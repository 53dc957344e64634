"""The accepted-set cache: one instance's copy of the token document, and how sure it is.

Pure logic: the reader (SSM or the extension), the clock and the sleep are passed in, so the
unit tests drive it with fakes and the sandbox with the real adapters.

An instance reads the document when its copy is ``max_age`` old (at the next request), and
never because of what a request carries: a spray of random header values costs no read. So
one instance makes at most one read per ``max_age`` while the store answers, and the whole
fleet at most ``instances / max_age`` reads per second (docs/authorizer.md, "SSM budget").

A Deny is cached by API Gateway for its whole TTL, so the cache answers one of three things:

* **allow** — the value is in the copy, and the copy is at most ``max_staleness`` old;
* **deny** — only when *certain*: the value is not in a copy younger than ``max_age``, or in
  one read for this very request. Every value an edge may send was staged at least
  ``max_age`` before any edge sends it (a rotation waits max age + refresh interval + 5 s
  after staging; an emergency revoke replaces every instance between staging and
  switching), so a copy younger than that, or read after the request arrived, holds it;
* **uncertain** — no good copy yet (a cold instance whose reads fail), a copy older than
  ``max_age`` that could not be refreshed, or one older than ``max_staleness``. The handler
  then fails the invocation: API Gateway answers 500 and caches nothing.

Edge-signed tokens (docs/edge-signed.md) are decided the same way: a token is allowed when
an accepted value, as a signing key, signed it for a window within the tolerance of the wall
clock; a Deny is certain on the same grounds, since a key, and the document's ``signing``
settings, are staged at least ``max_age`` before any edge signs with them, and a window out of
the tolerance stays out of it.

Bounds (``t`` = the moment the document changes in SSM):

* a value removed from the document is refused by every instance from ``t + max_age`` on
  (or at once by fresh instances, which is why revokes replace the instances);
* while SSM cannot be read, the last good set is served until ``max_staleness`` after the
  last good read; values not in it are undecided (500) rather than denied. After a failed
  read the instance tries again after ``retry_interval``, doubling after each further
  failure up to ``max_age`` (an instance with no copy at all stays at ``retry_interval``:
  it is failing every request). A cold instance retries its first read within the
  invocation's time budget before it gives up.
"""

from __future__ import annotations

import contextlib
import hmac
import time as _time
from collections.abc import Callable
from dataclasses import dataclass

from tokens.document import CorruptDocumentError, TokenDocument
from tokens.edge import Verifier
from tokens.store import ParameterReader, StoreError


@dataclass(frozen=True)
class Decision:
    allowed: bool
    slot: str | None = None
    # Why a request was not allowed: "no_match" (a certain Deny) or "uncertain".
    reason: str | None = None

    @property
    def certain(self) -> bool:
        return self.reason != UNCERTAIN


UNCERTAIN = "uncertain"
ALLOW_PENDING = Decision(True, "pending")
ALLOW_CURRENT = Decision(True, "current")
ALLOW_PREVIOUS = Decision(True, "previous")
_ALLOW = {"pending": ALLOW_PENDING, "current": ALLOW_CURRENT, "previous": ALLOW_PREVIOUS}
DENY_NO_MATCH = Decision(False, reason="no_match")
NO_DECISION = Decision(False, reason=UNCERTAIN)
# Pauses between a cold instance's first-read attempts inside one invocation.
FIRST_READ_PAUSES: tuple[float, ...] = (0.05, 0.2, 0.5)
# At most this part of the max age is taken off a copy's life, at random, per good read.
JITTER = 0.2


class AcceptedSetCache:
    """Holds one instance's copy of the accepted set and decides requests against it."""

    def __init__(
        self,
        reader: ParameterReader,
        clock: Callable[[], float],
        *,
        max_age: float,
        retry_interval: float,
        max_staleness: float,
        on_error: Callable[[str], None] = lambda code: None,
        sleep: Callable[[float], None] | None = None,
        attempt_seconds: float = 1.0,
        jitter: Callable[[], float] | None = None,
        wall_clock: Callable[[], float] | None = None,
    ) -> None:
        self._reader = reader
        self._clock = clock
        # Unix time, for the windows of edge-signed tokens (the monotonic clock above times
        # the copy). None: time.time.
        self._wall_clock = wall_clock
        self.max_age = max_age
        self.retry_interval = retry_interval
        self.max_staleness = max_staleness
        self._on_error = on_error
        # None: no retry inside an invocation (the model test moves time itself).
        self._sleep = sleep
        # How long one read may take (the reader's own timeouts): a retry is started only if
        # it can end before the invocation's deadline.
        self.attempt_seconds = attempt_seconds
        # A fraction in [0, 1) per good read: the copy is refreshed up to a fifth of the max
        # age early, so instances started together (a scale-up, a revoke's replacement) do
        # not keep reading in the same second (docs/authorizer.md, "SSM budget"). None: none.
        self._jitter = jitter
        self._refresh_after = max_age
        self._accepted: tuple[tuple[str, bytes], ...] = ()
        # Checks edge-signed tokens against the same accepted values (as signing keys) when the
        # document says how the edges sign; None otherwise.
        self._verifier: Verifier | None = None
        self.generation: int | None = None
        self.last_good: float | None = None
        self.last_attempt: float | None = None
        self.last_attempt_failed = False
        self._failures = 0
        self.reads = 0

    # -- reading -------------------------------------------------------------
    def _read(self, now: float) -> bool:
        self.last_attempt = now
        self.reads += 1
        try:
            document = TokenDocument.parse(self._reader.read())
        except StoreError as exc:
            return self._failed(exc.code)
        except CorruptDocumentError:
            return self._failed("CorruptDocument")
        except Exception as exc:
            # Any other failure (a reader bug, a botocore surprise) is an outage like the
            # ones above. The type name only: the message could quote what was read.
            return self._failed(type(exc).__name__)
        verifier = None
        if document.signing is not None:
            signing = document.signing
            verifier = Verifier(
                document.accepted(),
                signing.distribution_id,
                signing.window_seconds,
                signing.tolerance_windows,
            )
        first = self.last_good is None
        self._accepted = document.accepted()
        self._verifier = verifier
        self.generation = document.generation
        self.last_good = now
        if self._jitter is None:
            self._refresh_after = self.max_age
        elif first:
            # An instance's first copy lives a random part of the max age: instances started
            # together (a deploy, a revoke replacing them all) then spread their next reads
            # over the whole max age instead of a fifth of it.
            self._refresh_after = self.max_age * self._jitter()
        else:
            self._refresh_after = self.max_age * (1 - JITTER * self._jitter())
        self.last_attempt_failed = False
        self._failures = 0
        return True

    def _failed(self, code: str) -> bool:
        self.last_attempt_failed = True
        self._failures += 1
        # Reporting a failed read must not change the answer: a logger or metrics sink that
        # raises (a full disk, a broken handler) is dropped here.
        with contextlib.suppress(Exception):
            self._on_error(code)
        return False

    def retry_after(self) -> float:
        """Seconds between a failed read and the next attempt: doubling with each failure, up
        to ``max_age`` for an instance that still serves a copy, and never more than
        ``retry_interval`` for one without any (it fails every request meanwhile)."""
        if self.last_good is None:
            return self.retry_interval
        backoff = self.retry_interval * 2 ** max(self._failures - 1, 0)
        return min(backoff, max(self.max_age, self.retry_interval))

    def may_read(self, now: float) -> bool:
        if self.last_attempt is None:
            return True
        if self.last_attempt_failed:
            return now - self.last_attempt >= self.retry_after()
        # The last read succeeded: the next one is due when the copy expires.
        return self.last_good is None or now - self.last_good >= self._refresh_after

    def _refresh(self, now: float, deadline: float | None) -> bool:
        """Read the document; ``True`` if this call got a good copy."""
        if self._read(now):
            return True
        if self.last_good is not None or self._sleep is None:
            return False
        # A cold instance: no copy to serve, so every request fails until a read succeeds.
        # Try again within this invocation while its time budget allows.
        for base in FIRST_READ_PAUSES:
            # Jittered, so that instances started together do not retry together.
            pause = base * (0.5 + self._jitter()) if self._jitter else base
            now = self._clock()
            if deadline is not None and now + pause + self.attempt_seconds > deadline:
                return False
            self._sleep(pause)
            if self._read(self._clock()):
                return True
        return False

    # -- deciding ------------------------------------------------------------
    def _match(self, presented: bytes) -> str | None:
        # Compare with every accepted value, no early exit: the time taken does not
        # tell which slot (or whether any) matched.
        matched = None
        for slot, value in self._accepted:
            if hmac.compare_digest(presented, value):
                matched = slot
        if matched is None and self._verifier is not None and presented.startswith(b"v1."):
            # An edge-signed token: a value sent as is never has this form (43 URL-safe
            # characters, no dot), an adopted one might, so it was compared above first.
            now = self._wall_clock() if self._wall_clock is not None else _time.time()
            matched = self._verifier.verify(presented, now)
        return matched

    def decide(self, presented: bytes, deadline: float | None = None) -> Decision:
        """Decide one presented header value (already checked to be well formed).

        *deadline*: the clock reading by which the invocation must answer (a cold instance
        retries its first read until then).
        """
        now = self._clock()
        expired = self.last_good is None or now - self.last_good >= self._refresh_after
        refreshed = False
        if expired and self.may_read(now):
            refreshed = self._refresh(now, deadline)
            now = self._clock()
        if self.last_good is None or now - self.last_good > self.max_staleness:
            # Nothing good to go by: allowing could let a revoked value in, denying could be
            # cached against a value CloudFront sends.
            return NO_DECISION
        slot = self._match(presented)
        if slot is not None:
            return _ALLOW[slot]
        # Certain when the copy is younger than the max age, or was read for this very
        # request: the request came before the read, so any value an edge sent with it was
        # staged at least the stage wait before the read began, however long the read took.
        if refreshed or now - self.last_good < self.max_age:
            return DENY_NO_MATCH
        return NO_DECISION
