"""The workflow's lock (rotate.adapters.Lock) against moto's SSM and Step Functions.

When is a holder's lock free for the next execution? When the holder can no longer change the
target. A stopped or timed-out execution may still have a Lambda invocation under way (Step
Functions does not end it), so its lock stays held for a grace longer than the function's
timeout — except for a revoke, which preempts: it takes the lock from a less urgent running
holder (or any stopped one), stops it, and from then on every write of the old holder is
refused by the fence.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from originlock.sandbox.harness import install_stop_execution_details
from rotate.adapters import FENCE_SEND_WITHIN_SECONDS, Fence, Lock, _LazyClients
from rotate.errors import LockLostError, RotationInProgressError, StoreUnavailableError
from rotate.settings import RotateSettings

PARAMETER = "/originlock/lock-test/token"
DEFINITION = json.dumps({"StartAt": "Wait", "States": {"Wait": {"Type": "Pass", "End": True}}})


@pytest.fixture
def sfn(aws: None) -> Iterator[Any]:
    install_stop_execution_details()  # as AWS: StopExecution records its error and cause
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

    assert result["acquired"] is True
    assert result["took_over"] == holder.rsplit(":", 1)[-1]
    assert result["preempted"] is None
    assert lock().holder() == f"{state_machine}:next"


def test_a_holder_that_no_longer_exists_is_taken_over(sfn: Any, state_machine: str) -> None:
    gone = f"{state_machine.replace(':stateMachine:', ':execution:')}:gone"
    lock().acquire(gone, {"mode": "rotate"})

    result = lock().acquire(f"{state_machine}:next", {"mode": "rotate"})

    assert result["took_over"] == "gone"


ROTATE = {"mode": "rotate", "trigger": "manual"}
SCHEDULED = {"mode": "rotate", "trigger": "schedule"}
REVOKE_ALL = {"mode": "revoke", "revoke": "all", "trigger": "manual"}
REVOKE_PREVIOUS = {"mode": "revoke", "revoke": "previous", "trigger": "manual"}


def running(sfn: Any, state_machine: str, detail: dict[str, Any]) -> str:
    """A running execution that takes the lock with *detail* (its mode)."""
    arn = str(sfn.start_execution(stateMachineArn=state_machine)["executionArn"])
    lock().acquire(arn, detail)
    return arn


@pytest.mark.parametrize(
    ("held", "by"),
    [(ROTATE, REVOKE_ALL), (ROTATE, REVOKE_PREVIOUS), (REVOKE_PREVIOUS, REVOKE_ALL)],
    ids=["rotation-by-revoke-all", "rotation-by-revoke-previous", "revoke-previous-by-all"],
)
def test_a_revoke_preempts_a_less_urgent_running_holder(
    sfn: Any, state_machine: str, held: dict[str, Any], by: dict[str, Any]
) -> None:
    # Given a running execution holding the lock
    holder = running(sfn, state_machine, held)
    revoke = str(sfn.start_execution(stateMachineArn=state_machine)["executionArn"])

    # When a more urgent revoke asks for it
    result = lock().acquire(revoke, by)

    # Then the revoke holds it at once, the holder is stopped with a named error saying by
    # whom, and the workflow is told to settle (the holder's step may be under way)
    assert result["acquired"] is True
    assert result["preempted"]["execution"] == holder.rsplit(":", 1)[-1]
    assert result["preempted"]["mode"] == held["mode"]
    assert result["settle"] is True
    assert lock().holder() == revoke
    stopped = sfn.describe_execution(executionArn=holder)
    assert stopped["status"] == "ABORTED"
    assert stopped["error"] == "PreemptedError"
    assert revoke.rsplit(":", 1)[-1] in stopped["cause"]


@pytest.mark.parametrize(
    ("held", "by"),
    [(REVOKE_ALL, REVOKE_ALL), (REVOKE_ALL, REVOKE_PREVIOUS), (REVOKE_PREVIOUS, REVOKE_PREVIOUS)],
    ids=["all-during-all", "previous-during-all", "previous-during-previous"],
)
def test_a_revoke_never_preempts_an_equal_or_more_urgent_one(
    sfn: Any, state_machine: str, held: dict[str, Any], by: dict[str, Any]
) -> None:
    holder = running(sfn, state_machine, held)

    with pytest.raises(RotationInProgressError, match="holds the lock"):
        lock().acquire(f"{state_machine}:second", by)
    assert lock().holder() == holder
    assert sfn.describe_execution(executionArn=holder)["status"] == "RUNNING"


@pytest.mark.parametrize("held", [ROTATE, REVOKE_ALL], ids=["rotation", "revoke"])
def test_a_scheduled_rotation_yields_to_any_running_holder(
    sfn: Any, state_machine: str, held: dict[str, Any]
) -> None:
    holder = running(sfn, state_machine, held)

    result = lock().acquire(f"{state_machine}:scheduled", SCHEDULED)

    assert result["acquired"] is False
    assert "holds the lock" in result["skipped"]
    assert lock().holder() == holder


def test_a_manual_rotation_never_preempts(sfn: Any, state_machine: str) -> None:
    holder = running(sfn, state_machine, ROTATE)

    with pytest.raises(RotationInProgressError):
        lock().acquire(f"{state_machine}:manual", ROTATE)
    assert lock().holder() == holder


def test_a_revoke_takes_over_a_holder_stopped_within_the_grace(
    sfn: Any, state_machine: str
) -> None:
    # Given a rotation stopped by hand a moment ago (a rotation would wait 130 s)
    holder = held_by(sfn, state_machine, stop=True)

    # When a revoke asks for the lock, Then it takes it at once, and settles
    result = lock().acquire(f"{state_machine}:revoke", REVOKE_ALL)
    assert result["preempted"]["was_running"] is False
    assert result["settle"] is True
    assert lock().holder() == f"{state_machine}:revoke"
    assert sfn.describe_execution(executionArn=holder)["status"] == "ABORTED"


def test_a_preempted_holder_can_neither_write_nor_release(sfn: Any, state_machine: str) -> None:
    # Given a rotation preempted by a revoke
    holder = running(sfn, state_machine, ROTATE)
    assert lock().fence(holder).execution_id == holder
    revoke = running(sfn, state_machine, REVOKE_ALL)
    assert lock().holder() == revoke

    # Then its fence refuses every further write, naming the new holder
    with pytest.raises(LockLostError, match=revoke.rsplit(":", 1)[-1]):
        lock().fence(holder)
    # and its release (its failure path) leaves the revoke's lock in place
    assert lock().release(holder) is False
    assert lock().holder() == revoke
    assert lock().release(revoke) is True
    assert lock().holder() is None  # (a record of nobody while the revoke's settle lasts)


def test_a_fence_goes_stale_after_its_send_window() -> None:
    # Given a fence checked at t = 100
    now = [100.0]
    fence = Fence("arn:execution", 100.0, lambda: now[0])

    # Then a write may be sent within the window, and is refused (retried after a fresh
    # check) after it: a write must land soon after the check that allowed it
    now[0] += FENCE_SEND_WITHIN_SECONDS
    fence.ensure_fresh()
    now[0] += 0.01
    with pytest.raises(StoreUnavailableError, match="too old"):
        fence.ensure_fresh()


def test_the_cli_ranks_requests_as_the_lock_does() -> None:
    # The CLI says what a revoke will preempt before it starts: the same order as the lock
    from originlock.operations import PRIORITIES as CLI_PRIORITIES
    from rotate.adapters import PRIORITIES

    assert dict(PRIORITIES) == CLI_PRIORITIES


def test_a_revoke_that_preempts_a_settling_revoke_settles_too(
    sfn: Any, state_machine: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a rotation preempted with its step in flight by a revoke previous, which settles
    rotation = running(sfn, state_machine, ROTATE)
    first = str(sfn.start_execution(stateMachineArn=state_machine)["executionArn"])
    assert lock().acquire(first, REVOKE_PREVIOUS)["settle"] is True
    # (waiting in FenceSettle, the revoke has no step of its own under way)
    monkeypatch.setattr(Lock, "step_in_flight", lambda self, arn: False)

    # When a revoke all preempts it before its settle ends
    second = str(sfn.start_execution(stateMachineArn=state_machine)["executionArn"])
    result = lock().acquire(second, REVOKE_ALL)

    # Then it settles as well: the rotation's write may still land
    assert result["settle"] is True
    assert result["preempted"]["was_settling"] is True
    assert lock().holder() == second
    assert sfn.describe_execution(executionArn=rotation)["status"] == "ABORTED"


def test_a_stale_settling_holder_passes_its_settle_on(
    sfn: Any, state_machine: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a revoke that preempted a rotation (settling) and then failed at once
    running(sfn, state_machine, ROTATE)
    revoke = str(sfn.start_execution(stateMachineArn=state_machine)["executionArn"])
    assert lock().acquire(revoke, REVOKE_ALL)["settle"] is True
    monkeypatch.setattr(Lock, "still_acting", lambda self, arn: None)

    # When the next execution takes its stale lock over within that settle
    later = str(sfn.start_execution(stateMachineArn=state_machine)["executionArn"])
    result = lock().acquire(later, ROTATE)

    # Then it waits the settle too, before it reads or writes anything
    assert result["took_over"] == revoke.rsplit(":", 1)[-1]
    assert result["settle"] is True


def test_a_settle_that_ended_is_not_passed_on(
    sfn: Any, state_machine: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    running(sfn, state_machine, ROTATE)
    revoke = str(sfn.start_execution(stateMachineArn=state_machine)["executionArn"])
    assert lock().acquire(revoke, REVOKE_ALL)["settle"] is True
    monkeypatch.setattr(Lock, "still_acting", lambda self, arn: None)

    # 21 s later (the settle is 20 s)
    later_lock = lock()
    later_lock.wall_clock = lambda: time.time() + 21
    result = later_lock.acquire(
        str(sfn.start_execution(stateMachineArn=state_machine)["executionArn"]), ROTATE
    )

    assert result["settle"] is False


def test_a_settling_holder_that_releases_passes_its_settle_on(sfn: Any, state_machine: str) -> None:
    # Given a revoke that preempted a rotation (settling) and whose run then failed at once:
    # its failure path releases the lock before the settle has ended
    running(sfn, state_machine, ROTATE)
    revoke = str(sfn.start_execution(stateMachineArn=state_machine)["executionArn"])
    assert lock().acquire(revoke, REVOKE_ALL)["settle"] is True
    assert lock().release(revoke) is True

    # When the next execution takes the lock within that settle
    later = str(sfn.start_execution(stateMachineArn=state_machine)["executionArn"])
    result = lock().acquire(later, ROTATE)

    # Then it settles too: the rotation's write may still land (a deleted lock would have
    # let it write at once, and the rotation's write land after its own)
    assert result["settle"] is True
    assert lock().holder() == later


def test_a_release_after_the_settle_deletes_the_lock(sfn: Any, state_machine: str) -> None:
    running(sfn, state_machine, ROTATE)
    revoke = str(sfn.start_execution(stateMachineArn=state_machine)["executionArn"])
    assert lock().acquire(revoke, REVOKE_ALL)["settle"] is True

    # 21 s later (the settle is 20 s): nothing is left to wait for
    later_lock = lock()
    later_lock.wall_clock = lambda: time.time() + 21
    assert later_lock.release(revoke) is True

    assert lock().holder() is None
    fresh = str(sfn.start_execution(stateMachineArn=state_machine)["executionArn"])
    assert lock().acquire(fresh, ROTATE) == {
        "acquired": True,
        "took_over": None,
        "preempted": None,
        "settle": False,
        "skipped": None,
    }


def test_a_revoke_reads_the_holders_history_only_once_it_holds_the_lock(
    sfn: Any, state_machine: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A step the holder starts after the takeover fails its fence; one it started before
    # shows in the history, provided the history is read after the takeover
    running(sfn, state_machine, ROTATE)
    revoke = str(sfn.start_execution(stateMachineArn=state_machine)["executionArn"])
    holders_seen: list[str | None] = []

    def step_in_flight(self: Lock, arn: str) -> bool:
        holders_seen.append(self.holder())
        return False

    monkeypatch.setattr(Lock, "step_in_flight", step_in_flight)

    lock().acquire(revoke, REVOKE_ALL)

    assert holders_seen == [revoke]


def test_the_loser_of_a_takeover_race_is_retried_and_then_preempts(
    sfn: Any, state_machine: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a rotation's lock, and a revoke previous that takes it over first
    rotation = running(sfn, state_machine, ROTATE)
    previous = str(sfn.start_execution(stateMachineArn=state_machine)["executionArn"])
    revoke_all = str(sfn.start_execution(stateMachineArn=state_machine)["executionArn"])
    contender = lock()
    seen = contender.read()
    assert seen is not None and seen.execution == rotation
    lock().acquire(previous, REVOKE_PREVIOUS)

    # When revoke all, which read the rotation's record before that, tries the same takeover
    with pytest.raises(StoreUnavailableError, match="took it over first"):
        contender._take_over(seen, json.dumps({"execution": revoke_all, **REVOKE_ALL}))

    # Then its retry (the workflow retries StoreUnavailableError) meets the winner and
    # preempts it: an emergency revoke is never lost to a race
    result = lock().acquire(revoke_all, REVOKE_ALL)
    assert result["preempted"]["execution"] == previous.rsplit(":", 1)[-1]
    assert lock().holder() == revoke_all


def test_each_record_can_be_taken_over_once_and_the_next_again(
    sfn: Any, state_machine: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An unreadable lock, taken over, then unreadable again later: not blocked by the first
    # takeover's marker (markers name the record's version)
    ssm = boto3.client("ssm")
    for attempt in range(2):
        ssm.put_parameter(Name=f"{PARAMETER}.lock", Value="garbage", Type="String", Overwrite=True)
        arn = str(sfn.start_execution(stateMachineArn=state_machine)["executionArn"])
        result = lock().acquire(arn, ROTATE)
        assert result["took_over"] == "unreadable-lock", attempt
        assert lock().holder() == arn


@pytest.mark.parametrize("by", [REVOKE_ALL, REVOKE_PREVIOUS], ids=["revoke-all", "revoke-previous"])
def test_a_revoke_keeps_the_lock_a_preempted_release_deleted_before_the_revoke_looked(
    sfn: Any, state_machine: str, monkeypatch: pytest.MonkeyPatch, by: dict[str, Any]
) -> None:
    # Given a rotation in its ReleaseLock: its fence check passed just before a revoke took
    # the lock over, so its DeleteParameter is on its way
    rotation = running(sfn, state_machine, ROTATE)
    assert lock().fence(rotation).execution_id == rotation
    revoke = str(sfn.start_execution(stateMachineArn=state_machine)["executionArn"])
    release = lock()

    def release_lands_then_history(self: Lock, arn: str) -> bool:
        # the delete lands after the takeover, and the release has returned by the time the
        # revoke reads the rotation's history: no step under way, so no settle
        release.clients.get("ssm", fenced=True).delete_parameter(Name=release.name)
        return False

    monkeypatch.setattr(Lock, "step_in_flight", release_lands_then_history)

    # When the revoke takes the lock
    result = lock().acquire(revoke, by)

    # Then it holds it when it goes on without a settle: its fenced writes are allowed
    # (without the lock, the revoke's first write failed with LockLostError: nothing revoked)
    assert result["settle"] is False
    assert result["preempted"]["execution"] == rotation.rsplit(":", 1)[-1]
    assert lock().holder() == revoke
    assert lock().fence(revoke).execution_id == revoke


def test_a_revoke_whose_lock_was_released_and_taken_meanwhile_is_retried(
    sfn: Any, state_machine: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a preempted release that deleted the revoke's lock, and a manual rotation that
    # created it in the instant before the revoke looked again
    running(sfn, state_machine, ROTATE)
    revoke = str(sfn.start_execution(stateMachineArn=state_machine)["executionArn"])
    other = str(sfn.start_execution(stateMachineArn=state_machine)["executionArn"])

    def released_and_taken(self: Lock, arn: str) -> bool:
        self.clients.get("ssm").delete_parameter(Name=self.name)
        assert lock().acquire(other, ROTATE)["acquired"] is True
        return False

    monkeypatch.setattr(Lock, "step_in_flight", released_and_taken)

    # Then the revoke does not go on without the lock: it fails with a retried error, and its
    # retry preempts the newcomer
    with pytest.raises(StoreUnavailableError, match="retried"):
        lock().acquire(revoke, REVOKE_ALL)
    monkeypatch.setattr(Lock, "step_in_flight", lambda self, arn: False)
    result = lock().acquire(revoke, REVOKE_ALL)
    assert result["preempted"]["execution"] == other.rsplit(":", 1)[-1]
    assert lock().holder() == revoke


def test_a_released_record_is_taken_over_again_in_a_later_incident(
    sfn: Any, state_machine: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given, twice (days apart, the lock deleted by a normal release in between): a rotation
    # preempted in a Wait state by a revoke previous that ends within its settle (a record of
    # nobody is left), then the next execution, which takes that record over
    monkeypatch.setattr(Lock, "step_in_flight", lambda self, arn: False)
    later = [0.0]

    def at(offset: float) -> Lock:
        found = lock()
        found.wall_clock = lambda: time.time() + offset
        return found

    for incident in (1, 2):
        running(sfn, state_machine, ROTATE)
        previous = str(sfn.start_execution(stateMachineArn=state_machine)["executionArn"])
        assert at(later[0]).acquire(previous, REVOKE_PREVIOUS)["settle"] is False
        assert at(later[0]).release(previous) is True
        assert lock().holder() is None  # (a record of nobody, settling)

        # When the next execution comes within that settle
        revoke = str(sfn.start_execution(stateMachineArn=state_machine)["executionArn"])
        result = at(later[0]).acquire(revoke, REVOKE_ALL)

        # Then it takes the record over and settles, each time (the second incident's record
        # has the same holder name and version as the first's: the marker must still differ)
        assert (result["took_over"], result["settle"]) == ("released", True), incident
        assert at(later[0] + 25).release(revoke) is True
        assert lock().holder() is None
        later[0] += 86_400
        time.sleep(0.01)  # (the records' write times differ, as days apart would)


def test_a_released_record_landing_after_a_preemption_is_taken_over_at_once(
    sfn: Any, state_machine: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a revoke previous holding the lock whose settle has ended
    running(sfn, state_machine, ROTATE)
    previous = str(sfn.start_execution(stateMachineArn=state_machine)["executionArn"])
    assert lock().acquire(previous, REVOKE_PREVIOUS)["settle"] is True
    late = lock()
    late.wall_clock = lambda: time.time() + 21

    # When a revoke all preempts it, and the revoke previous's release (its fence check made
    # just before the takeover) lands before the revoke all looks again: a record of nobody
    def step_in_flight(self: Lock, arn: str) -> bool:
        record = {"execution": "released", "settle_until": time.time() - 1}
        ssm = boto3.client("ssm")
        ssm.put_parameter(
            Name=f"{PARAMETER}.lock", Value=json.dumps(record), Type="String", Overwrite=True
        )
        return False

    monkeypatch.setattr(Lock, "step_in_flight", step_in_flight)
    revoke = str(sfn.start_execution(stateMachineArn=state_machine)["executionArn"])
    result = late.acquire(revoke, REVOKE_ALL)

    # Then the revoke all holds the lock at once, and says what it preempted
    assert lock().holder() == revoke
    assert result["settle"] is False
    assert result["preempted"]["execution"] == previous.rsplit(":", 1)[-1]
