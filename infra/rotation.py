"""The rotation workflow: the state machine from statemachine/, the rotate function, the schedule.

The state machine is the very file the sandbox runs (``DefinitionBody.from_file``
plus one substitution). Its logs keep no execution data: payloads carry
fingerprints, and this is the second line of defence.
"""

from __future__ import annotations

from aws_cdk import ArnFormat, Aws, Duration, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_scheduler_targets as targets
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from infra.config import AppConfig
from infra.constants import (
    API_STAGE,
    ASL_FILE,
    METRICS_NAMESPACE,
    ROTATE_HANDLER,
    ROTATE_SERVICE,
    SCHEDULE_INPUT,
    STATE_MACHINE_SUFFIX,
)
from infra.findings import LOGS_WITHOUT_SECRETS, skip_checkov
from infra.lambdas import LOG_RETENTION, PythonFunction, acknowledge, nag_arn
from infra.lockdown_api import LockdownApi
from infra.token_parameter import TokenParameter


def state_machine_name(scope: Construct) -> str:
    """The state machine's literal name in *scope*'s stack."""
    return f"{Stack.of(scope).stack_name}{STATE_MACHINE_SUFFIX}"


def executions_arn(scope: Construct) -> str:
    """ARN pattern of the state machine's executions (their names are made at run time)."""
    return Stack.of(scope).format_arn(
        service="states",
        resource="execution",
        resource_name=f"{state_machine_name(scope)}:*",
        arn_format=ArnFormat.COLON_RESOURCE_NAME,
    )


def executions_nag_id(scope: Construct) -> str:
    """cdk-nag's IAM5 finding id for :func:`executions_arn`."""
    return (
        "AwsSolutions-IAM5[Resource::"
        + nag_arn(scope, "arn:{partition}:states:{region}:{account}:execution:")
        + f"{state_machine_name(scope)}:*]"
    )


class RotationWorkflow(Construct):
    """Rotate function, state machine and the EventBridge Scheduler schedule."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: AppConfig,
        token: TokenParameter,
        api: LockdownApi,
        distribution_id: str,
        distribution_arn: str,
        cloudfront_url: str,
        web_acl_arn: str | None = None,
        log_bucket_arn: str | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        # A literal name: the rotate function's policy names this state machine's
        # executions, and the state machine names the function (no cycle).
        self.state_machine_name = state_machine_name(self)
        authorizer = api.authorizer.function

        self.rotate = PythonFunction(
            self,
            "Rotate",
            handler=ROTATE_HANDLER,
            description="originlock: the steps of the rotation workflow",
            environment={
                "SSM_PARAMETER_NAME": token.name,
                "LOCK_PARAMETER_NAME": config.lock_parameter_name,
                "DISTRIBUTION_ID": distribution_id,
                "ORIGIN_HEADER_NAME": config.header_name,
                "API_ID": api.api.api_id,
                "API_STAGE": API_STAGE,
                "AUTHORIZER_FUNCTION_NAME": authorizer.function_name,
                "AUTHORIZER_REFRESH_INTERVAL_SECONDS": str(
                    config.authorizer_refresh_interval_seconds
                ),
                "AUTHORIZER_MAX_AGE_SECONDS": str(config.authorizer_token_max_age_seconds),
                "POLL_INTERVAL_SECONDS": str(config.poll_interval_seconds),
                "DEPLOY_TIMEOUT_SECONDS": str(config.deploy_timeout_seconds),
                "DRAIN_SECONDS": str(config.drain_seconds),
                "PROBE_URL": cloudfront_url,
                "API_URL": api.url,
                "POWERTOOLS_SERVICE_NAME": ROTATE_SERVICE,
                "POWERTOOLS_METRICS_NAMESPACE": METRICS_NAMESPACE,
            },
            powertools_version=config.powertools_layer_version,
            # A revoke waits up to 60 s for the authorizer's configuration update. No longer:
            # the worst-case revoke bound (every invocation at this timeout, docs/runbook.md)
            # must stay inside the execution's 2-hour timeout.
            timeout=Duration.minutes(2),
            no_dead_letter_queue=(
                "Invoked synchronously by Step Functions, whose Retry and Catch handle every "
                "failure (a failed execution raises the RotationFailed alarm)."
            ),
        )
        if token.key is not None:
            self.rotate.function.add_environment("KMS_KEY_ID", token.key.key_arn)
        self._grant_rotate(token, api, distribution_arn, web_acl_arn, log_bucket_arn)

        self.log_group = logs.LogGroup(
            self,
            "Logs",
            log_group_name=f"/aws/vendedlogs/states/{self.state_machine_name}",
            retention=LOG_RETENTION,
            removal_policy=RemovalPolicy.DESTROY,
        )
        skip_checkov(self.log_group, ("CKV_AWS_158", LOGS_WITHOUT_SECRETS))
        self.state_machine = sfn.StateMachine(
            self,
            "StateMachine",
            state_machine_name=self.state_machine_name,
            state_machine_type=sfn.StateMachineType.STANDARD,
            definition_body=sfn.DefinitionBody.from_file(str(ASL_FILE)),
            definition_substitutions={"RotateFunctionArn": self.rotate.function.function_arn},
            tracing_enabled=True,
            logs=sfn.LogOptions(
                destination=self.log_group,
                level=sfn.LogLevel.ALL,
                include_execution_data=False,
            ),
        )
        # The ASL invokes the unqualified function: no versions or aliases (":*").
        self.state_machine.add_to_role_policy(
            iam.PolicyStatement(
                actions=["lambda:InvokeFunction"], resources=[self.rotate.function.function_arn]
            )
        )
        acknowledge(
            self.state_machine,
            (
                "AwsSolutions-IAM5[Resource::*]",
                "X-Ray trace segments and CloudWatch Logs delivery APIs support no "
                "resource-level permissions (CDK's tracing and logging grants).",
            ),
        )

        self.schedule = scheduler.Schedule(
            self,
            "Schedule",
            schedule_name=self.state_machine_name,
            description="originlock: scheduled rotation of the origin secret",
            schedule=scheduler.ScheduleExpression.expression(config.rotation_schedule),
            target=targets.StepFunctionsStartExecution(
                self.state_machine,
                input=scheduler.ScheduleTargetInput.from_object(SCHEDULE_INPUT),
                retry_attempts=3,
            ),
            enabled=config.rotation_enabled,
        )

    def _grant_rotate(
        self,
        token: TokenParameter,
        api: LockdownApi,
        distribution_arn: str,
        web_acl_arn: str | None,
        log_bucket_arn: str | None,
    ) -> None:
        role = self.rotate.role
        token.grant_read_write(role)
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["ssm:GetParameter", "ssm:PutParameter", "ssm:DeleteParameter"],
                resources=[token.lock_arn],
            )
        )
        # A takeover marker is only ever created (Overwrite=False), never read or deleted.
        role.add_to_policy(
            iam.PolicyStatement(actions=["ssm:PutParameter"], resources=[token.lock_takeover_arn])
        )
        role.add_to_policy(
            iam.PolicyStatement(
                actions=[
                    "cloudfront:GetDistribution",
                    "cloudfront:GetDistributionConfig",
                    "cloudfront:UpdateDistribution",
                ],
                resources=[distribution_arn],
            )
        )
        if web_acl_arn is not None:
            # UpdateDistribution on a distribution with a web ACL: CloudFront checks that the
            # caller may read that web ACL ("InvalidWebACLId: Web ACL is not accessible by the
            # requester" otherwise). Read only, this one web ACL (docs/decisions.md).
            role.add_to_policy(
                iam.PolicyStatement(actions=["wafv2:GetWebACL"], resources=[web_acl_arn])
            )
        if log_bucket_arn is not None:
            # UpdateDistribution on a distribution with standard logging: CloudFront checks the
            # caller's access to the log bucket's ACL (and grants its log delivery account
            # there if missing). Block Public Access keeps that ACL private.
            role.add_to_policy(
                iam.PolicyStatement(
                    actions=["s3:GetBucketAcl", "s3:PutBucketAcl"], resources=[log_bucket_arn]
                )
            )
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["apigateway:DELETE"],
                # ResetAuthorizersCache on this API's stage only.
                resources=[
                    f"arn:{Aws.PARTITION}:apigateway:{Aws.REGION}::/apis/{api.api.api_id}"
                    f"/stages/{API_STAGE}/cache/authorizers"
                ],
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["lambda:GetFunctionConfiguration", "lambda:UpdateFunctionConfiguration"],
                resources=[api.authorizer.function.function_arn],
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["states:DescribeExecution"], resources=[executions_arn(self)]
            )
        )
        acknowledge(
            role,
            (
                "AwsSolutions-IAM5[Resource::"
                + nag_arn(self, "arn:{partition}:ssm:{region}:{account}:parameter/")
                + f"{token.name.lstrip('/')}.lock.takeover.*]",
                "Takeover markers of the rotation lock get a run-time suffix; the "
                "prefix is this deployment's lock parameter.",
            ),
            (
                executions_nag_id(self),
                "DescribeExecution on this state machine's executions only (the stale-lock "
                "check); execution names are made at run time.",
            ),
        )
