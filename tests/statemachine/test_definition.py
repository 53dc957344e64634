"""The ASL file itself: valid for an ASL validator, and free of anything secret."""

from __future__ import annotations

import inspect
import json
import re
import shutil
import subprocess

import pytest

from infra.constants import ROOT
from originlock.sandbox.harness import STATE_MACHINE_FILE, load_definition
from rotate.steps import STEPS

pytestmark = pytest.mark.statemachine


def test_definition_passes_the_asl_validator() -> None:
    npx = shutil.which("npx")
    assert npx, "node/npx is required (make test installs the pinned validator)"
    result = subprocess.run(
        [npx, "--no-install", "asl-validator", "--json-path", str(STATE_MACHINE_FILE)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_definition_uses_jsonpath_and_only_the_function_placeholder() -> None:
    text = STATE_MACHINE_FILE.read_text()
    assert json.loads(text)["QueryLanguage"] == "JSONPath"
    assert set(re.findall(r"\$\{(\w+)\}", text)) == {"RotateFunctionArn"}
    with pytest.raises(ValueError, match="unsubstituted"):
        load_definition({})


def test_every_task_after_the_lock_releases_it_on_failure() -> None:
    states = json.loads(STATE_MACHINE_FILE.read_text())["States"]
    before_lock = {
        "Validate",
        "AcquireLock",
        "ReleaseLock",
        "ReleaseLockAfterFailure",
        "ResetCachesAfterFailure",
    }
    for name, state in states.items():
        if state["Type"] != "Task" or name in before_lock:
            continue
        catches = [c for c in state.get("Catch", []) if "States.ALL" in c["ErrorEquals"]]
        assert catches and catches[0]["Next"] == "AfterFailure", name
    # After a revoke step, a failure still empties the caches before the lock is released
    assert states["AfterFailure"]["Choices"][0]["Next"] == "ResetCachesAfterFailure"
    assert states["ResetCachesAfterFailure"]["Next"] == "ReleaseLockAfterFailure"


def test_no_task_passes_anything_but_state_and_step_names() -> None:
    # Payloads are built from the state (fingerprints only) and literal step names: no state
    # may reference a token value path, because none exists.
    states = json.loads(STATE_MACHINE_FILE.read_text())["States"]
    for state in states.values():
        payload = state.get("Parameters", {}).get("Payload", {})
        assert set(payload) <= {
            "step",
            "execution_id.$",
            "state.$",
            "input.$",
            "fresh_instances",
            "tag",
        }


def test_every_task_that_calls_cloudfront_retries_its_throttling_as_the_switch_does() -> None:
    # The steps that call CloudFront are the ones that use the distribution port
    calls_cloudfront = {
        name for name, step in STEPS.items() if "ports.distribution." in inspect.getsource(step)
    }
    assert calls_cloudfront == {
        "stage",
        "switch",
        "check_deployed",
        "promote",
        "retire",
        "revoke_previous",
        "revoke_all",
    }
    states = json.loads(STATE_MACHINE_FILE.read_text())["States"]
    policy = {"IntervalSeconds": 1, "MaxAttempts": 6, "BackoffRate": 2, "JitterStrategy": "FULL"}
    tasks = {
        name: state
        for name, state in states.items()
        if state["Type"] == "Task" and state["Parameters"]["Payload"]["step"] in calls_cloudfront
    }
    assert "Stage" in tasks and "RevokeAll" in tasks
    for name, state in tasks.items():
        retriers = state["Retry"]
        found = [
            i for i, r in enumerate(retriers) if "CloudFrontThrottledError" in r["ErrorEquals"]
        ]
        assert found, name
        retrier = retriers[found[0]]
        assert {k: retrier.get(k) for k in policy} == policy, name
        # Retriers are tried in order: none before it may match every error
        assert not any("States.ALL" in r["ErrorEquals"] for r in retriers[: found[0] + 1]), name
