"""``revoke all`` started during each state of a running rotation: the real ASL in moto.

Whatever state the rotation is in — a task under way (slowed down so that the revoke meets it
there) or a wait — the revoke takes the lock at once, stops the rotation with
``PreemptedError``, settles if a step was under way, and completes; the sampler checks
invariant 1 throughout (every value an edge may send is accepted by a real authorizer
instance, except the revoked values edges not yet switched still send: the price), and no
value reaches any history (invariant 2).
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.statemachine.conftest import REVOKE_ALL, ROTATE
from tokens.document import TokenDocument

pytestmark = pytest.mark.statemachine

# The rotation's states, and the step to slow down so that the rotation is caught there with
# its task under way (None: a Wait state, or a step too short to catch otherwise).
STATES = {
    "AcquireLock": "acquire_lock",
    "Stage": "stage",
    "WaitForAuthorizers": None,
    "SwitchOrigin": "switch",
    "CheckDeployed": "check_deployed",
    "WaitForDeployment": None,
    "Verify": "verify",
    "Promote": "promote",
    "Drain": None,
    "Retire": "retire",
    "ResetCaches": "reset_authorizer_caches",
}
SLOW = 1.5


def accepted(document: TokenDocument) -> set[str]:
    return {v.decode() for _, v in document.accepted()}


@pytest.mark.parametrize("state", list(STATES))
def test_a_revoke_all_started_during_each_state_preempts_the_rotation(
    make_world: Any, capfd: Any, state: str
) -> None:
    # Given a rotation that has entered *state* (its task slowed down, if it has one)
    world = make_world(edges=3, deploy_window=(1.5, 2.5), rotate_env={"DRAIN_SECONDS": "3"})
    step = STATES[state]
    if step is not None:
        world.lambdas.delay_steps[step] = SLOW
    rotation = world.start(ROTATE)
    deadline = time.monotonic() + 60
    while state not in world.entered_states(rotation):
        assert time.monotonic() < deadline, f"the rotation never entered {state}"
        world.sample()
    before = world.document()

    # When the current value leaks and revoke all starts at once
    revoke = world.start(REVOKE_ALL)
    revoked_result = world.wait(revoke, timeout=90)
    preempted = world.client("stepfunctions").describe_execution(executionArn=rotation)

    # Then the revoke succeeded
    assert revoked_result["status"] == "SUCCEEDED", revoked_result
    # (with a settle, AcquireLock runs twice: the first took the lock from the rotation)
    lock = world.step_outputs(revoke, "AcquireLock")[0]["lock"]["result"]
    if state == "AcquireLock":
        # (the rotation's own AcquireLock, slowed down, ran after the revoke took the lock:
        # there was nothing to preempt, and the manual rotation was refused)
        assert lock["preempted"] is None
        assert preempted["status"] == "FAILED"
        assert preempted["error"] == "RotationInProgressError"
        final = world.document()
        revoked = frozenset(world.seen_values - {final.current})
        world.assert_invariants(
            rotation, revoke, output="".join(capfd.readouterr()), revoked=revoked
        )
        return
    # and the rotation was stopped, saying by whom
    assert preempted["status"] == "ABORTED", preempted["status"]
    assert preempted["error"] == "PreemptedError"
    assert revoke.rsplit(":", 1)[-1] in preempted["cause"]
    assert lock["preempted"]["execution"] == rotation.rsplit(":", 1)[-1]
    states = world.entered_states(revoke)
    # it settled exactly when the rotation had a task under way
    assert ("FenceSettle" in states) == lock["preempted"]["step_in_flight"]
    if step is not None:
        assert lock["preempted"]["step_in_flight"] is True
    # only the new value is accepted and CloudFront sends it
    final = world.document()
    assert accepted(final) == {final.current}
    assert before.current not in accepted(final)
    world.edges.finish_deployments()
    assert world.configured_value() == final.current
    assert world.lock_holder() is None
    # invariant 1 throughout, but for what the revoke revoked; invariant 2 everywhere
    revoked = frozenset(world.seen_values - {final.current})
    world.assert_invariants(rotation, revoke, output="".join(capfd.readouterr()), revoked=revoked)
