"""HTTP API Lambda authorizer (payload format 2.0, simple responses).

Allows a request only when it carries exactly one origin header whose value is in the token
document's accepted set, or is a token signed with an accepted value (edge-signed mode).
Denies only when it is certain: API Gateway caches a Deny for the authorizer's TTL. When it
cannot be certain (the document cannot be read, or the instance is misconfigured) it fails the
invocation with :class:`UndecidedError`: API Gateway answers 500 and caches nothing. Nothing a
request carries makes it raise: a malformed request, or an unexpected error while handling
one, is denied.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from authorizer.cache import UNCERTAIN, AcceptedSetCache
from authorizer.settings import AuthorizerSettings, SettingsError
from authorizer.telemetry import Telemetry
from tokens.document import valid_token
from tokens.store import default_reader

DENY: dict[str, Any] = {"isAuthorized": False}
# Kept out of the last second of the function's timeout: a cold instance's read retries stop
# early enough for the invocation to answer (or fail) on its own terms.
DEADLINE_MARGIN_SECONDS = 0.5


class UndecidedError(Exception):
    """No certain decision: the invocation fails, so API Gateway answers 500 and caches nothing.

    The message never carries a value: it says why, in words.
    """


@dataclass
class Runtime:
    settings: AuthorizerSettings
    cache: AcceptedSetCache


# The environment this instance reads its settings from. The sandbox's in-process
# Lambda runtime gives each instance (a separate copy of this module) its own.
ENVIRON: Mapping[str, str] = os.environ
_telemetry = Telemetry(flush_interval=60.0, deny_log_interval=1.0)
_runtime: Runtime | None = None
# Settings are parsed once per instance; a misconfiguration is reported once, not per request.
_misconfigured = False


def _jitter() -> float:
    """A fraction in [0, 1) (os.urandom: no `random` import at cold start)."""
    return int.from_bytes(os.urandom(2), "big") / 65536


def build_runtime(settings: AuthorizerSettings, telemetry: Telemetry) -> Runtime:
    reader = default_reader(
        settings.parameter_name, settings.token_source, settings.extension_port, ENVIRON
    )
    cache = AcceptedSetCache(
        reader,
        time.monotonic,
        max_age=settings.cache_max_age,
        retry_interval=settings.refresh_min_interval,
        max_staleness=settings.max_staleness,
        on_error=telemetry.store_error,
        sleep=time.sleep,
        attempt_seconds=settings.read_timeout,
        jitter=_jitter,
        wall_clock=time.time,
    )
    return Runtime(settings, cache)


def _get_runtime() -> Runtime | None:
    global _runtime, _telemetry, _misconfigured
    if _runtime is None:
        if _misconfigured:
            _telemetry.count("SettingsErrors")  # counted per request, logged once
            return None
        try:
            settings = AuthorizerSettings.from_env(ENVIRON)
        except SettingsError as exc:
            _misconfigured = True
            _telemetry.settings_error(str(exc))
            return None
        _telemetry = Telemetry(settings.metrics_flush_interval, settings.deny_log_interval)
        _runtime = build_runtime(settings, _telemetry)
    return _runtime


def reset() -> None:
    """Forget the instance state (tests use this to model a fresh instance)."""
    global _runtime, _telemetry, _misconfigured
    _runtime = None
    _misconfigured = False
    _telemetry = Telemetry(flush_interval=60.0, deny_log_interval=1.0)


def presented_value(event: object, header_name: str) -> bytes | None:
    """The one well-formed origin header value in *event*, or ``None``.

    Header names are matched case-insensitively. ``None`` for a missing, empty,
    repeated (API Gateway joins repeats with commas) or malformed value.
    """
    if not isinstance(event, dict):
        return None
    headers = event.get("headers")
    if not isinstance(headers, dict):
        return None
    found: object = None
    seen = False
    for key, value in headers.items():
        if isinstance(key, str) and key.lower() == header_name:
            if seen:
                return None
            seen, found = True, value
    if not valid_token(found):
        return None
    assert isinstance(found, str)
    return found.encode("ascii")


def _deadline(context: object, now: float) -> float | None:
    """The monotonic time by which this invocation should answer, from Lambda's context."""
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    if remaining is None:
        return None
    try:
        return now + float(remaining()) / 1000 - DEADLINE_MARGIN_SECONDS
    except Exception:
        return None


def lambda_handler(event: dict[str, Any], context: object) -> dict[str, Any]:
    try:
        runtime = _get_runtime()
        now = time.monotonic()
        if runtime is None:
            allowed, slot, reason = False, None, "misconfigured"
        else:
            presented = presented_value(event, runtime.settings.header_name)
            if presented is None:
                allowed, slot, reason = False, None, "malformed"
            else:
                decision = runtime.cache.decide(presented, _deadline(context, now))
                allowed, slot = decision.allowed, decision.slot
                reason = decision.reason or "no_match"
    except Exception as exc:
        # Never raise because of a request: a bug met while handling one denies it.
        with contextlib.suppress(Exception):
            _telemetry.unexpected(exc)
            # An instance that fails on every request must still emit AuthorizerErrors.
            _telemetry.maybe_flush(time.monotonic())
        return DENY
    # Reporting is best effort: a logger or a metrics flush that raises must not change the
    # answer (an Allow turned into a Deny is cached by API Gateway for its whole TTL).
    with contextlib.suppress(Exception):
        if allowed:
            _telemetry.count(f"Allowed_{slot}")
        elif reason in (UNCERTAIN, "misconfigured"):
            _telemetry.undecided(reason, now)
        else:
            _telemetry.denied(reason, now)
        # Also on a misconfigured instance, or it would never emit SettingsErrors.
        _telemetry.maybe_flush(now)
    if allowed:
        return {"isAuthorized": True, "context": {"slot": slot}}
    if reason == UNCERTAIN:
        raise UndecidedError(
            "no certain decision: the token document could not be read recently enough"
        )
    if reason == "misconfigured":
        raise UndecidedError("no decision: the authorizer's settings are missing or malformed")
    return DENY
