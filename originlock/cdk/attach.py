"""``AttachedOriginLock``: originlock for an API and a distribution made outside this CDK app
(in the console, as the blog does; with Terraform; by another stack), named by their ids.

It brings the token parameter (adopting the existing one, a blog-style bare value included),
the origin authorizer, the rotation workflow and its schedule, the alarms and the CLI's
outputs. It changes neither the API's routes nor the distribution: CloudFormation does not
own them.

* The authorizer joins the API as a new ``AWS::ApiGatewayV2::Authorizer`` (a resource of this
  stack), or takes the place of an existing one's function (``existing_authorizer_id``):
  either way the routes are pointed at it by a documented step (``aws apigatewayv2
  update-route`` or ``update-authorizer``, docs/deploy.md), because the routes belong to
  whatever made them (docs/decisions.md, "Attach mode wires by a documented step").
* No drift guard: nothing in this stack writes the distribution. The rotation itself refuses
  to switch a header whose value the token document does not know (UnknownOriginHeaderError),
  so a value put back by another tool stops it before anything is removed.
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Aws, Duration
from aws_cdk import aws_apigatewayv2 as apigwv2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from constructs import Construct

from originlock.cdk.authorizer import OriginAuthorizer
from originlock.cdk.origin_lock import LockConstruct, web_acl_arn_of
from originlock.cdk.props import (
    API_ID,
    AUTHORIZER_ID,
    DISTRIBUTION_ID,
    AlarmProps,
    AuthorizerProps,
    PropsError,
    RotationProps,
    check_header_name,
    check_id,
    check_parameter_name,
    default_parameter_name,
    name_prefix_of,
)
from originlock.cdk.rotation import RotationWorkflow
from originlock.cdk.token_parameter import TokenParameter
from originlock.constants import (
    API_STAGE,
    DEFAULT_HEADER_NAME,
    OUTPUT_AUTHORIZER_ID,
    OUTPUT_AUTHORIZER_URI,
)


def invoke_uri(function_arn: str) -> str:
    """What API Gateway calls a Lambda authorizer by (its ``authorizerUri``)."""
    return (
        f"arn:{Aws.PARTITION}:apigateway:{Aws.REGION}:lambda:path/2015-03-31/functions/"
        f"{function_arn}/invocations"
    )


class AttachedOriginLock(LockConstruct):
    """originlock for an HTTP API and a distribution this app does not own, named by their ids.

    Parameters
    ----------
    api_id, api_stage
        The HTTP API and the stage whose authorizer cache a revoke empties.
    distribution_id
        The CloudFront distribution in front of the API.
    origin_ids
        Its origins whose header the rotation switches; empty: every origin that carries it.
    distribution_domain_name
        Its domain (``d111111abcdef8.cloudfront.net``): the verify step requests
        ``https://<domain><probe_path>``; ``None``: that check is skipped.
    existing_authorizer_id
        An authorizer of the API (the blog's, say) whose function is to become originlock's:
        API Gateway may then invoke originlock's function for it, and ``aws apigatewayv2
        update-authorizer`` points it there. ``None``: a new authorizer is made on the API.
    header_name, parameter_name, adopt_existing_parameter, encryption_key
        As :class:`~originlock.cdk.OriginLock`; the parameter is typically the existing one.
    web_acl_arn, log_bucket_name
        The distribution's AWS WAF web ACL and standard-log bucket, if it has them: CloudFront
        checks the caller's access to both on UpdateDistribution, so the rotation needs them.
    authorizer_props, rotation_props, alarm_props, name_prefix, create_outputs
        As :class:`~originlock.cdk.OriginLock`.

    Attributes
    ----------
    token, origin_authorizer, rotation, alarms, outputs
    api_authorizer : aws_apigatewayv2.HttpAuthorizer or None
        The authorizer made on the API (``None`` with ``existing_authorizer_id``).
    authorizer_id : str
        The API's authorizer whose function is originlock's (made, or given).
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        api_id: str,
        distribution_id: str,
        api_stage: str = API_STAGE,
        origin_ids: Sequence[str] = (),
        distribution_domain_name: str | None = None,
        existing_authorizer_id: str | None = None,
        header_name: str = DEFAULT_HEADER_NAME,
        parameter_name: str | None = None,
        adopt_existing_parameter: bool = True,
        encryption_key: kms.IKey | None = None,
        web_acl_arn: str | None = None,
        log_bucket_name: str | None = None,
        authorizer_props: AuthorizerProps | None = None,
        rotation_props: RotationProps | None = None,
        alarm_props: AlarmProps | None = None,
        name_prefix: str | None = None,
        create_outputs: bool = True,
    ) -> None:
        api_id = check_id("api_id", api_id, API_ID, "a1b2c3d4e5")
        distribution_id = check_id(
            "distribution_id", distribution_id, DISTRIBUTION_ID, "E1ABCDEF2GHIJK"
        )
        if existing_authorizer_id is not None:
            existing_authorizer_id = check_id(
                "existing_authorizer_id", existing_authorizer_id, AUTHORIZER_ID, "abc123"
            )
        if not api_stage.strip():
            raise PropsError("api_stage must name a stage ($default unless set)")
        prefix = name_prefix_of(scope, name_prefix)
        header = check_header_name(header_name)
        parameter = check_parameter_name(parameter_name or default_parameter_name(prefix))
        rotation_props = rotation_props or RotationProps()
        rotation_props.check()
        alarm_props = alarm_props or AlarmProps()
        alarm_props.token_max_age_seconds(rotation_props)
        authorizer_props = authorizer_props or AuthorizerProps()
        if web_acl_arn is not None:
            web_acl_arn = web_acl_arn_of(web_acl_arn)
        self.check_unique(scope, prefix=prefix, parameter_name=parameter, outputs=create_outputs)
        super().__init__(scope, construct_id)
        self.name_prefix = prefix
        self.parameter_name = parameter
        self.header_name = header
        self.creates_outputs = create_outputs
        self.api_id = api_id
        self.distribution_id = distribution_id
        powertools = authorizer_props.powertools_layer_version

        self.token = TokenParameter(
            self,
            "TokenParameter",
            parameter_name=parameter,
            adopt_existing=adopt_existing_parameter,
            encryption_key=encryption_key,
            powertools_layer_version=powertools,
        )
        self.origin_authorizer = OriginAuthorizer(
            self,
            "Authorizer",
            token=self.token,
            header_name=header,
            props=authorizer_props,
            name_prefix=prefix,
        )
        self.origin_authorizer_uri = invoke_uri(self.origin_authorizer.function.function_arn)
        if existing_authorizer_id is None:
            self.api_authorizer: apigwv2.HttpAuthorizer | None = apigwv2.HttpAuthorizer(
                self,
                "ApiAuthorizer",
                http_api=apigwv2.HttpApi.from_http_api_attributes(self, "Api", http_api_id=api_id),
                type=apigwv2.HttpAuthorizerType.LAMBDA,
                authorizer_name=authorizer_props.authorizer_name,
                identity_source=[self.origin_authorizer.identity_source],
                authorizer_uri=self.origin_authorizer_uri,
                payload_format_version=apigwv2.AuthorizerPayloadVersion.VERSION_2_0,
                enable_simple_responses=True,
                results_cache_ttl=Duration.seconds(
                    self.origin_authorizer.results_cache_ttl_seconds
                ),
            )
            self.origin_authorizer_id = self.api_authorizer.authorizer_id
        else:
            self.api_authorizer = None
            self.origin_authorizer_id = existing_authorizer_id
        # API Gateway invokes the function for this one authorizer of this one API.
        self.origin_authorizer.function.add_permission(
            "ApiGatewayInvoke",
            principal=iam.ServicePrincipal("apigateway.amazonaws.com"),
            source_arn=(
                f"arn:{Aws.PARTITION}:execute-api:{Aws.REGION}:{Aws.ACCOUNT_ID}:{api_id}"
                f"/authorizers/{self.origin_authorizer_id}"
            ),
        )

        endpoint = f"https://{api_id}.execute-api.{Aws.REGION}.{Aws.URL_SUFFIX}"
        self.api_url = f"{endpoint}/" if api_stage == API_STAGE else f"{endpoint}/{api_stage}/"
        self.cloudfront_url = (
            f"https://{distribution_domain_name.strip()}" if distribution_domain_name else None
        )
        probe = rotation_props.probe_path
        self.rotation = RotationWorkflow(
            self,
            "Rotation",
            token=self.token,
            authorizer=self.origin_authorizer,
            distribution_id=distribution_id,
            header_name=header,
            origin_ids=tuple(origin_ids),
            api_id=api_id,
            api_stage=api_stage,
            probe_url=(
                None
                if self.cloudfront_url is None
                else self.cloudfront_url
                if probe == "/"
                else f"{self.cloudfront_url}{probe}"
            ),
            api_url=self.api_url,
            web_acl_arn=web_acl_arn,
            log_bucket_arn=(
                f"arn:{Aws.PARTITION}:s3:::{log_bucket_name.strip()}" if log_bucket_name else None
            ),
            props=rotation_props,
            name_prefix=prefix,
        )
        self.monitor_and_declare(
            alarm_props=alarm_props,
            rotation_props=rotation_props,
            powertools_layer_version=powertools,
            distribution_id=distribution_id,
            header_name=header,
            create_outputs=create_outputs,
            more_outputs={
                OUTPUT_AUTHORIZER_ID: self.origin_authorizer_id,
                OUTPUT_AUTHORIZER_URI: self.origin_authorizer_uri,
            },
        )
