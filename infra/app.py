"""The originlock CDK app: ``.venv/bin/python infra/app.py`` (cdk.json) composes the stacks.

A thin user of the construct library (``originlock.cdk``): it reads cdk.json's context
(:mod:`infra.config`) and passes props. ``-c attach=true`` builds the attach stack instead
(an API and a distribution made elsewhere, named by their ids).

Synthesis needs no AWS credentials: the account may stay unresolved and the
region falls back to us-east-1 when neither context nor the CLI names one.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

# Run as a script by the CDK CLI: make the repository root importable.
_ROOT = str(Path(__file__).resolve().parent.parent)
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from aws_cdk import App, Environment, Tags, Validations  # noqa: E402
from cdk_nag import AwsSolutionsChecks  # noqa: E402

from infra.config import AppConfig, AttachConfig, ConfigError, attach_mode  # noqa: E402
from infra.constants import FALLBACK_REGION, WAF_STACK_SUFFIX  # noqa: E402
from infra.stacks import AttachStack, EdgeWafStack, OriginlockStack  # noqa: E402
from originlock.cdk.findings import skip_checkov_on_cdk_providers  # noqa: E402
from originlock.constants import OPT_IN_REGIONS, WAF_REGION  # noqa: E402


def build_app(context: dict[str, Any] | None = None, outdir: str | None = None) -> App:
    """Build the app with cdk-nag's AwsSolutions checks registered (they run at synth)."""
    app = App(context=context, outdir=outdir)
    if attach_mode(app.node.try_get_context):
        _attach(app, AttachConfig.from_context(app.node.try_get_context))
    else:
        _lockdown(app, AppConfig.from_context(app.node.try_get_context))
    Tags.of(app).add("project", "originlock")
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    return app


def _environment(config: AppConfig) -> tuple[str | None, str]:
    account = config.account or os.environ.get("CDK_DEFAULT_ACCOUNT") or None
    region = config.region or os.environ.get("CDK_DEFAULT_REGION") or FALLBACK_REGION
    return account, region


def _attach(app: App, config: AttachConfig) -> None:
    account, region = _environment(config.app)
    stack = AttachStack(
        app,
        config.app.stack_name,
        config=config,
        env=Environment(account=account, region=region),
        description=(
            "originlock (attach): origin authorizer and secret rotation for an existing API "
            "and distribution"
        ),
    )
    skip_checkov_on_cdk_providers(stack)


def _lockdown(app: App, config: AppConfig) -> None:
    account, region = _environment(config)
    if config.cloud_front_logs_enabled and region in OPT_IN_REGIONS:
        raise ConfigError(
            f"CloudFront delivers no standard logs to a bucket in {region} (an opt-in Region): "
            "deploy with -c cloudFrontLogsEnabled=false, or in another region"
        )

    web_acl_arn: str | None = None
    if config.waf_enabled:
        waf = EdgeWafStack(
            app,
            f"{config.stack_name}{WAF_STACK_SUFFIX}",
            config=config,
            env=Environment(account=account, region=WAF_REGION),
            description="originlock: CloudFront web ACL (us-east-1)",
        )
        web_acl_arn = waf.firewall.arn
    main = OriginlockStack(
        app,
        config.stack_name,
        config=config,
        web_acl_arn=web_acl_arn,
        env=Environment(account=account, region=region),
        # The web ACL's ARN crosses from us-east-1 (CDK writes it to an SSM
        # parameter there and reads it back here).
        cross_region_references=config.waf_enabled,
        description="originlock: HTTP API locked behind CloudFront, with secret rotation",
    )
    if config.waf_enabled:
        main.add_stack_dependency(waf)
        skip_checkov_on_cdk_providers(waf)
    skip_checkov_on_cdk_providers(main)


def main() -> None:
    build_app().synth()


if __name__ == "__main__":
    main()
