"""The app's settings, read once from CDK context (cdk.json, or ``-c key=value``), and the
construct library's props made of them: the constructs never see this object."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aws_cdk import Duration

from infra.constants import CONTEXT_DEFAULTS
from originlock.budget import DEFAULT_MAX_INSTANCES, max_age_for_budget
from originlock.cdk.props import (
    HEADER_NAME,
    NAME_PREFIX,
    PARAMETER_NAME,
    AlarmProps,
    AuthorizerProps,
    DistributionProps,
    EdgeSigningProps,
    LockMode,
    RotationProps,
    TokenSource,
)
from originlock.cdk.props import default_parameter_name as _default_parameter_name
from originlock.cdk.props import rate_seconds as rate_seconds

_HEADER = HEADER_NAME
_PARAMETER = PARAMETER_NAME
# A CloudFormation stack name; 55 characters at most, because the schedule is named
# "<stack name>-rotation" and EventBridge Scheduler allows 64.
_STACK_NAME = NAME_PREFIX
TOKEN_SOURCES = tuple(source.value for source in TokenSource)
LOCK_MODES = tuple(mode.runtime_name for mode in LockMode)
_API_ID = re.compile(r"^[a-z0-9]{10}$")
_DISTRIBUTION_ID = re.compile(r"^[A-Z0-9]{10,20}$")
_AUTHORIZER_ID = re.compile(r"^[a-z0-9]{6,10}$")
_ORIGIN_ID = re.compile(r"^[^,\s]{1,128}$")


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
    return _default_parameter_name(stack_name)


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
    # What the authorizer gets: the configured max age, raised to keep the fleet's SSM reads
    # within the budget (originlock/budget.py).
    authorizer_token_max_age_seconds: int
    ssm_read_budget_per_second: int
    authorizer_max_instances: int
    authorizer_refresh_interval_seconds: int
    backend_url: str
    cloud_front_logs_enabled: bool
    waf_enabled: bool
    waf_rate_limit: int
    alarm_email: str
    token_max_age_seconds: int
    powertools_layer_version: int
    lock_mode: str = "header"
    edge_window_seconds: int = 60
    edge_tolerance_windows: int = 1
    edge_propagation_seconds: int = 60
    edge_drain_seconds: int = 60
    edge_poll_interval_seconds: int = 5

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
        budget = _int("ssmReadBudgetPerSecond", get("ssmReadBudgetPerSecond"), 1, 10000)
        reserved = _int(
            "authorizerReservedConcurrency", get("authorizerReservedConcurrency"), 0, 10000
        )
        instances = _int("authorizerMaxInstances", get("authorizerMaxInstances"), 0, 1_000_000)
        instances = instances or reserved or DEFAULT_MAX_INSTANCES
        token_max_age = max_age_for_budget(token_max_age, instances, budget)
        token_source = _str(get("authorizerTokenSource")).lower()
        if token_source not in TOKEN_SOURCES:
            raise ConfigError(
                f"context authorizerTokenSource must be extension or sdk, got {token_source!r}"
            )
        lock_mode = _str(get("lockMode")).lower()
        if lock_mode not in LOCK_MODES:
            raise ConfigError(f"context lockMode must be header or edge-signed, got {lock_mode!r}")
        return cls(
            lock_mode=lock_mode,
            edge_window_seconds=_int("edgeWindowSeconds", get("edgeWindowSeconds"), 10, 3600),
            edge_tolerance_windows=_int("edgeToleranceWindows", get("edgeToleranceWindows"), 0, 10),
            edge_propagation_seconds=_int(
                "edgePropagationSeconds", get("edgePropagationSeconds"), 1, 3600
            ),
            edge_drain_seconds=_int("edgeDrainSeconds", get("edgeDrainSeconds"), 0, 86400),
            edge_poll_interval_seconds=_int(
                "edgePollIntervalSeconds", get("edgePollIntervalSeconds"), 1, 3600
            ),
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
            authorizer_reserved_concurrency=reserved,
            authorizer_token_source=token_source,
            authorizer_token_max_age_seconds=token_max_age,
            ssm_read_budget_per_second=budget,
            authorizer_max_instances=instances,
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

    # -- the construct library's props ------------------------------------------------------
    @property
    def edge_signed(self) -> bool:
        return self.lock_mode == "edge-signed"

    def lock_mode_props(self) -> LockMode:
        return LockMode.EDGE_SIGNED if self.edge_signed else LockMode.ORIGIN_HEADER

    def edge_signing_props(self) -> EdgeSigningProps | None:
        if not self.edge_signed:
            return None
        return EdgeSigningProps(
            window=Duration.seconds(self.edge_window_seconds),
            tolerance_windows=self.edge_tolerance_windows,
            propagation_wait=Duration.seconds(self.edge_propagation_seconds),
        )

    def authorizer_cache_ttl(self) -> int:
        """The authorizer's result TTL: in edge-signed mode at most the window (a cached Allow
        must not outlive the token it allowed; docs/edge-signed.md)."""
        if self.edge_signed:
            return min(self.authorizer_cache_ttl_seconds, self.edge_window_seconds)
        return self.authorizer_cache_ttl_seconds

    def authorizer_props(self) -> AuthorizerProps:
        return AuthorizerProps(
            results_cache_ttl=Duration.seconds(self.authorizer_cache_ttl()),
            token_source=TokenSource(self.authorizer_token_source),
            token_max_age=Duration.seconds(self.authorizer_token_max_age_seconds),
            refresh_interval=Duration.seconds(self.authorizer_refresh_interval_seconds),
            ssm_read_budget_per_second=self.ssm_read_budget_per_second,
            max_instances=self.authorizer_max_instances,
            reserved_concurrency=self.authorizer_reserved_concurrency or None,
            powertools_layer_version=self.powertools_layer_version,
        )

    def rotation_props(self) -> RotationProps:
        return RotationProps(
            schedule=self.rotation_schedule,
            enabled=self.rotation_enabled,
            drain=Duration.seconds(
                self.edge_drain_seconds if self.edge_signed else self.drain_seconds
            ),
            poll_interval=Duration.seconds(
                self.edge_poll_interval_seconds if self.edge_signed else self.poll_interval_seconds
            ),
            deploy_timeout=Duration.seconds(self.deploy_timeout_seconds),
        )

    def alarm_props(self) -> AlarmProps:
        return AlarmProps(
            email=self.alarm_email or None,
            token_max_age=Duration.seconds(self.token_max_age_seconds),
        )

    def distribution_props(self, web_acl_arn: str | None) -> DistributionProps:
        return DistributionProps(
            web_acl_arn=web_acl_arn, standard_logs=self.cloud_front_logs_enabled
        )


@dataclass(frozen=True)
class AttachConfig:
    """Attach mode (``-c attach=true``): the ids of an API and a distribution made elsewhere.

    The shared settings (schedule, authorizer, alarms) are :class:`AppConfig`'s; WAF and
    CloudFront logs are the distribution owner's business here.
    """

    app: AppConfig
    api_id: str
    api_stage: str
    distribution_id: str
    origin_ids: tuple[str, ...]
    distribution_domain_name: str
    authorizer_id: str
    web_acl_arn: str
    log_bucket_name: str

    @classmethod
    def from_context(cls, lookup: Callable[[str], Any]) -> AttachConfig:
        app = AppConfig.from_context(lookup)
        if app.edge_signed:
            raise ConfigError(
                "context lockMode=edge-signed is not supported in attach mode yet: the signing "
                "function must be associated with the distribution, which attach mode does not "
                "manage (docs/edge-signed.md)"
            )

        def get(key: str) -> str:
            value = lookup(key)
            return _str(CONTEXT_DEFAULTS[key] if value is None else value)

        def required(key: str, pattern: re.Pattern[str], example: str) -> str:
            value = get(key)
            if not value:
                raise ConfigError(f"context {key} is required with attach=true (like {example})")
            if not pattern.match(value):
                raise ConfigError(f"context {key} is not a valid id (like {example}): {value!r}")
            return value

        authorizer = get("authorizerId")
        if authorizer and not _AUTHORIZER_ID.match(authorizer):
            raise ConfigError(f"context authorizerId is not a valid id: {authorizer!r}")
        origins = tuple(o.strip() for o in get("originIds").split(",") if o.strip())
        bad = [o for o in origins if not _ORIGIN_ID.match(o)]
        if bad:
            raise ConfigError(f"context originIds holds an invalid origin id: {bad[0]!r}")
        web_acl = get("webAclArn")
        if web_acl and not web_acl.startswith("arn:"):
            raise ConfigError("context webAclArn must be an AWS WAF web ACL's ARN")
        return cls(
            app=app,
            api_id=required("apiId", _API_ID, "a1b2c3d4e5"),
            api_stage=get("apiStage") or "$default",
            distribution_id=required("distributionId", _DISTRIBUTION_ID, "E1ABCDEF2GHIJK"),
            origin_ids=origins,
            distribution_domain_name=get("distributionDomainName"),
            authorizer_id=authorizer,
            web_acl_arn=web_acl,
            log_bucket_name=get("logBucketName"),
        )


def attach_mode(lookup: Callable[[str], Any]) -> bool:
    """Whether the context asks for the attach stack (``-c attach=true``)."""
    value = lookup("attach")
    return _bool("attach", CONTEXT_DEFAULTS["attach"] if value is None else value)
