"""The workflow's lock (rotate.adapters.Lock) against moto's SSM and Step Functions.

When is a holder's lock free for the next execution? When the holder can no longer change the
target. A stopped or timed-out execution may still have a Lambda invocation under way (Step
Functions does not end it), so its lock stays held for a grace longer than the function's
timeout.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from rotate.adapters import Lock, _LazyClients
from rotate.errors import RotationInProgressError
from rotate.settings import RotateSettings

PARAMETER = "/originlock/lock-test/token"
DEFINITION = json.dumps({"StartAt": "Wait", "States": {"Wait": {"Type": "Pass", "End": True}}})


@pytest.fixture
def sfn(aws: None) -> Iterator[Any]:
    with mock_aws():
        yield boto3.client("stepfunctions")


@pytest.fixture
def state_machine(sfn: Any) -> str:
    role = "arn:aws:iam::123456789012:role/unused"
    created = sfn.create_state_machine(name="lock-test", definition=DEFINITION, roleArn=role)
    return str(created["stateMachineArn"])


def lock(grace: float = 130.0) -> Lock:
    settings = RotateSettings.from_env(
        {
            "SSM_PARAMETER_NAME": PARAMETER,
            "DISTRIBUTION_ID": "E1",
            "LOCK_TAKEOVER_GRACE_SECONDS": str(grace),
        }
    )
    return Lock(settings, _LazyClients())


def held_by(sfn: Any, state_machine: str, *, stop: bool) -> str:
    """A lock held by a new execution of *state_machine*, stopped if *stop*."""
    holder = str(sfn.start_execution(stateMachineArn=state_machine)["executionArn"])
    lock().acquire(holder, {"mode": "rotate"})
    if stop:
        sfn.stop_execution(executionArn=holder)
    return holder


def test_a_running_holder_keeps_the_lock(sfn: Any, state_machine: str) -> None:
    held_by(sfn, state_machine, stop=False)

    with pytest.raises(RotationInProgressError, match="holds the lock"):
        lock().acquire(f"{state_machine}:next", {"mode": "rotate"})


def test_a_holder_stopped_within_the_grace_keeps_the_lock(sfn: Any, state_machine: str) -> None:
    # Given a holder stopped a moment ago (its last Lambda invocation may still be writing)
    holder = held_by(sfn, state_machine, stop=True)
    assert sfn.describe_execution(executionArn=holder)["status"] == "ABORTED"

    # Then the next execution is refused, and told when the lock frees itself
    with pytest.raises(RotationInProgressError, match=r"ended ABORTED .* free in 1[23]\d s"):
        lock().acquire(f"{state_machine}:next", {"mode": "rotate"})
    assert lock().holder() == holder


def test_a_holder_stopped_longer_than_the_grace_ago_is_taken_over(
    sfn: Any, state_machine: str
) -> None:
    holder = held_by(sfn, state_machine, stop=True)

    result = lock(grace=0).acquire(f"{state_machine}:next", {"mode": "rotate"})

    assert result == {"acquired": True, "took_over": holder.rsplit(":", 1)[-1]}
    assert lock().holder() == f"{state_machine}:next"


def test_a_holder_that_no_longer_exists_is_taken_over(sfn: Any, state_machine: str) -> None:
    gone = f"{state_machine.replace(':stateMachine:', ':execution:')}:gone"
    lock().acquire(gone, {"mode": "rotate"})

    result = lock().acquire(f"{state_machine}:next", {"mode": "rotate"})

    assert result["took_over"] == "gone"
