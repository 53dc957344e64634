"""Context parsing: strings from ``-c key=value``, defaults from cdk.json, refusals."""

from __future__ import annotations

from typing import Any

import pytest

from infra.config import AppConfig, ConfigError, rate_seconds
from infra.constants import CONTEXT_DEFAULTS
from tests.infra.conftest import cdk_json_context

pytestmark = pytest.mark.infra


def config(**context: Any) -> AppConfig:
    return AppConfig.from_context(context.get)


def test_cdk_json_and_code_defaults_agree() -> None:
    # Given cdk.json's context (minus CDK feature flags)
    from_file = {k: v for k, v in cdk_json_context().items() if not k.startswith("@")}
    # Then it names exactly the settings the code knows, with the same defaults
    assert from_file == CONTEXT_DEFAULTS


def test_defaults() -> None:
    defaults = config()
    assert defaults.header_name == "x-cf-api-gateway-token"
    assert defaults.rotation_schedule == "rate(7 days)"
    assert defaults.drain_seconds == 300
    assert defaults.authorizer_cache_ttl_seconds == 300
    assert defaults.waf_enabled is True
    assert defaults.backend_url == ""
    # Twice the schedule.
    assert defaults.token_max_age_seconds == 14 * 86400
    # Named after the stack: two stacks never share a token by accident.
    assert defaults.parameter_name == "/originlock/Originlock/origin-token"
    assert defaults.lock_parameter_name == "/originlock/Originlock/origin-token.lock"
    # No reservation: a new account's concurrency quota could not grant one.
    assert defaults.authorizer_reserved_concurrency == 0
    assert defaults.authorizer_token_source == "extension"


def test_command_line_strings_are_parsed() -> None:
    parsed = config(
        wafEnabled="false",
        createKey="true",
        drainSeconds="600",
        headerName="X-Origin-Secret",
        rotationSchedule="rate(1 day)",
    )
    assert parsed.waf_enabled is False and parsed.create_key is True
    assert parsed.drain_seconds == 600
    assert parsed.header_name == "x-origin-secret"
    assert parsed.token_max_age_seconds == 2 * 86400


def test_parameter_name_follows_the_stack_name_unless_set() -> None:
    staging = config(stackName="Staging")
    assert staging.parameter_name == "/originlock/Staging/origin-token"
    assert staging.lock_parameter_name == "/originlock/Staging/origin-token.lock"
    assert config(stackName="Staging", parameterName="").parameter_name == (
        "/originlock/Staging/origin-token"
    )
    explicit = config(stackName="Staging", parameterName="/blog/origin-secret")
    assert explicit.parameter_name == "/blog/origin-secret"
    assert explicit.lock_parameter_name == "/blog/origin-secret.lock"


def test_authorizer_settings_from_the_command_line() -> None:
    parsed = config(authorizerReservedConcurrency="100", authorizerTokenSource="SDK")
    assert parsed.authorizer_reserved_concurrency == 100
    assert parsed.authorizer_token_source == "sdk"


@pytest.mark.parametrize(
    ("context", "message"),
    [
        ({"headerName": "bad header"}, "headerName"),
        ({"parameterName": "no spaces allowed"}, "parameterName"),
        ({"rotationSchedule": "every week"}, "rotationSchedule"),
        ({"rotationSchedule": "rate(7 weeks)"}, "rotationSchedule"),
        ({"rotationSchedule": "cron(0 3 ? * MON *)"}, "tokenMaxAgeSeconds"),
        ({"authorizerCacheTtlSeconds": "3601"}, "authorizerCacheTtlSeconds"),
        ({"wafEnabled": "maybe"}, "wafEnabled"),
        ({"kmsKeyArn": "arn:aws:kms:eu-west-1:1:key/x", "createKey": True}, "mutually"),
        ({"backendUrl": "ftp://backend"}, "backendUrl"),
        ({"authorizerRefreshIntervalSeconds": 120}, "authorizerRefreshIntervalSeconds"),
        ({"authorizerTokenSource": "ssm"}, "authorizerTokenSource"),
        ({"authorizerReservedConcurrency": "-1"}, "authorizerReservedConcurrency"),
        ({"stackName": "1-starts-with-a-digit"}, "stackName"),
        ({"stackName": "has_underscore"}, "stackName"),
        ({"stackName": "S" * 56}, "stackName"),
    ],
)
def test_bad_context_is_refused_by_name(context: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        config(**context)


def test_standard_logs_are_refused_in_an_opt_in_region() -> None:
    from infra.app import build_app

    # CloudFront delivers no standard logs to a bucket there: say so before anything is built
    with pytest.raises(ConfigError, match="cloudFrontLogsEnabled=false"):
        build_app(context={"region": "af-south-1"})


def test_rate_seconds() -> None:
    assert rate_seconds("rate(7 days)") == 604800
    assert rate_seconds("rate(1 hour)") == 3600
    assert rate_seconds("rate(30 minutes)") == 1800
    assert rate_seconds("cron(0 3 ? * MON *)") is None


@pytest.mark.parametrize(
    ("context", "max_age"),
    [
        # Lambda's default account quota (1,000 instances) at 10 reads/s: 1,000 / (0.8 * 10)
        ({}, 125),
        # a reservation caps the fleet: the configured 60 s already keeps within the budget
        ({"authorizerReservedConcurrency": "100"}, 60),
        # a larger budget, or a larger fleet
        ({"ssmReadBudgetPerSecond": "40"}, 60),
        ({"authorizerMaxInstances": "2000"}, 250),
        # never below what is configured
        ({"authorizerTokenMaxAgeSeconds": "300"}, 300),
    ],
)
def test_the_authorizers_max_age_keeps_the_fleets_ssm_reads_within_the_budget(
    context: dict[str, str], max_age: int
) -> None:
    derived = config(**context)
    assert derived.authorizer_token_max_age_seconds == max_age
    # and the fleet's worst case is then within the budget
    from originlock.budget import fleet_reads_per_second

    assert (
        fleet_reads_per_second(derived.authorizer_max_instances, max_age)
        <= derived.ssm_read_budget_per_second
    )


def test_the_budgets_jitter_is_the_authorizers() -> None:
    from authorizer.cache import JITTER as AUTHORIZER_JITTER
    from originlock.budget import JITTER

    assert JITTER == AUTHORIZER_JITTER
