"""The rotate function's settings refuse waits that would let CloudFront send a value some
authorizer instance has not read (its Deny would be cached for the TTL)."""

from __future__ import annotations

import pytest

from rotate import errors, steps
from rotate.settings import RotateSettings, SettingsError

ENV = {
    "SSM_PARAMETER_NAME": "/originlock/test/origin-token",
    "DISTRIBUTION_ID": "E2QWRUHAPOMQZL",
    "AUTHORIZER_MAX_AGE_SECONDS": "60",
    "AUTHORIZER_REFRESH_INTERVAL_SECONDS": "1",
}


def test_the_stage_wait_defaults_to_a_whole_max_age_and_refresh_interval_and_a_margin() -> None:
    settings = RotateSettings.from_env(ENV)
    assert settings.stage_wait_seconds == 66.0
    # An emergency revoke waits the refresh interval only (it replaces the instances instead)
    assert settings.revoke_stage_wait_seconds == 6.0


@pytest.mark.parametrize("wait", ["1", "30", "60.9"])
def test_a_rotation_with_a_stage_wait_shorter_than_max_age_and_refresh_is_refused(
    wait: str,
) -> None:
    settings = RotateSettings.from_env(ENV | {"STAGE_WAIT_SECONDS": wait})

    # A rotation fails at Validate, by name, before it takes the lock
    with pytest.raises(errors.SettingsError, match=r"max age \+ refresh interval \(61 s\)"):
        steps.validate(steps.StepCall("exec", {}, {"input": {"mode": "rotate"}}), settings, None)
    # while an emergency revoke, which never waits it, still runs
    for scope in ("all", "previous"):
        call = steps.StepCall("exec", {}, {"input": {"mode": "revoke", "revoke": scope}})
        assert steps.validate(call, settings, None)["request"]["revoke"] == scope


def test_a_stage_wait_of_exactly_max_age_and_refresh_interval_is_taken() -> None:
    settings = RotateSettings.from_env(ENV | {"STAGE_WAIT_SECONDS": "61"})
    assert settings.timings("rotate")["stage_wait_seconds"] == 61


def test_a_revoke_wait_shorter_than_the_refresh_interval_is_refused() -> None:
    with pytest.raises(SettingsError, match="refresh interval"):
        RotateSettings.from_env(ENV | {"REVOKE_STAGE_WAIT_SECONDS": "0.5"})
