"""The two stacks: the edge firewall in us-east-1 and everything else in the chosen region.

A stack only composes constructs; each construct is readable on its own.
"""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, Stack
from aws_cdk import aws_kms as kms
from constructs import Construct

from infra.config import AppConfig
from infra.edge import Edge
from infra.edge_waf import EdgeFirewall
from infra.lockdown_api import LockdownApi
from infra.monitoring import Monitoring
from infra.rotation import RotationWorkflow
from infra.token_parameter import TokenParameter


class EdgeWafStack(Stack):
    """The CloudFront web ACL; CloudFront only accepts web ACLs made in us-east-1."""

    def __init__(self, scope: Construct, construct_id: str, *, config: AppConfig, **kwargs: Any):
        super().__init__(scope, construct_id, **kwargs)
        self.firewall = EdgeFirewall(self, "Firewall", rate_limit=config.waf_rate_limit)


class OriginlockStack(Stack):
    """The lock-down API, the edge, the token parameter, the rotation workflow and monitoring."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: AppConfig,
        web_acl_arn: str | None,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        key: kms.IKey | None = None
        if config.kms_key_arn:
            key = kms.Key.from_key_arn(self, "TokenKey", config.kms_key_arn)
        elif config.create_key:
            key = kms.Key(
                self,
                "TokenKey",
                description="originlock: encrypts the origin token parameter",
                enable_key_rotation=True,
            )
        self.token = TokenParameter(self, "TokenParameter", config=config, key=key)
        self.api = LockdownApi(self, "LockdownApi", config=config, token=self.token)
        self.edge = Edge(
            self, "Edge", config=config, api=self.api, token=self.token, web_acl_arn=web_acl_arn
        )
        self.rotation = RotationWorkflow(
            self,
            "Rotation",
            config=config,
            token=self.token,
            api=self.api,
            distribution_id=self.edge.distribution_id,
            distribution_arn=self.edge.distribution_arn,
            cloudfront_url=self.edge.url,
            web_acl_arn=web_acl_arn,
            log_bucket_arn=self.edge.log_bucket.bucket_arn if self.edge.log_bucket else None,
        )
        self.monitoring = Monitoring(
            self,
            "Monitoring",
            config=config,
            token=self.token,
            state_machine=self.rotation.state_machine,
            authorizer=self.api.authorizer.function,
        )
        outputs = {
            "CloudFrontUrl": self.edge.url,
            "ApiUrl": self.api.url,
            "StateMachineArn": self.rotation.state_machine.state_machine_arn,
            "ParameterName": self.token.name,
            "DistributionId": self.edge.distribution_id,
            "AuthorizerFunctionName": self.api.authorizer.function.function_name,
            "RotateFunctionName": self.rotation.rotate.function.function_name,
            "AlarmTopicArn": self.monitoring.topic.topic_arn,
            # What the originlock CLI reads (originlock/target.py).
            "ScheduleName": self.rotation.schedule.schedule_name,
            "ScheduleGroupName": "default",
            "OriginHeaderName": config.header_name,
        }
        for name, value in outputs.items():
            CfnOutput(self, name, value=value)
