"""The rotation steps. Each is idempotent: run twice, it finds the state it left and acts once.

A step receives the execution's state (request, settings, earlier results: fingerprints only)
and the ports; it returns a small dict of fingerprints and flags. No value ever leaves here.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from rotate import settings as settings_module
from rotate.adapters import LiveDistribution, Ports, probe
from rotate.errors import (
    DeploymentTimeoutError,
    InvalidInputError,
    NoOriginHeaderError,
    PreviousStillInUseError,
    SettingsError,
    StateConflictError,
    UnknownOriginHeaderError,
    VerificationFailedError,
)
from rotate.settings import RotateSettings
from tokens.document import (
    EDGE_SIGNED_MODE,
    HEADER_MODE,
    Signing,
    TokenDocument,
    fingerprint,
    generate_token,
)

MODES = ("rotate", "revoke")
REVOKE_SCOPES = ("previous", "all")
TRIGGERS = ("schedule", "manual")
INPUT_KEYS = {"mode", "revoke", "trigger", "reason", "requested_by"}


@dataclass(frozen=True)
class StepCall:
    execution_id: str
    state: Mapping[str, Any]
    params: Mapping[str, Any]

    def result_of(self, step: str, key: str) -> Any:
        found = self.state.get(step)
        if not isinstance(found, Mapping):
            return None
        result = found.get("result")
        return result.get(key) if isinstance(result, Mapping) else None


# -- helpers ---------------------------------------------------------------
def _text(value: object, key: str, limit: int) -> str:
    if not isinstance(value, str) or len(value) > limit or not value.isprintable():
        raise InvalidInputError(f"{key} must be printable text of at most {limit} characters")
    return value


def _sent(live: LiveDistribution) -> set[str]:
    if not live.header_values:
        raise NoOriginHeaderError("no target origin of the distribution carries the origin header")
    return set(live.header_values.values())


def _check_known(document: TokenDocument, live: LiveDistribution) -> None:
    """Stop before anything is removed if CloudFront sends a value the document does not know."""
    unknown = [
        origin for origin, value in live.header_values.items() if document.slot_of(value) is None
    ]
    if unknown:
        raise UnknownOriginHeaderError(
            "CloudFront sends a value the token document does not accept on origin(s) "
            f"{', '.join(sorted(unknown))}: it was changed out of band; see docs/runbook.md"
        )


def _sent_fingerprints(live: LiveDistribution) -> list[str | None]:
    return sorted({fingerprint(v) for v in live.header_values.values()}, key=str)


# -- steps -----------------------------------------------------------------
def validate(call: StepCall, settings: RotateSettings, ports: Ports | None) -> dict[str, Any]:
    raw = call.params.get("input")
    if not isinstance(raw, Mapping):
        raise InvalidInputError("input must be a JSON object")
    extra = set(raw) - INPUT_KEYS
    if extra:
        raise InvalidInputError(f"unknown input field(s): {', '.join(sorted(extra))[:200]}")
    mode = raw.get("mode")
    if mode not in MODES:
        raise InvalidInputError("mode must be 'rotate' or 'revoke'")
    scope = raw.get("revoke")
    if mode == "revoke" and scope not in REVOKE_SCOPES:
        raise InvalidInputError("revoke must be 'previous' or 'all' when mode is 'revoke'")
    if mode == "rotate" and scope is not None:
        raise InvalidInputError("revoke is only allowed when mode is 'revoke'")
    trigger = raw.get("trigger", "manual")
    if trigger not in TRIGGERS:
        raise InvalidInputError("trigger must be 'schedule' or 'manual'")
    request = {
        "mode": mode,
        "revoke": scope,
        "trigger": trigger,
        "reason": _text(raw.get("reason", ""), "reason", 256),
        "requested_by": _text(raw.get("requested_by", ""), "requested_by", 128),
    }
    try:
        timings = settings.timings(mode, scope)
    except settings_module.SettingsError as exc:
        raise SettingsError(str(exc)) from None
    return {"request": request, "settings": timings}


def acquire_lock(call: StepCall, settings: RotateSettings, ports: Ports) -> dict[str, Any]:
    """Take the lock (see :class:`rotate.adapters.Lock`): ``settle`` asks the workflow to
    wait the fence settle time and come back here, ``acquired`` false means a scheduled
    rotation yields to a running execution (the workflow ends without doing anything)."""
    request = call.state.get("request") or {}
    return ports.lock.acquire(
        call.execution_id,
        {
            "mode": request.get("mode"),
            "revoke": request.get("revoke"),
            "trigger": request.get("trigger"),
            "acquired_at": int(time.time()),
        },
    )


def release_lock(call: StepCall, settings: RotateSettings, ports: Ports) -> dict[str, Any]:
    return {"released": ports.lock.release(call.execution_id)}


def _revoking_all(call: StepCall) -> bool:
    request = call.state.get("request") or {}
    return request.get("mode") == "revoke" and request.get("revoke") == "all"


def stage(call: StepCall, settings: RotateSettings, ports: Ports) -> dict[str, Any]:
    """Generate a value and write it as ``pending``, or reuse the one a run left there.

    A rotation reuses any staged value (roll forward). ``revoke all`` keeps a staged value
    only if CloudFront is already configured to send it (an interrupted rotation or revoke
    got as far as its switch: that value becomes the new one, no second deployment); one that
    CloudFront does not send is replaced by a fresh value, since nobody depends on it.
    """
    document = ports.store.read()
    live = ports.distribution.config()
    sent = _sent(live)
    _check_known(document, live)
    replaced = None
    mode = _mode_fields(document, settings)
    if (
        not settings.edge_signed
        and document.mode == EDGE_SIGNED_MODE
        and document.pending is not None
        and document.pending not in sent
    ):
        # A key staged for edge-signed mode (a deploy switching modes, docs/edge-signed.md):
        # rolled forward here it would be sent as a header, in the clear to every backend.
        raise StateConflictError(
            "a signing key is staged for edge-signed mode while this rotate function is in "
            "header mode: a deploy is switching modes; run the rotation after it ends"
        )
    if document.pending is not None:
        if not _revoking_all(call) or document.pending in sent:
            # Roll forward rather than stage a second value.
            if mode:
                # The mode (and how the edges sign) is written before the stage wait, like a
                # value: by the switch every authorizer has had it for the max age.
                document = document.evolve(**mode)
                ports.store.write(document, ports.lock.fence(call.execution_id))
            return {
                "pending": fingerprint(document.pending),
                "reused": True,
                "replaced": None,
                "generation": document.generation,
                **_key_id(document, settings),
            }
        replaced = fingerprint(document.pending)
    staged = document.evolve(pending=_new_value(document, settings), **mode)
    ports.store.write(staged, ports.lock.fence(call.execution_id))
    return {
        "pending": fingerprint(staged.pending),
        "reused": False,
        "replaced": replaced,
        "generation": staged.generation,
        **_key_id(staged, settings),
    }


def _mode_fields(document: TokenDocument, settings: RotateSettings) -> dict[str, Any]:
    """What the document must say about the deployment's mode, where it does not say it yet.

    Edge-signed: the mode and how the edges sign (the authorizer checks tokens with it). Header
    mode keeps the signing settings: a key left in a slot by a switch back from edge-signed
    mode stays accepted, in both forms, until it is retired."""
    if not settings.edge_signed:
        return {"mode": HEADER_MODE} if document.mode != HEADER_MODE else {}
    signing = Signing(settings.distribution_id, settings.window_seconds, settings.tolerance_windows)
    if document.mode == EDGE_SIGNED_MODE and document.signing == signing:
        return {}
    if (
        document.mode == EDGE_SIGNED_MODE
        and document.signing is not None
        and document.signing.window_seconds != signing.window_seconds
    ):
        # The function's code and the authorizers would number windows differently until both
        # changed: every token refused meanwhile (docs/edge-signed.md, "Settings").
        raise StateConflictError(
            f"the edges sign with {document.signing.window_seconds} s windows, this function is "
            f"set for {signing.window_seconds} s: a window changes only through header mode"
        )
    return {"mode": EDGE_SIGNED_MODE, "signing": signing}


def _new_value(document: TokenDocument, settings: RotateSettings) -> str:
    """A fresh value; in edge-signed mode a key whose key id no other slot's key has, so a
    token's key id always names one key (a clash is a 1 in 2**32 event)."""
    value = generate_token()
    if settings.edge_signed:
        from tokens.edge import key_id

        taken = set(document.key_ids().values()) if document.mode == EDGE_SIGNED_MODE else set()
        while key_id(value) in taken:
            value = generate_token()
    return value


def _key_id(document: TokenDocument, settings: RotateSettings) -> dict[str, Any]:
    """The pending key's id (public: every token it signs carries it), edge-signed mode only."""
    if not settings.edge_signed or document.pending is None:
        return {}
    from tokens.edge import key_id

    return {"pending_kid": key_id(document.pending)}


def switch(call: StepCall, settings: RotateSettings, ports: Ports) -> dict[str, Any]:
    document = ports.store.read()
    live = ports.distribution.config()
    sent = _sent(live)
    if document.pending is None:
        raise StateConflictError("nothing is staged: the pending slot is empty")
    if sent == {document.pending}:
        return {
            "switched_to": fingerprint(document.pending),
            "changed": False,
            "switched_at": time.time(),
        }
    _check_known(document, live)
    ports.distribution.send(live, document.pending, ports.lock.fence(call.execution_id))
    return {
        "switched_to": fingerprint(document.pending),
        "changed": True,
        "switched_at": time.time(),
    }


def check_deployed(call: StepCall, settings: RotateSettings, ports: Ports) -> dict[str, Any]:
    live = ports.distribution.describe()
    switched_at = call.result_of("switch", "switched_at") or time.time()
    polls = int(call.result_of("poll", "polls") or 0) + 1
    expected = call.result_of("switch", "switched_to")
    if _sent_fingerprints(live) != [expected]:
        document = ports.store.read()
        _check_known(document, live)
        raise StateConflictError("the distribution no longer sends the value this run switched to")
    deployed = live.status == "Deployed"
    waited = time.time() - float(switched_at)
    if not deployed and waited > settings.deploy_timeout_seconds:
        raise DeploymentTimeoutError(
            f"CloudFront still reports {live.status} after {int(waited)} s; every value it may "
            "send is still accepted; the next execution resumes this one"
        )
    return {
        "deployed": deployed,
        "status": live.status,
        "polls": polls,
        "waited_s": round(waited, 1),
    }


def _answers(status: int) -> bool:
    """Through CloudFront: the backend answered (any status but a refusal or a failure)."""
    return 200 <= status < 500 and status not in (401, 403)


def _refuses(status: int) -> bool:
    """Straight at the API, without the header: API Gateway refused."""
    return status in (401, 403)


def _probe_until(url: str, ok: Callable[[int], bool], settings: RotateSettings) -> int:
    """Probe *url* until *ok* holds, at most ``verify_attempts`` times: the first request
    after a revoke meets a cold authorizer, which can outlast one probe's timeout."""
    status = probe(url)
    for _ in range(settings.verify_attempts - 1):
        if ok(status):
            break
        time.sleep(settings.verify_interval_seconds)
        status = probe(url)
    return status


def verify(call: StepCall, settings: RotateSettings, ports: Ports) -> dict[str, Any]:
    checks: dict[str, Any] = {}
    if settings.probe_url:
        status = _probe_until(settings.probe_url, _answers, settings)
        checks["through_cloudfront"] = status
        if not _answers(status):
            raise VerificationFailedError(f"the probe through CloudFront answered {status}")
    if settings.api_url:
        status = _probe_until(settings.api_url, _refuses, settings)
        checks["direct_to_api"] = status
        if not _refuses(status):
            raise VerificationFailedError(
                f"the API answered {status} to a request without the header"
            )
    return {"checked": bool(checks), **checks}


def promote(call: StepCall, settings: RotateSettings, ports: Ports) -> dict[str, Any]:
    document = ports.store.read()
    expected = call.result_of("switch", "switched_to")
    if document.pending is None:
        if fingerprint(document.current) == expected:
            return {"current": expected, "changed": False}
        raise StateConflictError(
            "nothing to promote: pending is empty and current is not this run's"
        )
    if fingerprint(document.pending) != expected:
        raise StateConflictError("pending is not the value this run switched CloudFront to")
    live = ports.distribution.describe()
    if live.status != "Deployed" or _sent(live) != {document.pending}:
        raise StateConflictError("CloudFront is not Deployed with the staged value")
    promoted = document.evolve(current=document.pending, previous=document.current, pending=None)
    ports.store.write(promoted, ports.lock.fence(call.execution_id))
    return {
        "current": fingerprint(promoted.current),
        "previous": fingerprint(promoted.previous),
        "changed": True,
    }


def retire(call: StepCall, settings: RotateSettings, ports: Ports) -> dict[str, Any]:
    document = ports.store.read()
    if document.previous is None:
        return {"retired": None, "changed": False}
    live = ports.distribution.config()
    _check_known(document, live)
    if document.previous in _sent(live):
        raise PreviousStillInUseError(
            "the live distribution still sends the previous value; it stays accepted"
        )
    retired = fingerprint(document.previous)
    ports.store.write(document.evolve(previous=None), ports.lock.fence(call.execution_id))
    return {"retired": retired, "changed": True}


def revoke_previous(call: StepCall, settings: RotateSettings, ports: Ports) -> dict[str, Any]:
    document = ports.store.read()
    if document.previous is None:
        return {"revoked": [], "changed": False, "generation": document.generation}
    live = ports.distribution.config()
    _check_known(document, live)
    if document.previous in _sent(live):
        raise PreviousStillInUseError(
            "CloudFront still sends the previous value: revoke 'all' replaces it instead"
        )
    revoked = [fingerprint(document.previous)]
    updated = document.evolve(previous=None)
    ports.store.write(updated, ports.lock.fence(call.execution_id))
    return {"revoked": revoked, "changed": True, "generation": updated.generation}


def revoke_all(call: StepCall, settings: RotateSettings, ports: Ports) -> dict[str, Any]:
    document = ports.store.read()
    expected = call.result_of("switch", "switched_to")
    if document.pending is None:
        if fingerprint(document.current) == expected and document.previous is None:
            return {"revoked": [], "changed": False, "generation": document.generation}
        raise StateConflictError("nothing staged to replace the revoked values with")
    if fingerprint(document.pending) != expected:
        raise StateConflictError("pending is not the value this run switched CloudFront to")
    live = ports.distribution.config()
    if _sent(live) != {document.pending}:
        raise StateConflictError("CloudFront is not configured to send the new value")
    revoked = [fp for fp in (fingerprint(document.current), fingerprint(document.previous)) if fp]
    updated = document.evolve(current=document.pending, previous=None, pending=None)
    ports.store.write(updated, ports.lock.fence(call.execution_id))
    return {"revoked": revoked, "changed": True, "generation": updated.generation}


def reset_authorizer_caches(
    call: StepCall, settings: RotateSettings, ports: Ports
) -> dict[str, Any]:
    """Make every authorizer decision after this step come from the current document.

    Order matters: warm instances are replaced *first* (and the update awaited), then API
    Gateway's result cache is emptied. The other order would let an old instance allow a
    revoked value after the reset, and API Gateway would cache that Allow for its TTL.
    """
    replaced = False
    if call.params.get("fresh_instances"):
        # Unique per document generation and per state of this execution: a retried step makes
        # no second update, but each state that asks for fresh instances gets them.
        generation = ports.store.read().generation
        tag = call.params.get("tag") or "reset"
        execution = call.execution_id.rsplit(":", 1)[-1]
        replaced = ports.caches.replace_instances(f"{generation}.{tag}.{execution}"[:128])
    api = ports.caches.reset_api_cache()
    return {"api_cache_reset": api, "instances_replaced": replaced}


Step = Callable[[StepCall, RotateSettings, Any], dict[str, Any]]
STEPS: dict[str, Step] = {
    "validate": validate,
    "acquire_lock": acquire_lock,
    "release_lock": release_lock,
    "stage": stage,
    "switch": switch,
    "check_deployed": check_deployed,
    "verify": verify,
    "promote": promote,
    "retire": retire,
    "revoke_previous": revoke_previous,
    "revoke_all": revoke_all,
    "reset_authorizer_caches": reset_authorizer_caches,
}
