"""The edge: the CloudFront distribution in front of the API, sending the origin header.

HTTPS only (TLSv1.2) to the origin, viewers redirected to HTTPS, nothing cached,
every viewer header but Host forwarded. The header's value comes from the drift
guard (:mod:`infra.origin_header`), never from a literal.

The distribution is the L1 ``CfnDistribution`` built by :func:`distribution_config`,
so that the drift guard can carry the very same configuration (with a placeholder
for the header value) and run whenever the distribution would change.
"""

from __future__ import annotations

import functools

from aws_cdk import Duration, Fn, RemovalPolicy, Stack
from aws_cdk import aws_cloudfront as cloudfront
from aws_cdk import aws_s3 as s3
from constructs import Construct

from infra.config import AppConfig
from infra.constants import ACCESS_LOG_DAYS, HEADER_VALUE_PLACEHOLDER
from infra.findings import skip_checkov
from infra.lambdas import acknowledge
from infra.lockdown_api import LockdownApi
from infra.origin_header import OriginHeaderValue
from infra.token_parameter import TokenParameter

ORIGIN_ID = "lockdown-api"
ACCESS_LOG_PREFIX = "cloudfront/"
Cfn = cloudfront.CfnDistribution


def distribution_config(
    *,
    header_name: str,
    header_value: str,
    api_domain: str,
    web_acl_arn: str | None,
    log_bucket_domain: str | None,
) -> cloudfront.CfnDistribution.DistributionConfigProperty:
    """The distribution's whole configuration; the drift guard gets a copy with a placeholder."""
    return Cfn.DistributionConfigProperty(
        enabled=True,
        comment="originlock: the only way into the API",
        http_version="http2and3",
        ipv6_enabled=True,
        price_class="PriceClass_All",
        web_acl_id=web_acl_arn,
        logging=(
            Cfn.LoggingProperty(
                bucket=log_bucket_domain, include_cookies=False, prefix=ACCESS_LOG_PREFIX
            )
            if log_bucket_domain is not None
            else None
        ),
        origins=[
            Cfn.OriginProperty(
                id=ORIGIN_ID,
                domain_name=api_domain,
                custom_origin_config=Cfn.CustomOriginConfigProperty(
                    origin_protocol_policy="https-only",
                    origin_ssl_protocols=["TLSv1.2"],
                ),
                origin_custom_headers=[
                    Cfn.OriginCustomHeaderProperty(
                        header_name=header_name, header_value=header_value
                    )
                ],
            )
        ],
        default_cache_behavior=Cfn.DefaultCacheBehaviorProperty(
            target_origin_id=ORIGIN_ID,
            viewer_protocol_policy="redirect-to-https",
            allowed_methods=["GET", "HEAD", "OPTIONS", "PUT", "PATCH", "POST", "DELETE"],
            cached_methods=["GET", "HEAD"],
            compress=True,
            cache_policy_id=cloudfront.CachePolicy.CACHING_DISABLED.cache_policy_id,
            origin_request_policy_id=(
                cloudfront.OriginRequestPolicy.ALL_VIEWER_EXCEPT_HOST_HEADER.origin_request_policy_id
            ),
        ),
    )


def access_log_bucket(scope: Construct) -> s3.Bucket:
    """The bucket for the distribution's standard logs (CloudFront writes them with ACLs).

    ACLs enabled (bucket owner preferred): CloudFront's log delivery needs a bucket ACL
    grant. Encrypted (SSE-S3: log delivery cannot use a customer key without a key policy
    for it), public access blocked, SSL only, versioned, logs expired with the functions'.
    Retained on destroy: a non-empty bucket cannot be deleted by CloudFormation.
    """
    bucket = s3.Bucket(
        scope,
        "AccessLogs",
        encryption=s3.BucketEncryption.S3_MANAGED,
        block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
        enforce_ssl=True,
        object_ownership=s3.ObjectOwnership.BUCKET_OWNER_PREFERRED,
        versioned=True,
        lifecycle_rules=[
            s3.LifecycleRule(
                expiration=Duration.days(ACCESS_LOG_DAYS),
                noncurrent_version_expiration=Duration.days(ACCESS_LOG_DAYS),
                abort_incomplete_multipart_upload_after=Duration.days(1),
            )
        ],
        removal_policy=RemovalPolicy.RETAIN,
    )
    why = (
        "This bucket receives CloudFront's standard logs; logging access to it would need a "
        "second bucket (and that one a third). Only CloudFront's log delivery writes here; "
        "versioned, public access blocked, SSL only."
    )
    acknowledge(bucket, ("AwsSolutions-S1", why))
    skip_checkov(bucket, ("CKV_AWS_18", why))
    return bucket


class Edge(Construct):
    """The distribution and the drift guard that sets its origin header."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: AppConfig,
        api: LockdownApi,
        token: TokenParameter,
        web_acl_arn: str | None,
    ) -> None:
        super().__init__(scope, construct_id)
        self.header_value = OriginHeaderValue(self, "OriginHeaderValue", config=config, token=token)
        self.log_bucket = access_log_bucket(self) if config.cloud_front_logs_enabled else None
        # https://<api-id>.execute-api.<region>.amazonaws.com -> the host name.
        api_domain = Fn.select(2, Fn.split("/", api.api.api_endpoint))
        config_with = functools.partial(
            distribution_config,
            header_name=config.header_name,
            api_domain=api_domain,
            web_acl_arn=web_acl_arn,
            log_bucket_domain=self.log_bucket.bucket_domain_name if self.log_bucket else None,
        )
        self.distribution = Cfn(
            self,
            "Distribution",
            distribution_config=config_with(header_value=self.header_value.value),
        )
        self.header_value.track(
            self.distribution,
            config_with(header_value=HEADER_VALUE_PLACEHOLDER),
        )
        acknowledge(
            self.distribution,
            (
                "AwsSolutions-CFR1",
                "No geo restriction: the API serves every country; add one in front "
                "if the business needs it.",
            ),
            (
                "AwsSolutions-CFR4",
                "The default *.cloudfront.net certificate cannot enforce a TLS policy for "
                "viewers; a custom domain with an ACM certificate is the user's choice.",
            ),
        )
        skip_checkov(
            self.distribution,
            (
                "CKV_AWS_174",
                "The default *.cloudfront.net certificate cannot set a minimum viewer TLS "
                "version; a custom domain with an ACM certificate is the user's choice.",
            ),
        )
        if web_acl_arn is None:
            acknowledge(
                self.distribution,
                ("AwsSolutions-CFR2", "WAF switched off in cdk.json (wafEnabled=false)."),
            )
            skip_checkov(
                self.distribution,
                ("CKV_AWS_68", "WAF switched off in cdk.json (wafEnabled=false)."),
            )
        if self.log_bucket is None:
            acknowledge(
                self.distribution,
                (
                    "AwsSolutions-CFR3",
                    "CloudFront standard logs switched off (cloudFrontLogsEnabled=false); "
                    "the API's own access log still records every request.",
                ),
            )
            skip_checkov(
                self.distribution,
                (
                    "CKV_AWS_86",
                    "CloudFront standard logs switched off (cloudFrontLogsEnabled=false); "
                    "the API's own access log still records every request.",
                ),
            )

    @property
    def distribution_id(self) -> str:
        return self.distribution.ref

    @property
    def distribution_arn(self) -> str:
        return Stack.of(self).format_arn(
            service="cloudfront",
            region="",
            resource="distribution",
            resource_name=self.distribution.ref,
        )

    @property
    def url(self) -> str:
        return f"https://{self.distribution.attr_domain_name}"
