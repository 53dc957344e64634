"""The real rotation workflow in edge-signed mode: the KeyValueStore's key, the real CloudFront
Function at every edge, each edge picking up a write at its own moment and reading its own
clock (docs/edge-signed.md).

The sampler (conftest.World) checks invariant 1 throughout every run: the key every edge signs
with is accepted, and the token it sends is allowed by a real authorizer instance.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from originlock.operations import steps_of
from originlock.sandbox.edgeservices import FOREIGN_KEY
from tests.statemachine.conftest import REVOKE_ALL, ROTATE, EdgeOptions
from tokens.edge import KVS_KEY_NAME, key_id, parse, sign

pytestmark = pytest.mark.statemachine

WINDOW = 10


def staggered(version: int, edge: int) -> float:
    """Edge 0 picks up a write 0.2 s after it, edge 3 1.1 s after it."""
    return 0.2 + 0.3 * edge


def test_edge_rotation_loses_nothing_while_edges_pick_up_the_key_at_different_moments(
    make_world: Any, capfd: Any
) -> None:
    # Given edges that each pick up a store write at their own moment
    world = make_world(edge_signed=EdgeOptions(delay=staggered, propagation_wait=1.3))
    old = world.document().current

    # When a rotation runs
    arn, result = world.run(ROTATE)

    # Then it succeeds: every edge signs with the new key, the old one is retired
    assert result["status"] == "SUCCEEDED", result
    document = world.document()
    new = document.current
    assert new not in (None, old) and document.previous is None and document.pending is None
    assert {key for key, _ in world.edge_tokens().values()} == {new}
    assert world.store.get_key(KVS_KEY_NAME)["Value"] == new
    # the edges did sign with both keys at once for a while, and nothing was refused meanwhile
    assert world.mixed_samples > 0
    # the rotate function asked CloudFront's own run of the function before promoting
    assert world.services.function_tests >= 1
    # steps name the key by its id, never by value
    assert world.step_output(arn, "Stage")["stage"]["result"]["pending_kid"] == key_id(new)
    # a token of the retired key is refused by a fresh instance
    world.lambdas.recycle(world.deployment.authorizer_function)
    assert not world.authorize(sign(old, world.deployment.distribution_id, time.time(), WINDOW))
    world.assert_invariants(arn, output="".join(capfd.readouterr()))


def test_edge_kvs_conflicts_are_retried_with_a_fresh_etag(make_world: Any) -> None:
    # Given another writer changes the store before each of our next three writes
    world = make_world(edge_signed=EdgeOptions())
    world.services.foreign_writes_before_next = 3

    # When a rotation runs
    arn, result = world.run(ROTATE)

    # Then each ConflictException made the workflow retry the switch, which read the store's
    # ETag again, and the rotation succeeded without touching the other writer's key
    assert result["status"] == "SUCCEEDED", result
    assert world.services.conflicts == 3
    [switch] = [step for step in steps_of(world.history(arn)) if step.name == "SwitchOrigin"]
    assert switch.retries == 3
    assert world.store.get_key(KVS_KEY_NAME)["Value"] == world.document().current
    assert world.store.get_key(FOREIGN_KEY)["Value"] == "3"
    world.assert_invariants(arn)


def test_edge_revoke_all_refuses_the_leaked_key_in_both_forms(make_world: Any) -> None:
    # Given the signing key leaked, and edges that pick up a write at different moments
    world = make_world(edge_signed=EdgeOptions(delay=staggered, propagation_wait=1.3))
    leaked = world.document().current
    distribution = world.deployment.distribution_id

    # When revoke all runs
    arn, result = world.run(REVOKE_ALL)

    # Then the leaked key is refused as sent and as a signer, the edges sign with a new key
    # that is allowed, and nothing else was refused
    assert result["status"] == "SUCCEEDED", result
    document = world.document()
    assert document.current != leaked and document.previous is None
    assert not world.authorize(leaked)
    assert not world.authorize(sign(leaked, distribution, time.time(), WINDOW))
    assert {key for key, _ in world.edge_tokens().values()} == {document.current}
    assert all(world.authorize_everywhere(token) for _, token in world.edge_tokens().values())
    # (edges that had not picked up the new key yet sent tokens of the revoked one: refused,
    # the documented price of revoke all)
    world.assert_invariants(arn, revoked=frozenset({leaked}))


def test_edge_clock_skew_within_the_tolerance_loses_nothing(make_world: Any, capfd: Any) -> None:
    # Given edges whose clocks run 5 s ahead or behind (the tolerance is one 10 s window, less
    # the time from signing to the authorizer's check: a cold instance here takes seconds)
    skews = {1: 0.5 * WINDOW, 2: -0.5 * WINDOW, 3: 0.3 * WINDOW}
    world = make_world(edge_signed=EdgeOptions(skews=skews))

    # When a rotation runs
    arn, result = world.run(ROTATE)

    # Then every token every edge sent was allowed, whatever window its clock put it in
    assert result["status"] == "SUCCEEDED", result
    windows = {token.window for value in world.seen_values if (token := parse(value))}
    assert len(windows) >= 2
    world.assert_invariants(arn, output="".join(capfd.readouterr()))


def test_edge_a_header_value_replayed_beyond_the_tolerance_is_refused(make_world: Any) -> None:
    # Given an edge sending tokens (the value any backend sees). A token an edge sent s seconds
    # ago is the one an edge whose clock runs s behind sends now; half a window more or less
    # keeps each case clear of a window boundary however slow the check is.
    world = make_world(edge_signed=EdgeOptions(), edges=1)

    def sent_with_clock(skew: float) -> str:
        world.signer.set_skew(0, skew)
        _, token = world.edge_tokens()[0]
        assert token is not None
        return str(token)

    # A value sent half a window ago (replayed now) is accepted: within the tolerance
    assert world.authorize(sent_with_clock(-0.5 * WINDOW))
    # A value sent (T + 1.5) windows ago is refused (a clock that far ahead is refused too)
    assert not world.authorize(sent_with_clock(-2.5 * WINDOW))
    assert not world.authorize(sent_with_clock(2.5 * WINDOW))
    # and the edge's own value now is allowed
    assert world.authorize(sent_with_clock(0.0))


def test_edge_rotation_waits_until_cloudfronts_run_of_the_function_signs_with_the_key(
    make_world: Any,
) -> None:
    # Given the function's LIVE stage is the unrendered template (someone published it): it
    # signs nothing, so CloudFront's TestFunction never shows the new key's id
    from edge import SOURCE

    world = make_world(
        edge_signed=EdgeOptions(),
        rotate_env={"DEPLOY_TIMEOUT_SECONDS": "3"},
    )
    name = world.deployment.edge_function
    _, config = world.services.live(name)
    world.services.publish(name, SOURCE.read_bytes(), config)
    before = world.document().current

    # When a rotation runs
    arn, result = world.run(ROTATE)

    # Then it never promotes: it fails on the deployment timeout with both keys accepted
    assert result["status"] == "FAILED"
    assert result["error"] == "DeploymentTimeoutError"
    document = world.document()
    assert document.current == before and document.pending is not None
    assert world.services.function_tests >= 2
    world.assert_invariants(arn)
