"""Rotate-function settings: what to rotate comes from the deployment, never from the input."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass

DEFAULT_HEADER = "x-cf-api-gateway-token"
LOCK_MODES = ("header", "edge-signed")
# Edge-signed mode: no AWS figure exists for a KeyValueStore write to reach every edge
# ("seconds" in third-party reports, ../shared/FACTS.md); the rotation waits this long after
# its write, then checks through CloudFront (docs/edge-signed.md).
DEFAULT_PROPAGATION_SECONDS = 60.0
DEFAULT_EDGE_POLL_SECONDS = 5.0
DEFAULT_EDGE_DRAIN_SECONDS = 60.0


class SettingsError(Exception):
    """The function's environment is incomplete or malformed."""


def _number(env: Mapping[str, str], key: str, default: float) -> float:
    raw = env.get(key)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{key} is not a number") from None
    if value < 0:
        raise SettingsError(f"{key} is negative")
    return value


@dataclass(frozen=True)
class RotateSettings:
    parameter_name: str
    lock_parameter_name: str
    distribution_id: str
    header_name: str = DEFAULT_HEADER
    # Empty: every origin that already carries the header.
    origin_ids: tuple[str, ...] = ()
    kms_key_id: str | None = None
    api_id: str | None = None
    api_stage: str = "$default"
    authorizer_function_name: str | None = None
    # The authorizer's cache bounds: the workflow derives its waits from them.
    authorizer_refresh_interval: float = 1.0
    authorizer_max_age: float = 60.0
    # Timings of the workflow.
    stage_wait_seconds: float = 0.0
    revoke_stage_wait_seconds: float = 0.0
    # Why a rotation may not run with this stage wait (None: it may).
    stage_wait_refused: str | None = None
    poll_interval_seconds: float = 30.0
    deploy_timeout_seconds: float = 1800.0
    drain_seconds: float = 300.0
    # How long after its execution was stopped (or timed out) a lock's holder may still act:
    # Step Functions does not stop a Lambda invocation under way. More than the rotate
    # function's timeout (120 s, originlock/cdk/rotation.py).
    lock_takeover_grace_seconds: float = 130.0
    # After a revoke takes the lock from an execution whose Lambda step was under way, it waits
    # this long before it reads or writes anything: every write that step could still make
    # (checked against the lock before the takeover) has landed by then (docs/decisions.md,
    # "Revoke preempts"). More than FENCE_SEND_WITHIN_SECONDS + the fenced clients' connect
    # and read timeouts (rotate/adapters.py).
    fence_settle_seconds: float = 20.0
    # Verify asks each probe URL up to this many times, this far apart, before it fails: an
    # authorizer that has just been replaced answers its first request from a cold start.
    verify_attempts: int = 4
    verify_interval_seconds: float = 5.0
    probe_url: str | None = None
    api_url: str | None = None
    # What the edges send (docs/edge-signed.md): "header" (a stored value, the distribution's
    # origin custom header) or "edge-signed" (a CloudFront Function signs with the key in the
    # KeyValueStore). From the deployment, never from the input.
    lock_mode: str = "header"
    kvs_arn: str | None = None
    edge_function_name: str | None = None
    propagation_seconds: float = DEFAULT_PROPAGATION_SECONDS
    window_seconds: int = 60
    tolerance_windows: int = 1

    @property
    def edge_signed(self) -> bool:
        return self.lock_mode == "edge-signed"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> RotateSettings:
        env = os.environ if env is None else env
        missing = [
            key for key in ("SSM_PARAMETER_NAME", "DISTRIBUTION_ID") if not env.get(key, "").strip()
        ]
        if missing:
            raise SettingsError(f"missing settings: {', '.join(missing)}")
        parameter = env["SSM_PARAMETER_NAME"].strip()
        refresh = _number(
            env, "AUTHORIZER_REFRESH_INTERVAL_SECONDS", cls.authorizer_refresh_interval
        )
        max_age = _number(env, "AUTHORIZER_MAX_AGE_SECONDS", cls.authorizer_max_age)
        # Wait after staging, before CloudFront is switched: a whole cache max age (+ the
        # refresh interval + 5 s), so every instance that serves traffic has re-read the
        # document on its own, with retries, before any edge sends the new value (an instance
        # never re-reads because of what a request carries: authorizer/cache.py). An
        # emergency revoke waits only the refresh interval (+5 s), and replaces the instances
        # before its switch instead (docs/runbook.md).
        stage_wait = _number(env, "STAGE_WAIT_SECONDS", max_age + refresh + 5.0)
        revoke_wait = _number(env, "REVOKE_STAGE_WAIT_SECONDS", min(stage_wait, refresh + 5.0))
        if min(stage_wait, revoke_wait) < refresh:
            raise SettingsError(
                "stage waits must not be shorter than the authorizer refresh interval"
            )
        # An instance re-reads the document only when its copy is older than the refresh
        # interval, and at the latest at the max age: a shorter wait would let CloudFront send
        # a value that an instance has not read, and its Deny would be cached. Refused for a
        # rotation only (timings): an emergency revoke never waits it and must still run.
        stage_wait_refused = (
            "STAGE_WAIT_SECONDS must be at least the authorizer max age + refresh interval"
            f" ({max_age + refresh:g} s)"
            if stage_wait < max_age + refresh
            else None
        )
        origins = tuple(o.strip() for o in env.get("ORIGIN_IDS", "").split(",") if o.strip())
        mode = env.get("LOCK_MODE", "").strip() or "header"
        if mode not in LOCK_MODES:
            raise SettingsError("LOCK_MODE must be 'header' or 'edge-signed'")
        edge = mode == "edge-signed"
        kvs_arn = env.get("KVS_ARN", "").strip() or None
        if edge and not kvs_arn:
            raise SettingsError("missing settings: KVS_ARN (edge-signed mode)")
        window = int(_number(env, "EDGE_WINDOW_SECONDS", 60))
        tolerance = int(_number(env, "EDGE_TOLERANCE_WINDOWS", 1))
        if edge:
            from tokens.edge import EdgeTokenError, check_signing_settings

            try:
                check_signing_settings(env["DISTRIBUTION_ID"].strip(), window, tolerance)
            except EdgeTokenError as exc:
                raise SettingsError(f"edge-signed settings: {exc}") from None
        poll = _number(
            env,
            "POLL_INTERVAL_SECONDS",
            DEFAULT_EDGE_POLL_SECONDS if edge else cls.poll_interval_seconds,
        )
        if poll <= 0:
            raise SettingsError("POLL_INTERVAL_SECONDS must be positive")
        return cls(
            parameter_name=parameter,
            lock_parameter_name=env.get("LOCK_PARAMETER_NAME", "").strip() or f"{parameter}.lock",
            distribution_id=env["DISTRIBUTION_ID"].strip(),
            header_name=env.get("ORIGIN_HEADER_NAME", DEFAULT_HEADER).strip().lower(),
            origin_ids=origins,
            kms_key_id=env.get("KMS_KEY_ID") or None,
            api_id=env.get("API_ID") or None,
            api_stage=env.get("API_STAGE") or "$default",
            authorizer_function_name=env.get("AUTHORIZER_FUNCTION_NAME") or None,
            authorizer_refresh_interval=refresh,
            authorizer_max_age=max_age,
            stage_wait_seconds=stage_wait,
            stage_wait_refused=stage_wait_refused,
            revoke_stage_wait_seconds=revoke_wait,
            poll_interval_seconds=poll,
            deploy_timeout_seconds=_number(
                env, "DEPLOY_TIMEOUT_SECONDS", cls.deploy_timeout_seconds
            ),
            drain_seconds=_number(
                env, "DRAIN_SECONDS", DEFAULT_EDGE_DRAIN_SECONDS if edge else cls.drain_seconds
            ),
            lock_takeover_grace_seconds=_number(
                env, "LOCK_TAKEOVER_GRACE_SECONDS", cls.lock_takeover_grace_seconds
            ),
            fence_settle_seconds=_number(env, "FENCE_SETTLE_SECONDS", cls.fence_settle_seconds),
            verify_attempts=max(1, int(_number(env, "VERIFY_ATTEMPTS", cls.verify_attempts))),
            verify_interval_seconds=_number(
                env, "VERIFY_INTERVAL_SECONDS", cls.verify_interval_seconds
            ),
            probe_url=env.get("PROBE_URL") or None,
            api_url=env.get("API_URL") or None,
            lock_mode=mode,
            kvs_arn=kvs_arn,
            edge_function_name=env.get("EDGE_FUNCTION_NAME", "").strip() or None,
            propagation_seconds=_number(
                env, "EDGE_PROPAGATION_SECONDS", DEFAULT_PROPAGATION_SECONDS
            ),
            window_seconds=window,
            tolerance_windows=tolerance,
        )

    def timings(self, mode: str = "rotate", scope: str | None = None) -> dict[str, int]:
        """Whole seconds for the state machine's Wait states (SecondsPath).

        Raises
        ------
        SettingsError
            A rotation's stage wait is shorter than the authorizer's max age + refresh
            interval (a revoke runs all the same).
        """
        if mode == "rotate" and self.stage_wait_refused:
            raise SettingsError(self.stage_wait_refused)
        emergency = mode == "revoke" and scope == "all"
        wait = self.revoke_stage_wait_seconds if emergency else self.stage_wait_seconds
        return {
            "stage_wait_seconds": math.ceil(wait),
            "poll_interval_seconds": max(1, math.ceil(self.poll_interval_seconds)),
            "drain_seconds": math.ceil(self.drain_seconds),
            "fence_settle_seconds": math.ceil(self.fence_settle_seconds),
        }

    def describe(self) -> dict[str, object]:
        return asdict(self)
