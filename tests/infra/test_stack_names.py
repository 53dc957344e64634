"""Names follow the stack: two stacks in one account never share a token, a lock or a schedule.

Every component that names the token parameter or its lock (the custom resources, the
authorizer, the rotate function, the token-age probe, the outputs the CLI reads) must agree,
in the default stack and in ``Staging`` (the variant) alike.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.infra.conftest import CONFIGURATIONS, Synth, of_type

pytestmark = pytest.mark.infra


def environment(synthesized: Synth, function: Any) -> dict[str, Any]:
    variables: dict[str, Any] = synthesized.resource(function)["Properties"]["Environment"][
        "Variables"
    ]
    return variables


def names_in_use(synthesized: Synth) -> dict[str, set[Any]]:
    """Every place a parameter, lock or workflow name appears, by what it names."""
    template = synthesized.json()
    [token] = of_type(template, "Custom::OriginlockTokenParameter").values()
    [guard] = of_type(template, "Custom::OriginlockOriginHeaderValue").values()
    [machine] = of_type(template, "AWS::StepFunctions::StateMachine").values()
    [schedule] = of_type(template, "AWS::Scheduler::Schedule").values()
    main = synthesized.main
    authorizer = environment(synthesized, main.api.authorizer.function)
    rotate = environment(synthesized, main.rotation.rotate.function)
    probe = environment(synthesized, main.monitoring.probe.function)
    return {
        "parameter": {
            token["Properties"]["ParameterName"],
            guard["Properties"]["ParameterName"],
            authorizer["SSM_PARAMETER_NAME"],
            rotate["SSM_PARAMETER_NAME"],
            probe["SSM_PARAMETER_NAME"],
            template["Outputs"]["ParameterName"]["Value"],
        },
        "lock": {guard["Properties"]["LockParameterName"], rotate["LOCK_PARAMETER_NAME"]},
        "workflow": {machine["Properties"]["StateMachineName"], schedule["Properties"]["Name"]},
    }


@pytest.mark.parametrize("which", CONFIGURATIONS)
def test_every_component_names_the_stacks_own_parameter_and_lock(
    which: str, request: pytest.FixtureRequest
) -> None:
    synthesized: Synth = request.getfixturevalue(which)
    stack = synthesized.main.stack_name
    assert names_in_use(synthesized) == {
        "parameter": {f"/originlock/{stack}/origin-token"},
        "lock": {f"/originlock/{stack}/origin-token.lock"},
        "workflow": {f"{stack}-rotation"},
    }


def test_a_second_stack_gets_names_of_its_own(synth: Synth, variant: Synth) -> None:
    # Given the default stack and a Staging stack beside it, in one account
    assert (synth.main.stack_name, variant.main.stack_name) == ("Originlock", "Staging")
    first, second = names_in_use(synth), names_in_use(variant)
    # Then they share no parameter, lock, state machine or schedule name
    for kind in first:
        assert not first[kind] & second[kind], kind
