"""The app's stacks: thin users of the construct library (originlock.cdk).

* :class:`EdgeWafStack`: the edge firewall, in us-east-1.
* :class:`OriginlockStack`: the app's own API (:class:`~infra.lockdown_api.LockdownApi`, as a
  user has one) locked by an :class:`~originlock.cdk.OriginLock`, which makes the distribution.
* :class:`AttachStack`: ``-c attach=true``, an :class:`~originlock.cdk.AttachedOriginLock` for
  an API and a distribution made elsewhere, named by their ids.
"""

from __future__ import annotations

from typing import Any

from aws_cdk import Stack
from aws_cdk import aws_kms as kms
from constructs import Construct

from infra.config import AppConfig, AttachConfig
from infra.lockdown_api import LockdownApi
from originlock.cdk import AttachedOriginLock, EdgeFirewall, OriginLock

# OriginLock's id in the app's stack. CDK leaves a construct named "Default" out of the logical
# ids below it: the resources keep the ids they had before the library existed (an upgrade
# replaces no distribution and deletes no parameter; docs/decisions.md).
LOCK_ID = "Default"


def token_key(scope: Construct, config: AppConfig) -> kms.IKey | None:
    """The token parameter's customer managed key: imported, made, or none."""
    if config.kms_key_arn:
        return kms.Key.from_key_arn(scope, "TokenKey", config.kms_key_arn)
    if config.create_key:
        return kms.Key(
            scope,
            "TokenKey",
            description="originlock: encrypts the origin token parameter",
            enable_key_rotation=True,
        )
    return None


class EdgeWafStack(Stack):
    """The CloudFront web ACL; CloudFront only accepts web ACLs made in us-east-1."""

    def __init__(self, scope: Construct, construct_id: str, *, config: AppConfig, **kwargs: Any):
        super().__init__(scope, construct_id, **kwargs)
        self.firewall = EdgeFirewall(self, "Firewall", rate_limit=config.waf_rate_limit)


class OriginlockStack(Stack):
    """The app's API behind CloudFront, with the token parameter, the rotation workflow and
    monitoring: everything but the API comes from :class:`~originlock.cdk.OriginLock`."""

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
        key = token_key(self, config)
        self.api = LockdownApi(self, "LockdownApi", config=config, key=key)
        self.lock = OriginLock(
            self,
            LOCK_ID,
            existing_api_obj=self.api.api,
            api_stage=self.api.stage,
            existing_authorizer_obj=self.api.authorizer,
            distribution_props=config.distribution_props(web_acl_arn),
            header_name=config.header_name,
            parameter_name=config.parameter_name,
            adopt_existing_parameter=config.adopt_existing_parameter,
            encryption_key=key,
            rotation_props=config.rotation_props(),
            alarm_props=config.alarm_props(),
            name_prefix=config.stack_name,
            lock_mode=config.lock_mode_props(),
            edge_signing_props=config.edge_signing_props(),
        )
        assert self.lock.edge is not None  # OriginLock made the distribution
        self.token = self.lock.token
        self.edge = self.lock.edge
        self.rotation = self.lock.rotation
        self.monitoring = self.lock.alarms


class AttachStack(Stack):
    """originlock for an API and a distribution made outside this app (``-c attach=true``)."""

    def __init__(
        self, scope: Construct, construct_id: str, *, config: AttachConfig, **kwargs: Any
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        app = config.app
        key = token_key(self, app)
        self.lock = AttachedOriginLock(
            self,
            LOCK_ID,
            api_id=config.api_id,
            api_stage=config.api_stage,
            distribution_id=config.distribution_id,
            origin_ids=config.origin_ids,
            distribution_domain_name=config.distribution_domain_name or None,
            existing_authorizer_id=config.authorizer_id or None,
            header_name=app.header_name,
            parameter_name=app.parameter_name,
            adopt_existing_parameter=app.adopt_existing_parameter,
            encryption_key=key,
            web_acl_arn=config.web_acl_arn or None,
            log_bucket_name=config.log_bucket_name or None,
            authorizer_props=app.authorizer_props(),
            rotation_props=app.rotation_props(),
            alarm_props=app.alarm_props(),
            name_prefix=app.stack_name,
        )
        self.token = self.lock.token
        self.authorizer = self.lock.origin_authorizer
        self.rotation = self.lock.rotation
        self.monitoring = self.lock.alarms
