from __future__ import annotations

from typing import Any

import pytest

from tests.statemachine.conftest import ROTATE
from tokens.document import fingerprint

pytestmark = pytest.mark.statemachine


def test_rotation_promotes_a_new_value_and_retires_the_old(make_world: Any) -> None:
    # Given a deployment whose CloudFront sends the current value
    world = make_world()
    before = world.document()

    # When a manual rotation runs to the end
    arn = world.start(ROTATE)
    result = world.wait(arn)

    # Then CloudFront sends a new value, which is current; the old one is retired
    assert result["status"] == "SUCCEEDED", result
    after = world.document()
    assert after.current not in (None, before.current)
    assert after.previous is None and after.pending is None
    assert world.configured_value() == after.current
    assert world.in_flight() == {after.current}
    output = world.history(arn)
    assert fingerprint(after.current) in str(output)
    world.assert_invariants(arn)
