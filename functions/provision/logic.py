"""Decisions of the two custom resources, free of AWS clients.

``Custom::OriginlockTokenParameter`` creates the SecureString token parameter
(CloudFormation cannot) or adopts an existing one. ``Custom::OriginlockOriginHeaderValue``
is the drift guard: it tells CloudFormation which value the distribution's origin
header must carry, so that a deploy never puts back a value the authorizers no
longer accept, and refuses while a rotation runs. The ports (:class:`ParameterStore`,
:class:`LiveDistribution`, :class:`RotationLock`, :class:`StackStatus`) are passed in;
``provision.aws`` holds the boto3 adapters.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from provision.errors import (
    BadRequestError,
    ParameterMissingError,
    ParameterOwnedError,
    ParameterTakenError,
    RotationRunningError,
    StackUnavailableError,
    StoreUnavailableError,
    UnusableParameterError,
)
from tokens.document import CorruptDocumentError, TokenDocument, generate_token

CREATED = "created"
ADOPTED = "adopted"
# The token parameter's tag naming the stack that manages it (originlock/constants.py has the same).
OWNER_TAG = "originlock:stack"
# The drift guard's physical id: constant, and never a value.
ORIGIN_HEADER_PHYSICAL_ID = "originlock-origin-header-value"
# ROLLBACK_IN_PROGRESS (a failed create), UPDATE_ROLLBACK_IN_PROGRESS, IMPORT_ROLLBACK_IN_PROGRESS.
ROLLBACK_IN_PROGRESS = "ROLLBACK_IN_PROGRESS"
# What the drift guard found at the workflow's lock (logged with its answer).
LOCK_FREE = "free"
LOCK_STALE = "stale"
LOCK_SKIPPED = "skipped: stack rolling back"


class ParameterStore(Protocol):
    def get(self, name: str) -> str | None:
        """The decrypted value, or ``None`` when the parameter does not exist."""
        ...

    def create(self, name: str, value: str, key_id: str | None) -> bool:
        """Put a new SecureString; ``False`` when a parameter of that name already exists."""
        ...

    def delete(self, name: str) -> None:
        """Delete the parameter; a missing one is not an error."""
        ...


class TokenParameterStore(Protocol):
    """The token parameter with its owner tag (``originlock:stack``): what the
    token-parameter resource needs, beyond the drift guard's :class:`ParameterStore`."""

    def get(self, name: str) -> str | None:
        """The decrypted value, or ``None`` when the parameter does not exist."""
        ...

    def create(self, name: str, value: str, key_id: str | None, owner: str | None = None) -> bool:
        """Put a new SecureString tagged with *owner*; ``False`` when the name exists."""
        ...

    def delete(self, name: str) -> None:
        """Delete the parameter; a missing one is not an error."""
        ...

    def owner(self, name: str) -> str | None:
        """The owner tag's value; ``None`` when untagged or when the parameter does not exist."""
        ...

    def set_owner(self, name: str, owner: str) -> None:
        """Tag the parameter with *owner*."""
        ...

    def clear_owner(self, name: str) -> None:
        """Remove the owner tag (a missing parameter is not an error)."""
        ...


class LiveDistribution(Protocol):
    def distribution_config(self, stack_id: str, logical_id: str) -> Mapping[str, Any] | None:
        """The live ``DistributionConfig`` of the stack's resource, ``None`` if not created yet."""
        ...


class RotationLock(Protocol):
    """The rotation workflow's lock (``rotate.adapters.Lock`` writes it), read only."""

    def holder(self, name: str) -> str | None:
        """The execution ARN held in lock parameter *name*; ``None`` when there is no lock.

        A lock whose value cannot be parsed returns a string that is not an ARN.
        """
        ...

    def running(self, execution_arn: str) -> bool:
        """Whether that execution's status is ``RUNNING`` (``False`` if it does not exist)."""
        ...


class StackStatus(Protocol):
    def status(self, stack_id: str) -> str:
        """The stack's ``StackStatus``; :class:`StackUnavailableError` if it cannot be read."""
        ...


# -- Custom::OriginlockTokenParameter ---------------------------------------------


@dataclass(frozen=True)
class ParameterOutcome:
    physical_id: str
    name: str
    adopted: bool
    # Fingerprint of the current value: safe to log, never reversible.
    fingerprint: str | None

    def data(self) -> dict[str, str]:
        return {"ParameterName": self.name, "Adopted": "true" if self.adopted else "false"}


def physical_id_for(name: str, adopted: bool) -> str:
    """The physical id records whether the stack owns the parameter: Delete reads it back."""
    return f"{ADOPTED if adopted else CREATED}:{name}"


def parse_physical_id(physical_id: str | None) -> tuple[str, str] | None:
    """``(mode, name)`` of a physical id made by :func:`physical_id_for`, else ``None``."""
    if not physical_id:
        return None
    mode, sep, name = physical_id.partition(":")
    if not sep or mode not in (CREATED, ADOPTED) or not name:
        return None
    return mode, name


def stack_name_of(stack_id: str) -> str:
    """The stack name in a CloudFormation ``StackId``
    (``arn:aws:cloudformation:<region>:<account>:stack/<name>/<uuid>``).

    A stack name is unique in an account and region, where a parameter name is too, and
    survives a delete and re-create (the id does not): the owner tag holds the name.
    """
    _, found, resource = stack_id.rpartition(":stack/")
    name = resource.split("/", 1)[0]
    if not found or not name:
        raise BadRequestError("StackId is not a CloudFormation stack ARN")
    return name


def check_owner(store: TokenParameterStore, name: str, owner: str) -> None:
    """Refuse a parameter that another originlock stack manages.

    Raises
    ------
    ParameterOwnedError
        Its ``originlock:stack`` tag names another stack. The message says which, and what to do.
    """
    current = store.owner(name)
    if current is None or current == owner:
        return
    raise ParameterOwnedError(
        f"parameter {name} is managed by originlock stack {current} (tag {OWNER_TAG}), "
        f"not by {owner}: two stacks must not share a token. Deploy {owner} with its own "
        f"parameterName (or none: /originlock/{owner}/origin-token). If stack {current} no "
        f"longer exists: aws ssm remove-tags-from-resource --resource-type Parameter "
        f"--resource-id {name} --tag-keys {OWNER_TAG}"
    )


def _required(properties: Mapping[str, Any], key: str) -> str:
    value = properties.get(key)
    if not isinstance(value, str) or not value.strip():
        raise BadRequestError(f"property {key} is missing or empty")
    return value.strip()


def _flag(properties: Mapping[str, Any], key: str, default: bool) -> bool:
    # CloudFormation hands every scalar property over as a string.
    value = properties.get(key)
    if value is None:
        return default
    return str(value).strip().lower() in ("true", "1", "yes")


def provision_parameter(
    request_type: str,
    properties: Mapping[str, Any],
    physical_id: str | None,
    store: TokenParameterStore,
    *,
    owner: str,
    new_token: Callable[[], str] = generate_token,
) -> ParameterOutcome:
    """Create or adopt the token parameter (``Create`` and ``Update`` requests) for stack *owner*.

    A parameter it creates is tagged ``originlock:stack=<owner>`` in the same call; one it
    adopts is tagged after the ownership check. On ``Update`` with the same parameter name
    the resource is left as it is (a changed ``KeyId`` applies from the next rotation's
    write), except that an untagged parameter (made before the tag existed) gets the tag;
    a new name is handled as a ``Create`` and CloudFormation then deletes the old resource.

    Raises
    ------
    BadRequestError
        ``ParameterName`` is missing.
    ParameterOwnedError
        The parameter exists and its owner tag names another stack (whatever ``AdoptExisting``).
    ParameterTakenError
        The parameter exists and ``AdoptExisting`` is false.
    UnusableParameterError
        The existing value is neither a token document nor a usable bare token.
    """
    name = _required(properties, "ParameterName")
    key_id = str(properties.get("KeyId") or "").strip() or None
    adopt_existing = _flag(properties, "AdoptExisting", default=True)
    if request_type == "Update":
        previous = parse_physical_id(physical_id)
        if previous is not None and previous[1] == name:
            document = _read_document(store, name)
            if document is not None:
                _tag_if_untagged(store, name, owner)
            return ParameterOutcome(
                physical_id=physical_id or physical_id_for(name, previous[0] == ADOPTED),
                name=name,
                adopted=previous[0] == ADOPTED,
                fingerprint=document.fingerprints()["current"] if document else None,
            )
    check_owner(store, name, owner)
    existing = _read_document(store, name)
    if existing is not None:
        if not adopt_existing:
            raise ParameterTakenError(
                f"parameter {name} already exists and adoptExistingParameter is false"
            )
        return _adopt(store, name, owner, existing)
    document = TokenDocument().evolve(current=new_token())
    if not store.create(name, document.to_json(), key_id, owner):
        # Someone created it between our read and our write: adopt what is there.
        raced = _read_document(store, name)
        if raced is None or not adopt_existing:
            raise ParameterTakenError(f"parameter {name} appeared while it was being created")
        check_owner(store, name, owner)
        return _adopt(store, name, owner, raced)
    return ParameterOutcome(
        physical_id_for(name, adopted=False), name, False, document.fingerprints()["current"]
    )


def _tag_if_untagged(store: TokenParameterStore, name: str, owner: str) -> None:
    """Tag a parameter made before the tag existed. Never fails the update: a failed update
    would roll back into the same request; the next update tries again."""
    try:
        if store.owner(name) is None:
            store.set_owner(name, owner)
    except StoreUnavailableError:
        pass


def _adopt(
    store: TokenParameterStore, name: str, owner: str, document: TokenDocument
) -> ParameterOutcome:
    if store.owner(name) != owner:
        store.set_owner(name, owner)
    return ParameterOutcome(
        physical_id_for(name, adopted=True), name, True, document.fingerprints()["current"]
    )


def _read_document(store: ParameterStore, name: str) -> TokenDocument | None:
    raw = store.get(name)
    if raw is None:
        return None
    try:
        return TokenDocument.parse(raw)
    except CorruptDocumentError as exc:
        raise UnusableParameterError(f"parameter {name}: {exc}") from None


def remove_parameter(physical_id: str | None, store: TokenParameterStore, *, owner: str) -> str:
    """Handle ``Delete``: remove a parameter the stack created, keep an adopted one.

    An adopted parameter is left as it was found: its owner tag is removed if it names
    *owner*, so that another stack may adopt it next. Best effort: a tag that cannot be
    removed never fails the delete (the next adopter's error says how to remove it).

    Returns
    -------
    str
        ``"deleted"``; ``"kept, released"`` (adopted, our tag removed); ``"kept"`` (adopted,
        not tagged by us); ``"kept, tag left"`` (adopted, the tag could not be removed);
        ``"nothing"`` (a failed create's id).
    """
    parsed = parse_physical_id(physical_id)
    if parsed is None:
        return "nothing"
    mode, name = parsed
    if mode == CREATED:
        store.delete(name)
        return "deleted"
    try:
        if store.owner(name) != owner:
            return "kept"
        store.clear_owner(name)
    except StoreUnavailableError:
        return "kept, tag left"
    return "kept, released"


# -- Custom::OriginlockOriginHeaderValue (drift guard) ----------------------------


@dataclass(frozen=True)
class HeaderChoice:
    # Kept out of repr: the value must never reach a log line.
    value: str = field(repr=False)
    # "live": the value the distribution already sends; otherwise the slot chosen
    # ("current" on first create, for a renamed header or a value no longer accepted).
    source: str
    # What the guard found at the workflow's lock before it read anything.
    lock: str = "unchecked"
    # Whether the stack's status (is it rolling back?) could be read.
    stack_status: str = "unchecked"


def header_values(distribution_config: Mapping[str, Any], header_name: str) -> list[str]:
    """Values of *header_name* across the origins of a ``DistributionConfig``, in origin order."""
    wanted = header_name.lower()
    values: list[str] = []
    origins = (distribution_config.get("Origins") or {}).get("Items") or []
    for origin in origins:
        headers = (origin.get("CustomHeaders") or {}).get("Items") or []
        for header in headers:
            name = header.get("HeaderName")
            value = header.get("HeaderValue")
            if isinstance(name, str) and name.lower() == wanted and isinstance(value, str):
                values.append(value)
    return values


def choose_header_value(document: TokenDocument, live_values: Sequence[str] | None) -> HeaderChoice:
    """The value CloudFormation must write into the origin header.

    The live value when it is accepted: what CloudFront already sends stays as it
    is, whatever rotations happened since the last deploy. Otherwise ``current``
    (first create, a renamed header, or a live value that is no longer accepted).
    """
    for value in live_values or ():
        if document.slot_of(value) is not None:
            return HeaderChoice(value, "live")
    for slot in ("current", "pending", "previous"):
        value = getattr(document, slot)
        if value is not None:
            return HeaderChoice(value, slot)
    raise UnusableParameterError("token document accepts no value")  # parse() forbids it


def rolling_back(
    stack_id: str, stacks: StackStatus, on_unreadable: Callable[[str], None] = lambda _: None
) -> bool:
    """Whether CloudFormation is rolling the stack back (the guard then never refuses).

    *on_unreadable* hears why the status could not be read (a missing
    ``cloudformation:DescribeStacks`` grant shows up there, not only in a failed rollback)."""
    try:
        status = stacks.status(stack_id)
    except StackUnavailableError as exc:
        # Unknown is not a rollback: the lock check then decides. A forward deploy stays
        # guarded; a rollback fails only if its status is unreadable *and* a rotation runs.
        on_unreadable(str(exc))
        return False
    return status.endswith(ROLLBACK_IN_PROGRESS)


def check_rotation_lock(lock_name: str, lock: RotationLock) -> str:
    """Refuse while an execution of the workflow holds its lock.

    A lock whose holder no longer runs (stopped, failed, timed out before it could
    release) or cannot be read is stale: the next execution takes it over, exactly
    as ``rotate.adapters.Lock.acquire`` decides, so the guard treats it as free.

    Returns
    -------
    str
        :data:`LOCK_FREE` or :data:`LOCK_STALE`.

    Raises
    ------
    RotationRunningError
        A running execution holds the lock. The message names the execution, never a value.
    LockUnavailableError
        From *lock*: the lock or its holder's status cannot be read (the deploy fails closed).
    """
    holder = lock.holder(lock_name)
    if holder is None:
        return LOCK_FREE
    if not holder.startswith("arn:") or not lock.running(holder):
        return LOCK_STALE
    execution = holder.rsplit(":", 1)[-1]
    raise RotationRunningError(
        f"a rotation is running (execution {execution}): deploy after it ends "
        "(originlock status shows it)"
    )


def origin_header_value(
    properties: Mapping[str, Any],
    stack_id: str,
    store: ParameterStore,
    live: LiveDistribution,
    lock: RotationLock,
    stacks: StackStatus,
) -> HeaderChoice:
    """Handle ``Create``/``Update`` of the drift guard.

    First, unless the stack is rolling back, the workflow's lock: while an execution
    runs, the live value read now could be switched away and revoked before
    CloudFormation writes it back, so the deploy is refused before the distribution
    is touched. A rollback is never refused: it must restore the stack. Then the
    choice (:func:`choose_header_value`) from the token document and the live header.

    Raises
    ------
    RotationRunningError
        A running execution holds the workflow's lock (never during a rollback).
    LockUnavailableError
        From *lock*: the lock cannot be read.
    ParameterMissingError
        The token parameter does not exist.
    LiveConfigUnavailableError
        From *live*: the distribution exists but cannot be read. The deploy fails
        rather than guess: a guess could be a value the authorizers reject.
    """
    parameter = _required(properties, "ParameterName")
    header = _required(properties, "HeaderName")
    logical_id = _required(properties, "DistributionLogicalId")
    unreadable: list[str] = []
    if rolling_back(stack_id, stacks, unreadable.append):
        # The old properties of a rollback may predate LockParameterName: not read here.
        lock_state = LOCK_SKIPPED
    else:
        lock_state = check_rotation_lock(_required(properties, "LockParameterName"), lock)
    document = _read_document(store, parameter)
    if document is None:
        raise ParameterMissingError(f"token parameter {parameter} does not exist")
    config = live.distribution_config(stack_id, logical_id)
    live_values = header_values(config, header) if config is not None else None
    return replace(
        choose_header_value(document, live_values),
        lock=lock_state,
        stack_status=f"unreadable ({unreadable[0]})" if unreadable else "read",
    )
