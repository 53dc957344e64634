"""The drift guard: which value the distribution's origin header carries after a deploy.

CloudFormation owns the distribution's ``OriginCustomHeaders``, but the rotation
workflow changes the header behind its back. A template with a literal value
would put a stale value back on every deploy (aws-cdk issue #20980), and a
template must never hold the secret anyway. So the header value is
``Fn::GetAtt [OriginHeaderValue, Value]`` of ``Custom::OriginlockOriginHeaderValue``:
its function reads the header the *live* distribution sends and returns it if
the token document still accepts it, else ``current`` (``NoEcho``).

When does it run? Whenever the distribution could be written. Its properties
carry the distribution's whole configuration, built by the same function
(:func:`infra.edge.distribution_config`) with a placeholder for the header value,
and its tags. Any change CloudFormation would make to the distribution, in the
template or in a value it references (the API's domain, the web ACL's ARN),
changes the guard's properties too, and CloudFormation updates the guard first
(the distribution depends on it). When nothing in the distribution changes,
neither runs and CloudFront keeps what it sends. No nonce: the synthesized
output is deterministic.

While a rotation runs (an execution holds the workflow's lock) the guard fails
the deploy before the distribution is touched, except during a rollback (it
reads its own stack's status), so a refused deploy rolls back cleanly.
"""

from __future__ import annotations

from typing import Any

import jsii
from aws_cdk import (
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

from infra.config import AppConfig
from infra.constants import (
    HEADER_PROVIDER_HANDLER,
    HEADER_RESOURCE_TYPE,
)
from infra.lambdas import PythonFunction, acknowledge, nag_arn
from infra.rotation import executions_arn, executions_nag_id
from infra.token_parameter import TokenParameter


@jsii.implements(IAnyProducer)
class _Tags:
    """The distribution's tags as rendered at synthesis (tags are applied by an aspect)."""

    def __init__(self, distribution: cloudfront.CfnDistribution) -> None:
        self.distribution = distribution

    def produce(self, context: IResolveContext) -> Any:
        return self.distribution.tags.render_tags()


class OriginHeaderValue(Construct):
    """``Custom::OriginlockOriginHeaderValue`` and its function (read-only permissions)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: AppConfig,
        token: TokenParameter,
    ) -> None:
        super().__init__(scope, construct_id)
        self.provider = PythonFunction(
            self,
            "Provider",
            handler=HEADER_PROVIDER_HANDLER,
            description="originlock: the origin header value a deploy must keep (drift guard)",
            environment={"POWERTOOLS_SERVICE_NAME": "provision"},
            powertools_version=config.powertools_layer_version,
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
                actions=["states:DescribeExecution"], resources=[executions_arn(self)]
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
                executions_nag_id(self),
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
                "HeaderName": config.header_name,
                "LockParameterName": config.lock_parameter_name,
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
        spec: cloudfront.CfnDistribution.DistributionConfigProperty,
    ) -> None:
        """Follow *distribution*: find it by logical id, re-run whenever it would change.

        *spec* is the distribution's configuration with the header value replaced
        by a placeholder (the value itself would be a reference to this resource).
        """
        guard = self.resource.node.default_child
        assert isinstance(guard, CfnResource)
        stack = Stack.of(self)
        guard.add_property_override("DistributionLogicalId", stack.get_logical_id(distribution))
        guard.add_property_override("DistributionConfig", spec)
        guard.add_property_override("DistributionTags", Lazy.uncached_any(_Tags(distribution)))
