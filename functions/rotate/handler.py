"""Rotate function: runs one named step of the rotation workflow per invocation.

Event: ``{"step": name, "execution_id": "$$.Execution.Id", "state": {...}}`` (``input`` for
``validate``; step parameters beside). What to rotate comes from this function's settings.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from rotate import settings as settings_module
from rotate.adapters import Ports
from rotate.errors import InvalidInputError, SettingsError
from rotate.steps import STEPS, StepCall

logger = Logger(service="rotate")
# The environment settings are read from (the sandbox gives each instance its own).
ENVIRON: Mapping[str, str] = os.environ
_ports: tuple[settings_module.RotateSettings, Ports] | None = None


def _load() -> tuple[settings_module.RotateSettings, Ports]:
    global _ports
    if _ports is None:
        try:
            settings = settings_module.RotateSettings.from_env(ENVIRON)
        except settings_module.SettingsError as exc:
            raise SettingsError(str(exc)) from None
        _ports = (settings, Ports.for_settings(settings))
    return _ports


def parse_step(event: object) -> StepCall:
    if not isinstance(event, Mapping) or event.get("step") not in STEPS:
        raise InvalidInputError("the event does not name a known step")
    state = event.get("state") or {}
    if not isinstance(state, Mapping):
        raise InvalidInputError("state must be an object")
    params = {k: v for k, v in event.items() if k not in ("step", "execution_id", "state")}
    return StepCall(str(event.get("execution_id") or ""), state, params)


@logger.inject_lambda_context(log_event=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    call = parse_step(event)
    step = str(event["step"])
    settings, ports = _load()
    logger.append_keys(step=step, execution=call.execution_id.rsplit(":", 1)[-1])
    try:
        result = STEPS[step](call, settings, ports)
    except Exception as exc:
        logger.warning("step failed", error=type(exc).__name__, cause=str(exc))
        raise
    logger.info("step done", result=result)
    return result
