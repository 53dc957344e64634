"""originlock as an AWS CDK construct library (``pip install 'originlock[cdk]'``).

Lock your HTTP API behind CloudFront in your own CDK app::

    from originlock.cdk import OriginLock

    lock = OriginLock(stack, "OriginLock", existing_api_obj=api,
                      existing_distribution_obj=distribution)
    api.add_routes(path="/{proxy+}", methods=[apigwv2.HttpMethod.ANY],
                   integration=integration, authorizer=lock.authorizer)

:class:`OriginLock` is the pattern (AWS Solutions Constructs' conventions: ``existing_…_obj``
for what you have, ``…_props`` for what it makes); its parts are usable alone:
:class:`OriginAuthorizer` (a route authorizer), :class:`TokenParameter`,
:class:`RotationWorkflow`, :class:`OriginHeaderGuard`, :class:`LockedDistribution`,
:class:`OriginLockAlarms`, :class:`EdgeFirewall`. :class:`AttachedOriginLock` serves an API
and a distribution made outside the app, named by their ids. README.md, "Use it in your own
CDK app"; docs/deploy.md.
"""

try:
    import aws_cdk  # noqa: F401
except ModuleNotFoundError as missing:  # a CLI-only install
    raise ModuleNotFoundError(
        "originlock.cdk needs the cdk extra: pip install 'originlock[cdk]'", name=missing.name
    ) from missing

from originlock.cdk.alarms import OriginLockAlarms
from originlock.cdk.attach import AttachedOriginLock
from originlock.cdk.authorizer import OriginAuthorizer
from originlock.cdk.distribution import LockedDistribution
from originlock.cdk.drift_guard import OriginHeaderGuard
from originlock.cdk.edge_signing import EdgeSigning
from originlock.cdk.firewall import EdgeFirewall
from originlock.cdk.origin_lock import OriginLock
from originlock.cdk.props import (
    AlarmProps,
    AuthorizerProps,
    DistributionProps,
    EdgeSigningProps,
    LockMode,
    PropsError,
    RotationProps,
    TokenSource,
)
from originlock.cdk.rotation import RotationWorkflow
from originlock.cdk.token_parameter import TokenParameter

__all__ = [
    "AlarmProps",
    "AttachedOriginLock",
    "AuthorizerProps",
    "DistributionProps",
    "EdgeFirewall",
    "EdgeSigning",
    "EdgeSigningProps",
    "LockMode",
    "LockedDistribution",
    "OriginAuthorizer",
    "OriginHeaderGuard",
    "OriginLock",
    "OriginLockAlarms",
    "PropsError",
    "RotationProps",
    "RotationWorkflow",
    "TokenParameter",
    "TokenSource",
]
