"""The drift guard: which value the distribution's origin header carries after a deploy.

CloudFormation owns the distribution's ``OriginCustomHeaders``, but the rotation
workflow changes the header behind its back. A template with a literal value
would put a stale value back on every deploy (aws-cdk issue #20980), and a
template must never hold the secret anyway. So the header value is
``Fn::GetAtt [OriginHeaderValue, Value]`` of ``Custom::OriginlockOriginHeaderValue``:
its function reads the header the *live* distribution sends and returns it if
the token document still accepts it, else ``current`` (``NoEcho``).

When does it run? Whenever the distribution could be written. Its properties
carry the distribution's whole configuration and its tags: for the distribution
:class:`~originlock.cdk.LockedDistribution` makes, built by the same function
(:func:`originlock.cdk.distribution.distribution_config`) with a placeholder for the
header value; for a user's ``Distribution`` or ``CfnDistribution``, the properties its
``CfnDistribution`` renders (:meth:`OriginHeaderGuard.guard_distribution`), whose origin
header this guard sets with a property override. Any change CloudFormation would
make to the distribution, in the template or in a value it references (the API's
domain, the web ACL's ARN), changes the guard's properties too, and CloudFormation
updates the guard first (the distribution depends on it). When nothing in the
distribution changes, neither runs and CloudFront keeps what it sends. No nonce:
the synthesized output is deterministic.

While a rotation runs (an execution holds the workflow's lock) the guard fails
the deploy before the distribution is touched, except during a rollback (it
reads its own stack's status), so a refused deploy rolls back cleanly.

Limits with a user's distribution: it must be in the guard's stack (the guard finds it by
logical id, and a distribution in another stack that took its header from this one would
make the two stacks depend on each other); and what an escape hatch writes straight into its
template (``add_property_override`` on the ``CfnDistribution``) is not in the properties the
guard copies: a deploy that changes only such an override updates the distribution without
the guard (docs/deploy.md, "Use it in your own CDK app").
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jsii
from aws_cdk import (
    Annotations,
    CfnResource,
    CustomResource,
    Duration,
    IAnyProducer,
    IResolveContext,
    Lazy,
    Stack,
)
from aws_cdk import aws_cloudfront as cloudfront
from aws_cdk import aws_iam as iam
from constructs import Construct

from originlock.cdk.functions import PythonFunction, acknowledge, nag_arn
from originlock.cdk.props import PropsError, check_header_name
from originlock.cdk.rotation import executions_arn, executions_nag_id
from originlock.cdk.token_parameter import TokenParameter
from originlock.constants import (
    HEADER_PROVIDER_HANDLER,
    HEADER_RESOURCE_TYPE,
    NOT_CACHED_ERRORS,
)

# CloudFront's quota of custom headers per origin.
MAX_ORIGIN_HEADERS = 10


@jsii.implements(IAnyProducer)
class _Tags:
    """The distribution's tags as rendered at synthesis (tags are applied by an aspect)."""

    def __init__(self, distribution: cloudfront.CfnDistribution) -> None:
        self.distribution = distribution

    def produce(self, context: IResolveContext) -> Any:
        return self.distribution.tags.render_tags()


def cfn_distribution_config(distribution: cloudfront.CfnDistribution) -> Any:
    """The ``DistributionConfig`` a ``CfnDistribution`` holds, tokens unresolved.

    Read through ``cfnProperties`` (what the resource renders, overrides aside): the
    ``distribution_config`` attribute of an L2 ``Distribution``'s resource does not convert
    to Python (its lazily rendered parts are not the attribute's struct type).
    """
    properties = jsii.get(distribution, "cfnProperties") or {}
    return properties.get("distributionConfig")


@jsii.implements(IAnyProducer)
class _DistributionConfig:
    """A user's distribution's configuration as it is at synthesis (it may change until then)."""

    def __init__(self, distribution: cloudfront.CfnDistribution) -> None:
        self.distribution = distribution

    def produce(self, context: IResolveContext) -> Any:
        return cfn_distribution_config(self.distribution)


def cfn_distribution_of(
    distribution: cloudfront.IDistribution | cloudfront.CfnDistribution,
) -> cloudfront.CfnDistribution:
    """The ``CfnDistribution`` of an L2 ``Distribution`` (its default child), or itself."""
    if isinstance(distribution, cloudfront.CfnDistribution):
        return distribution
    child = distribution.node.default_child
    if not isinstance(child, cloudfront.CfnDistribution):
        raise PropsError(
            "existing_distribution_obj must be a Distribution or a CfnDistribution of this app "
            "(an imported distribution is not CloudFormation's here: use AttachedOriginLock)"
        )
    return child


class OriginHeaderGuard(Construct):
    """``Custom::OriginlockOriginHeaderValue`` and its function (read-only permissions).

    Parameters
    ----------
    token
        The token parameter (read) and its lock (is a rotation running?).
    header_name
        The origin header.
    state_machine_name
        The rotation workflow's state machine (whose executions hold the lock).
    powertools_layer_version
        The Powertools layer of the guard's function.

    Attributes
    ----------
    value
        The header value for the distribution's template (a ``Fn::GetAtt``).
    provider, resource
        The guard's function and its custom resource.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        token: TokenParameter,
        header_name: str,
        state_machine_name: str,
        powertools_layer_version: int,
    ) -> None:
        super().__init__(scope, construct_id)
        self.header_name = check_header_name(header_name)
        self.provider = PythonFunction(
            self,
            "Provider",
            handler=HEADER_PROVIDER_HANDLER,
            description="originlock: the origin header value a deploy must keep (drift guard)",
            environment={"POWERTOOLS_SERVICE_NAME": "provision"},
            powertools_version=powertools_layer_version,
            timeout=Duration.minutes(2),
            no_dead_letter_queue=(
                "Invoked by CloudFormation for a custom resource: the handler always answers "
                "CloudFormation, which fails (and rolls back) the deploy on an error."
            ),
        )
        role = self.provider.role
        token.grant_read(role)
        stack = Stack.of(self)
        role.add_to_policy(
            iam.PolicyStatement(
                # The distribution's physical id, and whether the stack is rolling back.
                actions=["cloudformation:DescribeStackResource", "cloudformation:DescribeStacks"],
                resources=[stack.stack_id],
            )
        )
        # The workflow's lock (a String: no KMS) and whether its holder still runs.
        role.add_to_policy(
            iam.PolicyStatement(actions=["ssm:GetParameter"], resources=[token.lock_arn])
        )
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["states:DescribeExecution"],
                resources=[executions_arn(self, state_machine_name)],
            )
        )
        # The distribution depends on this resource, so its id cannot be named here.
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["cloudfront:GetDistributionConfig"],
                resources=[
                    stack.format_arn(
                        service="cloudfront", region="", resource="distribution", resource_name="*"
                    )
                ],
            )
        )
        acknowledge(
            role,
            (
                "AwsSolutions-IAM5[Resource::"
                + nag_arn(self, "arn:{partition}:cloudfront::{account}:distribution/*]"),
                "Read-only GetDistributionConfig: the distribution takes its header value from "
                "this resource, so its id does not exist yet when this policy is written.",
            ),
            (
                executions_nag_id(self, state_machine_name),
                "DescribeExecution on this stack's rotation executions only: is the lock's "
                "holder still running? Execution names are made at run time.",
            ),
        )
        self.resource = CustomResource(
            self,
            "Resource",
            service_token=self.provider.function.function_arn,
            resource_type=HEADER_RESOURCE_TYPE,
            service_timeout=Duration.minutes(5),
            properties={
                "ParameterName": token.name,
                "HeaderName": self.header_name,
                "LockParameterName": token.lock_name,
            },
        )
        self.resource.node.add_dependency(token.resource, role)

    @property
    def value(self) -> str:
        """The header value, a ``Fn::GetAtt`` (never a literal)."""
        return self.resource.get_att_string("Value")

    def track(
        self,
        distribution: cloudfront.CfnDistribution,
        spec: Any,
    ) -> None:
        """Follow *distribution*: find it by logical id, re-run whenever it would change.

        *spec* is the distribution's configuration with the header value replaced
        by a placeholder (the value itself would be a reference to this resource).
        """
        if Stack.of(distribution) is not Stack.of(self):
            raise PropsError(
                "the distribution must be in the stack of its OriginLock: the drift guard "
                f"finds it by logical id in {Stack.of(self).stack_name}"
            )
        guard = self.resource.node.default_child
        assert isinstance(guard, CfnResource)
        stack = Stack.of(self)
        guard.add_property_override("DistributionLogicalId", stack.get_logical_id(distribution))
        guard.add_property_override("DistributionConfig", spec)
        guard.add_property_override("DistributionTags", Lazy.uncached_any(_Tags(distribution)))

    def guard_distribution(
        self,
        distribution: cloudfront.IDistribution | cloudfront.CfnDistribution,
        origin_ids: Sequence[str] | None = None,
    ) -> tuple[str, ...]:
        """Give a user's distribution its origin header from this guard, and follow it.

        The header is added to the targeted origins' custom headers with a property
        override (after the headers the user set there), and the guard copies the
        configuration the ``CfnDistribution`` renders, as it is at synthesis.

        Parameters
        ----------
        distribution
            An L2 ``Distribution`` or an L1 ``CfnDistribution`` of this guard's stack.
        origin_ids
            The origins that send the header; ``None``: the distribution's only origin.

        Returns
        -------
        tuple[str, ...]
            The targeted origins' ids (what the rotation switches).

        Raises
        ------
        PropsError
            The distribution is not in this stack, an origin id is unknown, several origins
            and none named, or a targeted origin already sets the header (its value would be
            a literal in the template) or has no room for it.
        """
        cfn = cfn_distribution_of(distribution)
        if Stack.of(cfn) is not Stack.of(self):
            raise PropsError(
                "the distribution must be in the stack of its OriginLock: the drift guard "
                f"finds it by logical id in {Stack.of(self).stack_name}"
            )
        config = Stack.of(cfn).resolve(cfn_distribution_config(cfn)) or {}
        origins = config.get("origins") or []
        if not isinstance(origins, list) or not origins:
            raise PropsError("the distribution has no origin (or its origins are a token)")
        known = [str(origin.get("id")) for origin in origins]
        if origin_ids is None:
            if len(known) != 1:
                raise PropsError(
                    "the distribution has several origins: name those that reach the API with "
                    f"origin_ids (its origins: {', '.join(known)})"
                )
            targets: tuple[str, ...] = tuple(known)
        else:
            targets = tuple(dict.fromkeys(origin_ids))
            unknown = [origin for origin in targets if origin not in known]
            if not targets or unknown:
                raise PropsError(
                    f"origin_ids names no origin of the distribution: {', '.join(unknown) or '[]'} "
                    f"(its origins: {', '.join(known)})"
                )
        for index, origin in enumerate(origins):
            if str(origin.get("id")) not in targets:
                continue
            headers = origin.get("originCustomHeaders") or []
            if any(str(h.get("headerName", "")).lower() == self.header_name for h in headers):
                raise PropsError(
                    f"origin {origin.get('id')} already sets {self.header_name}: leave it out; "
                    "OriginLock sets it from the drift guard (a value in the template is a "
                    "secret in the template, and one a deploy would put back)"
                )
            if len(headers) >= MAX_ORIGIN_HEADERS:
                raise PropsError(
                    f"origin {origin.get('id')} has {len(headers)} custom headers: CloudFront "
                    f"allows {MAX_ORIGIN_HEADERS}, so there is no room for {self.header_name}"
                )
            cfn.add_property_override(
                f"DistributionConfig.Origins.{index}.OriginCustomHeaders",
                [
                    *(
                        {"HeaderName": h["headerName"], "HeaderValue": h["headerValue"]}
                        for h in headers
                    ),
                    {"HeaderName": self.header_name, "HeaderValue": self.value},
                ],
            )
        self.track(cfn, Lazy.uncached_any(_DistributionConfig(cfn)))
        _warn_if_errors_are_cached(cfn, config)
        return targets


def _warn_if_errors_are_cached(cfn: cloudfront.CfnDistribution, config: dict[str, Any]) -> None:
    """A synthesis warning when the distribution would serve an origin's error from its cache.

    CloudFront caches an origin's 404/405/414/5xx (and 400/403 sent with a max-age) for 10 s by
    default: a failed authorizer invocation (a 500, on purpose uncached by API Gateway) would
    be served after its cause is gone. The distribution OriginLock makes sets every such status
    to 0 s (docs/decisions.md, "No error answer is served from CloudFront's cache").
    """
    responses = config.get("customErrorResponses") or []
    uncached = {
        response.get("errorCode")
        for response in responses
        if isinstance(response, dict) and response.get("errorCachingMinTtl") == 0
    }
    missing = [code for code in NOT_CACHED_ERRORS if code not in uncached]
    if missing:
        Annotations.of(cfn).add_warning_v2(
            "originlock:error-caching",
            "CloudFront caches this distribution's origin errors (status "
            f"{', '.join(map(str, missing))}) for 10 s: add error responses with a 0 s TTL for "
            "them (originlock.constants.NOT_CACHED_ERRORS), so that a failed authorizer "
            "invocation is not served after its cause is gone",
        )
