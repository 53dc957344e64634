"""How every originlock function is built: the functions/ folder as is, Python 3.13 on arm64,
the AWS-managed Powertools layer, its own log group and a role that may write only there."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from aws_cdk import Acknowledgment, Aws, Duration, RemovalPolicy, Stack, Token, Validations
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from originlock.bundle import functions_dir
from originlock.cdk.findings import (
    LOGS_WITHOUT_SECRETS,
    NO_RESERVATION,
    NO_VPC,
    PLAIN_ENVIRONMENT,
    skip_checkov,
)
from originlock.constants import (
    ASSET_EXCLUDE,
    POWERTOOLS_LAYER_ACCOUNT,
    POWERTOOLS_LAYER_NAME,
)

RUNTIME = lambda_.Runtime.PYTHON_3_13
LOG_RETENTION = logs.RetentionDays.THREE_MONTHS
NAG_PACK = "AwsSolutions"


def functions_code() -> lambda_.Code:
    """The functions/ folder zipped as is (no bundling): handlers need only boto3 and Powertools."""
    return lambda_.Code.from_asset(str(functions_dir()), exclude=ASSET_EXCLUDE)


def powertools_layer(scope: Construct, version: int) -> lambda_.ILayerVersion:
    """The AWS-managed Powertools v3 layer, one reference per stack."""
    stack = Stack.of(scope)
    existing = stack.node.try_find_child("PowertoolsLayer")
    if existing is not None:
        return existing  # type: ignore[return-value]
    arn = (
        f"arn:{Aws.PARTITION}:lambda:{Aws.REGION}:{POWERTOOLS_LAYER_ACCOUNT}"
        f":layer:{POWERTOOLS_LAYER_NAME}:{version}"
    )
    return lambda_.LayerVersion.from_layer_version_arn(stack, "PowertoolsLayer", arn)


def acknowledge(scope: Construct, *rules: tuple[str, str]) -> None:
    """Acknowledge cdk-nag findings on *scope* and its children: each ``(rule id, reason)``.

    The id is the finding's (``AwsSolutions-IAM5[Resource::...]``); it is recorded
    under the pack's prefix (``AwsSolutions::``) as cdk-nag 3 reports it.
    """
    Validations.of(scope).acknowledge(
        *(Acknowledgment(id=f"{NAG_PACK}::{rule}", reason=why) for rule, why in rules)
    )


def nag_arn(scope: Construct, arn: str) -> str:
    """*arn* as cdk-nag prints it in a finding id (unresolved pseudo parameters as ``<AWS::…>``)."""
    stack = Stack.of(scope)
    region = "<AWS::Region>" if Token.is_unresolved(stack.region) else stack.region
    account = "<AWS::AccountId>" if Token.is_unresolved(stack.account) else stack.account
    return (
        arn.replace("{partition}", "<AWS::Partition>")
        .replace("{region}", region)
        .replace("{account}", account)
    )


class PythonFunction(Construct):
    """A function of the originlock code with a role that may only write its own log group.

    Grant anything else to ``function`` (or ``role``) explicitly.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        handler: str,
        description: str,
        environment: Mapping[str, str],
        powertools_version: int,
        timeout: Duration | None = None,
        memory_size: int = 256,
        code: lambda_.Code | None = None,
        reserved_concurrency: int | None = None,
        params_and_secrets: lambda_.ParamsAndSecretsLayerVersion | None = None,
        use_powertools: bool = True,
        extra_layers: Sequence[lambda_.ILayerVersion] = (),
        no_dead_letter_queue: str,
    ) -> None:
        """*no_dead_letter_queue*: why a failed invocation needs no DLQ (checkov CKV_AWS_116)."""
        super().__init__(scope, construct_id)
        self.powertools_version = powertools_version
        self.log_group = logs.LogGroup(
            self,
            "Logs",
            retention=LOG_RETENTION,
            removal_policy=RemovalPolicy.DESTROY,
        )
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"{description} (writes only its own log group)",
        )
        # Instead of AWSLambdaBasicExecutionRole (logs:* on every log group).
        self.log_group.grant_write(self.role)
        self.function = lambda_.Function(
            self,
            "Function",
            description=description,
            runtime=RUNTIME,
            architecture=lambda_.Architecture.ARM_64,
            handler=handler,
            code=code or functions_code(),
            timeout=timeout or Duration.seconds(30),
            memory_size=memory_size,
            role=self.role,
            log_group=self.log_group,
            layers=[
                *([powertools_layer(self, powertools_version)] if use_powertools else []),
                *extra_layers,
            ],
            environment=dict(environment),
            reserved_concurrent_executions=reserved_concurrency,
            params_and_secrets=params_and_secrets,
        )
        checks = [
            ("CKV_AWS_116", no_dead_letter_queue),
            ("CKV_AWS_117", NO_VPC),
        ]
        if reserved_concurrency is None:
            checks.append(("CKV_AWS_115", NO_RESERVATION))
        if environment:
            checks.append(("CKV_AWS_173", PLAIN_ENVIRONMENT))
        skip_checkov(self.function, *checks)
        skip_checkov(self.log_group, ("CKV_AWS_158", LOGS_WITHOUT_SECRETS))
        acknowledge(
            self.function,
            (
                "AwsSolutions-L1",
                "Every originlock function runs Python 3.13, the runtime of the AWS-managed "
                "Powertools v3 layer build (python313) and of the tests; moving runtime is "
                "a deliberate, tested change.",
            ),
        )
