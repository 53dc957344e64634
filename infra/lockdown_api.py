"""The app's HTTP API, as a user of the library has one: every route behind originlock's
origin authorizer (:class:`originlock.cdk.OriginAuthorizer`).

The authorizer is made here, before the API's routes, and handed to ``OriginLock`` as its
``existing_authorizer_obj``: its construct path (``LockdownApi/Authorizer``) is the one the
app has always had, so an upgrade keeps its resources (docs/decisions.md).
"""

from __future__ import annotations

import json

import jsii
from aws_cdk import RemovalPolicy
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_apigatewayv2 as apigwv2
from aws_cdk import aws_apigatewayv2_integrations as integrations
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from infra.config import AppConfig
from originlock.cdk import OriginAuthorizer
from originlock.cdk.authorizer import SYNCHRONOUS
from originlock.cdk.findings import LOGS_WITHOUT_SECRETS, skip_checkov
from originlock.cdk.functions import LOG_RETENTION, PythonFunction
from originlock.constants import API_STAGE

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


class LockdownApi(Construct):
    """HTTP API, its ``$default`` stage, routes to the backend behind the origin authorizer."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: AppConfig,
        key: kms.IKey | None,
    ) -> None:
        super().__init__(scope, construct_id)
        self.authorizer = OriginAuthorizer(
            self,
            "Authorizer",
            parameter_name=config.parameter_name,
            header_name=config.header_name,
            encryption_key=key,
            props=config.authorizer_props(),
            name_prefix=config.stack_name,
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
                no_dead_letter_queue=SYNCHRONOUS,
            )
            proxy_integration = integrations.HttpLambdaIntegration("Backend", self.backend.function)
            root_integration = proxy_integration
        self.api.add_routes(
            path="/{proxy+}",
            methods=[apigwv2.HttpMethod.ANY],
            integration=proxy_integration,
            authorizer=self.authorizer.route_authorizer,
        )
        self.api.add_routes(
            path="/",
            methods=[apigwv2.HttpMethod.ANY],
            integration=root_integration,
            authorizer=self.authorizer.route_authorizer,
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
