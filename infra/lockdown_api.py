"""The locked-down HTTP API: every route behind the origin-header Lambda authorizer.

A request without the header gets 401 from API Gateway itself (the identity
source is missing: no Lambda call, no cost); a request with a value the
authorizer does not accept gets 403. Only CloudFront knows an accepted value.
"""

from __future__ import annotations

import json

import jsii
from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_apigatewayv2 as apigwv2
from aws_cdk import aws_apigatewayv2_authorizers as authorizers
from aws_cdk import aws_apigatewayv2_integrations as integrations
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from infra.config import AppConfig
from infra.constants import (
    API_STAGE,
    AUTHORIZER_HANDLER,
    AUTHORIZER_SERVICE,
    METRICS_NAMESPACE,
)
from infra.findings import LOGS_WITHOUT_SECRETS, skip_checkov
from infra.lambdas import LOG_RETENTION, PythonFunction
from infra.token_parameter import TokenParameter

# The default backend: answers 200 and never echoes request headers (one of
# them is the origin secret).
HELLO_BACKEND = """
import json


def handler(event, context):
    body = {"message": "hello from behind originlock", "path": event.get("rawPath", "/")}
    return {
        "statusCode": 200,
        "headers": {"content-type": "application/json"},
        "body": json.dumps(body),
    }
"""

# Access log fields: no header, so never the origin secret.
ACCESS_LOG_FORMAT = json.dumps(
    {
        "requestId": "$context.requestId",
        "requestTime": "$context.requestTime",
        "ip": "$context.identity.sourceIp",
        "httpMethod": "$context.httpMethod",
        "routeKey": "$context.routeKey",
        "path": "$context.path",
        "status": "$context.status",
        "protocol": "$context.protocol",
        "responseLength": "$context.responseLength",
        "authorizerError": "$context.authorizer.error",
        "authorizerStatus": "$context.authorizer.status",
        "integrationError": "$context.integrationErrorMessage",
    },
    separators=(",", ":"),
)


def _extension_layer(config: AppConfig) -> lambda_.ParamsAndSecretsLayerVersion | None:
    """The Parameters and Secrets extension when the authorizer reads through it."""
    if config.authorizer_token_source != "extension":  # noqa: S105 - a source name
        return None
    # The function caches the accepted set itself: a second cache in the
    # extension would add its TTL to every bound (docs/decisions.md).
    return lambda_.ParamsAndSecretsLayerVersion.from_version(
        lambda_.ParamsAndSecretsVersions.V1_0_103,
        cache_enabled=False,
        log_level=lambda_.ParamsAndSecretsLogLevel.WARN,
    )


class LockdownApi(Construct):
    """HTTP API, its ``$default`` stage, routes to the backend and the origin authorizer."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: AppConfig,
        token: TokenParameter,
    ) -> None:
        super().__init__(scope, construct_id)
        self.authorizer = PythonFunction(
            self,
            "Authorizer",
            handler=AUTHORIZER_HANDLER,
            description="originlock: accepts only requests carrying the CloudFront origin header",
            environment={
                "SSM_PARAMETER_NAME": token.name,
                "ORIGIN_HEADER_NAME": config.header_name,
                "TOKEN_SOURCE": config.authorizer_token_source,
                "TOKEN_CACHE_MAX_AGE_SECONDS": str(config.authorizer_token_max_age_seconds),
                "TOKEN_REFRESH_MIN_INTERVAL_SECONDS": str(
                    config.authorizer_refresh_interval_seconds
                ),
                "POWERTOOLS_SERVICE_NAME": AUTHORIZER_SERVICE,
                "POWERTOOLS_METRICS_NAMESPACE": METRICS_NAMESPACE,
            },
            powertools_version=config.powertools_layer_version,
            timeout=Duration.seconds(5),
            memory_size=512,
            no_dead_letter_queue=(
                "Invoked synchronously by API Gateway: a failed invocation is the caller's "
                "answer (500), nothing is queued; a DLQ serves asynchronous invocations only."
            ),
            # A ceiling on what header spraying can cost; 0 (the default): no reservation,
            # which a new account's concurrency quota could not grant (docs/deploy.md).
            reserved_concurrency=config.authorizer_reserved_concurrency or None,
            params_and_secrets=_extension_layer(config),
        )
        token.grant_read(self.authorizer.function)
        self.authorizer.function.node.add_dependency(token.resource)

        self.origin_authorizer = authorizers.HttpLambdaAuthorizer(
            "OriginAuthorizer",
            self.authorizer.function,
            authorizer_name="originlock-origin-header",
            identity_source=[f"$request.header.{config.header_name}"],
            response_types=[authorizers.HttpLambdaResponseType.SIMPLE],
            results_cache_ttl=Duration.seconds(config.authorizer_cache_ttl_seconds),
        )

        self.api = apigwv2.HttpApi(
            self,
            "Api",
            description="originlock: reachable only through its CloudFront distribution",
            create_default_stage=False,
        )
        self.access_logs = logs.LogGroup(
            self, "AccessLogs", retention=LOG_RETENTION, removal_policy=RemovalPolicy.DESTROY
        )
        skip_checkov(self.access_logs, ("CKV_AWS_158", LOGS_WITHOUT_SECRETS))
        self.stage = apigwv2.HttpStage(
            self,
            "DefaultStage",
            http_api=self.api,
            stage_name=API_STAGE,
            auto_deploy=True,
            access_log_settings=_AccessLogs(
                apigwv2.LogGroupLogDestination(self.access_logs),
                apigw.AccessLogFormat.custom(ACCESS_LOG_FORMAT),
            ),
        )

        proxy_integration: apigwv2.HttpRouteIntegration
        root_integration: apigwv2.HttpRouteIntegration
        if config.backend_url:
            base = config.backend_url.rstrip("/")
            proxy_integration = integrations.HttpUrlIntegration("BackendProxy", f"{base}/{{proxy}}")
            root_integration = integrations.HttpUrlIntegration("BackendRoot", f"{base}/")
            self.backend: PythonFunction | None = None
        else:
            self.backend = PythonFunction(
                self,
                "HelloBackend",
                handler="index.handler",
                description="originlock: the default hello backend",
                environment={},
                powertools_version=config.powertools_layer_version,
                code=lambda_.InlineCode(HELLO_BACKEND),
                use_powertools=False,
                no_dead_letter_queue=(
                    "Invoked synchronously by API Gateway: a failed invocation is the caller's "
                    "answer (500), nothing is queued; a DLQ serves asynchronous invocations only."
                ),
            )
            proxy_integration = integrations.HttpLambdaIntegration("Backend", self.backend.function)
            root_integration = proxy_integration
        self.api.add_routes(
            path="/{proxy+}",
            methods=[apigwv2.HttpMethod.ANY],
            integration=proxy_integration,
            authorizer=self.origin_authorizer,
        )
        self.api.add_routes(
            path="/",
            methods=[apigwv2.HttpMethod.ANY],
            integration=root_integration,
            authorizer=self.origin_authorizer,
        )

    @property
    def url(self) -> str:
        return self.stage.url


@jsii.implements(apigwv2.IAccessLogSettings)
class _AccessLogs:
    def __init__(
        self, destination: apigwv2.IAccessLogDestination, log_format: apigw.AccessLogFormat
    ) -> None:
        self._destination = destination
        self._format = log_format

    @property
    def destination(self) -> apigwv2.IAccessLogDestination:
        return self._destination

    @property
    def format(self) -> apigw.AccessLogFormat:
        return self._format
