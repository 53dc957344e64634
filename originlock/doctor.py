"""``originlock doctor``: what a first ``cdk deploy`` needs from the account, checked before it
runs (``make deploy`` runs it first).

Each check ends as ``ok``, ``warn`` (worth knowing, does not stop a deploy), ``unknown`` (the
answer could not be read: a denied call, say) or ``fail`` (the deploy would fail), with the
command that fixes it. The checks:

* **Lambda concurrency** (``GetAccountSettings``): Lambda refuses a reserved concurrency that
  leaves less than 100 unreserved in the account and region, and new accounts often have a
  total of 10 or 50. originlock reserves none unless ``authorizerReservedConcurrency`` says so;
  a reservation the stack's authorizer already holds (a redeploy) is counted as available.
* **Authorizer fleet**: the max age is planned for ``authorizerMaxInstances`` instances (else
  the reservation, else Lambda's default quota of 1000; ``originlock/budget.py``); when Lambda
  may run more (the account's quota was raised, or the reservation is larger), the fleet can
  read Parameter Store beyond ``ssmReadBudgetPerSecond``: a warning with the setting to use.
* **CDK bootstrap**, in the deploy region and in us-east-1 (the web ACL's stack): the
  ``/cdk-bootstrap/<qualifier>/version`` parameter (the one the templates' ``BootstrapVersion``
  rule reads), or the ``CDKToolkit`` stack's ``BootstrapVersion`` output when SSM may not be
  read. Templates refuse a version below 6.
* **Parameter Store throughput** (``GetServiceSetting``
  ``/ssm/parameter-store/high-throughput-enabled``): informative; the authorizer shares the
  account's GetParameter quota (40/s by default) with every other caller.

The deploy settings come from ``cdk.json``'s context and ``-c key=value``, as the CDK CLI reads
them. AWS is reached through the :class:`Account` port; :class:`AwsAccount` is its boto3
adapter, and the two account settings moto does not implement go through a second, smaller
port (:class:`AccountSettings`) that tests can answer in memory.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from originlock.budget import DEFAULT_MAX_INSTANCES, fleet_reads_per_second, max_age_for_budget
from originlock.errors import OriginlockError

OK, WARN, UNKNOWN, FAIL = "ok", "warn", "unknown", "fail"
MIN_UNRESERVED = 100  # Lambda keeps at least this much concurrency unreserved
MIN_BOOTSTRAP_VERSION = 6  # the CheckBootstrapVersion rule of every CDK v2 template
DEFAULT_QUALIFIER = "hnb659fds"
WAF_REGION = "us-east-1"
HIGH_THROUGHPUT_SETTING = "/ssm/parameter-store/high-throughput-enabled"
LAMBDA_CONCURRENCY_QUOTA = "L-B99A9384"  # Service Quotas: Lambda "Concurrent executions"
STANDARD_GET_PARAMETER_TPS = 40
# What the doctor reads of the CDK context, and the defaults when a key is absent.
CONTEXT_DEFAULTS: dict[str, Any] = {
    "stackName": "Originlock",
    "account": "",
    "region": "",
    "authorizerReservedConcurrency": 0,
    # The fleet the authorizer's max age is planned for (originlock/budget.py; 0: the
    # reservation if any, else Lambda's default quota), and what the plan starts from.
    "authorizerMaxInstances": 0,
    "authorizerTokenMaxAgeSeconds": 60,
    "ssmReadBudgetPerSecond": 10,
    "wafEnabled": True,
    # Attach mode deploys one stack, in the region: no web ACL stack in us-east-1.
    "attach": False,
    "@aws-cdk/core:bootstrapQualifier": DEFAULT_QUALIFIER,
}


class CannotTell(Exception):
    """An answer the account would not give (a denied call, an unknown operation)."""


# -- what the deploy will ask for -------------------------------------------------------------
@dataclass(frozen=True)
class DeploySettings:
    """The CDK context the checks depend on (``cdk.json``, then ``-c`` overrides)."""

    stack_name: str = "Originlock"
    account: str = ""
    region: str = ""
    reserved_concurrency: int = 0
    max_instances: int = 0
    max_age_seconds: int = 60
    read_budget_per_second: int = 10
    waf_enabled: bool = True
    qualifier: str = DEFAULT_QUALIFIER
    source: str = "defaults"

    @classmethod
    def load(cls, cdk_json: Path | None, overrides: dict[str, str]) -> DeploySettings:
        """Read *cdk_json* (if it exists) and apply *overrides* (``-c key=value``).

        Raises
        ------
        OriginlockError
            When the file is not JSON or a value has the wrong type.
        """
        context = dict(CONTEXT_DEFAULTS)
        sources = []
        if cdk_json is not None and cdk_json.is_file():
            try:
                data = json.loads(cdk_json.read_text())
            except (OSError, ValueError) as exc:
                raise OriginlockError(f"cannot read {cdk_json}: {exc}") from None
            found = data.get("context") if isinstance(data, dict) else None
            context.update(found if isinstance(found, dict) else {})
            sources.append(str(cdk_json))
        context.update(overrides)
        if overrides:
            sources.append("-c " + ", ".join(sorted(overrides)))
        return cls(
            stack_name=_text(context, "stackName") or "Originlock",
            account=_text(context, "account"),
            region=_text(context, "region"),
            reserved_concurrency=_count(context, "authorizerReservedConcurrency"),
            max_instances=_count(context, "authorizerMaxInstances"),
            max_age_seconds=max(1, _count(context, "authorizerTokenMaxAgeSeconds")),
            read_budget_per_second=max(1, _count(context, "ssmReadBudgetPerSecond")),
            waf_enabled=_flag(context, "wafEnabled") and not _flag(context, "attach"),
            qualifier=_text(context, "@aws-cdk/core:bootstrapQualifier") or DEFAULT_QUALIFIER,
            source=" + ".join(sources) or "defaults (no cdk.json)",
        )

    @property
    def planned_fleet(self) -> int:
        """The fleet the max age is planned for: infra/config.py's precedence."""
        return self.max_instances or self.reserved_concurrency or DEFAULT_MAX_INSTANCES

    @property
    def planned_max_age(self) -> int:
        """The max age the authorizer gets (raised to keep the planned fleet in budget)."""
        return max_age_for_budget(
            self.max_age_seconds, self.planned_fleet, self.read_budget_per_second
        )


def _text(context: dict[str, Any], key: str) -> str:
    value = context.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise OriginlockError(f"context {key} must be a string, not {json.dumps(value)}")
    return value.strip()


def _count(context: dict[str, Any], key: str) -> int:
    value = context.get(key)
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise OriginlockError(f"context {key} must be a whole number >= 0")
    return value


def _flag(context: dict[str, Any], key: str) -> bool:
    value = context.get(key)
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    if not isinstance(value, bool):
        raise OriginlockError(f"context {key} must be true or false")
    return value


# -- the ports -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Concurrency:
    total: int
    unreserved: int


class AccountSettings(Protocol):
    """Account-wide settings (the calls moto does not implement)."""

    def lambda_concurrency(self, region: str) -> Concurrency:
        """Lambda's ``AccountLimit`` in *region*. Raises :class:`CannotTell`."""
        ...

    def high_throughput(self, region: str) -> bool:
        """Whether Parameter Store's higher throughput is on. Raises :class:`CannotTell`."""
        ...


class Account(AccountSettings, Protocol):
    """What the doctor asks of an AWS account."""

    def identity(self) -> tuple[str, str]:
        """``(account id, caller ARN)``."""
        ...

    def reserved_by_stack(self, region: str, stack_name: str) -> int:
        """The concurrency the stack's authorizer reserves now (0: no stack, no reservation).
        Raises :class:`CannotTell`."""
        ...

    def bootstrap_version(self, region: str, qualifier: str) -> int | None:
        """The CDK bootstrap version in *region* (``None``: not bootstrapped). Raises
        :class:`CannotTell`."""
        ...


# -- the boto3 adapters ----------------------------------------------------------------------
class AwsAccountSettings:
    """:class:`AccountSettings` through boto3 clients (``clients(service, region)``)."""

    def __init__(self, clients: Any) -> None:
        self._clients = clients

    def lambda_concurrency(self, region: str) -> Concurrency:
        limit = _ask(lambda: self._clients("lambda", region).get_account_settings())["AccountLimit"]
        return Concurrency(
            int(limit["ConcurrentExecutions"]), int(limit["UnreservedConcurrentExecutions"])
        )

    def high_throughput(self, region: str) -> bool:
        setting = _ask(
            lambda: self._clients("ssm", region).get_service_setting(
                SettingId=HIGH_THROUGHPUT_SETTING
            )
        )["ServiceSetting"]
        return str(setting.get("SettingValue", "")).lower() == "true"


class AwsAccount:
    """:class:`Account` through a boto3 session; *settings* answers the account settings
    (default: :class:`AwsAccountSettings` over the same session)."""

    def __init__(
        self,
        session: Any,
        endpoint_url: str | None = None,
        settings: AccountSettings | None = None,
    ) -> None:
        self._session = session
        self._endpoint_url = endpoint_url
        self._cache: dict[tuple[str, str], Any] = {}
        self._settings = settings or AwsAccountSettings(self.client)

    def client(self, service: str, region: str) -> Any:
        from botocore.config import Config

        key = (service, region)
        if key not in self._cache:
            self._cache[key] = self._session.client(
                service,
                region_name=region,
                endpoint_url=self._endpoint_url,
                config=Config(
                    retries={"mode": "standard", "max_attempts": 3},
                    connect_timeout=5,
                    read_timeout=30,
                    user_agent_extra="originlock-doctor",
                ),
            )
        return self._cache[key]

    def identity(self) -> tuple[str, str]:
        region = self._session.region_name or WAF_REGION
        answer = self.client("sts", region).get_caller_identity()
        return str(answer["Account"]), str(answer["Arn"])

    def lambda_concurrency(self, region: str) -> Concurrency:
        return self._settings.lambda_concurrency(region)

    def high_throughput(self, region: str) -> bool:
        return self._settings.high_throughput(region)

    def reserved_by_stack(self, region: str, stack_name: str) -> int:
        from botocore.exceptions import ClientError

        try:
            stacks = self.client("cloudformation", region).describe_stacks(StackName=stack_name)
        except ClientError as exc:
            if _code(exc) == "ValidationError":  # "Stack with id ... does not exist"
                return 0
            raise CannotTell(_code(exc)) from None
        outputs = {
            o["OutputKey"]: o["OutputValue"] for o in stacks["Stacks"][0].get("Outputs", []) or []
        }
        function = outputs.get("AuthorizerFunctionName")
        if not function:
            return 0
        try:
            answer = self.client("lambda", region).get_function_concurrency(FunctionName=function)
        except ClientError as exc:
            if _code(exc) == "ResourceNotFoundException":
                return 0
            raise CannotTell(_code(exc)) from None
        return int(answer.get("ReservedConcurrentExecutions") or 0)

    def bootstrap_version(self, region: str, qualifier: str) -> int | None:
        from botocore.exceptions import ClientError

        name = f"/cdk-bootstrap/{qualifier}/version"
        try:
            value = self.client("ssm", region).get_parameter(Name=name)["Parameter"]["Value"]
            return _version(value)
        except ClientError as exc:
            if _code(exc) == "ParameterNotFound":
                return None
            denied = _code(exc)
        # SSM may not be read: the toolkit stack says it too (under its default name).
        try:
            stacks = self.client("cloudformation", region).describe_stacks(StackName="CDKToolkit")
        except ClientError as exc:
            if _code(exc) == "ValidationError":
                return None
            raise CannotTell(f"{denied} on ssm:GetParameter, {_code(exc)} on CDKToolkit") from None
        for output in stacks["Stacks"][0].get("Outputs", []) or []:
            if output.get("OutputKey") == "BootstrapVersion":
                return _version(output.get("OutputValue"))
        raise CannotTell(f"{denied} on ssm:GetParameter; CDKToolkit has no BootstrapVersion")


def _ask(call: Any) -> Any:
    from botocore.exceptions import ClientError

    try:
        return call()
    except ClientError as exc:
        raise CannotTell(_code(exc)) from None


def _code(exc: Any) -> str:
    return str(exc.response.get("Error", {}).get("Code") or "error")


def _version(value: Any) -> int:
    try:
        return int(str(value).strip())
    except ValueError:
        raise CannotTell(f"bootstrap version {str(value)[:20]!r} is not a number") from None


# -- the checks ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Check:
    """One finding: what was checked, how it stands (and what to do), and the exact command
    that does it, when there is one."""

    name: str
    status: str
    summary: str
    command: str | None = None

    @property
    def blocks(self) -> bool:
        return self.status == FAIL


@dataclass
class Report:
    account: str
    caller: str
    region: str
    settings: DeploySettings
    checks: list[Check] = field(default_factory=list)

    @property
    def blocking(self) -> list[Check]:
        return [c for c in self.checks if c.blocks]

    @property
    def ok(self) -> bool:
        return not self.blocking

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "account": self.account,
            "caller": self.caller,
            "region": self.region,
            "settings": asdict(self.settings),
            "checks": [{**asdict(c), "blocks": c.blocks} for c in self.checks],
        }


def diagnose(account: Account, settings: DeploySettings, region: str) -> Report:
    """Every check against *account*, for a deploy of *settings* to *region*."""
    account_id, caller = account.identity()
    report = Report(account_id, caller, region, settings)
    report.checks.append(_identity_check(account_id, caller, settings))
    report.checks.append(concurrency_check(account, settings, region))
    report.checks.append(fleet_check(account, settings, region))
    regions = [region] + ([WAF_REGION] if settings.waf_enabled and region != WAF_REGION else [])
    for where in regions:
        report.checks.append(bootstrap_check(account, account_id, where, settings.qualifier))
    report.checks.append(throughput_check(account, account_id, region))
    return report


def _identity_check(account_id: str, caller: str, settings: DeploySettings) -> Check:
    if settings.account and settings.account != account_id:
        return Check(
            "credentials",
            FAIL,
            f"the CDK context deploys to account {settings.account}, "
            f"these credentials are for {account_id} ({caller}): use a profile of that account "
            "(--profile, AWS_PROFILE) or change the context's account",
        )
    return Check("credentials", OK, f"account {account_id} as {caller}")


def concurrency_check(account: Account, settings: DeploySettings, region: str) -> Check:
    """Whether Lambda will accept the authorizer's reserved concurrency in *region*."""
    name = "lambda concurrency"
    wanted = settings.reserved_concurrency
    try:
        limits = account.lambda_concurrency(region)
        held = account.reserved_by_stack(region, settings.stack_name) if wanted else 0
    except CannotTell as exc:
        return Check(
            name,
            UNKNOWN,
            f"cannot read the account's concurrency ({exc}); Lambda refuses a reservation "
            f"that leaves less than {MIN_UNRESERVED} unreserved "
            f"(authorizerReservedConcurrency={wanted})",
            f"aws lambda get-account-settings --region {region}",
        )
    numbers = f"{limits.total} in all, {limits.unreserved} unreserved, in {region}"
    raise_quota = (
        "aws service-quotas request-service-quota-increase --service-code lambda "
        f"--quota-code {LAMBDA_CONCURRENCY_QUOTA} --desired-value "
        f"{max(1000, wanted + MIN_UNRESERVED)} --region {region}"
    )
    if wanted == 0:
        if limits.total < MIN_UNRESERVED:
            return Check(
                name,
                WARN,
                f"no reservation asked; the account runs at most {limits.total} Lambda "
                f"executions at once ({numbers}): under load the authorizer is throttled and "
                "API Gateway answers 500",
                raise_quota,
            )
        return Check(name, OK, f"no reservation asked ({numbers})")
    left = limits.unreserved + held - wanted
    if left >= MIN_UNRESERVED:
        return Check(
            name, OK, f"reserving {wanted} leaves {left} unreserved ({numbers}; at least 100)"
        )
    room = max(0, limits.unreserved + held - MIN_UNRESERVED)
    at_most = f"{room} or less" if room else "0 (no reservation)"
    return Check(
        name,
        FAIL,
        f"reserving {wanted} would leave {left} unreserved ({numbers}); Lambda refuses a "
        f"reservation that leaves less than {MIN_UNRESERVED}: set authorizerReservedConcurrency "
        f"to {at_most} (cdk.json, or -c authorizerReservedConcurrency={room}), "
        "or raise the account's quota",
        raise_quota,
    )


def fleet_check(account: Account, settings: DeploySettings, region: str) -> Check:
    """Whether the fleet the authorizer's max age is planned for is as large as the fleet
    Lambda may run: a larger fleet reads Parameter Store more often than the budget."""
    name = "authorizer fleet"
    planned, max_age = settings.planned_fleet, settings.planned_max_age
    plan = (
        f"the max age ({max_age} s) keeps a fleet of {planned} within "
        f"{settings.read_budget_per_second} GetParameter/s"
    )
    if settings.reserved_concurrency:
        possible = settings.reserved_concurrency
        where = f"the reservation ({possible})"
    else:
        try:
            possible = account.lambda_concurrency(region).total
        except CannotTell as exc:
            return Check(name, UNKNOWN, f"{plan}; cannot read the account's concurrency ({exc})")
        where = f"the account's concurrency quota ({possible})"
    if possible <= planned:
        return Check(name, OK, f"{plan}; Lambda runs at most {where}")
    reads = fleet_reads_per_second(possible, max_age)
    return Check(
        name,
        WARN,
        f"{plan}, but Lambda may run up to {where}: at that many instances the authorizer "
        f"reads up to {reads:.1f}/s (SSM's standard quota is {STANDARD_GET_PARAMETER_TPS}/s "
        f"for the whole account): set authorizerMaxInstances={possible} (the max age becomes "
        f"{max_age_for_budget(settings.max_age_seconds, possible, settings.read_budget_per_second)}"
        " s) or reserve concurrency",
    )


def bootstrap_check(account: Account, account_id: str, region: str, qualifier: str) -> Check:
    """Whether the CDK bootstrap in *region* is there and recent enough."""
    name = f"cdk bootstrap {region}"
    command = f"npx --no-install cdk bootstrap aws://{account_id}/{region}"
    if qualifier != DEFAULT_QUALIFIER:
        command += f" --qualifier {shlex.quote(qualifier)}"
    try:
        version = account.bootstrap_version(region, qualifier)
    except CannotTell as exc:
        return Check(
            name, UNKNOWN, f"cannot tell ({exc}); bootstrapping again is harmless", command
        )
    if version is None:
        why = (
            "the web ACL's stack deploys there" if region == WAF_REGION else "the app deploys there"
        )
        return Check(name, FAIL, f"not bootstrapped ({why})", command)
    if version < MIN_BOOTSTRAP_VERSION:
        return Check(
            name,
            FAIL,
            f"bootstrap version {version}; the templates need {MIN_BOOTSTRAP_VERSION} or later",
            command,
        )
    return Check(name, OK, f"bootstrap version {version}")


def throughput_check(account: Account, account_id: str, region: str) -> Check:
    """Parameter Store's throughput setting: informative, never blocking."""
    name = "parameter store throughput"
    command = (
        "aws ssm update-service-setting --setting-id "
        f"arn:aws:ssm:{region}:{account_id}:servicesetting{HIGH_THROUGHPUT_SETTING} "
        f"--setting-value true --region {region}"
    )
    try:
        high = account.high_throughput(region)
    except CannotTell as exc:
        return Check(name, UNKNOWN, f"cannot read the setting ({exc})")
    if high:
        return Check(name, OK, "higher throughput is on (charged per GetParameter call)")
    return Check(
        name,
        OK,
        f"standard: {STANDARD_GET_PARAMETER_TPS} GetParameter/s shared by every caller in "
        f"{region}; each authorizer instance reads once per max age (125 s by default, less "
        "than 0.01/s). If other workloads "
        "use most of it, turn on higher throughput (charged per call)",
        command,
    )
