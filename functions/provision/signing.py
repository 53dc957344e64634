"""``Custom::OriginlockSigningKey``: the edge-signed mode's first key, in place before any edge
signs with it (docs/edge-signed.md, "Deploying and switching modes").

A CloudFront Function that finds no key in its KeyValueStore sends no origin header (401), and
an authorizer that has not read a key refuses tokens signed with it. So a deploy in edge-signed
mode makes sure, before it finishes, that

1. the token document is in edge-signed mode, with the signing settings (the distribution id,
   the window and the tolerance) and a key in one of its slots;
2. every authorizer instance has had that document for the stage wait (the max age and
   more), and only then
3. the store holds that key, for the propagation wait before the resource answers (every
   edge's copy of the store has it before any edge can run the function).

The stack holds two of these resources. One comes *before* the distribution (the distribution
depends on it): when the distribution already exists (a header-mode stack switching modes) it
finds its id through CloudFormation and does all of the above, so the edges that take the
function during the distribution's deployment find a key the authorizers accept, while the
others still send the header value the document keeps. On a first create there is no
distribution yet and it does nothing. The other comes *after* the distribution, with its id:
on a first create it does the work (the new distribution answers 401 until then; the deploy
ends only once it has a key), later it finds everything in place.

It never promotes or retires: the next rotation rolls the staged key forward (``originlock
rotate``; docs/runbook.md). Nothing here logs, returns or raises a key: key ids only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from provision.errors import (
    BadRequestError,
    ParameterMissingError,
    ProvisionError,
    UnusableParameterError,
)
from provision.logic import (
    LOCK_SKIPPED,
    RotationLock,
    StackStatus,
    check_rotation_lock,
    rolling_back,
)
from tokens.document import (
    EDGE_SIGNED_MODE,
    HEADER_MODE,
    CorruptDocumentError,
    Signing,
    TokenDocument,
    generate_token,
)
from tokens.edge import EdgeTokenError, check_signing_settings, key_id

SIGNING_KEY_PHYSICAL_ID = "originlock-signing-key"
IN_PLACE = "in place"
STAGED = "staged"
NO_DISTRIBUTION_YET = "no distribution yet"


class SigningStateError(ProvisionError):
    """The token document is not in a state a key can be staged in (a rotation left a value
    staged, or changed the document while this deploy waited)."""


class DocumentStore(Protocol):
    def get(self, name: str) -> str | None:
        """The decrypted value, or ``None`` when the parameter does not exist."""
        ...

    def put(self, name: str, value: str, key_id: str | None) -> None:
        """Overwrite the SecureString parameter with *value*."""
        ...


class KeyStore(Protocol):
    """The distribution's KeyValueStore: its signing key and ETag."""

    def read(self) -> tuple[str | None, str]:
        """``(key or None, ETag)``."""
        ...

    def write(self, key: str, etag: str) -> None:
        """``UpdateKeys`` with *etag*: the store's signing key becomes *key*."""
        ...


class DistributionIds(Protocol):
    def distribution_id(self, stack_id: str, logical_id: str) -> str | None:
        """The id of the stack's distribution, ``None`` before it exists."""
        ...


@dataclass(frozen=True)
class SigningOutcome:
    state: str
    kid: str | None = None
    lock: str = "unchecked"

    def data(self) -> dict[str, str]:
        return {"KeyId": self.kid or "", "State": self.state}


def _text(properties: Mapping[str, Any], key: str) -> str:
    value = properties.get(key)
    if not isinstance(value, str) or not value.strip():
        raise BadRequestError(f"property {key} is missing or empty")
    return value.strip()


def _number(properties: Mapping[str, Any], key: str) -> float:
    # CloudFormation hands every scalar property over as a string.
    try:
        value = float(str(properties.get(key)))
    except ValueError:
        raise BadRequestError(f"property {key} is not a number") from None
    if value < 0:
        raise BadRequestError(f"property {key} is negative")
    return value


def _document(store: DocumentStore, name: str) -> TokenDocument:
    raw = store.get(name)
    if raw is None:
        raise ParameterMissingError(f"token parameter {name} does not exist")
    try:
        return TokenDocument.parse(raw)
    except CorruptDocumentError as exc:
        raise UnusableParameterError(f"parameter {name}: {exc}") from None


def _key_for(document: TokenDocument, stored: str | None) -> str:
    """The key the edges are to sign with: the store's if the document accepts it, else a key
    an earlier attempt staged, else a new one (whose key id no slot's value has)."""
    if stored is not None and document.slot_of(stored) is not None:
        return stored
    if document.pending is not None:
        if document.mode == EDGE_SIGNED_MODE:
            return document.pending  # staged by an earlier attempt: never sent as a header
        raise SigningStateError(
            "a rotation left a value staged (pending): complete it with `originlock rotate`, "
            "then deploy again"
        )
    taken = {key_id(v) for v in (document.current, document.previous) if v is not None}
    key = generate_token()
    while key_id(key) in taken:
        key = generate_token()
    return key


def signing_key(
    properties: Mapping[str, Any],
    stack_id: str,
    store: DocumentStore,
    keys: KeyStore,
    distributions: DistributionIds,
    lock: RotationLock,
    stacks: StackStatus,
    sleep: Callable[[float], None],
) -> SigningOutcome:
    """Handle ``Create``/``Update`` (module docstring).

    Raises
    ------
    BadRequestError
        A property is missing or malformed (the signing settings included).
    RotationRunningError
        A running execution holds the workflow's lock (never during a rollback).
    ParameterMissingError, UnusableParameterError
        The token parameter does not exist or holds no token document.
    SigningStateError
        A rotation left a header-mode value staged, or the document changed during the wait.
    """
    parameter = _text(properties, "ParameterName")
    kms_key = str(properties.get("KeyId") or "").strip() or None
    distribution = str(properties.get("DistributionId") or "").strip() or None
    if distribution is None:
        distribution = distributions.distribution_id(
            stack_id, _text(properties, "DistributionLogicalId")
        )
        if distribution is None:
            return SigningOutcome(NO_DISTRIBUTION_YET)
    window = int(_number(properties, "WindowSeconds"))
    tolerance = int(_number(properties, "ToleranceWindows"))
    stage_wait = _number(properties, "StageWaitSeconds")
    propagation = _number(properties, "PropagationSeconds")
    try:
        check_signing_settings(distribution, window, tolerance)
    except EdgeTokenError as exc:
        raise BadRequestError(f"signing settings: {exc}") from None
    if rolling_back(stack_id, stacks):
        lock_state = LOCK_SKIPPED
    else:
        lock_state = check_rotation_lock(_text(properties, "LockParameterName"), lock)
    signing = Signing(distribution, window, tolerance)
    document = _document(store, parameter)
    if (
        document.mode == EDGE_SIGNED_MODE
        and document.signing is not None
        and document.signing.window_seconds != window
    ):
        # The function's new code and the authorizers would number windows differently until
        # both had changed: every token refused meanwhile.
        raise SigningStateError(
            f"the edges sign with {document.signing.window_seconds} s windows: a window "
            f"changes only through header mode (deploy lockMode=header, then edge-signed with "
            f"{window} s; docs/edge-signed.md, Settings)"
        )
    stored, etag = keys.read()
    if (
        stored is not None
        and document.slot_of(stored) is not None
        and document.mode == EDGE_SIGNED_MODE
        and document.signing == signing
    ):
        return SigningOutcome(IN_PLACE, key_id(stored), lock_state)
    key = _key_for(document, stored)
    changes: dict[str, Any] = {"mode": EDGE_SIGNED_MODE, "signing": signing}
    if document.slot_of(key) is None:
        changes["pending"] = key
    store.put(parameter, document.evolve(**changes).to_json(), kms_key)
    # Every authorizer instance reads the document within its max age: after the stage wait
    # each one accepts the key's tokens before any edge can sign with it.
    sleep(stage_wait)
    now = _document(store, parameter)
    if now.slot_of(key) is None or now.signing != signing or now.mode != EDGE_SIGNED_MODE:
        raise SigningStateError(
            "the token document changed while the deploy waited (a rotation ran): deploy again"
        )
    if stored != key:
        keys.write(key, etag)
        # No edge may run the function before its copy of the store has the key (AWS gives no
        # per-edge signal): the distribution that depends on this resource waits as long as a
        # rotation does after its write (found by the protocol model).
        sleep(propagation)
    return SigningOutcome(STAGED, key_id(key), lock_state)


def release_signing_key(properties: Mapping[str, Any], store: DocumentStore) -> str:
    """Handle ``Delete``: the stack leaves edge-signed mode (switched back to header mode, or a
    deploy that switched rolled back), or is deleted.

    CloudFormation deletes this resource after the distribution stopped running the function
    (the distribution depended on it, or named it), so no edge signs any more. A key it staged
    and no rotation promoted is dropped (kept, a header-mode rotation could never stage: it
    refuses to send a key staged for edge-signed mode), and the document says header mode.
    ``current`` and ``previous`` stay: the drift guard may have given ``current`` to the
    distribution's static header. Best effort on a parameter that is gone.

    Returns
    -------
    str
        ``"released"``, ``"nothing to release"`` or ``"no parameter"``.
    """
    parameter = _text(properties, "ParameterName")
    kms_key = str(properties.get("KeyId") or "").strip() or None
    raw = store.get(parameter)
    if raw is None:
        return "no parameter"
    try:
        document = TokenDocument.parse(raw)
    except CorruptDocumentError:
        return "nothing to release"  # never overwrite what we cannot read
    if document.mode != EDGE_SIGNED_MODE:
        return "nothing to release"
    changes: dict[str, Any] = {"mode": HEADER_MODE}
    if document.pending is not None and document.current is not None:
        changes["pending"] = None
    store.put(parameter, document.evolve(**changes).to_json(), kms_key)
    return "released"
