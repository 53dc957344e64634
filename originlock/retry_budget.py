"""What the rotation workflow's definition implies for the revoke bound R.

R is the longest a revoked value can still be accepted, counted from the revoke's request: the
execution starts at once (a revoke never waits for another execution: it preempts a running
rotation), so that is the execution's start.
Until the revoke step has written the new document, the value is accepted; the time that can
take is fixed by the states on the way there, read here from ``statemachine/rotation.asl.json``
itself so that the runbook's figures are checked against the file (tests/statemachine).

ASL semantics this relies on:

* a retrier's ``MaxAttempts`` counts *retries*, the attempts after the first (0: never
  retry). With ``IntervalSeconds`` I, ``BackoffRate`` b and ``MaxAttempts`` M it waits at
  most I + I·b + … + I·b^(M-1) in all (each wait capped by ``MaxDelaySeconds`` when set;
  ``JitterStrategy: FULL`` waits a random part of each, never more);
* each retrier of a state keeps its own count, so a state runs at most 1 + ΣM times.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from originlock.bundle import asl_file

# The steps whose invocation writes a revocation to the token document.
REVOKE_STEPS = {"all": "revoke_all", "previous": "revoke_previous"}


def load_definition(path: Path | None = None) -> dict[str, Any]:
    """The state machine definition (placeholders left as they are: they are strings)."""
    definition: dict[str, Any] = json.loads((path or asl_file()).read_text())
    return definition


def retrier_wait_seconds(retrier: Mapping[str, Any]) -> float:
    """The most one retrier waits in all before its last retry, per ASL."""
    interval = float(retrier.get("IntervalSeconds", 1))
    rate = float(retrier.get("BackoffRate", 2.0))
    cap = retrier.get("MaxDelaySeconds")
    waits = [interval * rate**k for k in range(int(retrier.get("MaxAttempts", 3)))]
    if cap is not None:
        waits = [min(w, float(cap)) for w in waits]
    return sum(waits)


@dataclass(frozen=True)
class TaskBudget:
    """How often one Task state can invoke its function, and how long its retries wait."""

    state: str
    step: str | None
    invocations: int
    retry_wait_seconds: float


def task_budget(name: str, state: Mapping[str, Any]) -> TaskBudget:
    retriers = list(state.get("Retry", []))
    payload = state.get("Parameters", {}).get("Payload", {})
    return TaskBudget(
        state=name,
        step=payload.get("step") if isinstance(payload, Mapping) else None,
        invocations=1 + sum(int(r.get("MaxAttempts", 3)) for r in retriers),
        retry_wait_seconds=sum(retrier_wait_seconds(r) for r in retriers),
    )


def _value(path: str, data: Mapping[str, Any]) -> Any:
    if not path.startswith("$."):
        raise ValueError(f"unsupported path {path!r}")
    found: Any = data
    for key in path[2:].split("."):
        found = found.get(key) if isinstance(found, Mapping) else None
    return found


def _matches(rule: Mapping[str, Any], data: Mapping[str, Any]) -> bool:
    if "And" in rule:
        return all(_matches(r, data) for r in rule["And"])
    if "Or" in rule:
        return any(_matches(r, data) for r in rule["Or"])
    if "Not" in rule:
        return not _matches(rule["Not"], data)
    value = _value(rule["Variable"], data)
    if "StringEquals" in rule:
        return bool(value == rule["StringEquals"])
    if "BooleanEquals" in rule:
        return bool(value is rule["BooleanEquals"])
    raise ValueError(f"unsupported Choice rule {sorted(rule)}")


def happy_path(
    definition: Mapping[str, Any], request: Mapping[str, Any], *, preempting: bool = False
) -> list[str]:
    """The states an execution with *request* enters when every task succeeds at once and
    CloudFront reports ``Deployed`` at the first poll; with *preempting*, the execution takes
    the lock from one whose Lambda step was under way, so it settles once and takes the lock
    again."""
    states = definition["States"]
    data: dict[str, Any] = {
        "request": dict(request),
        "poll": {"result": {"deployed": True}},
        "lock": {"result": {"acquired": True, "settle": preempting}},
    }
    name: str | None = definition["StartAt"]
    path: list[str] = []
    while name is not None:
        if path.count(name) > (1 if preempting else 0):
            raise ValueError(f"the happy path loops at {name}")
        path.append(name)
        state = states[name]
        if state["Type"] == "Choice":
            chosen = [c["Next"] for c in state["Choices"] if _matches(c, data)]
            name = chosen[0] if chosen else state.get("Default")
        elif state.get("End") or state["Type"] in ("Succeed", "Fail"):
            name = None
        else:
            if state["Type"] == "Wait" and state.get("SecondsPath", "").endswith(
                "fence_settle_seconds"
            ):
                data["lock"]["result"]["settle"] = False  # the lock taken again is ours
            name = state["Next"]
    return path


def steps_on(definition: Mapping[str, Any], path: list[str], *, tagged: bool = False) -> list[str]:
    """The rotate-function steps the Task states of *path* invoke, in order (with *tagged*,
    ``step:tag`` for a state whose payload carries a tag)."""
    states = definition["States"]
    found = []
    for name in path:
        if states[name]["Type"] != "Task":
            continue
        step = str(task_budget(name, states[name]).step)
        tag = states[name].get("Parameters", {}).get("Payload", {}).get("tag")
        found.append(f"{step}:{tag}" if tagged and tag else step)
    return found


@dataclass(frozen=True)
class PathBudget:
    """The states up to and including the one that writes a revocation."""

    states: tuple[str, ...]
    tasks: tuple[TaskBudget, ...]
    # SecondsPath of every Wait state on the way (a settings key the Validate step returns).
    waits: tuple[str, ...]

    @property
    def invocations(self) -> int:
        return sum(t.invocations for t in self.tasks)

    @property
    def retry_wait_seconds(self) -> float:
        return sum(t.retry_wait_seconds for t in self.tasks)

    def wait_seconds(self, settings: Mapping[str, float]) -> float:
        """The Wait states' total for the timings ``Validate`` returns
        (``RotateSettings.timings``)."""
        return sum(float(settings[path.removeprefix("$.settings.")]) for path in self.waits)

    def bound(
        self,
        *,
        settings: Mapping[str, float],
        invocation_seconds: float,
        after_write_seconds: float,
        retries: bool = True,
    ) -> float:
        """R: the waits, every invocation taking *invocation_seconds* (with every retry the
        ASL allows if *retries*, else one invocation per task), then *after_write_seconds*
        (what an old instance and API Gateway's cache may still allow after the write)."""
        invocations = self.invocations if retries else len(self.tasks)
        waits = self.retry_wait_seconds if retries else 0.0
        return (
            self.wait_seconds(settings)
            + waits
            + invocations * invocation_seconds
            + after_write_seconds
        )


def revoke_budget(
    scope: str, definition: Mapping[str, Any] | None = None, *, preempting: bool = False
) -> PathBudget:
    """The path of ``revoke <scope>`` up to its revoke write, with its retry budgets; with
    *preempting*, from a request made while another execution's Lambda step was under way."""
    definition = definition if definition is not None else load_definition()
    states = definition["States"]
    path = happy_path(definition, {"mode": "revoke", "revoke": scope}, preempting=preempting)
    step = REVOKE_STEPS[scope]
    names = [n for n in path if states[n]["Type"] == "Task"]
    writes = [n for n in names if task_budget(n, states[n]).step == step]
    if len(writes) != 1:
        raise ValueError(f"expected one {step} state on the revoke {scope} path, found {writes}")
    upto = path[: path.index(writes[0]) + 1]
    return PathBudget(
        states=tuple(upto),
        tasks=tuple(task_budget(n, states[n]) for n in upto if states[n]["Type"] == "Task"),
        waits=tuple(states[n]["SecondsPath"] for n in upto if states[n]["Type"] == "Wait"),
    )
