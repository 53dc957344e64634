"""The origin authorizer: a Lambda authorizer that accepts only requests carrying a value of the
token document in the origin header.

A request without the header gets 401 from API Gateway itself (the identity source is
missing: no Lambda call, no cost); a request with a value the authorizer does not accept gets
403. Only CloudFront knows an accepted value.
"""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_apigatewayv2_authorizers as authorizers
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from originlock.cdk.functions import PythonFunction
from originlock.cdk.props import (
    AuthorizerProps,
    PropsError,
    TokenSource,
    check_header_name,
    check_parameter_name,
    default_parameter_name,
    name_prefix_of,
)
from originlock.cdk.token_parameter import TokenParameter, parameter_arn
from originlock.constants import (
    AUTHORIZER_HANDLER,
    AUTHORIZER_SERVICE,
    DEFAULT_HEADER_NAME,
    METRICS_NAMESPACE,
)

SYNCHRONOUS = (
    "Invoked synchronously by API Gateway: a failed invocation is the caller's "
    "answer (500), nothing is queued; a DLQ serves asynchronous invocations only."
)


def _extension_layer(props: AuthorizerProps) -> lambda_.ParamsAndSecretsLayerVersion | None:
    """The Parameters and Secrets extension when the authorizer reads through it."""
    if props.token_source is not TokenSource.EXTENSION:
        return None
    # The function caches the accepted set itself: a second cache in the
    # extension would add its TTL to every bound (docs/decisions.md).
    return lambda_.ParamsAndSecretsLayerVersion.from_version(
        lambda_.ParamsAndSecretsVersions.V1_0_103,
        cache_enabled=False,
        log_level=lambda_.ParamsAndSecretsLogLevel.WARN,
    )


class OriginAuthorizer(PythonFunction):
    """The authorizer function, its role (read the token parameter, write its own logs) and the
    route authorizer API Gateway calls it through.

    Its ``route_authorizer`` is an ``HttpLambdaAuthorizer``: pass it as ``authorizer=`` to
    ``HttpApi.add_routes`` or ``HttpRoute``, or as ``HttpApi(default_authorizer=...)``. One
    instance serves the routes of one API.

    Parameters
    ----------
    token
        The :class:`~originlock.cdk.TokenParameter` the function reads: its name and key, and
        the function is created after it (it reads the parameter from its first invocation).
        ``None``: a parameter made elsewhere, named by *parameter_name*.
    parameter_name
        Without *token*: the token parameter; ``None``: ``/originlock/<name prefix>/origin-token``,
        the name :class:`~originlock.cdk.OriginLock` gives it with the same *name_prefix*.
    header_name
        The origin header CloudFront adds (the identity source).
    encryption_key
        Without *token*: the parameter's customer managed KMS key, if any (the function may
        decrypt with it).
    props
        Caches, token source, SSM budget, concurrency.
    name_prefix
        See :class:`~originlock.cdk.OriginLock`; the stack's name unless set.

    Attributes
    ----------
    function, role, log_group
        The Lambda function, its role and its log group.
    route_authorizer
        The ``HttpLambdaAuthorizer`` this object delegates to.
    parameter_name, header_name, max_age_seconds, refresh_interval_seconds
        What the function was configured with (the rotation derives its waits from them).
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        token: TokenParameter | None = None,
        parameter_name: str | None = None,
        header_name: str = DEFAULT_HEADER_NAME,
        encryption_key: kms.IKey | None = None,
        props: AuthorizerProps | None = None,
        name_prefix: str | None = None,
    ) -> None:
        if token is not None:
            if parameter_name is not None or encryption_key is not None:
                raise PropsError(
                    "token names the parameter and its key: leave out parameter_name and "
                    "encryption_key"
                )
            parameter_name, encryption_key = token.name, token.key
        props = props or AuthorizerProps()
        prefix = name_prefix_of(scope, name_prefix)
        self.parameter_name = check_parameter_name(parameter_name or default_parameter_name(prefix))
        self.header_name = check_header_name(header_name)
        self.max_age_seconds = props.max_age_seconds()
        self.refresh_interval_seconds = props.refresh_seconds()
        cache_ttl = props.cache_ttl_seconds()
        reserved = props.reserved_concurrency
        super().__init__(
            scope,
            construct_id,
            handler=AUTHORIZER_HANDLER,
            description="originlock: accepts only requests carrying the CloudFront origin header",
            environment={
                "SSM_PARAMETER_NAME": self.parameter_name,
                "ORIGIN_HEADER_NAME": self.header_name,
                "TOKEN_SOURCE": props.token_source.value,
                "TOKEN_CACHE_MAX_AGE_SECONDS": str(self.max_age_seconds),
                "TOKEN_REFRESH_MIN_INTERVAL_SECONDS": str(self.refresh_interval_seconds),
                "POWERTOOLS_SERVICE_NAME": AUTHORIZER_SERVICE,
                "POWERTOOLS_METRICS_NAMESPACE": METRICS_NAMESPACE,
            },
            powertools_version=props.powertools_layer_version,
            timeout=Duration.seconds(5),
            memory_size=512,
            no_dead_letter_queue=SYNCHRONOUS,
            # A ceiling on what header spraying can cost; none by default: a new account's
            # concurrency quota could not grant one (docs/deploy.md).
            reserved_concurrency=reserved,
            params_and_secrets=_extension_layer(props),
        )
        self.encryption_key = encryption_key
        self.grant_read(self.parameter_name, encryption_key)
        if token is not None:
            # The function reads the parameter from its first invocation: it must exist by then.
            self.function.node.add_dependency(token.resource)
        self.authorizer_name = props.authorizer_name
        self.results_cache_ttl_seconds = cache_ttl
        self.route_authorizer = authorizers.HttpLambdaAuthorizer(
            "OriginAuthorizer",
            self.function,
            authorizer_name=props.authorizer_name,
            identity_source=[self.identity_source],
            response_types=[authorizers.HttpLambdaResponseType.SIMPLE],
            results_cache_ttl=Duration.seconds(cache_ttl),
        )

    @property
    def identity_source(self) -> str:
        """The header as API Gateway names an identity source."""
        return f"$request.header.{self.header_name}"

    def grant_read(self, parameter_name: str, key: kms.IKey | None) -> None:
        """``ssm:GetParameter`` on one parameter (and decrypt with its key, if any)."""
        self.role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["ssm:GetParameter"], resources=[parameter_arn(self, parameter_name)]
            )
        )
        if key is not None:
            key.grant_decrypt(self.role)
