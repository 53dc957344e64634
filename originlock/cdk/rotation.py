"""The rotation workflow: the state machine from statemachine/, the rotate function, the schedule.

The state machine is the very file the sandbox runs (``DefinitionBody.from_file``
plus one substitution). Its logs keep no execution data: payloads carry
fingerprints, and this is the second line of defence.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from aws_cdk import ArnFormat, Aws, Duration, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_scheduler_targets as targets
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from originlock.bundle import asl_file
from originlock.cdk.authorizer import OriginAuthorizer
from originlock.cdk.findings import LOGS_WITHOUT_SECRETS, skip_checkov
from originlock.cdk.functions import LOG_RETENTION, PythonFunction, acknowledge, nag_arn
from originlock.cdk.props import (
    API_ID,
    DISTRIBUTION_ID,
    PropsError,
    RotationProps,
    check_header_name,
    check_id,
    name_prefix_of,
)
from originlock.cdk.token_parameter import TokenParameter

if TYPE_CHECKING:  # edge_signing uses this module's executions_arn
    from originlock.cdk.edge_signing import EdgeSigning
from originlock.constants import (
    API_STAGE,
    METRICS_NAMESPACE,
    ROTATE_HANDLER,
    ROTATE_SERVICE,
    SCHEDULE_INPUT,
    STATE_MACHINE_SUFFIX,
)


def state_machine_name(name_prefix: str) -> str:
    """The state machine's (and its schedule's) literal name."""
    return f"{name_prefix}{STATE_MACHINE_SUFFIX}"


def executions_arn(scope: Construct, machine_name: str) -> str:
    """ARN pattern of the state machine's executions (their names are made at run time)."""
    return Stack.of(scope).format_arn(
        service="states",
        resource="execution",
        resource_name=f"{machine_name}:*",
        arn_format=ArnFormat.COLON_RESOURCE_NAME,
    )


def executions_nag_id(scope: Construct, machine_name: str) -> str:
    """cdk-nag's IAM5 finding id for :func:`executions_arn`."""
    return (
        "AwsSolutions-IAM5[Resource::"
        + nag_arn(scope, "arn:{partition}:states:{region}:{account}:execution:")
        + f"{machine_name}:*]"
    )


def distribution_arn(scope: Construct, distribution_id: str) -> str:
    """A distribution's ARN (CloudFront is global: no region)."""
    return Stack.of(scope).format_arn(
        service="cloudfront", region="", resource="distribution", resource_name=distribution_id
    )


def _check_pieces(
    token: TokenParameter, authorizer: OriginAuthorizer, header_name: str | None
) -> str:
    """The header to switch, once the authorizer is known to check it and to read *token*: a
    rotation of another parameter or header than the authorizer's would have CloudFront send
    values it refuses."""
    header = check_header_name(header_name or authorizer.header_name)
    if header != authorizer.header_name:
        raise PropsError(
            f"header_name {header} is not the header the authorizer checks "
            f"({authorizer.header_name}): give both the same header_name"
        )
    if authorizer.parameter_name != token.name:
        raise PropsError(
            f"the authorizer reads {authorizer.parameter_name}, the token parameter is "
            f"{token.name}: make the authorizer with token=<the TokenParameter>"
        )
    mine, theirs = authorizer.encryption_key, token.key
    same_key = mine is theirs or (
        mine is not None and theirs is not None and mine.key_arn == theirs.key_arn
    )
    if not same_key:
        raise PropsError(
            "the authorizer and the token parameter name different encryption keys: make the "
            "authorizer with token=<the TokenParameter>"
        )
    return header


class RotationWorkflow(Construct):
    """Rotate function, state machine and the EventBridge Scheduler schedule.

    Usable alone: it rotates *token* through the origin header of *distribution_id* (its
    *origin_ids*, or every origin carrying the header), and tells *authorizer*'s instances and
    API Gateway's cache of *api_id* when a value is revoked. *authorizer* must read *token*
    (:class:`~originlock.cdk.OriginAuthorizer` ``token=``) and check the header it switches.

    Parameters
    ----------
    token
        The token parameter (read, written, tagged; its lock beside it).
    authorizer
        The origin authorizer: the stage wait follows its max age and refresh interval, and a
        revoke replaces its instances.
    distribution_id
        The distribution whose origin header is switched: its id (``E1ABCDEF2GHIJK``), or a
        token that resolves to one (:class:`~originlock.cdk.OriginLock` passes its
        ``CfnDistribution``'s ``ref``, with the drift guard that distribution needs).
    header_name
        The origin header's name; ``None``: the one *authorizer* checks.
    origin_ids
        The origins whose header is switched; empty: every origin that carries it.
    api_id, api_stage
        The API whose authorizer cache a revoke empties (``None``: none).
    probe_url, api_url
        What the verify step requests: through CloudFront (must answer), straight at the API
        without the header (must refuse); ``None``: that check is skipped.
    web_acl_arn, log_bucket_arn
        The distribution's web ACL and standard-log bucket, if any: CloudFront checks the
        caller's access to them on UpdateDistribution.
    props
        Schedule and timings.
    name_prefix
        The state machine and the schedule are named ``<name prefix>-rotation``.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        token: TokenParameter,
        authorizer: OriginAuthorizer,
        distribution_id: str,
        header_name: str | None = None,
        origin_ids: Sequence[str] = (),
        api_id: str | None = None,
        api_stage: str = API_STAGE,
        probe_url: str | None = None,
        api_url: str | None = None,
        web_acl_arn: str | None = None,
        log_bucket_arn: str | None = None,
        props: RotationProps | None = None,
        name_prefix: str | None = None,
        edge_signing: EdgeSigning | None = None,
    ) -> None:
        props = props or RotationProps()
        props.check()
        header_name = _check_pieces(token, authorizer, header_name)
        distribution_id = check_id(
            "distribution_id", distribution_id, DISTRIBUTION_ID, "E1ABCDEF2GHIJK"
        )
        if api_id is not None:
            api_id = check_id("api_id", api_id, API_ID, "a1b2c3d4e5")
        prefix = name_prefix_of(scope, name_prefix)
        super().__init__(scope, construct_id)
        # A literal name: the rotate function's policy names this state machine's
        # executions, and the state machine names the function (no cycle).
        self.state_machine_name = state_machine_name(prefix)
        self.distribution_id = distribution_id
        self.distribution_arn = distribution_arn(self, distribution_id)
        environment = {
            "SSM_PARAMETER_NAME": token.name,
            "LOCK_PARAMETER_NAME": token.lock_name,
            "DISTRIBUTION_ID": distribution_id,
            "ORIGIN_HEADER_NAME": header_name,
            "API_ID": api_id,
            "API_STAGE": api_stage,
            "AUTHORIZER_FUNCTION_NAME": authorizer.function.function_name,
            "AUTHORIZER_REFRESH_INTERVAL_SECONDS": str(authorizer.refresh_interval_seconds),
            "AUTHORIZER_MAX_AGE_SECONDS": str(authorizer.max_age_seconds),
            "POLL_INTERVAL_SECONDS": str(props.poll_seconds(edge_signing is not None)),
            "DEPLOY_TIMEOUT_SECONDS": str(props.deploy_timeout_seconds()),
            "DRAIN_SECONDS": str(props.drain_seconds(edge_signing is not None)),
            "PROBE_URL": probe_url,
            "API_URL": api_url,
            "POWERTOOLS_SERVICE_NAME": ROTATE_SERVICE,
            "POWERTOOLS_METRICS_NAMESPACE": METRICS_NAMESPACE,
            # Empty: every origin that carries the header (rotate/settings.py).
            "ORIGIN_IDS": ",".join(origin_ids) or None,
        }
        if edge_signing is not None:
            # What the edges sign with is the KeyValueStore's key (functions/rotate/settings.py).
            environment |= {
                "LOCK_MODE": "edge-signed",
                "KVS_ARN": edge_signing.store.key_value_store_arn,
                "EDGE_FUNCTION_NAME": edge_signing.function.function_name,
                "EDGE_WINDOW_SECONDS": str(edge_signing.window_seconds),
                "EDGE_TOLERANCE_WINDOWS": str(edge_signing.tolerance_windows),
                "EDGE_PROPAGATION_SECONDS": str(edge_signing.propagation_seconds),
            }

        self.rotate = PythonFunction(
            self,
            "Rotate",
            handler=ROTATE_HANDLER,
            description="originlock: the steps of the rotation workflow",
            environment={name: value for name, value in environment.items() if value},
            powertools_version=authorizer.powertools_version,
            # A revoke waits up to 60 s for the authorizer's configuration update. No longer:
            # the worst-case revoke bound (every invocation at this timeout, docs/runbook.md)
            # must stay inside the execution's 2-hour timeout.
            timeout=Duration.minutes(2),
            # SigV4A for the KeyValueStore API (edge-signed mode only).
            extra_layers=[edge_signing.layer] if edge_signing is not None else [],
            no_dead_letter_queue=(
                "Invoked synchronously by Step Functions, whose Retry and Catch handle every "
                "failure (a failed execution raises the RotationFailed alarm)."
            ),
        )
        if token.key is not None:
            self.rotate.function.add_environment("KMS_KEY_ID", token.key.key_arn)
        self._grant_rotate(
            token, authorizer, api_id, api_stage, web_acl_arn, log_bucket_arn, edge_signing
        )

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
            definition_body=sfn.DefinitionBody.from_file(str(asl_file())),
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
            schedule=scheduler.ScheduleExpression.expression(props.schedule.strip()),
            target=targets.StepFunctionsStartExecution(
                self.state_machine,
                input=scheduler.ScheduleTargetInput.from_object(SCHEDULE_INPUT),
                retry_attempts=3,
            ),
            enabled=props.enabled,
        )

    def _grant_rotate(
        self,
        token: TokenParameter,
        authorizer: OriginAuthorizer,
        api_id: str | None,
        api_stage: str,
        web_acl_arn: str | None,
        log_bucket_arn: str | None,
        edge_signing: EdgeSigning | None,
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
        if edge_signing is not None:
            # Edge-signed mode never updates the distribution: it reads it (a static origin
            # header left by a mode switch, the deployment status), writes the store's key and
            # asks CloudFront to run the published function.
            role.add_to_policy(
                iam.PolicyStatement(
                    actions=["cloudfront:GetDistribution", "cloudfront:GetDistributionConfig"],
                    resources=[self.distribution_arn],
                )
            )
            edge_signing.grant_store(role)
            edge_signing.grant_test_function(role)
            web_acl_arn = log_bucket_arn = None
        else:
            role.add_to_policy(
                iam.PolicyStatement(
                    actions=[
                        "cloudfront:GetDistribution",
                        "cloudfront:GetDistributionConfig",
                        "cloudfront:UpdateDistribution",
                    ],
                    resources=[self.distribution_arn],
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
        if api_id is not None:
            role.add_to_policy(
                iam.PolicyStatement(
                    actions=["apigateway:DELETE"],
                    # ResetAuthorizersCache on this API's stage only.
                    resources=[
                        f"arn:{Aws.PARTITION}:apigateway:{Aws.REGION}::/apis/{api_id}"
                        f"/stages/{api_stage}/cache/authorizers"
                    ],
                )
            )
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["lambda:GetFunctionConfiguration", "lambda:UpdateFunctionConfiguration"],
                resources=[authorizer.function.function_arn],
            )
        )
        # Is the lock's holder still running (a stale lock), was its step under way, and stop it
        # when a revoke preempts it (docs/decisions.md, "Revoke preempts").
        role.add_to_policy(
            iam.PolicyStatement(
                actions=[
                    "states:DescribeExecution",
                    "states:GetExecutionHistory",
                    "states:StopExecution",
                ],
                resources=[executions_arn(self, self.state_machine_name)],
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
                executions_nag_id(self, self.state_machine_name),
                "Describe, read the history of and stop this state machine's executions only "
                "(the stale-lock check; a revoke preempting the lock's holder); execution "
                "names are made at run time.",
            ),
        )
