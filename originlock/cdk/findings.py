"""Checkov's findings acknowledged in the templates, each with its reason.

cdk-nag's are acknowledged with :func:`originlock.cdk.functions.acknowledge`; checkov reads
``Metadata.checkov.skip`` (``[{id, comment}]``) on the resource it would flag.
``tests/infra/test_checkov.py`` fails on a finding left unacknowledged and on an
acknowledgment that no longer matches a finding.
"""

from __future__ import annotations

from typing import Any

import jsii
from aws_cdk import CfnResource, Stack
from constructs import Construct, IValidation

CHECKOV_METADATA = "checkov"

# Reasons shared by every function of the app.
NO_VPC = (
    "Calls only public AWS APIs (the rotate function also the public CloudFront URL): there is "
    "no private resource to reach, and a VPC would need NAT or interface endpoints, adding cost "
    "and failure modes to the rotation path."
)
NO_RESERVATION = (
    "A reservation comes out of the account's unreserved concurrency, of which Lambda keeps "
    "100; new accounts have 10 or 50 in total, so nothing is reserved by default "
    "(docs/deploy.md; authorizerReservedConcurrency for the authorizer)."
)
PLAIN_ENVIRONMENT = (
    "The environment holds names and settings only (parameter, header and function names, "
    "timings), never a secret; Lambda encrypts it at rest with an AWS managed key."
)
LOGS_WITHOUT_SECRETS = (
    "The logs carry no secret value (tests capture every path's output); CloudWatch Logs "
    "encrypts them at rest. A customer key would cost a key per deployment and a key policy "
    "for the logs service, protecting nothing secret."
)


def skip_checkov(scope: Construct, *checks: tuple[str, str]) -> None:
    """Skip checkov *checks*, each ``(check id, reason)``, on *scope*'s CloudFormation resource
    (*scope* itself when it is one, else its default child)."""
    resource = scope if isinstance(scope, CfnResource) else scope.node.default_child
    assert isinstance(resource, CfnResource), scope.node.path
    existing: dict[str, Any] = resource.get_metadata(CHECKOV_METADATA) or {}
    skips = [dict(skip) for skip in existing.get("skip", [])]
    skips += [{"id": check, "comment": reason} for check, reason in checks]
    resource.add_metadata(CHECKOV_METADATA, {"skip": skips})


# CDK's cross-region reference providers (a reader in the consuming stack, a writer in the
# producing one): made by CDK while it resolves references, after aspects have run.
CDK_PROVIDERS = (
    "Custom::CrossRegionExportReaderCustomResourceProvider",
    "Custom::CrossRegionExportWriterCustomResourceProvider",
)
CDK_PROVIDER_SKIPS = (
    (
        "CKV_AWS_116",
        "CDK's cross-region reference provider, invoked by CloudFormation for a custom "
        "resource: its handler answers CloudFormation, which fails the deploy on an error.",
    ),
    ("CKV_AWS_117", NO_VPC),
    ("CKV_AWS_115", NO_RESERVATION),
)


@jsii.implements(IValidation)
class _CdkProviderSkips:
    """Acknowledges checkov's findings on CDK's own providers once they exist.

    A validation runs after CDK has resolved references (and made those providers) and
    before it writes the templates: the one point where their resources can be annotated.
    """

    def __init__(self, stack: Stack) -> None:
        self.stack = stack

    def validate(self) -> list[str]:
        for provider_id in CDK_PROVIDERS:
            provider = self.stack.node.try_find_child(provider_id)
            handler = provider.node.try_find_child("Handler") if provider else None
            if isinstance(handler, CfnResource) and not handler.get_metadata(CHECKOV_METADATA):
                skip_checkov(handler, *CDK_PROVIDER_SKIPS)
        return []


def skip_checkov_on_cdk_providers(stack: Stack) -> None:
    """Acknowledge checkov's findings on the providers CDK adds to *stack* at synthesis."""
    stack.node.add_validation(_CdkProviderSkips(stack))
