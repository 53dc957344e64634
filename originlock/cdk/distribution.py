"""The edge: the CloudFront distribution in front of the API, sending the origin header.

HTTPS only (TLSv1.2) to the origin, viewers redirected to HTTPS, nothing cached,
every viewer header but Host forwarded. The header's value comes from the drift
guard (:mod:`originlock.cdk.drift_guard`), never from a literal.

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

from originlock.cdk.drift_guard import OriginHeaderGuard
from originlock.cdk.edge_signing import EdgeSigning
from originlock.cdk.findings import skip_checkov
from originlock.cdk.functions import acknowledge
from originlock.cdk.props import DistributionProps, PropsError
from originlock.cdk.token_parameter import TokenParameter
from originlock.constants import (
    ACCESS_LOG_DAYS,
    HEADER_VALUE_PLACEHOLDER,
    NOT_CACHED_ERRORS,
    OPT_IN_REGIONS,
)

ORIGIN_ID = "lockdown-api"
NO_WAF = (
    "No web ACL given (DistributionProps.web_acl_arn; in the app, wafEnabled=false): WAF "
    "switched off."
)
NO_STANDARD_LOGS = (
    "CloudFront standard logs switched off (DistributionProps.standard_logs; in the app, "
    "cloudFrontLogsEnabled=false); the API's own access log still records every request."
)
ACCESS_LOG_PREFIX = "cloudfront/"
Cfn = cloudfront.CfnDistribution


def distribution_config(
    *,
    header_name: str,
    header_value: str | None,
    api_domain: str,
    web_acl_arn: str | None,
    log_bucket_domain: str | None,
    signing: cloudfront.CfnDistribution.FunctionAssociationProperty | None = None,
) -> cloudfront.CfnDistribution.DistributionConfigProperty:
    """The distribution's whole configuration; the drift guard gets a copy with a placeholder.

    Edge-signed mode (*signing*, the viewer-request function): no origin custom header (one of
    the same name would win over the function's) and the function on the behaviour."""
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
                origin_custom_headers=(
                    [
                        Cfn.OriginCustomHeaderProperty(
                            header_name=header_name, header_value=header_value
                        )
                    ]
                    if header_value is not None
                    else None
                ),
            )
        ],
        # CloudFront caches an origin's 404/405/414/5xx (and 400/403/412/415 sent with a max-age)
        # for the error caching minimum TTL, 10 s by default, whatever the cache policy: a
        # failed authorizer invocation (500, on purpose uncached by API Gateway) would be served
        # from CloudFront's cache after its cause is gone.
        custom_error_responses=[
            Cfn.CustomErrorResponseProperty(error_code=code, error_caching_min_ttl=0)
            for code in NOT_CACHED_ERRORS
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
            function_associations=[signing] if signing is not None else None,
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


def api_domain_of(api_endpoint: str) -> str:
    """``https://<api-id>.execute-api.<region>.amazonaws.com`` -> the host name."""
    return Fn.select(2, Fn.split("/", api_endpoint))


class LockedDistribution(Construct):
    """A distribution in front of an HTTP API, and the drift guard that sets its origin header.

    What :class:`~originlock.cdk.OriginLock` makes when it is given no distribution: one origin
    (the API), nothing cached, no error answer cached, WAF and standard logs as *props* say.

    Parameters
    ----------
    api_endpoint
        The API's endpoint (``HttpApi.api_endpoint``).
    token
        The token parameter (the drift guard reads it).
    header_name
        The origin header.
    state_machine_name
        The rotation workflow's state machine (the drift guard checks its lock).
    props
        Web ACL and standard logs.
    powertools_layer_version
        The drift guard function's Powertools layer.

    Attributes
    ----------
    distribution, header_value (the drift guard), log_bucket, distribution_id,
    distribution_arn, url
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        api_endpoint: str,
        token: TokenParameter,
        header_name: str,
        state_machine_name: str,
        props: DistributionProps | None = None,
        powertools_layer_version: int,
        edge_signing: EdgeSigning | None = None,
    ) -> None:
        props = props or DistributionProps()
        region = Stack.of(scope).region
        if props.standard_logs and region in OPT_IN_REGIONS:
            raise PropsError(
                f"CloudFront delivers no standard logs to a bucket in {region} (an opt-in "
                "Region): set DistributionProps(standard_logs=False), or deploy in another region"
            )
        super().__init__(scope, construct_id)
        web_acl_arn = props.web_acl_arn
        # Header mode: the drift guard gives the origin header its value. Edge-signed mode: no
        # origin header; the function signs, and its key is put in place around the
        # distribution (EdgeSigning.guard).
        self.header_value: OriginHeaderGuard | None = None
        if edge_signing is None:
            self.header_value = OriginHeaderGuard(
                self,
                "OriginHeaderValue",
                token=token,
                header_name=header_name,
                state_machine_name=state_machine_name,
                powertools_layer_version=powertools_layer_version,
            )
            header_name = self.header_value.header_name
        self.log_bucket = access_log_bucket(self) if props.standard_logs else None
        self.web_acl_arn = web_acl_arn
        config_with = functools.partial(
            distribution_config,
            header_name=header_name,
            api_domain=api_domain_of(api_endpoint),
            web_acl_arn=web_acl_arn,
            log_bucket_domain=self.log_bucket.bucket_domain_name if self.log_bucket else None,
            signing=edge_signing.function_association() if edge_signing else None,
        )
        self.distribution = Cfn(
            self,
            "Distribution",
            distribution_config=config_with(
                header_value=self.header_value.value if self.header_value else None
            ),
        )
        if self.header_value is not None:
            self.header_value.track(
                self.distribution,
                config_with(header_value=HEADER_VALUE_PLACEHOLDER),
            )
        if edge_signing is not None:
            edge_signing.guard(self.distribution)
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
                ("AwsSolutions-CFR2", NO_WAF),
            )
            skip_checkov(
                self.distribution,
                ("CKV_AWS_68", NO_WAF),
            )
        if self.log_bucket is None:
            acknowledge(
                self.distribution,
                (
                    "AwsSolutions-CFR3",
                    NO_STANDARD_LOGS,
                ),
            )
            skip_checkov(
                self.distribution,
                (
                    "CKV_AWS_86",
                    NO_STANDARD_LOGS,
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
