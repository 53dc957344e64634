"""AWS adapters for the rotation steps. boto3 lives here only; clients are built lazily.

Each adapter translates AWS errors into the named errors of :mod:`rotate.errors`, so the
steps (and the state machine's Retry/Catch) never see a botocore exception.
"""

from __future__ import annotations

import copy
import json
import logging
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from rotate.errors import (
    CloudFrontError,
    CloudFrontThrottledError,
    CorruptTokenDocumentError,
    DistributionChangedError,
    KeyValueStoreError,
    LockLostError,
    NoSigningKeyError,
    RotationInProgressError,
    StateConflictError,
    StoreUnavailableError,
    TransientAwsError,
)
from rotate.settings import RotateSettings
from tokens.document import CURRENT_SINCE_TAG, CorruptDocumentError, TokenDocument
from tokens.store import silence_botocore_body_logs

THROTTLING = {
    "Throttling",
    "ThrottlingException",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "RequestThrottled",
    "SlowDown",
}
# Another update of the same resource is in progress (Lambda during a `cdk deploy`,
# UpdateFunctionConfiguration racing another): it passes.
CONFLICTS = {"ResourceConflictException", "ConcurrentModificationException", "ConflictException"}
SERVER_ERRORS = {
    "InternalError",
    "InternalFailure",
    "InternalServerError",
    "InternalServerException",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "ServiceException",
}


def _code(exc: Exception) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", type(exc).__name__))


def transient(exc: Exception) -> bool:
    """Whether a failed AWS call may succeed if made again: throttled, in conflict with an
    update in progress, failed on AWS's side (5xx), or never answered (no connection, a
    timeout: botocore's own errors). Nothing was changed by it."""
    from botocore.exceptions import BotoCoreError, ClientError

    if isinstance(exc, BotoCoreError):
        return True
    if not isinstance(exc, ClientError):
        return False
    code = _code(exc)
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
    return (
        code in THROTTLING
        or code in CONFLICTS
        or code in SERVER_ERRORS
        or status == 429
        or status >= 500
    )


# A write that must not land after another execution took the lock (the token document,
# the distribution, the lock itself) is *fenced*: it is sent at most this long after the
# start of the lock check that allowed it, on a client that tries once, with short timeouts.
# So a write allowed before a takeover lands (if at all) within FENCE_SEND_WITHIN_SECONDS +
# FENCED_CONNECT_TIMEOUT + FENCED_READ_TIMEOUT of the takeover: 15 s, less than the
# revoke's settle wait (FENCE_SETTLE_SECONDS, 20 s). docs/decisions.md, "Revoke preempts".
FENCE_SEND_WITHIN_SECONDS = 3.0
FENCED_CONNECT_TIMEOUT = 2
FENCED_READ_TIMEOUT = 10


class _LazyClients:
    def __init__(self) -> None:
        self._clients: dict[tuple[str, bool], Any] = {}

    def get(self, service: str, *, fenced: bool = False) -> Any:
        key = (service, fenced)
        if key not in self._clients:
            import boto3
            from botocore.config import Config

            # botocore logs request and response bodies at DEBUG: PutParameter's request and
            # GetParameter's response carry the token, and so do CloudFront's
            # GetDistribution(Config) responses and UpdateDistribution's request.
            silence_botocore_body_logs()
            if fenced:
                # One attempt with short timeouts: a fenced write either lands soon after its
                # lock check or fails (and the workflow retries it after a fresh check).
                config = Config(
                    connect_timeout=FENCED_CONNECT_TIMEOUT,
                    read_timeout=FENCED_READ_TIMEOUT,
                    retries={"mode": "standard", "max_attempts": 1},
                )
            else:
                # Short socket timeouts (botocore's are 60 s each): a stalled call fails over
                # to the SDK's next attempt, then to the state machine's retrier, well inside
                # the function's timeout.
                config = Config(
                    connect_timeout=5,
                    read_timeout=20,
                    retries={"mode": "standard", "max_attempts": 3},
                )
            client = boto3.client(service, config=config)
            if service == "cloudfront":
                keep_raw_distribution_config(client)
            self._clients[key] = client
        return self._clients[key]


@dataclass(frozen=True)
class Fence:
    """Proof that this execution held the lock when a write was allowed, and since when."""

    execution_id: str
    # Monotonic time *before* the lock check was sent: the check saw the lock at or after it.
    checked_at: float
    clock: Callable[[], float] = time.monotonic

    def ensure_fresh(self) -> None:
        """Refuse to send a write more than FENCE_SEND_WITHIN_SECONDS after the check began."""
        if self.clock() - self.checked_at > FENCE_SEND_WITHIN_SECONDS:
            raise StoreUnavailableError(
                "the lock check that allowed this write is too old; the write is retried "
                "after a fresh check"
            )


CLIENTS = _LazyClients()


class TokenStore:
    """The token document in its SecureString parameter."""

    def __init__(self, settings: RotateSettings, clients: _LazyClients = CLIENTS) -> None:
        self.settings = settings
        self.clients = clients

    def read(self) -> TokenDocument:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            response = self.clients.get("ssm").get_parameter(
                Name=self.settings.parameter_name, WithDecryption=True
            )
        except ClientError as exc:
            raise StoreUnavailableError(f"reading the token parameter: {_code(exc)}") from None
        except BotoCoreError as exc:
            raise StoreUnavailableError(
                f"reading the token parameter: {type(exc).__name__}"
            ) from None
        try:
            return TokenDocument.parse(response["Parameter"]["Value"])
        except CorruptDocumentError as exc:
            raise CorruptTokenDocumentError(str(exc)) from None

    def write(self, document: TokenDocument, fence: Fence) -> None:
        """Put *document*, fenced: only if this execution held the lock just before."""
        from botocore.exceptions import BotoCoreError, ClientError

        kwargs: dict[str, Any] = {
            "Name": self.settings.parameter_name,
            "Value": document.to_json(),
            "Type": "SecureString",
            "Overwrite": True,
        }
        if self.settings.kms_key_id:
            kwargs["KeyId"] = self.settings.kms_key_id
        fence.ensure_fresh()
        try:
            self.clients.get("ssm", fenced=True).put_parameter(**kwargs)
        except ClientError as exc:
            raise StoreUnavailableError(f"writing the token parameter: {_code(exc)}") from None
        except BotoCoreError as exc:
            raise StoreUnavailableError(
                f"writing the token parameter: {type(exc).__name__}"
            ) from None
        if document.current_since:
            self._tag_current_since(document.current_since)

    def _tag_current_since(self, since: str) -> None:
        """Mirror ``current_since`` in a tag of the parameter: the token-age probe reads tags
        (metadata) and never the value. Best effort: the write above is what counts, and a tag
        left behind only makes the probe report the previous value's (older) age until the
        next write."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.clients.get("ssm").add_tags_to_resource(
                ResourceType="Parameter",
                ResourceId=self.settings.parameter_name,
                Tags=[{"Key": CURRENT_SINCE_TAG, "Value": since}],
            )
        except (ClientError, BotoCoreError) as exc:
            logging.getLogger(__name__).warning(
                "token parameter tag not updated", extra={"error": _code(exc)}
            )


# Who may take the lock from whom: a revoke preempts anything less urgent that runs.
PRIORITIES: Mapping[tuple[str | None, str | None], int] = {
    ("rotate", None): 0,
    ("revoke", "previous"): 1,
    ("revoke", "all"): 2,
}
# An execution's history event types that say its current Lambda step is under way, or ended.
_STEP_STARTED = {
    "TaskStateEntered",
    "TaskScheduled",
    "TaskStarted",
    "TaskSubmitted",
    "LambdaFunctionScheduled",
    "LambdaFunctionStarted",
}
_STEP_ENDED = {
    "TaskSucceeded",
    "TaskFailed",
    "TaskTimedOut",
    "TaskStartFailed",
    "TaskSubmitFailed",
    "LambdaFunctionSucceeded",
    "LambdaFunctionFailed",
    "LambdaFunctionTimedOut",
    "LambdaFunctionStartFailed",
    "LambdaFunctionScheduleFailed",
    "WaitStateEntered",
}


def priority(mode: object, scope: object) -> int:
    """0 for a rotation, 1 for ``revoke previous``, 2 for ``revoke all``."""
    return PRIORITIES.get((str(mode) if mode else None, str(scope) if scope else None), 0)


# The lock record's holder once a settling holder released it (no execution holds it; the
# next one to take it settles until the record's settle_until).
RELEASED = "released"


@dataclass(frozen=True)
class Holder:
    """What the lock says about the execution that holds it."""

    execution: str
    priority: int = 0
    mode: str | None = None
    scope: str | None = None
    # Unix time until which writes of an execution *it* preempted may still land (it took the
    # lock with a settle): whoever takes the lock from it before then settles too.
    settle_until: float | None = None
    # The lock parameter's version holding this record, and when it was written (ms since the
    # epoch, 0 if SSM did not say): a takeover marker names both, so each record can be taken
    # over once, and a later one again — even after a delete restarted the versions at 1, for
    # a holder whose name repeats (``released``, ``unreadable-lock``).
    version: int = 0
    written_ms: int = 0

    @property
    def name(self) -> str:
        return self.execution.rsplit(":", 1)[-1]


class Lock:
    """At most one execution per target: an SSM String parameter created with Overwrite=False.

    ``PutParameter(Overwrite=False)`` either creates the parameter or fails with
    ``ParameterAlreadyExists``: two executions cannot both create it. A lock whose holder can
    no longer act (it failed or succeeded before it could release, or was stopped or timed out
    more than ``lock_takeover_grace_seconds`` ago) is taken over through a takeover marker,
    itself created with Overwrite=False, so two contenders cannot both take over the same
    lock.

    A revoke *preempts*: it takes the lock from a less urgent holder that still runs (a
    rotation, or ``revoke previous`` for ``revoke all``), or from any holder stopped less than
    the grace ago, stops that execution, and tells the workflow to wait the fence settle time
    if the holder had a Lambda step under way, or was itself settling (its record's
    ``settle_until``: the writes it waited for may still land). Every write of a step is
    fenced (:meth:`fence`):
    checked against the lock just before it is sent, so a preempted holder writes nothing
    once it has lost the lock, and what it sent before lands within the settle time.
    """

    def __init__(
        self,
        settings: RotateSettings,
        clients: _LazyClients = CLIENTS,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.name = settings.lock_parameter_name
        self.grace = settings.lock_takeover_grace_seconds
        self.settle_seconds = settings.fence_settle_seconds
        self.clients = clients
        self.clock = clock
        # Unix time, for the lock record's settle_until (read by another function instance).
        self.wall_clock = wall_clock

    def _put(self, name: str, value: str, overwrite: bool) -> bool:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.clients.get("ssm").put_parameter(
                Name=name, Value=value, Type="String", Overwrite=overwrite
            )
        except ClientError as exc:
            if _code(exc) == "ParameterAlreadyExists":
                return False
            raise StoreUnavailableError(f"lock: {_code(exc)}") from None
        except BotoCoreError as exc:
            raise StoreUnavailableError(f"lock: {type(exc).__name__}") from None
        return True

    def read(self, *, fenced: bool = False) -> Holder | None:
        """The lock's holder, ``None`` when nobody holds it; an unparsable value reads as a
        holder that is not an execution (``unreadable-lock``: stale)."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            parameter = self.clients.get("ssm", fenced=fenced).get_parameter(Name=self.name)[
                "Parameter"
            ]
            value = parameter["Value"]
            version = int(parameter.get("Version") or 0)
            modified = parameter.get("LastModifiedDate")
            written_ms = int(modified.timestamp() * 1000) if isinstance(modified, datetime) else 0
        except ClientError as exc:
            if _code(exc) == "ParameterNotFound":
                return None
            raise StoreUnavailableError(f"lock: {_code(exc)}") from None
        except BotoCoreError as exc:
            raise StoreUnavailableError(f"lock: {type(exc).__name__}") from None
        try:
            data = json.loads(value)
            settle_until = data.get("settle_until")
            return Holder(
                str(data["execution"]),
                priority(data.get("mode"), data.get("revoke")),
                data.get("mode"),
                data.get("revoke"),
                float(settle_until) if isinstance(settle_until, int | float) else None,
                version,
                written_ms,
            )
        except (ValueError, KeyError, TypeError, AttributeError):
            return Holder("unreadable-lock", version=version, written_ms=written_ms)

    def holder(self) -> str | None:
        """The execution holding the lock (``None``: nobody, a released record included)."""
        found = self.read()
        return None if found is None or found.execution == RELEASED else found.execution

    def _describe(self, execution_arn: str) -> dict[str, Any] | None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return dict(
                self.clients.get("stepfunctions").describe_execution(executionArn=execution_arn)
            )
        except ClientError as exc:
            if _code(exc) in ("ExecutionDoesNotExist", "InvalidArn"):
                return None
            raise StoreUnavailableError(f"lock: describe holder: {_code(exc)}") from None
        except BotoCoreError as exc:
            raise StoreUnavailableError(f"lock: describe holder: {type(exc).__name__}") from None

    def still_acting(self, execution_arn: str) -> str | None:
        """Why the lock's holder may still change the target, or ``None`` if it cannot.

        A running holder may. So may one stopped (``StopExecution``) or timed out less than
        the grace ago: Step Functions does not end the Lambda invocation under way, which can
        still write the document or the distribution until the function's timeout. A failed
        or succeeded holder cannot: its last task had returned.
        """
        if not execution_arn.startswith("arn:"):
            return None
        execution = self._describe(execution_arn)
        if execution is None:
            return None
        name = execution_arn.rsplit(":", 1)[-1]
        status = execution["status"]
        if status == "RUNNING":
            return f"execution {name} holds the lock"
        stopped = execution.get("stopDate")
        if status in ("ABORTED", "TIMED_OUT") and stopped is not None:
            ago = (datetime.now(UTC) - stopped).total_seconds()
            if ago < self.grace:
                return (
                    f"execution {name} ended {status} {max(ago, 0):.0f} s ago and its last "
                    f"step may still be running: its lock is free in {self.grace - ago:.0f} s"
                )
        return None

    def step_in_flight(self, execution_arn: str) -> bool:
        """Whether the execution's latest Lambda step may still be running (its invocation
        has not ended in the history). When the history cannot be read: assume it is."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            events = self.clients.get("stepfunctions").get_execution_history(
                executionArn=execution_arn, reverseOrder=True, maxResults=25
            )["events"]
        except (ClientError, BotoCoreError):
            return True
        for event in events:
            kind = str(event.get("type", ""))
            if kind in _STEP_STARTED:
                return True
            if kind in _STEP_ENDED:
                return False
        return True

    def _stop(self, holder: Holder, by: str, detail: Mapping[str, Any]) -> None:
        """Stop the preempted execution (best effort: the fence holds without it)."""
        from botocore.exceptions import BotoCoreError, ClientError

        what = f"revoke {detail.get('revoke')}" if detail.get("mode") == "revoke" else "rotation"
        try:
            self.clients.get("stepfunctions").stop_execution(
                executionArn=holder.execution,
                error="PreemptedError",
                cause=f"preempted by {what} (execution {by.rsplit(':', 1)[-1]})",
            )
        except (ClientError, BotoCoreError) as exc:
            logging.getLogger(__name__).warning(
                "preempted execution not stopped", extra={"error": _code(exc)}
            )

    def _take_over(self, holder: Holder, value: str) -> None:
        """Replace *holder*'s record with *value*, unless another contender did first.

        The marker names the holder and the version of its record: two contenders for the same
        record cannot both win, and a later record (even of a holder of the same name) can be
        taken over again. The loser raises :class:`StoreUnavailableError`, which the workflow
        retries: it then meets the winner's record, and a revoke may preempt that one too."""
        marker = f"{self.name}.takeover.{holder.name}.v{holder.version}.t{holder.written_ms}"
        marker = marker[:1011]
        if not self._put(marker, value, overwrite=False):
            raise StoreUnavailableError(
                "lock: another execution took it over first (retried: the new holder decides)"
            )
        self._put(self.name, value, overwrite=True)

    def _keep(self, execution_id: str, value: str) -> None:
        """Make sure the lock is still this execution's after a preemption without a settle.

        The preempted step has ended, so whatever it sent has landed: a ``ReleaseLock`` whose
        fence check came just before the takeover has deleted the lock the takeover wrote
        (``DeleteParameter`` deletes whatever is there). Without a settle there is no second
        ``AcquireLock``: the lock is created again here, or, if another execution created it
        in between, the error is retried and the retry meets that one (docs/decisions.md,
        "A preempted release may delete the revoke's lock")."""
        holder = self.read()
        if holder is not None and holder.execution == execution_id:
            return
        if holder is None and self._put(self.name, value, overwrite=False):
            return
        if (
            holder is not None
            and holder.execution == RELEASED
            and not (holder.settle_until and holder.settle_until > self.wall_clock())
        ):
            # A settling holder's release landed after the takeover, and its settle has ended:
            # nothing is left to wait for (the retry would lose this run's preemption record).
            self._take_over(holder, value)
            return
        raise StoreUnavailableError(
            "lock: released by the preempted execution and taken by another (retried)"
        )

    def acquire(self, execution_id: str, detail: dict[str, Any]) -> dict[str, Any]:
        """Take the lock, take it over from a stale holder, preempt a less urgent one (a
        revoke), or say who holds it: a scheduled rotation then yields (``acquired`` false),
        anything else fails with :class:`RotationInProgressError`."""
        value = json.dumps({"execution": execution_id, **detail}, sort_keys=True)

        def settling() -> str:
            # The record of an execution that settles: until when writes it waits for may land.
            until = self.wall_clock() + self.settle_seconds
            return json.dumps(
                {"execution": execution_id, **detail, "settle_until": until}, sort_keys=True
            )

        result: dict[str, Any] = {
            "acquired": True,
            "took_over": None,
            "preempted": None,
            "settle": False,
            "skipped": None,
        }
        if self._put(self.name, value, overwrite=False):
            return result
        holder = self.read()
        if holder is None:
            # Released between our put and our read: try once more, atomically.
            if self._put(self.name, value, overwrite=False):
                return result
            holder = self.read()
        if holder is None:
            # Released again between our puts and reads: the workflow retries.
            raise StoreUnavailableError("lock: released and taken while acquiring (retried)")
        if holder.execution == execution_id:
            # A retried acquire, or the same execution confirming its lock after the settle.
            return result
        # A holder that was itself settling (it preempted an execution whose writes may still
        # land): whoever takes the lock from it before its settle ends waits for them too.
        inherited = holder.settle_until is not None and holder.settle_until > self.wall_clock()
        busy = self.still_acting(holder.execution)
        if busy is None:
            self._take_over(holder, settling() if inherited else value)
            return {**result, "took_over": holder.name, "settle": inherited}
        mine = priority(detail.get("mode"), detail.get("revoke"))
        running = busy.endswith("holds the lock")
        if mine > 0 and (mine > holder.priority or not running):
            # A revoke: it cannot wait for a rotation (or for a stopped holder's grace). The
            # lock is taken first, with a settling record, and the holder's history read only
            # then: a step it starts after the takeover fails its fence check, one it started
            # before shows in the history (read first, a Wait ending in between would be
            # missed). The record stays settling either way: a later preemptor within the
            # settle then waits too, which costs at most the settle.
            self._take_over(holder, settling())
            in_flight = self.step_in_flight(holder.execution)
            settle = in_flight or inherited
            if running:
                self._stop(holder, execution_id, detail)
            if not settle:
                self._keep(execution_id, settling())
            return {
                **result,
                "preempted": {
                    "execution": holder.name,
                    "mode": holder.mode,
                    "revoke": holder.scope,
                    "was_running": running,
                    "step_in_flight": in_flight,
                    "was_settling": inherited,
                },
                "settle": settle,
            }
        if detail.get("trigger") == "schedule":
            return {**result, "acquired": False, "skipped": busy}
        raise RotationInProgressError(busy)

    def fence(self, execution_id: str) -> Fence:
        """Check, just before a write, that this execution still holds the lock.

        Raises
        ------
        LockLostError
            Another execution took the lock (a revoke preempted this one).
        """
        checked_at = self.clock()
        holder = self.read(fenced=True)
        if holder is None or holder.execution != execution_id:
            by = "nobody" if holder is None else f"execution {holder.name}"
            raise LockLostError(f"this execution no longer holds the lock (held by {by})")
        return Fence(execution_id, checked_at, self.clock)

    def release(self, execution_id: str) -> bool:
        """Give the lock up (``False``: this execution no longer holds it).

        A holder still settling (it preempted an execution whose writes may land until its
        record's ``settle_until``: a revoke whose run failed right after it took the lock)
        leaves a record of nobody with that ``settle_until`` instead of deleting the lock:
        whoever takes it next settles too. Deleted, the next execution would take a free
        lock and write before those writes land."""
        from botocore.exceptions import BotoCoreError, ClientError

        checked_at = self.clock()
        holder = self.read(fenced=True)
        if holder is None or holder.execution != execution_id:
            return False
        Fence(execution_id, checked_at, self.clock).ensure_fresh()
        settling = holder.settle_until is not None and holder.settle_until > self.wall_clock()
        try:
            ssm = self.clients.get("ssm", fenced=True)
            if settling:
                record = {
                    "execution": RELEASED,
                    "released_by": execution_id,
                    "settle_until": holder.settle_until,
                }
                ssm.put_parameter(
                    Name=self.name,
                    Value=json.dumps(record, sort_keys=True),
                    Type="String",
                    Overwrite=True,
                )
                return True
            ssm.delete_parameter(Name=self.name)
        except ClientError as exc:
            if _code(exc) != "ParameterNotFound":
                raise StoreUnavailableError(f"lock: {_code(exc)}") from None
        except BotoCoreError as exc:
            raise StoreUnavailableError(f"lock: {type(exc).__name__}") from None
        return True


@dataclass
class LiveDistribution:
    """What the distribution is configured to send, and its deployment status."""

    # Both hold the values the edges send: kept out of the repr (a traceback, a log line).
    config: dict[str, Any] = field(repr=False)
    etag: str
    status: str | None = None
    domain_name: str | None = None
    header_values: dict[str, str] = field(default_factory=dict, repr=False)
    # GetDistributionConfig's body as CloudFront sent it: what an update sends back, edited.
    raw: bytes | None = field(default=None, repr=False)


def header_values(
    config: dict[str, Any], header_name: str, origin_ids: tuple[str, ...]
) -> dict[str, str]:
    """Origin id -> the header value it sends, for the target origins that carry the header."""
    values: dict[str, str] = {}
    for origin in config.get("Origins", {}).get("Items", []) or []:
        if origin_ids and origin["Id"] not in origin_ids:
            continue
        for header in (origin.get("CustomHeaders") or {}).get("Items", []) or []:
            if header["HeaderName"].lower() == header_name:
                values[origin["Id"]] = header["HeaderValue"]
    return values


def with_header_value(
    config: dict[str, Any], header_name: str, origin_ids: tuple[str, ...], value: str
) -> dict[str, Any]:
    """A copy of *config* where only the header's value on the target origins changed."""
    updated = copy.deepcopy(config)
    for origin in updated.get("Origins", {}).get("Items", []) or []:
        if origin_ids and origin["Id"] not in origin_ids:
            continue
        for header in (origin.get("CustomHeaders") or {}).get("Items", []) or []:
            if header["HeaderName"].lower() == header_name:
                header["HeaderValue"] = value
    return updated


# The distribution's configuration travels as CloudFront's own XML. UpdateDistribution replaces
# the whole configuration, and botocore drops every element its model does not know (the
# Lambda runtime's botocore lags CloudFront's features): a read-modify-write through parsed
# dicts would reset them. So GetDistributionConfig's body is kept as received, only the header
# value is edited in it, and that document is what UpdateDistribution sends (signed as usual).
RAW_BODY = "_originlock_raw_body"
_outgoing = threading.local()


def _keep_raw_body(http_response: Any, parsed: dict[str, Any], **_: Any) -> None:
    if http_response is not None and http_response.status_code == 200:
        parsed[RAW_BODY] = bytes(http_response.content)


def _send_raw_body(params: dict[str, Any], **_: Any) -> None:
    body = getattr(_outgoing, "body", None)
    if body is not None:
        params["body"] = body


def keep_raw_distribution_config(client: Any) -> None:
    """Make *client* keep GetDistributionConfig's body and send a raw UpdateDistribution body."""
    events = client.meta.events
    events.register("after-call.cloudfront.GetDistributionConfig", _keep_raw_body)
    events.register("before-call.cloudfront.UpdateDistribution", _send_raw_body)


def _xml(raw: bytes) -> tuple[Any, str]:
    """The configuration's root element and CloudFront's namespace (``{ns}``)."""
    from xml.etree import ElementTree

    root = ElementTree.fromstring(raw)  # noqa: S314
    namespace = root.tag[: root.tag.index("}") + 1] if root.tag.startswith("{") else ""
    return root, namespace


def _xml_headers(root: Any, ns: str, origin_ids: tuple[str, ...]) -> Iterator[tuple[str, Any]]:
    """(origin id, OriginCustomHeader element) for every custom header of the target origins."""
    for origin in root.iterfind(f"{ns}Origins/{ns}Items/{ns}Origin"):
        origin_id = origin.findtext(f"{ns}Id") or ""
        if origin_ids and origin_id not in origin_ids:
            continue
        for header in origin.iterfind(f"{ns}CustomHeaders/{ns}Items/{ns}OriginCustomHeader"):
            yield origin_id, header


def xml_header_values(raw: bytes, header_name: str, origin_ids: tuple[str, ...]) -> dict[str, str]:
    """:func:`header_values`, read from CloudFront's XML."""
    root, ns = _xml(raw)
    return {
        origin_id: header.findtext(f"{ns}HeaderValue") or ""
        for origin_id, header in _xml_headers(root, ns, origin_ids)
        if (header.findtext(f"{ns}HeaderName") or "").lower() == header_name
    }


def xml_with_header_value(
    raw: bytes, header_name: str, origin_ids: tuple[str, ...], value: str
) -> bytes:
    """CloudFront's XML with only the header's value changed on the target origins; every
    other element, known to botocore or not, as it was."""
    from xml.etree import ElementTree

    root, ns = _xml(raw)
    for _, header in _xml_headers(root, ns, origin_ids):
        if (header.findtext(f"{ns}HeaderName") or "").lower() == header_name:
            element = header.find(f"{ns}HeaderValue")
            if element is not None:
                element.text = value
    if ns:
        ElementTree.register_namespace("", ns[1:-1])
    return bytes(ElementTree.tostring(root, encoding="utf-8", xml_declaration=True))


class Distribution:
    """The CloudFront distribution named by the settings, and only that one."""

    def __init__(self, settings: RotateSettings, clients: _LazyClients = CLIENTS) -> None:
        self.settings = settings
        self.clients = clients

    def _call(self, operation: str, fenced: bool = False, **kwargs: Any) -> dict[str, Any]:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            client = self.clients.get("cloudfront", fenced=fenced)
            return dict(getattr(client, operation)(**kwargs))
        except ClientError as exc:
            code = _code(exc)
            if code == "PreconditionFailed":
                raise DistributionChangedError(
                    "the distribution changed between read and update"
                ) from None
            if code in THROTTLING or transient(exc):
                raise CloudFrontThrottledError(f"{operation}: {code}") from None
            if code == "NoSuchDistribution":
                raise StateConflictError(
                    f"distribution {self.settings.distribution_id} does not exist"
                ) from None
            # Never AWS's message: a validation error on UpdateDistribution could quote the
            # configuration sent, the header value included.
            raise CloudFrontError(f"CloudFront {operation}: {code}") from None
        except BotoCoreError as exc:
            raise CloudFrontThrottledError(f"{operation}: {type(exc).__name__}") from None

    def _values(self, config: dict[str, Any]) -> dict[str, str]:
        return header_values(config, self.settings.header_name, self.settings.origin_ids)

    def config(self) -> LiveDistribution:
        response = self._call("get_distribution_config", Id=self.settings.distribution_id)
        config = response["DistributionConfig"]
        raw = response.get(RAW_BODY)
        values = (
            xml_header_values(raw, self.settings.header_name, self.settings.origin_ids)
            if raw
            else self._values(config)
        )
        return LiveDistribution(config, response["ETag"], header_values=values, raw=raw)

    def describe(self) -> LiveDistribution:
        response = self._call("get_distribution", Id=self.settings.distribution_id)
        dist = response["Distribution"]
        config = dist["DistributionConfig"]
        return LiveDistribution(
            config,
            response["ETag"],
            status=dist["Status"],
            domain_name=dist.get("DomainName"),
            header_values=self._values(config),
        )

    def send(self, live: LiveDistribution, value: str, fence: Fence) -> None:
        """UpdateDistribution with IfMatch, fenced: only the header value on the target origins
        changes, and only if this execution held the lock just before."""
        config = with_header_value(
            live.config, self.settings.header_name, self.settings.origin_ids, value
        )
        fence.ensure_fresh()
        # The parsed copy satisfies botocore's parameter validation; CloudFront's own XML,
        # edited, is what is sent (see RAW_BODY).
        _outgoing.body = (
            xml_with_header_value(
                live.raw, self.settings.header_name, self.settings.origin_ids, value
            )
            if live.raw
            else None
        )
        try:
            self._call(
                "update_distribution",
                fenced=True,
                Id=self.settings.distribution_id,
                IfMatch=live.etag,
                DistributionConfig=config,
            )
        finally:
            _outgoing.body = None


# The name SigningKeys reports the store's key under, beside the origins' static headers.
KEY_VALUE_STORE = "key-value-store"
# The distribution id TestFunction's event names (a well-formed id no distribution has).
TEST_FUNCTION_DISTRIBUTION = "EORIGINLOCKTEST"


class SigningKeys:
    """Edge-signed mode: what the edges sign with is the KeyValueStore's signing key.

    The same port as :class:`Distribution`, so the steps are the same in both modes: ``config``
    reads what the edges use (the store's key, and any static origin header the distribution
    still carries while a deploy switches modes); ``send`` writes the key with the store's ETag
    (``UpdateKeys``, fenced); ``describe`` reports ``Deployed`` once the store's last change is
    ``propagation_seconds`` old (AWS gives no per-edge signal: docs/edge-signed.md), the
    distribution itself is deployed, and, when the function is named, CloudFront's own run of
    the published function (``TestFunction``) signs with that key. The key never leaves this
    object: results carry key ids and fingerprints only.
    """

    def __init__(
        self,
        settings: RotateSettings,
        clients: _LazyClients = CLIENTS,
        distribution: Distribution | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.clients = clients
        self.distribution = distribution or Distribution(settings, clients)
        self.clock = clock

    def _call(self, operation: str, fenced: bool = False, **kwargs: Any) -> dict[str, Any]:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            client = self.clients.get("cloudfront-keyvaluestore", fenced=fenced)
            return dict(getattr(client, operation)(KvsARN=self.settings.kvs_arn, **kwargs))
        except ClientError as exc:
            code = _code(exc)
            if code == "ConflictException":
                # The ETag is stale: retried with a fresh one, like a PreconditionFailed.
                raise DistributionChangedError(
                    "the KeyValueStore changed between read and update"
                ) from None
            if code in THROTTLING or transient(exc):
                raise CloudFrontThrottledError(f"KeyValueStore {operation}: {code}") from None
            if code == "ResourceNotFoundException" and operation == "get_key":
                raise  # a missing key: _store decides
            # Never AWS's message: a validation error could quote the value sent (the key).
            raise KeyValueStoreError(f"KeyValueStore {operation}: {code}") from None
        except BotoCoreError as exc:
            raise CloudFrontThrottledError(
                f"KeyValueStore {operation}: {type(exc).__name__}"
            ) from None

    def _store(self) -> tuple[str | None, str, float]:
        """The store's signing key (``None`` when it holds none), ETag and last change."""
        from botocore.exceptions import ClientError

        from tokens.edge import KVS_KEY_NAME

        described = self._call("describe_key_value_store")
        try:
            key: str | None = self._call("get_key", Key=KVS_KEY_NAME).get("Value")
        except ClientError as exc:
            if _code(exc) != "ResourceNotFoundException":
                raise
            key = None  # the store exists (described above): the key does not
        modified = described.get("LastModified") or described.get("Created")
        changed = modified.timestamp() if isinstance(modified, datetime) else 0.0
        return key, str(described["ETag"]), changed

    def _values(self, key: str | None, static: Mapping[str, str]) -> dict[str, str]:
        values = dict(static)
        if key is not None:
            values[KEY_VALUE_STORE] = key
        if not values:
            raise NoSigningKeyError(
                "the KeyValueStore holds no signing key and no origin carries the header"
            )
        return values

    def config(self) -> LiveDistribution:
        key, etag, _ = self._store()
        static = self.distribution.config().header_values
        return LiveDistribution({}, etag, header_values=self._values(key, static))

    def describe(self) -> LiveDistribution:
        key, etag, changed = self._store()
        live = self.distribution.describe()
        if live.header_values:
            raise StateConflictError(
                "edge-signed mode, but origin(s) "
                f"{', '.join(sorted(live.header_values))} still carry a static origin header: "
                "finish the deploy that switches modes, then run the rotation again"
            )
        values = self._values(key, {})
        propagated = self.clock() - changed >= self.settings.propagation_seconds
        signing = propagated and live.status == "Deployed" and self._edges_sign_with(key)
        return LiveDistribution(
            {},
            etag,
            status="Deployed" if signing else "InProgress",
            domain_name=live.domain_name,
            header_values=values,
        )

    def _edges_sign_with(self, key: str | None) -> bool:
        """Whether CloudFront's run of the published function signs with *key* (``True``
        when no function is named: the propagation wait alone then decides)."""
        name = self.settings.edge_function_name
        if name is None or key is None:
            return key is not None
        from tokens.edge import key_id, parse

        client = self.clients.get("cloudfront")
        try:
            etag = client.describe_function(Name=name, Stage="LIVE")["ETag"]
            event = {
                "version": "1.0",
                "context": {
                    # Not the real id: the token CloudFront computes for the test then opens
                    # nothing (only its key id is compared, which the id does not change).
                    "distributionId": TEST_FUNCTION_DISTRIBUTION,
                    "eventType": "viewer-request",
                },
                "viewer": {"ip": "198.51.100.7"},
                "request": {
                    "method": "GET",
                    "uri": "/",
                    "querystring": {},
                    "headers": {},
                    "cookies": {},
                },
            }
            result = client.test_function(
                Name=name, IfMatch=etag, Stage="LIVE", EventObject=json.dumps(event).encode()
            )["TestResult"]
        except Exception as exc:
            if transient(exc):
                raise CloudFrontThrottledError(f"TestFunction: {_code(exc)}") from None
            raise
        try:
            output = json.loads(result.get("FunctionOutput") or "{}")
            header = output["request"]["headers"][self.settings.header_name]["value"]
        except (ValueError, KeyError, TypeError):
            return False  # no token: the function has no usable key yet
        token = parse(header)
        return token is not None and token.kid == key_id(key)

    def send(self, live: LiveDistribution, value: str, fence: Fence) -> None:
        """UpdateKeys with the store's ETag, fenced: the store's signing key becomes *value*."""
        from tokens.edge import KVS_KEY_NAME

        fence.ensure_fresh()
        self._call(
            "update_keys",
            fenced=True,
            IfMatch=live.etag,
            Puts=[{"Key": KVS_KEY_NAME, "Value": value}],
        )


class AuthorizerCaches:
    """API Gateway's authorizer result cache and the authorizer's warm instances."""

    EPOCH_VARIABLE = "ORIGINLOCK_REVOKE_EPOCH"

    def __init__(self, settings: RotateSettings, clients: _LazyClients = CLIENTS) -> None:
        self.settings = settings
        self.clients = clients

    def _call(self, service: str, operation: str, **kwargs: Any) -> dict[str, Any]:
        """One call; a transient failure becomes :class:`TransientAwsError` (retried)."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return dict(getattr(self.clients.get(service), operation)(**kwargs))
        except (ClientError, BotoCoreError) as exc:
            if transient(exc):
                raise TransientAwsError(f"{service} {operation}: {_code(exc)}") from None
            raise

    def reset_api_cache(self) -> bool:
        if not self.settings.api_id:
            return False
        self._call(
            "apigatewayv2",
            "reset_authorizers_cache",
            ApiId=self.settings.api_id,
            StageName=self.settings.api_stage,
        )
        return True

    def replace_instances(self, epoch: str) -> bool:
        """Change an environment variable of the authorizer: Lambda then serves every new
        invocation from fresh instances, which read the document on their first request."""
        name = self.settings.authorizer_function_name
        if not name:
            return False
        config = self._call("lambda", "get_function_configuration", FunctionName=name)
        variables = dict((config.get("Environment") or {}).get("Variables") or {})
        if variables.get(self.EPOCH_VARIABLE) != epoch:
            variables[self.EPOCH_VARIABLE] = epoch
            kwargs: dict[str, Any] = {
                "FunctionName": name,
                "Environment": {"Variables": variables},
            }
            if config.get("RevisionId"):
                # Another update since our read (a deploy): PreconditionFailed, retried.
                kwargs["RevisionId"] = config["RevisionId"]
            try:
                self._call("lambda", "update_function_configuration", **kwargs)
            except Exception as exc:
                if _code(exc) == "PreconditionFailedException":
                    raise TransientAwsError("lambda: the configuration changed meanwhile") from None
                raise
        # Wait even when an earlier attempt made the change: until the update is Successful,
        # Lambda still serves invocations from the old instances, and emptying API Gateway's
        # cache before that would let one of them allow a revoked value for another TTL.
        self._await_update(name)
        return True

    def _await_update(self, name: str) -> None:
        """boto3's ``function_updated`` waiter (GetFunctionConfiguration every second, 60 s)."""
        from botocore.exceptions import BotoCoreError, WaiterError

        waiter = self.clients.get("lambda").get_waiter("function_updated")
        try:
            waiter.wait(FunctionName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 60})
        except WaiterError as exc:
            last = exc.last_response or {}
            if (last.get("LastUpdateStatus")) == "Failed":
                raise StateConflictError("the authorizer's configuration update failed") from None
            if "Error" in last:
                # The waiter's own call failed (throttled, unreachable): retried.
                raise TransientAwsError(
                    f"lambda GetFunctionConfiguration: {last['Error'].get('Code', 'Error')}"
                ) from None
            raise StateConflictError(
                "the authorizer's configuration update did not finish in 60 s"
            ) from None
        except BotoCoreError as exc:
            # The waiter passes a call that got no answer through as is (a ClientError becomes
            # its response, a connection or read timeout does not): retried like the others.
            raise TransientAwsError(
                f"lambda GetFunctionConfiguration: {type(exc).__name__}"
            ) from None


def probe(url: str, timeout: float = 5.0) -> int:
    """HTTP status of a GET to *url* (no origin header of ours is ever sent); 0 when no
    HTTP answer came (refused, timed out, not HTTP)."""
    import http.client

    request = urllib.request.Request(url, method="GET")  # noqa: S310 - operator-set https URL
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except (OSError, http.client.HTTPException):
        return 0


class StorePort(Protocol):
    def read(self) -> TokenDocument: ...
    def write(self, document: TokenDocument, fence: Fence) -> None: ...


class LockPort(Protocol):
    def acquire(self, execution_id: str, detail: dict[str, Any]) -> dict[str, Any]: ...
    def fence(self, execution_id: str) -> Fence: ...
    def release(self, execution_id: str) -> bool: ...


class DistributionPort(Protocol):
    def config(self) -> LiveDistribution: ...
    def describe(self) -> LiveDistribution: ...
    def send(self, live: LiveDistribution, value: str, fence: Fence) -> None: ...


class CachesPort(Protocol):
    def reset_api_cache(self) -> bool: ...
    def replace_instances(self, epoch: str) -> bool: ...


@dataclass
class Ports:
    """What the steps act on; the adapters above on AWS, in-memory fakes in the model test."""

    store: StorePort
    lock: LockPort
    distribution: DistributionPort
    caches: CachesPort

    @classmethod
    def for_settings(cls, settings: RotateSettings) -> Ports:
        edges: DistributionPort = (
            SigningKeys(settings) if settings.edge_signed else Distribution(settings)
        )
        return cls(TokenStore(settings), Lock(settings), edges, AuthorizerCaches(settings))
