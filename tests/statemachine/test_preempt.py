"""A revoke (``all`` or ``previous``) started during each state of a running rotation: the real
ASL in moto.

Whatever state the rotation is in — a task under way (slowed down so that the revoke meets it
there) or a wait — the revoke takes the lock at once, stops the rotation with
``PreemptedError``, settles if and only if a step was under way, and completes; what the
rotation had staged or switched CloudFront to is handled as docs/runbook.md says ("What
happens to what the interrupted run left"), and the lock is free at the end. The sampler checks
invariant 1 throughout (every value an edge may send is accepted by a real authorizer
instance, except, for ``revoke all``, the revoked values edges not yet switched still send: the
price), and no value reaches any history (invariant 2).

A rotation caught in its ``ReleaseLock`` after its fence check passed sends a
``DeleteParameter`` that deletes whatever lock is there: the revoke's, once it has taken over.
The revoke creates the lock again, after its settle if it saw the release under way, at once if
the release had ended by the time it looked.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from moto.ssm.models import SimpleSystemManagerBackend
from moto.stepfunctions.responses import StepFunctionResponse

from tests.statemachine.conftest import REVOKE_ALL, REVOKE_PREVIOUS, ROTATE
from tokens.document import TokenDocument, fingerprint, generate_token

pytestmark = pytest.mark.statemachine

# The rotation's states: the step to slow down so that the rotation is caught there with its
# task under way (None: a Wait state), and how far the rotation had got when the revoke reads
# the target (a slowed step runs only after the takeover: its fence refuses its write).
STATES: dict[str, tuple[str | None, str]] = {
    "AcquireLock": ("acquire_lock", "nothing"),
    "Stage": ("stage", "nothing"),
    "WaitForAuthorizers": (None, "staged"),
    "SwitchOrigin": ("switch", "staged"),
    "CheckDeployed": ("check_deployed", "switched"),
    "WaitForDeployment": (None, "switched"),
    "Verify": ("verify", "switched"),
    "Promote": ("promote", "switched"),
    "Drain": (None, "promoted"),
    "Retire": ("retire", "promoted"),
    "ResetCaches": ("reset_authorizer_caches", "retired"),
    "ReleaseLock": ("release_lock", "retired"),
}
PREEMPTORS = {"revoke-all": REVOKE_ALL, "revoke-previous": REVOKE_PREVIOUS}
SLOW = 1.5


def accepted(document: TokenDocument) -> set[str]:
    return {v.decode() for _, v in document.accepted()}


class Target:
    """A target rotated before: CloudFront sends *old*, and *older* is still accepted as
    previous (so that ``revoke previous`` has something to revoke whatever the rotation did)."""

    def __init__(self, make_world: Any, **rotate_env: str) -> None:
        self.old, self.older = generate_token(), generate_token()
        self.world = make_world(
            edges=3,
            deploy_window=(1.5, 2.5),
            rotate_env={"DRAIN_SECONDS": "3", **rotate_env},
            initial_document=TokenDocument()
            .evolve(current=self.old, previous=self.older)
            .to_json(),
        )

    def rotation_in(self, state: str) -> str:
        """Start a manual rotation and return once it has entered *state*."""
        rotation = self.world.start(ROTATE)
        deadline = time.monotonic() + 60
        while state not in self.world.entered_states(rotation):
            assert time.monotonic() < deadline, f"the rotation never entered {state}"
            self.world.sample()
        return rotation

    def assert_left(
        self, preemptor: str, progress: str, rotation: str, revoke: str
    ) -> frozenset[str]:
        """What the revoke left, given how far the rotation had got (docs/runbook.md, "What
        happens to what the interrupted run left"); returns the values it revoked that edges
        may still have sent (refusing them is revoke all's price)."""
        world = self.world
        final = world.document()
        stage = world.step_output(rotation, "Stage").get("stage") or {}
        staged = stage.get("result", {}).get("pending")
        world.edges.finish_deployments()
        sent = world.configured_value()
        assert self.older not in accepted(final)
        # the revoke held the lock to its end, and released it
        released = world.step_output(revoke, "ReleaseLock")["released"]["result"]
        assert released["released"] is True
        assert world.lock_holder() is None
        if preemptor == "revoke-all":
            # only the new value is accepted and CloudFront sends it; a value the rotation had
            # switched CloudFront to is kept as that value, any other is replaced
            assert accepted(final) == {final.current}
            assert self.old not in accepted(final)
            assert sent == final.current
            assert (fingerprint(final.current) == staged) is (progress == "switched")
            return frozenset(world.seen_values - {final.current})
        # revoke previous drops previous only: what CloudFront sends (and a value staged for the
        # next rotation) stays accepted
        assert final.previous is None
        if progress == "nothing":
            assert accepted(final) == {self.old} == {sent}
        elif progress in ("staged", "switched"):
            assert final.current == self.old
            assert fingerprint(final.pending) == staged
            assert sent == (self.old if progress == "staged" else final.pending)
        else:
            assert accepted(final) == {final.current} == {sent}
            assert fingerprint(final.current) == staged
        # it never refuses a value an edge may send: nothing is excepted from invariant 1
        return frozenset()


@pytest.mark.parametrize("state", list(STATES))
@pytest.mark.parametrize("preemptor", list(PREEMPTORS))
def test_a_revoke_started_during_each_state_preempts_the_rotation(
    make_world: Any, capfd: Any, preemptor: str, state: str
) -> None:
    # Given a rotation that has entered *state* (its task slowed down, if it has one)
    target = Target(make_world)
    world = target.world
    step, progress = STATES[state]
    if step is not None:
        world.lambdas.delay_steps[step] = SLOW
    if state == "AcquireLock" and preemptor == "revoke-previous":
        # (revoke previous alone can end before the rotation's slowed AcquireLock runs; slowed
        # as well, it still holds the lock then, as revoke all does)
        world.lambdas.delay_steps["revoke_previous"] = SLOW
    rotation = target.rotation_in(state)

    # When the revoke starts at once
    revoke = world.start(PREEMPTORS[preemptor])
    revoked_result = world.wait(revoke, timeout=90)
    # (moto marks a stopped execution ABORTED once its task under way has returned)
    preempted = world.wait(rotation, timeout=30)

    # Then the revoke succeeded
    assert revoked_result["status"] == "SUCCEEDED", revoked_result
    # (with a settle, AcquireLock runs twice: the first took the lock from the rotation)
    lock = world.step_outputs(revoke, "AcquireLock")[0]["lock"]["result"]
    states = world.entered_states(revoke)
    if state == "AcquireLock":
        # (the rotation's own AcquireLock, slowed down, ran after the revoke took the lock:
        # there was nothing to preempt, and the manual rotation was refused)
        assert lock["preempted"] is None
        assert "FenceSettle" not in states
        assert preempted["status"] == "FAILED"
        assert preempted["error"] == "RotationInProgressError"
    else:
        # and the rotation was stopped, saying by whom
        assert preempted["status"] == "ABORTED", preempted["status"]
        assert preempted["error"] == "PreemptedError"
        assert revoke.rsplit(":", 1)[-1] in preempted["cause"]
        assert lock["preempted"]["execution"] == rotation.rsplit(":", 1)[-1]
        # it settled exactly when the rotation had a task under way: never in a Wait state
        assert lock["preempted"]["step_in_flight"] is (step is not None)
        assert ("FenceSettle" in states) is (step is not None)
    # and it left what the runbook says, with the lock free
    revoked = target.assert_left(preemptor, progress, rotation, revoke)
    # invariant 1 throughout, but for what revoke all revoked; invariant 2 everywhere
    world.assert_invariants(rotation, revoke, output="".join(capfd.readouterr()), revoked=revoked)


@pytest.mark.parametrize("landing", ["while-the-release-runs", "after-the-release-ended"])
@pytest.mark.parametrize("preemptor", list(PREEMPTORS))
def test_a_revoke_holds_the_lock_that_a_preempted_release_deleted(
    make_world: Any, capfd: Any, monkeypatch: pytest.MonkeyPatch, preemptor: str, landing: str
) -> None:
    # Given a rotation in its ReleaseLock whose fence check passed just before a revoke took
    # the lock over: its DeleteParameter reaches SSM after the takeover (a write in flight),
    # and deletes the revoke's lock
    target = Target(make_world, FENCE_SETTLE_SECONDS="3")
    world = target.world
    lock_name = f"{world.deployment.parameter_name}.lock"
    release_sent = threading.Event()
    revokes: list[str] = []
    deleted: list[str | None] = []  # whose lock the release's delete removed

    def revoke_entered(state: str) -> bool:
        return bool(revokes) and state in world.entered_states(revokes[0])

    def until(condition: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + 30
        while not condition():
            assert time.monotonic() < deadline, f"never: {what}"
            time.sleep(0.02)

    delete = SimpleSystemManagerBackend.delete_parameter

    def delete_in_flight(backend: Any, name: str) -> None:
        if name == lock_name and not release_sent.is_set():
            release_sent.set()
            until(lambda: bool(revokes) and world.lock_holder() == revokes[0], "taken over")
            if landing == "while-the-release-runs":
                # (it lands during the revoke's settle, which it saw under way)
                until(lambda: revoke_entered("FenceSettle"), "the revoke settles")
            deleted.append(world.lock_holder())
        delete(backend, name)

    history = StepFunctionResponse.get_execution_history

    def history_after_the_release(response: Any) -> Any:
        # The revoke reads the rotation's latest events only once the rotation has ended (its
        # release returned): the step is no longer under way, so the revoke does not settle
        if response._get_param("reverseOrder") and response._get_param("executionArn") == rotation:
            describe = world.client("stepfunctions").describe_execution
            until(lambda: describe(executionArn=rotation)["status"] != "RUNNING", "rotation ends")
        return history(response)

    monkeypatch.setattr(SimpleSystemManagerBackend, "delete_parameter", delete_in_flight)
    if landing == "after-the-release-ended":
        monkeypatch.setattr(
            StepFunctionResponse, "get_execution_history", history_after_the_release
        )
    rotation = target.rotation_in("ReleaseLock")
    until(release_sent.is_set, "the release sent its DeleteParameter")

    # When the revoke starts
    revokes.append(world.start(PREEMPTORS[preemptor]))
    revoke = revokes[0]
    revoked_result = world.wait(revoke, timeout=90)
    ended = world.wait(rotation, timeout=30)

    # Then the release did delete the revoke's lock, and yet the revoke succeeded: it held the
    # lock again for its fenced writes
    assert deleted == [revoke]
    assert revoked_result["status"] == "SUCCEEDED", revoked_result
    first, *again = [out["lock"]["result"] for out in world.step_outputs(revoke, "AcquireLock")]
    assert first["preempted"]["execution"] == rotation.rsplit(":", 1)[-1]
    states = world.entered_states(revoke)
    if landing == "while-the-release-runs":
        # it settled, and its second AcquireLock created the lock again
        assert first["preempted"]["step_in_flight"] is True
        assert "FenceSettle" in states
        assert again and again[-1]["acquired"] is True and again[-1]["preempted"] is None
        assert ended["status"] == "ABORTED" and ended["error"] == "PreemptedError"
    else:
        # it did not settle (nothing under way): its only AcquireLock created the lock again
        assert first["preempted"]["step_in_flight"] is False
        assert "FenceSettle" not in states and not again
        assert ended["status"] == "SUCCEEDED"
    revoked = target.assert_left(preemptor, "retired", rotation, revoke)
    world.assert_invariants(rotation, revoke, output="".join(capfd.readouterr()), revoked=revoked)
