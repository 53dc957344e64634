"""The typed settings of the constructs, with their defaults, and how they are checked.

A construct takes the objects the user already has as ``existing_…_obj`` keyword arguments
and what it creates is shaped by one of these frozen dataclasses (the ``…Props`` of AWS
Solutions Constructs). Every check raises :class:`PropsError` naming the setting, at
construction time, before anything is added to the tree.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field

from aws_cdk import Duration, Stack, Token
from constructs import Construct

from originlock.budget import DEFAULT_MAX_INSTANCES, max_age_for_budget
from originlock.constants import PARAMETER_NAME_TEMPLATE, POWERTOOLS_LAYER_VERSION

HEADER_NAME = re.compile(r"^[a-z0-9!#$%&'*+.^_`|~-]+$")
PARAMETER_NAME = re.compile(r"^[A-Za-z0-9_.\-/]{1,1011}$")
# The name prefix becomes the state machine's and the schedule's name ("<prefix>-rotation"):
# EventBridge Scheduler allows 64 characters, so 55 at most; a CloudFormation stack name
# (letters, digits, hyphens, a letter first) always fits the pattern.
NAME_PREFIX = re.compile(r"^[A-Za-z][A-Za-z0-9-]{0,54}$")
# An HTTP API's id, a CloudFront distribution's id, an API Gateway authorizer's id.
API_ID = re.compile(r"^[a-z0-9]{10}$")
DISTRIBUTION_ID = re.compile(r"^[A-Z0-9]{10,20}$")
AUTHORIZER_ID = re.compile(r"^[a-z0-9]{6,10}$")
RATE = re.compile(r"^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$")
_UNIT_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}


class PropsError(ValueError):
    """A construct's setting is malformed or inconsistent: the message names it."""


class LockMode(enum.Enum):
    """How CloudFront proves that a request came through it.

    ``ORIGIN_HEADER``: a secret origin custom header, checked by the Lambda authorizer and
    rotated by the workflow (docs/decisions.md, "Lock modes"). ``EDGE_SIGNED``: a CloudFront
    Function signs every request with a key from a KeyValueStore; the header value lives for
    minutes and a key changes in seconds (docs/edge-signed.md).
    """

    ORIGIN_HEADER = "origin-header"
    EDGE_SIGNED = "edge-signed"

    @property
    def runtime_name(self) -> str:
        """The mode as the functions name it (``LOCK_MODE``, the token document's ``mode``)."""
        return "edge-signed" if self is LockMode.EDGE_SIGNED else "header"


class TokenSource(enum.Enum):
    """Where the authorizer reads the token document."""

    # The AWS Parameters and Secrets Lambda Extension (a layer; no SDK at cold start).
    EXTENSION = "extension"
    # ssm:GetParameter through the runtime's boto3 (no layer).
    SDK = "sdk"


def rate_seconds(expression: str) -> int | None:
    """Seconds between runs of a ``rate(...)`` schedule; ``None`` for ``cron``/``at``."""
    match = RATE.match(expression.strip())
    if match is None:
        return None
    unit = match.group(2).rstrip("s")
    return int(match.group(1)) * _UNIT_SECONDS[unit]


def seconds(name: str, value: Duration, low: float, high: float) -> int:
    """*value* in whole seconds, within ``[low, high]``."""
    try:
        number = value.to_seconds()
    except RuntimeError:  # jsii's error for a duration that is a token
        raise PropsError(f"{name} must be a literal duration, not a token") from None
    if not low <= number <= high:
        raise PropsError(f"{name} must be between {low:g} and {high:g} seconds, got {number:g}")
    return int(number)


def check_header_name(name: str) -> str:
    """The header name, lower case (CloudFront and API Gateway compare it so)."""
    header = name.strip().lower()
    if not HEADER_NAME.match(header):
        raise PropsError(f"header_name is not a valid header name: {name!r}")
    return header


def check_parameter_name(name: str) -> str:
    if Token.is_unresolved(name):
        raise PropsError("parameter_name must be a literal name, not a token")
    if not PARAMETER_NAME.match(name) or name.endswith("/"):
        raise PropsError(f"parameter_name is not a valid parameter name: {name!r}")
    return name


def check_id(name: str, value: str, pattern: re.Pattern[str], example: str) -> str:
    """An AWS resource id (an API's, a distribution's), stripped; a token (an id resolved at
    deploy time, such as a ``Ref``) is taken as it is."""
    if Token.is_unresolved(value):
        return value
    value = value.strip()
    if not pattern.match(value):
        raise PropsError(f"{name} is not a valid id (like {example}): {value!r}")
    return value


def name_prefix_of(scope: Construct, name_prefix: str | None) -> str:
    """The prefix of the names a construct gives (state machine, schedule, parameter): *name_prefix*
    if set, else the name of *scope*'s stack."""
    prefix = name_prefix if name_prefix is not None else Stack.of(scope).stack_name
    if Token.is_unresolved(prefix) or not NAME_PREFIX.match(prefix):
        raise PropsError(
            "name_prefix (the stack's name unless set) must start with a letter, hold only "
            f"letters, digits and hyphens, and be at most 55 characters long: {prefix!r}"
        )
    return prefix


def default_parameter_name(prefix: str) -> str:
    """The token parameter's name when none is given: one per name prefix."""
    return PARAMETER_NAME_TEMPLATE.format(prefix=prefix)


@dataclass(frozen=True)
class AuthorizerProps:
    """The origin authorizer: its caches and how it reads the token document.

    Attributes
    ----------
    results_cache_ttl
        How long API Gateway caches the authorizer's answer per header value (0 to 1 hour).
    token_source
        Where the function reads the token document.
    token_max_age
        How long a function instance may answer from its copy of the document (1 s to 1 h);
        raised, if need be, so that the fleet's reads stay within ``ssm_read_budget_per_second``.
    refresh_interval
        The least time between two reads of one instance (at most ``token_max_age``).
    ssm_read_budget_per_second
        The fleet's share of the account's SSM GetParameter quota (40/s by default).
    max_instances
        The largest fleet to plan for; ``None``: ``reserved_concurrency`` if set, else Lambda's
        default account quota (1,000).
    reserved_concurrency
        A ceiling on what header spraying can cost; ``None``: no reservation (a new account's
        concurrency quota may not grant one).
    powertools_layer_version
        The version of the AWS-managed Powertools for AWS Lambda (Python) v3 layer.
    authorizer_name
        The authorizer's name in API Gateway.
    """

    results_cache_ttl: Duration = field(default_factory=lambda: Duration.minutes(5))
    token_source: TokenSource = TokenSource.EXTENSION
    token_max_age: Duration = field(default_factory=lambda: Duration.seconds(60))
    refresh_interval: Duration = field(default_factory=lambda: Duration.seconds(1))
    ssm_read_budget_per_second: float = 10.0
    max_instances: int | None = None
    reserved_concurrency: int | None = None
    powertools_layer_version: int = POWERTOOLS_LAYER_VERSION
    authorizer_name: str = "originlock-origin-header"

    def cache_ttl_seconds(self) -> int:
        return seconds("results_cache_ttl", self.results_cache_ttl, 0, 3600)

    def refresh_seconds(self) -> int:
        refresh = seconds("refresh_interval", self.refresh_interval, 1, 3600)
        if refresh > seconds("token_max_age", self.token_max_age, 1, 3600):
            raise PropsError("refresh_interval exceeds token_max_age")
        return refresh

    def fleet_size(self) -> int:
        if self.reserved_concurrency is not None and self.reserved_concurrency < 1:
            raise PropsError("reserved_concurrency must be at least 1 (None: no reservation)")
        if self.max_instances is not None and self.max_instances < 1:
            raise PropsError("max_instances must be at least 1")
        return self.max_instances or self.reserved_concurrency or DEFAULT_MAX_INSTANCES

    def max_age_seconds(self) -> int:
        """The max age the function gets: the configured one, raised to keep the fleet within
        the SSM read budget (:mod:`originlock.budget`)."""
        if not 0 < self.ssm_read_budget_per_second <= 10_000:
            raise PropsError("ssm_read_budget_per_second must be above 0 and at most 10,000")
        configured = seconds("token_max_age", self.token_max_age, 1, 3600)
        return max_age_for_budget(configured, self.fleet_size(), self.ssm_read_budget_per_second)


@dataclass(frozen=True)
class RotationProps:
    """The rotation workflow and its schedule.

    Attributes
    ----------
    schedule
        An EventBridge Scheduler expression: ``rate(...)``, ``cron(...)`` or ``at(...)``.
    enabled
        Whether the schedule runs (rotations on demand work either way).
    drain
        How long the previous value stays accepted after the switch is deployed (``None``: 5
        minutes; 60 s in edge-signed mode).
    poll_interval
        How often the workflow asks CloudFront whether the switch is deployed (``None``: 30 s;
        5 s in edge-signed mode).
    deploy_timeout
        How long it waits for CloudFront's Deployed before failing (the next run resumes).
    probe_path
        The path the verify step requests through CloudFront: one the distribution routes to
        the API (for a distribution whose default behavior serves something else).
    """

    schedule: str = "rate(7 days)"
    enabled: bool = True
    # None: the lock mode's default (header: 5 minutes and 30 s; edge-signed: 60 s and 5 s,
    # no distribution deployment to wait for).
    drain: Duration | None = None
    poll_interval: Duration | None = None
    deploy_timeout: Duration = field(default_factory=lambda: Duration.minutes(30))
    probe_path: str = "/"

    def check(self) -> None:
        expression = self.schedule.strip()
        if not expression.startswith(("rate(", "cron(", "at(")):
            raise PropsError("schedule must be rate(...), cron(...) or at(...)")
        if expression.startswith("rate(") and rate_seconds(expression) is None:
            raise PropsError(f"schedule is not a valid rate: {self.schedule!r}")
        if not self.probe_path.startswith("/"):
            raise PropsError(f"probe_path must start with '/': {self.probe_path!r}")

    def drain_seconds(self, edge_signed: bool = False) -> int:
        default = Duration.seconds(60) if edge_signed else Duration.minutes(5)
        return seconds("drain", self.drain or default, 0, 86400)

    def poll_seconds(self, edge_signed: bool = False) -> int:
        default = Duration.seconds(5) if edge_signed else Duration.seconds(30)
        return seconds("poll_interval", self.poll_interval or default, 1, 3600)

    def deploy_timeout_seconds(self) -> int:
        return seconds("deploy_timeout", self.deploy_timeout, 60, 6 * 3600)


@dataclass(frozen=True)
class AlarmProps:
    """The alarms and where they go.

    Attributes
    ----------
    email
        An address subscribed to the alarm topic (it must confirm); ``None``: none.
    token_max_age
        The token's age above which the TokenStale alarm fires; ``None``: twice a ``rate(...)``
        schedule (required with ``cron(...)``/``at(...)``).
    """

    email: str | None = None
    token_max_age: Duration | None = None

    def token_max_age_seconds(self, rotation: RotationProps) -> int:
        if self.token_max_age is not None:
            return seconds("token_max_age", self.token_max_age, 1, 10 * 365 * 86400)
        interval = rate_seconds(rotation.schedule)
        if interval is None:
            raise PropsError("AlarmProps.token_max_age is required with a cron(...) or at(...)")
        return 2 * interval


@dataclass(frozen=True)
class EdgeSigningProps:
    """Edge-signed mode's tokens and key rotation (docs/edge-signed.md).

    Attributes
    ----------
    window
        How long the edges send one token (10 s to 1 hour). A leaked token is refused
        (tolerance_windows + 1) windows + the authorizer's result TTL after its window began.
        Fixed for a deployment's life: the function and the authorizers must agree on it.
    tolerance_windows
        How many windows a token may be behind or ahead of the authorizer's clock (0 to 10).
    propagation_wait
        How long a rotation waits after writing a key to the KeyValueStore before it checks,
        through CloudFront, that the edges sign with it (AWS gives no per-edge signal).
    """

    window: Duration = field(default_factory=lambda: Duration.seconds(60))
    tolerance_windows: int = 1
    propagation_wait: Duration = field(default_factory=lambda: Duration.seconds(60))

    def window_seconds(self) -> int:
        return seconds("window", self.window, 10, 3600)

    def check(self) -> None:
        self.window_seconds()
        if not isinstance(self.tolerance_windows, int) or not 0 <= self.tolerance_windows <= 10:
            raise PropsError("tolerance_windows must be a whole number from 0 to 10")
        self.propagation_seconds()

    def propagation_seconds(self) -> int:
        return seconds("propagation_wait", self.propagation_wait, 1, 3600)


@dataclass(frozen=True)
class DistributionProps:
    """The distribution :class:`~originlock.cdk.OriginLock` makes when given none.

    Attributes
    ----------
    web_acl_arn
        A ``CLOUDFRONT`` web ACL (made in us-east-1, e.g. by :class:`~originlock.cdk.EdgeFirewall`);
        ``None``: no WAF.
    standard_logs
        CloudFront standard logs to a bucket of its own (not in an opt-in Region).
    """

    web_acl_arn: str | None = None
    standard_logs: bool = True
