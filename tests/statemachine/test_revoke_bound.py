"""The revoke bound R the runbook and the sandbox state is what the ASL file implies."""

from __future__ import annotations

import math
import re

import pytest

from infra.constants import CONTEXT_DEFAULTS, ROOT
from originlock.budget import DEFAULT_MAX_INSTANCES, DEFAULT_READ_BUDGET, max_age_for_budget
from originlock.retry_budget import (
    load_definition,
    retrier_wait_seconds,
    revoke_budget,
    task_budget,
)
from originlock.sandbox.sandbox import SandboxTimings
from rotate.settings import RotateSettings

pytestmark = pytest.mark.statemachine

RUNBOOK = ROOT / "docs" / "runbook.md"


def runbook_section() -> str:
    text = RUNBOOK.read_text()
    start = text.index("### The revoke bound R")
    return text[start : text.index("\n## ", start)]


def seconds(value: float) -> str:
    """How the runbook writes a number of seconds: ``6,159 s``."""
    assert value == int(value), value
    return f"{int(value):,} s"


def function_timeout_seconds() -> int:
    """The rotate function's timeout, as originlock/cdk/rotation.py sets it."""
    source = (ROOT / "originlock" / "cdk" / "rotation.py").read_text()
    found = re.findall(r"timeout=Duration\.(minutes|seconds)\((\d+)\)", source)
    assert len(found) == 1, "the runbook's hang figure assumes one rotate function timeout"
    unit, amount = found[0]
    return int(amount) * (60 if unit == "minutes" else 1)


def test_max_attempts_counts_the_retries_after_the_first_attempt() -> None:
    # SwitchOrigin's first retrier: IntervalSeconds 1, BackoffRate 2, MaxAttempts 6
    assert retrier_wait_seconds({"IntervalSeconds": 1, "BackoffRate": 2, "MaxAttempts": 6}) == 63
    assert retrier_wait_seconds({"IntervalSeconds": 2, "BackoffRate": 2, "MaxAttempts": 4}) == 30
    assert retrier_wait_seconds({"IntervalSeconds": 2, "MaxAttempts": 0}) == 0
    assert retrier_wait_seconds(
        {"IntervalSeconds": 8, "MaxAttempts": 3, "MaxDelaySeconds": 10}
    ) == (8 + 10 + 10)
    states = load_definition()["States"]
    switch = task_budget("SwitchOrigin", states["SwitchOrigin"])
    # Each retrier counts its own attempts: 1 + 6 + 4 invocations, 63 + 30 s of waits
    assert (switch.invocations, switch.retry_wait_seconds) == (11, 93)


def test_the_runbook_states_the_retry_budgets_the_asl_implies() -> None:
    section = runbook_section()
    rows = {
        name: (int(invocations), int(waits))
        for name, invocations, waits in re.findall(
            r"^\| `(\w+)` \| [^|]+ \| (\d+) \| (\d+) s \|$", section, flags=re.MULTILINE
        )
    }
    totals = {
        scope: (int(invocations), int(waits))
        for scope, invocations, waits in re.findall(
            r"^\| \*\*revoke (all|previous)\*\* \| \| \*\*(\d+)\*\* \| \*\*(\d+) s\*\* \|$",
            section,
            flags=re.MULTILINE,
        )
    }
    expected_rows = {}
    for scope in ("all", "previous"):
        budget = revoke_budget(scope)
        assert totals[scope] == (budget.invocations, budget.retry_wait_seconds), scope
        for task in budget.tasks:
            expected_rows[task.state] = (task.invocations, task.retry_wait_seconds)
    assert rows == expected_rows
    assert revoke_budget("all").waits == ("$.settings.stage_wait_seconds",)
    assert revoke_budget("previous").waits == ()
    # Preempting a run whose step was under way: the settle and a second AcquireLock
    acquire = task_budget("AcquireLock", load_definition()["States"]["AcquireLock"])
    assert (acquire.invocations, acquire.retry_wait_seconds) == (5, 30)
    for scope in ("all", "previous"):
        plain, preempting = revoke_budget(scope), revoke_budget(scope, preempting=True)
        assert preempting.invocations == plain.invocations + acquire.invocations
        assert preempting.retry_wait_seconds == plain.retry_wait_seconds + 30
        assert preempting.waits[0] == "$.settings.fence_settle_seconds"
    assert "**+ 20 s + 5 invocations + 30 s**" in section


def test_the_runbook_states_r_as_the_asl_and_the_defaults_imply() -> None:
    # Given the deployment's defaults (cdk.json / infra.constants) and the rotate function's
    # derivation of the emergency wait from them
    # The max age the CDK app derives from the SSM read budget for the default fleet
    max_age = float(
        max_age_for_budget(
            int(CONTEXT_DEFAULTS["authorizerTokenMaxAgeSeconds"]),
            DEFAULT_MAX_INSTANCES,
            DEFAULT_READ_BUDGET,
        )
    )
    ttl = float(CONTEXT_DEFAULTS["authorizerCacheTtlSeconds"])
    refresh = float(CONTEXT_DEFAULTS["authorizerRefreshIntervalSeconds"])
    settings = RotateSettings.from_env(
        {
            "SSM_PARAMETER_NAME": "/p",
            "DISTRIBUTION_ID": "E1",
            "AUTHORIZER_MAX_AGE_SECONDS": f"{max_age}",
            "AUTHORIZER_REFRESH_INTERVAL_SECONDS": f"{refresh}",
        }
    )
    timings = {k: float(v) for k, v in settings.timings("revoke", "all").items()}
    assert timings["fence_settle_seconds"] == 20
    after_write = max_age + ttl
    hang = function_timeout_seconds()
    execution_timeout = load_definition()["TimeoutSeconds"]
    section = runbook_section()

    # Then the runbook's figures are the ones the ASL implies
    assert f"**max age + TTL = {seconds(after_write)}**" in section
    assert f"({seconds(hang)}, `originlock/cdk/rotation.py`)" in section
    assert f"refresh interval + 5 s = {seconds(timings['stage_wait_seconds'])}" in section
    for scope, formula_head in (
        ("all", "REVOKE_STAGE_WAIT_SECONDS + "),
        ("previous", ""),
    ):
        budget = revoke_budget(scope)
        formula = (
            f"**R ≤ {formula_head}{seconds(budget.retry_wait_seconds)} + "
            f"{budget.invocations} \N{MULTIPLICATION SIGN} d + max age + TTL**"
        )
        assert formula in section, formula
        for path in (budget, revoke_budget(scope, preempting=True)):
            for d in (1.0, float(hang)):
                bound = path.bound(
                    settings=timings, invocation_seconds=d, after_write_seconds=after_write
                )
                assert f"**{seconds(bound)}**" in section, (scope, d, bound)
            # and even with every invocation at the function timeout, the execution reaches
            # the write before its own timeout ends it
            worst_before_write = path.bound(
                settings=timings, invocation_seconds=float(hang), after_write_seconds=0.0
            )
            assert worst_before_write < execution_timeout, (scope, worst_before_write)
    assert f"2-hour timeout ({seconds(execution_timeout)})" in section
    # The retired value's bound, after Retire
    retired = section[section.index("a *retired* value") :]
    assert f"**max age + TTL = {seconds(after_write)}**" in retired


def test_the_sandbox_bound_is_the_same_formula_with_compressed_timings() -> None:
    timings = SandboxTimings()
    budget = revoke_budget("all")
    # Validate, AcquireLock, Stage, the replacement, SwitchOrigin, RevokeAll run before the
    # write
    assert [task.state for task in budget.tasks] == [
        "Validate",
        "AcquireLock",
        "Stage",
        "ReplaceAuthorizersBeforeSwitch",
        "SwitchOrigin",
        "RevokeAll",
    ]
    tail = timings.token_cache_max_age + timings.authorizer_ttl
    assert timings.revoke_bound() == (
        math.ceil(timings.revoke_stage_wait) + len(budget.tasks) * timings.task_budget + tail
    )
    preempting = revoke_budget("all", preempting=True)
    assert timings.revoke_bound(preempting=True) == (
        math.ceil(timings.revoke_stage_wait)
        + math.ceil(timings.fence_settle)
        + len(preempting.tasks) * timings.task_budget
        + tail
    )
    with_retries = timings.revoke_bound(retries=True)
    assert with_retries - timings.revoke_bound() == pytest.approx(
        budget.retry_wait_seconds + (budget.invocations - len(budget.tasks)) * timings.task_budget
    )


def test_a_stopped_holder_keeps_its_lock_longer_than_its_step_can_run() -> None:
    # A stopped execution's Lambda invocation runs on up to the function's timeout: the lock
    # must not be taken over before that (rotate.adapters.Lock)
    settings = RotateSettings.from_env({"SSM_PARAMETER_NAME": "/p", "DISTRIBUTION_ID": "E1"})
    assert settings.lock_takeover_grace_seconds > function_timeout_seconds()
    assert f"({settings.lock_takeover_grace_seconds:.0f} s)" in RUNBOOK.read_text()
