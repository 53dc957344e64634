"""How an execution's history becomes the steps, the failing step and its cause."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from originlock.operations import Outcome, explain_cause, outcome_of, steps_of
from originlock.render import StepPrinter, grouped, outcome_line

T0 = datetime(2026, 11, 25, 17, 0, tzinfo=UTC)
EVENTS = Path(__file__).resolve().parents[1] / "events"


def recorded(name: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A recorded ``DescribeExecution`` and ``GetExecutionHistory``, timestamps as boto3
    gives them (datetimes)."""
    data = json.loads((EVENTS / name).read_text())
    described = dict(data["describe"])
    for key in ("startDate", "stopDate"):
        described[key] = datetime.fromisoformat(described[key])
    events = [{**e, "timestamp": datetime.fromisoformat(e["timestamp"])} for e in data["events"]]
    return described, events


def events(*items: tuple[str, str | None]) -> list[dict[str, Any]]:
    """``(type, state name or error)`` pairs, one second apart."""
    found = []
    for i, (kind, name) in enumerate(items):
        event: dict[str, Any] = {"type": kind, "timestamp": T0 + timedelta(seconds=i)}
        if kind.endswith("StateEntered"):
            event["stateEnteredEventDetails"] = {"name": name}
        elif kind.endswith("StateExited"):
            event["stateExitedEventDetails"] = {"name": name}
        elif kind == "TaskFailed":
            event["taskFailedEventDetails"] = {"error": name, "cause": "{}"}
        found.append(event)
    return found


def test_steps_a_retried_task_that_succeeds_is_not_a_failure() -> None:
    history = events(
        ("TaskStateEntered", "SwitchOrigin"),
        ("TaskScheduled", None),
        ("TaskFailed", "DistributionChangedError"),
        ("TaskScheduled", None),
        ("TaskSucceeded", None),
        ("TaskStateExited", "SwitchOrigin"),
    )

    [step] = steps_of(history)

    assert (step.name, step.kind, step.status, step.retries, step.error) == (
        "SwitchOrigin",
        "Task",
        "succeeded",
        1,
        None,
    )
    assert step.seconds == 5.0


def test_steps_a_caught_failure_names_the_task_not_the_fail_state() -> None:
    history = events(
        ("TaskStateEntered", "Stage"),
        ("TaskScheduled", None),
        ("TaskFailed", "CorruptTokenDocumentError"),
        ("TaskStateExited", "Stage"),
        ("TaskStateEntered", "ReleaseLockAfterFailure"),
        ("TaskStateExited", "ReleaseLockAfterFailure"),
        ("FailStateEntered", "Failed"),
        ("ExecutionFailed", None),
    )

    steps = steps_of(history)

    assert [(s.name, s.status) for s in steps] == [
        ("Stage", "failed"),
        ("ReleaseLockAfterFailure", "succeeded"),
        ("Failed", "failed"),
    ]
    assert steps[0].error == "CorruptTokenDocumentError"


def test_steps_a_polling_loop_is_one_row_with_a_count() -> None:
    history = events(
        ("TaskStateEntered", "CheckDeployed"),
        ("TaskStateExited", "CheckDeployed"),
        ("ChoiceStateEntered", "IsDeployed"),
        ("ChoiceStateExited", "IsDeployed"),
        ("WaitStateEntered", "WaitForDeployment"),
        ("WaitStateExited", "WaitForDeployment"),
        ("TaskStateEntered", "CheckDeployed"),
        ("TaskStateExited", "CheckDeployed"),
    )

    rows = grouped(steps_of(history))

    assert [(step.name, count) for step, count, _ in rows] == [
        ("CheckDeployed", 2),
        ("WaitForDeployment", 1),
    ]


def test_cause_of_a_lambda_error_keeps_type_and_message_only() -> None:
    cause = json.dumps(
        {
            "errorType": "UnknownOriginHeaderError",
            "errorMessage": "CloudFront sends a value the token document does not accept",
            "stackTrace": ['  File "/var/task/rotate/steps.py", line 60'],
        }
    )

    assert explain_cause(cause) == (
        "UnknownOriginHeaderError: CloudFront sends a value the token document does not accept"
    )
    assert explain_cause("States.Timeout\n  after 7200 s") == "States.Timeout after 7200 s"
    assert explain_cause(None) is None


def test_outcome_line_of_a_failure_names_step_and_cause() -> None:
    outcome = Outcome(
        "arn",
        "manual-rotate-1",
        "FAILED",
        "2026-11-25T17:00:00Z",
        "2026-11-25T17:00:04Z",
        failed_step="Stage",
        error="CorruptTokenDocumentError",
        cause="CorruptTokenDocumentError: parameter value is not valid JSON",
    )

    assert outcome_line(outcome) == (
        "manual-rotate-1 FAILED after 4.0 s at step Stage: "
        "CorruptTokenDocumentError: parameter value is not valid JSON"
    )


def test_step_printer_prints_each_step_once_when_it_ends() -> None:
    lines: list[str] = []

    class Console:
        def print(self, text: str, **_kwargs: Any) -> None:
            lines.append(text)

    printer = StepPrinter(Console())  # type: ignore[arg-type]
    history = events(("TaskStateEntered", "Validate"), ("TaskStateExited", "Validate"))
    running = Outcome("arn", "x", "RUNNING", None, None, steps=steps_of(history[:1]))
    done = Outcome("arn", "x", "SUCCEEDED", None, None, steps=steps_of(history))

    printer(running)
    printer(done)
    printer(done)

    assert len(lines) == 1 and "✓ Validate" in lines[0]


def test_outcome_names_the_first_failing_step_not_the_failure_path() -> None:
    # Given a real run: revoke all against a corrupt document. Stage fails; the failure path's
    # ResetCachesAfterFailure reads the same document and fails too; then the Fail state.
    described, history = recorded("history_revoke_all_corrupt_document.json")
    failed = [s.name for s in steps_of(history) if s.status == "failed"]
    assert failed == ["Stage", "ResetCachesAfterFailure", "Failed"]

    outcome = outcome_of("arn", described, history)

    # Then the step reported is the one that failed first, with the execution's own error
    assert outcome.failed_step == "Stage"
    assert outcome.error == "CorruptTokenDocumentError"
    assert outcome.cause == "CorruptTokenDocumentError: slot current does not hold a usable token"
    assert outcome_line(outcome).endswith(
        "at step Stage: CorruptTokenDocumentError: slot current does not hold a usable token"
    )


def test_outcome_of_a_rejected_input_names_the_task_then_a_bare_fail_state() -> None:
    rejected = events(
        ("TaskStateEntered", "Validate"),
        ("TaskScheduled", None),
        ("TaskFailed", "InvalidRequestError"),
        ("TaskStateExited", "Validate"),
        ("FailStateEntered", "Rejected"),
    )
    described = {"name": "x", "status": "FAILED", "error": "InvalidRequestError"}

    assert outcome_of("arn", described, rejected).failed_step == "Validate"
    # Nothing failed before the Fail state: it is the step named
    only_fail = [rejected[0], rejected[-1]]
    assert outcome_of("arn", described, only_fail).failed_step == "Rejected"
