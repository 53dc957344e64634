"""What the operator commands do, apart from how they are shown: rotate, revoke, status,
history. The CLI and the demo both call these; they return plain data.

No token value ever leaves this module: the document is summarised by fingerprints
(:meth:`TokenDocument.summary`), and what CloudFront sends is named by its fingerprint and
the slot that holds it.
"""

from __future__ import annotations

import getpass
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from originlock.errors import OriginlockError, ParameterError, RotationRunningError
from originlock.target import Target

TERMINAL = ("SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED")
# SSM's largest parameter value (advanced tier, 8 KB): anything longer is not a document the
# functions wrote, and is refused before it is parsed.
MAX_PARAMETER_CHARS = 8192
_FAILURE_EVENTS = ("TaskFailed", "LambdaFunctionFailed", "TaskTimedOut", "LambdaFunctionTimedOut")


def _iso(value: Any) -> str | None:
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return None if value is None else str(value)


def _age(value: Any, now: datetime | None = None) -> float | None:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    if not isinstance(value, datetime):
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return round(((now or datetime.now(UTC)) - value).total_seconds(), 1)


# -- starting ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Started:
    execution_arn: str
    name: str
    request: dict[str, Any]
    # The running execution this revoke preempts (its name and what it is), if any.
    preempts: dict[str, Any] | None = None


def requester(target: Target) -> str:
    """Who asks, for the execution's ``requested_by``: the caller's identity, else the user."""
    from botocore.exceptions import ClientError

    try:
        arn = str(target.client("sts").get_caller_identity()["Arn"])
    except ClientError:
        return getpass.getuser()[:128]
    # arn:aws:sts::123456789012:assumed-role/Role/alice -> assumed-role/Role/alice
    return arn.split(":", 5)[-1][:128]


def execution_name(mode: str, scope: str | None = None, trigger: str = "manual") -> str:
    """``manual-rotate-20261125T170000Z-1a2b``: unique, sortable, what and when at a glance."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    what = f"{mode}-{scope}" if scope else mode
    return f"{trigger}-{what}-{stamp}-{secrets.token_hex(2)}"


def running_executions(target: Target) -> list[dict[str, Any]]:
    response = target.client("stepfunctions").list_executions(
        stateMachineArn=target.state_machine_arn, statusFilter="RUNNING", maxResults=10
    )
    return list(response.get("executions", []))


# How urgent each request is: a revoke preempts a less urgent running execution, as the
# workflow's lock decides (rotate.adapters.PRIORITIES; a test keeps the two equal).
PRIORITIES: dict[tuple[str | None, str | None], int] = {
    ("rotate", None): 0,
    ("revoke", "previous"): 1,
    ("revoke", "all"): 2,
}


def _request_of(target: Target, execution_arn: str) -> dict[str, Any]:
    described = target.client("stepfunctions").describe_execution(executionArn=execution_arn)
    try:
        request = json.loads(described.get("input") or "{}")
    except ValueError:
        return {}
    return request if isinstance(request, dict) else {}


def _what(request: dict[str, Any]) -> str:
    mode = request.get("mode") or "rotation"
    return f"{mode} {request['revoke']}" if request.get("revoke") else str(mode)


def start(
    target: Target,
    mode: str,
    *,
    scope: str | None = None,
    reason: str = "",
    requested_by: str | None = None,
    trigger: str = "manual",
) -> Started:
    """Start the rotation workflow.

    A rotation is refused while any execution runs. A revoke starts at once: it preempts a
    running rotation (or a ``revoke previous``, for ``revoke all``) — the workflow's lock stops
    it — and is refused only while a revoke at least as urgent runs (it would do nothing more).

    Raises
    ------
    RotationRunningError
        If an execution that this request may not preempt is running.
    """
    mine = PRIORITIES.get((mode, scope), 0)
    preempts = None
    for running in running_executions(target):
        theirs_request = _request_of(target, running["executionArn"])
        theirs = PRIORITIES.get((theirs_request.get("mode"), theirs_request.get("revoke")), 0)
        age = _age(running.get("startDate"))
        started = f" (started {age:.0f} s ago)" if age is not None else ""
        watch = target.command("watch", str(running["name"]))
        if mine == 0 or theirs >= mine:
            if mode == "revoke":
                raise RotationRunningError(
                    f"a {_what(theirs_request)} is already running: {running['name']}{started}; "
                    f"it does what this revoke would do, or more: follow it with `{watch}`"
                )
            raise RotationRunningError(
                f"a rotation is already running: {running['name']}{started}; follow it with "
                f"`{watch}` and try again once it ends"
            )
        preempts = {"name": running["name"], "what": _what(theirs_request)}
    request: dict[str, Any] = {
        "mode": mode,
        "trigger": trigger,
        "reason": reason,
        "requested_by": requested_by or requester(target),
    }
    if scope:
        request["revoke"] = scope
    name = execution_name(mode, scope, trigger)
    response = target.client("stepfunctions").start_execution(
        stateMachineArn=target.state_machine_arn, name=name, input=json.dumps(request)
    )
    return Started(str(response["executionArn"]), name, request, preempts)


# -- following an execution ------------------------------------------------------------------
@dataclass
class Step:
    """One state the execution entered (a state entered twice is two steps)."""

    name: str
    kind: str
    status: str = "running"  # running | succeeded | failed
    started: datetime | None = None
    ended: datetime | None = None
    retries: int = 0
    error: str | None = None

    @property
    def seconds(self) -> float | None:
        if self.started is None:
            return None
        end = self.ended or datetime.now(UTC)
        return round((end - self.started).total_seconds(), 2)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "status": self.status,
            "started_at": _iso(self.started),
            "seconds": self.seconds,
            "retries": self.retries,
            "error": self.error,
        }


def _failure_details(event: dict[str, Any]) -> dict[str, Any]:
    for key, value in event.items():
        if key.endswith("EventDetails") and isinstance(value, dict):
            return value
    return {}


def steps_of(events: list[dict[str, Any]]) -> list[Step]:
    """The states an execution went through, from its history events (oldest first)."""
    steps: list[Step] = []
    attempts: dict[int, int] = {}
    for event in events:
        kind = str(event.get("type", ""))
        when = event.get("timestamp")
        when = when if isinstance(when, datetime) else None
        if kind.endswith("StateEntered"):
            details = event.get("stateEnteredEventDetails") or {}
            steps.append(Step(str(details.get("name", "?")), kind[: -len("StateEntered")]))
            steps[-1].started = when
            if steps[-1].kind == "Fail":  # ends the execution where it is entered
                steps[-1].status, steps[-1].ended = "failed", when
        elif kind.endswith("StateExited"):
            name = (event.get("stateExitedEventDetails") or {}).get("name")
            for step in reversed(steps):
                if step.name == name and step.ended is None:
                    step.ended = when
                    if step.status == "running":
                        step.status = "succeeded"
                    break
        elif not steps:
            continue
        elif kind in ("TaskScheduled", "LambdaFunctionScheduled"):
            index = len(steps) - 1
            attempts[index] = attempts.get(index, 0) + 1
            steps[-1].retries = attempts[index] - 1
        elif kind in _FAILURE_EVENTS:
            steps[-1].status = "failed"
            steps[-1].error = str(_failure_details(event).get("error") or kind)
        elif kind in ("TaskSucceeded", "LambdaFunctionSucceeded"):
            steps[-1].status, steps[-1].error = "running", None
    return steps


def explain_cause(cause: str | None) -> str | None:
    """A Lambda error's cause is a JSON document: keep its type and message."""
    if not cause:
        return cause
    try:
        data = json.loads(cause)
    except ValueError:
        return " ".join(cause.split())
    if isinstance(data, dict) and ("errorMessage" in data or "errorType" in data):
        return f"{data.get('errorType', 'Error')}: {data.get('errorMessage', '')}"
    return " ".join(cause.split())


@dataclass
class Outcome:
    """Where an execution stands: its status, its steps and, if it failed, why."""

    execution_arn: str
    name: str
    status: str
    started_at: str | None
    stopped_at: str | None
    steps: list[Step] = field(default_factory=list)
    failed_step: str | None = None
    error: str | None = None
    cause: str | None = None

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL

    @property
    def succeeded(self) -> bool:
        return self.status == "SUCCEEDED"

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["steps"] = [step.to_json() for step in self.steps]
        return data


def history_events(target: Target, execution_arn: str) -> list[dict[str, Any]]:
    pages = target.client("stepfunctions").get_paginator("get_execution_history")
    return [e for page in pages.paginate(executionArn=execution_arn) for e in page["events"]]


def outcome(
    target: Target, execution_arn: str, events: list[dict[str, Any]] | None = None
) -> Outcome:
    """The execution as it stands; *events*: its history, if the caller has just read it."""
    described = target.client("stepfunctions").describe_execution(executionArn=execution_arn)
    return outcome_of(
        execution_arn,
        described,
        history_events(target, execution_arn) if events is None else events,
    )


def outcome_of(
    execution_arn: str, described: dict[str, Any], events: list[dict[str, Any]]
) -> Outcome:
    """An :class:`Outcome` from ``DescribeExecution`` and ``GetExecutionHistory`` answers."""
    steps = steps_of(events)
    result = Outcome(
        execution_arn=execution_arn,
        name=str(described["name"]),
        status=str(described["status"]),
        started_at=_iso(described.get("startDate")),
        stopped_at=_iso(described.get("stopDate")),
        steps=steps,
    )
    if result.finished and not result.succeeded:
        # The first step that failed: every Catch of the workflow leads to its failure path
        # (AfterFailure, ResetCachesAfterFailure, ReleaseLockAfterFailure), whose own steps
        # may fail in turn for the same reason (a corrupt document fails them all), then to
        # a Fail state. Neither is where the run failed.
        failed = [s for s in steps if s.status == "failed" and s.kind != "Fail"]
        result.failed_step = failed[0].name if failed else (steps[-1].name if steps else None)
        result.error = described.get("error") or (failed[0].error if failed else None)
        result.cause = explain_cause(described.get("cause"))
    return result


def watch(
    target: Target,
    execution_arn: str,
    on_update: Callable[[Outcome], None] = lambda outcome: None,
    interval: float = 1.0,
    timeout: float | None = None,
) -> Outcome:
    """Poll the execution until it ends, calling *on_update* with each new view."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        current = outcome(target, execution_arn)
        on_update(current)
        if current.finished or (deadline is not None and time.monotonic() > deadline):
            return current
        time.sleep(interval)


def find_execution(target: Target, execution: str | None) -> dict[str, Any]:
    """``DescribeExecution`` of *execution* (a name or an ARN of an execution of this target's
    state machine); ``None``: the running one.

    Raises
    ------
    OriginlockError
        No such execution, or none running when none is named.
    """
    from botocore.exceptions import ClientError

    if execution is None:
        running = running_executions(target)
        if not running:
            raise OriginlockError(
                "no execution is running: name the one to watch "
                f"(`{target.command('history')}` lists them)"
            )
        execution = str(running[0]["executionArn"])
    if execution.startswith("arn:"):
        arn = execution
    else:
        # arn:aws:states:REGION:ACCOUNT:stateMachine:NAME -> ...:execution:NAME:EXECUTION
        prefix, _, machine = target.state_machine_arn.rpartition(":stateMachine:")
        arn = f"{prefix}:execution:{machine}:{execution}"
    try:
        described = target.client("stepfunctions").describe_execution(executionArn=arn)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("ExecutionDoesNotExist", "InvalidArn"):
            raise OriginlockError(
                f"no execution {execution} of {target.state_machine_arn} "
                f"(`{target.command('history')}` lists them)"
            ) from None
        raise
    return dict(described)


def request_of(described: dict[str, Any]) -> dict[str, Any]:
    """An execution's input (what was asked), ``{}`` when it is not a JSON object."""
    try:
        request = json.loads(described.get("input") or "{}")
    except ValueError:
        return {}
    return request if isinstance(request, dict) else {}


# -- status --------------------------------------------------------------------------------
def read_document(target: Target) -> Any:
    """The token document (kept in memory only; callers show its summary)."""
    from botocore.exceptions import ClientError

    from originlock.document import CorruptDocumentError, TokenDocument

    try:
        value = target.client("ssm").get_parameter(Name=target.parameter_name, WithDecryption=True)[
            "Parameter"
        ]["Value"]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ParameterNotFound":
            raise ParameterError(f"parameter {target.parameter_name} not found") from None
        raise
    if isinstance(value, str) and len(value) > MAX_PARAMETER_CHARS:
        raise ParameterError(
            f"parameter {target.parameter_name} does not hold a token document: "
            f"{len(value)} characters, more than any parameter can hold"
        )
    try:
        return TokenDocument.parse(value)
    except CorruptDocumentError as exc:
        reason = str(exc)
    except RecursionError:
        reason = "parameter value is nested too deeply"
    except (ValueError, TypeError):
        # The parser only raises CorruptDocumentError for what it recognises; the message of
        # anything else may quote the value, so it is not shown.
        reason = "parameter value is not a token document"
    raise ParameterError(
        f"parameter {target.parameter_name} does not hold a token document: {reason}"
    )


def token_status(document: Any) -> dict[str, Any]:
    summary = dict(document.summary())
    fingerprints = summary["fingerprints"]
    summary["slots"] = {slot: fp is not None for slot, fp in fingerprints.items()}
    summary["age_seconds"] = _age(summary.get("updated_at"))
    # The current value's age (what rotation is about); None when not known (adopted).
    summary["current_age_seconds"] = _age(summary.get("current_since"))
    return summary


def distribution_status(target: Target, document: Any) -> dict[str, Any] | None:
    """Deployment status, and what each origin sends: fingerprint and slot, never the value."""
    from originlock.document import fingerprint

    if not target.distribution_id:
        return None
    response = target.client("cloudfront").get_distribution(Id=target.distribution_id)
    distribution = response["Distribution"]
    sends = []
    for origin in distribution["DistributionConfig"]["Origins"].get("Items", []) or []:
        for header in (origin.get("CustomHeaders") or {}).get("Items", []) or []:
            if header["HeaderName"].lower() == target.header_name:
                value = header["HeaderValue"]
                sends.append(
                    {
                        "origin": origin["Id"],
                        "fingerprint": fingerprint(value),
                        "slot": document.slot_of(value) or "NOT ACCEPTED",
                    }
                )
    return {
        "id": target.distribution_id,
        "status": distribution.get("Status"),
        "header_name": target.header_name,
        "domain_name": distribution.get("DomainName"),
        "sends": sends,
    }


def schedule_status(target: Target) -> dict[str, Any]:
    from botocore.exceptions import ClientError

    from originlock.schedule import UnsupportedExpression, next_run

    unknown: dict[str, Any] = {"name": target.schedule_name, "next_run": None}
    if not target.schedule_name:
        return {**unknown, "note": "no schedule name known (stack output ScheduleName)"}
    try:
        schedule = target.client("scheduler").get_schedule(
            Name=target.schedule_name, GroupName=target.schedule_group or "default"
        )
    except ClientError as exc:
        return {**unknown, "note": exc.response.get("Error", {}).get("Code", "error")}
    expression = str(schedule.get("ScheduleExpression", ""))
    result = {
        "name": target.schedule_name,
        "expression": expression,
        "timezone": schedule.get("ScheduleExpressionTimezone") or "UTC",
        "state": schedule.get("State"),
        "next_run": None,
    }
    if schedule.get("State") != "ENABLED":
        return result
    anchor = schedule.get("StartDate") or schedule.get("CreationDate")
    try:
        result["next_run"] = _iso(
            next_run(expression, result["timezone"], anchor, datetime.now(UTC))
        )
    except UnsupportedExpression:
        result["note"] = "expression not evaluated"
    return result


def execution_summary(target: Target, execution: dict[str, Any]) -> dict[str, Any]:
    """One execution for ``history``/``status``: what was asked, by whom, how it ended."""
    described = target.client("stepfunctions").describe_execution(
        executionArn=execution["executionArn"]
    )
    request = request_of(described)
    started, stopped = described.get("startDate"), described.get("stopDate")
    duration = (
        round((stopped - started).total_seconds(), 1)
        if isinstance(started, datetime) and isinstance(stopped, datetime)
        else None
    )
    return {
        "name": described["name"],
        "execution_arn": described["executionArn"],
        "status": described["status"],
        "started_at": _iso(started),
        "stopped_at": _iso(stopped),
        "seconds": duration,
        "mode": request.get("mode"),
        "revoke": request.get("revoke"),
        "trigger": request.get("trigger"),
        # Free text in the execution's input: whoever starts an execution writes what they
        # like there. The verified identity is in CloudTrail (StartExecution's userIdentity).
        "requested_by": request.get("requested_by"),
        "requested_by_verified": False,
        "reason": request.get("reason"),
        "error": described.get("error"),
        "cause": explain_cause(described.get("cause")),
    }


def current_state(target: Target, execution_arn: str) -> str | None:
    entered = [s.name for s in steps_of(history_events(target, execution_arn))]
    return entered[-1] if entered else None


def status(target: Target) -> dict[str, Any]:
    """Everything ``originlock status`` shows. Never a token value."""
    document = read_document(target)
    sfn = target.client("stepfunctions")
    running = running_executions(target)
    latest = sfn.list_executions(stateMachineArn=target.state_machine_arn, maxResults=1).get(
        "executions", []
    )
    execution = None
    if running:
        execution = execution_summary(target, running[0])
        execution["state"] = current_state(target, running[0]["executionArn"])
    return {
        "target": target.description,
        "parameter": target.parameter_name,
        "state_machine": target.state_machine_arn,
        "token": token_status(document),
        "distribution": distribution_status(target, document),
        "running_execution": execution,
        "last_execution": execution_summary(target, latest[0]) if latest else None,
        "schedule": schedule_status(target),
    }


def history(target: Target, limit: int = 10) -> list[dict[str, Any]]:
    """The latest *limit* executions, newest first."""
    sfn = target.client("stepfunctions")
    found: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {
        "stateMachineArn": target.state_machine_arn,
        "maxResults": min(max(limit, 1), 1000),
    }
    while len(found) < limit:
        page = sfn.list_executions(**kwargs)
        found.extend(page.get("executions", []))
        if not page.get("nextToken"):
            break
        kwargs["nextToken"] = page["nextToken"]
    found.sort(key=lambda e: e.get("startDate") or datetime.min.replace(tzinfo=UTC), reverse=True)
    return [execution_summary(target, e) for e in found[:limit]]
