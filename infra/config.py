"""The app's settings, read once from CDK context (cdk.json, or ``-c key=value``)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from infra.constants import CONTEXT_DEFAULTS

_HEADER = re.compile(r"^[a-z0-9!#$%&'*+.^_`|~-]+$")
_RATE = re.compile(r"^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$")
_UNIT_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}
_PARAMETER = re.compile(r"^[A-Za-z0-9_.\-/]{1,1011}$")
# A CloudFormation stack name; 55 characters at most, because the schedule is named
# "<stack name>-rotation" and EventBridge Scheduler allows 64.
_STACK_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9-]{0,54}$")
TOKEN_SOURCES = ("extension", "sdk")


class ConfigError(ValueError):
    """A context value is missing or malformed: synthesis stops with this message."""


def _bool(key: str, value: Any) -> bool:
    # -c key=value hands every value over as a string.
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes"):
        return True
    if text in ("false", "0", "no", ""):
        return False
    raise ConfigError(f"context {key} must be true or false, got {value!r}")


def _int(key: str, value: Any, low: int, high: int) -> int:
    try:
        number = int(str(value).strip())
    except ValueError:
        raise ConfigError(f"context {key} must be a whole number, got {value!r}") from None
    if not low <= number <= high:
        raise ConfigError(f"context {key} must be between {low} and {high}, got {number}")
    return number


def _str(value: Any) -> str:
    return "" if value is None else str(value).strip()


def default_parameter_name(stack_name: str) -> str:
    """The token parameter's name when ``parameterName`` is not set: one per stack."""
    return f"/originlock/{stack_name}/origin-token"


def rate_seconds(expression: str) -> int | None:
    """Seconds between runs of a ``rate(...)`` schedule; ``None`` for ``cron``/``at``."""
    match = _RATE.match(expression.strip())
    if match is None:
        return None
    unit = match.group(2).rstrip("s")
    return int(match.group(1)) * _UNIT_SECONDS[unit]


@dataclass(frozen=True)
class AppConfig:
    stack_name: str
    account: str
    region: str
    header_name: str
    parameter_name: str
    adopt_existing_parameter: bool
    kms_key_arn: str
    create_key: bool
    rotation_schedule: str
    rotation_enabled: bool
    drain_seconds: int
    poll_interval_seconds: int
    deploy_timeout_seconds: int
    authorizer_cache_ttl_seconds: int
    authorizer_reserved_concurrency: int
    authorizer_token_source: str
    authorizer_token_max_age_seconds: int
    authorizer_refresh_interval_seconds: int
    backend_url: str
    cloud_front_logs_enabled: bool
    waf_enabled: bool
    waf_rate_limit: int
    alarm_email: str
    token_max_age_seconds: int
    powertools_layer_version: int

    @classmethod
    def from_context(cls, lookup: Callable[[str], Any]) -> AppConfig:
        """Read every setting through *lookup* (``node.try_get_context``), defaults filled in."""

        def get(key: str) -> Any:
            value = lookup(key)
            return CONTEXT_DEFAULTS[key] if value is None else value

        stack_name = _str(get("stackName"))
        if not _STACK_NAME.match(stack_name):
            raise ConfigError(
                "context stackName must start with a letter, hold only letters, digits and "
                f"hyphens, and be at most 55 characters long: {stack_name!r}"
            )
        header = _str(get("headerName")).lower()
        if not _HEADER.match(header):
            raise ConfigError(f"context headerName is not a valid header name: {header!r}")
        # Empty: derived from the stack name, so that two stacks never share a token.
        parameter = _str(get("parameterName")) or default_parameter_name(stack_name)
        if not _PARAMETER.match(parameter) or parameter.endswith("/"):
            raise ConfigError(f"context parameterName is not a valid parameter name: {parameter!r}")
        schedule = _str(get("rotationSchedule"))
        if not (schedule.startswith(("rate(", "cron(", "at("))):
            raise ConfigError("context rotationSchedule must be rate(...), cron(...) or at(...)")
        interval = rate_seconds(schedule)
        if schedule.startswith("rate(") and interval is None:
            raise ConfigError(f"context rotationSchedule is not a valid rate: {schedule!r}")
        max_age = _int("tokenMaxAgeSeconds", get("tokenMaxAgeSeconds"), 0, 10 * 365 * 86400)
        if max_age == 0:
            if interval is None:
                raise ConfigError(
                    "context tokenMaxAgeSeconds is required with a cron(...) or at(...) schedule"
                )
            max_age = 2 * interval
        backend = _str(get("backendUrl"))
        if backend and not backend.startswith(("https://", "http://")):
            raise ConfigError("context backendUrl must be an http(s) URL or empty")
        kms_key_arn = _str(get("kmsKeyArn"))
        create_key = _bool("createKey", get("createKey"))
        if kms_key_arn and create_key:
            raise ConfigError("context kmsKeyArn and createKey are mutually exclusive")
        token_max_age = _int(
            "authorizerTokenMaxAgeSeconds", get("authorizerTokenMaxAgeSeconds"), 1, 3600
        )
        refresh = _int(
            "authorizerRefreshIntervalSeconds", get("authorizerRefreshIntervalSeconds"), 1, 3600
        )
        if refresh > token_max_age:
            raise ConfigError(
                "context authorizerRefreshIntervalSeconds exceeds authorizerTokenMaxAgeSeconds"
            )
        token_source = _str(get("authorizerTokenSource")).lower()
        if token_source not in TOKEN_SOURCES:
            raise ConfigError(
                f"context authorizerTokenSource must be extension or sdk, got {token_source!r}"
            )
        return cls(
            stack_name=stack_name,
            account=_str(get("account")),
            region=_str(get("region")),
            header_name=header,
            parameter_name=parameter,
            adopt_existing_parameter=_bool("adoptExistingParameter", get("adoptExistingParameter")),
            kms_key_arn=kms_key_arn,
            create_key=create_key,
            rotation_schedule=schedule,
            rotation_enabled=_bool("rotationEnabled", get("rotationEnabled")),
            drain_seconds=_int("drainSeconds", get("drainSeconds"), 0, 86400),
            poll_interval_seconds=_int("pollIntervalSeconds", get("pollIntervalSeconds"), 1, 3600),
            deploy_timeout_seconds=_int(
                "deployTimeoutSeconds", get("deployTimeoutSeconds"), 60, 6 * 3600
            ),
            # API Gateway's limits for an HTTP API authorizer's result cache.
            authorizer_cache_ttl_seconds=_int(
                "authorizerCacheTtlSeconds", get("authorizerCacheTtlSeconds"), 0, 3600
            ),
            authorizer_reserved_concurrency=_int(
                "authorizerReservedConcurrency", get("authorizerReservedConcurrency"), 0, 10000
            ),
            authorizer_token_source=token_source,
            authorizer_token_max_age_seconds=token_max_age,
            authorizer_refresh_interval_seconds=refresh,
            backend_url=backend,
            cloud_front_logs_enabled=_bool("cloudFrontLogsEnabled", get("cloudFrontLogsEnabled")),
            waf_enabled=_bool("wafEnabled", get("wafEnabled")),
            # AWS WAF's limits for a rate-based rule (requests per 5 minutes per IP).
            waf_rate_limit=_int("wafRateLimit", get("wafRateLimit"), 10, 2_000_000_000),
            alarm_email=_str(get("alarmEmail")),
            token_max_age_seconds=max_age,
            powertools_layer_version=_int(
                "powertoolsLayerVersion", get("powertoolsLayerVersion"), 1, 10000
            ),
        )

    @property
    def lock_parameter_name(self) -> str:
        return f"{self.parameter_name}.lock"
