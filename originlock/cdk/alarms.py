"""Alarms, a dashboard and the SNS topic they notify.

* rotation failed / timed out: ``AWS/States`` ``ExecutionsFailed`` / ``ExecutionsTimedOut``;
* token older than twice the schedule: ``originlock`` ``TokenAgeSeconds`` from the
  token-age probe (a CloudWatch alarm cannot look back more than 7 days, so an
  alarm on "no successful execution in 14 days" is not expressible);
* authorizer denial spike: ``originlock`` ``Denied`` (``service=authorizer``, EMF);
* authorizer errors: ``AWS/Lambda`` ``Errors`` of the authorizer.
"""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as events_targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from originlock.cdk.findings import skip_checkov
from originlock.cdk.functions import PythonFunction, acknowledge
from originlock.cdk.props import AlarmProps, RotationProps
from originlock.cdk.token_parameter import TokenParameter
from originlock.constants import (
    AGE_METRIC,
    AGE_PROBE_HANDLER,
    AGE_PROBE_SERVICE,
    AUTHORIZER_SERVICE,
    DENIED_METRIC,
    METRICS_NAMESPACE,
    POWERTOOLS_LAYER_VERSION,
)

# Denials per 5 minutes above which someone is probably guessing the header.
DENIAL_SPIKE_THRESHOLD = 100
PROBE_INTERVAL = Duration.minutes(30)


class OriginLockAlarms(Construct):
    """The SNS topic, the alarms into it, the dashboard and the token-age probe.

    Parameters
    ----------
    token
        The token parameter (the probe reads its metadata, never its value).
    state_machine
        The rotation workflow's state machine.
    authorizer
        The authorizer function.
    props
        Where alarms go, and the token age that is stale.
    rotation
        The schedule (the default stale age is twice a ``rate(...)``).

    Attributes
    ----------
    topic, alarms, dashboard, probe, token_max_age_seconds
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        token: TokenParameter,
        state_machine: sfn.StateMachine,
        authorizer: lambda_.IFunction,
        props: AlarmProps | None = None,
        rotation: RotationProps | None = None,
        powertools_layer_version: int = POWERTOOLS_LAYER_VERSION,
    ) -> None:
        props = props or AlarmProps()
        token_max_age = props.token_max_age_seconds(rotation or RotationProps())
        self.token_max_age_seconds = token_max_age
        super().__init__(scope, construct_id)
        self.topic = sns.Topic(self, "Alarms", display_name="originlock alarms", enforce_ssl=True)
        skip_checkov(
            self.topic,
            (
                "CKV_AWS_26",
                "Alarm notifications carry alarm names and states, never a secret; CloudWatch "
                "alarms publish only to topics under a customer managed key (a key per "
                "deployment, with a key policy for CloudWatch).",
            ),
        )
        if props.email:
            self.topic.add_subscription(subscriptions.EmailSubscription(props.email))
        action = actions.SnsAction(self.topic)

        self.probe = PythonFunction(
            self,
            "TokenAgeProbe",
            handler=AGE_PROBE_HANDLER,
            description="originlock: publishes the current token value's age (metadata only)",
            environment={
                "SSM_PARAMETER_NAME": token.name,
                "POWERTOOLS_SERVICE_NAME": AGE_PROBE_SERVICE,
                "POWERTOOLS_METRICS_NAMESPACE": METRICS_NAMESPACE,
            },
            powertools_version=powertools_layer_version,
            no_dead_letter_queue=(
                "Invoked by an EventBridge rule that retries twice; a lost run is a missing "
                "TokenAgeSeconds datapoint, which the TokenStale alarm treats as breaching."
            ),
        )
        self.probe.role.add_to_policy(
            iam.PolicyStatement(actions=["ssm:DescribeParameters"], resources=["*"])
        )
        # The originlock:current-since tag the rotate function keeps (metadata, no value).
        self.probe.role.add_to_policy(
            iam.PolicyStatement(actions=["ssm:ListTagsForResource"], resources=[token.arn])
        )
        acknowledge(
            self.probe.role,
            (
                "AwsSolutions-IAM5[Resource::*]",
                "ssm:DescribeParameters supports no resource-level permissions; it returns "
                "parameter metadata, never a value.",
            ),
        )
        # An EventBridge rule invokes through the function's resource policy: no
        # role, so no grant on the function's versions (":*") either.
        events.Rule(
            self,
            "TokenAgeSchedule",
            description="originlock: token-age probe",
            schedule=events.Schedule.rate(PROBE_INTERVAL),
            targets=[events_targets.LambdaFunction(self.probe.function, retry_attempts=2)],
        )

        alarms = [
            state_machine.metric_failed(period=Duration.minutes(5), statistic="Sum").create_alarm(
                self,
                "RotationFailed",
                alarm_description="A rotation or revoke execution failed.",
                threshold=1,
                evaluation_periods=1,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            ),
            state_machine.metric_timed_out(
                period=Duration.minutes(5), statistic="Sum"
            ).create_alarm(
                self,
                "RotationTimedOut",
                alarm_description="A rotation or revoke execution timed out.",
                threshold=1,
                evaluation_periods=1,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            ),
            self.token_age_metric().create_alarm(
                self,
                "TokenStale",
                alarm_description=(
                    "The token parameter was last written more than "
                    f"{token_max_age} s ago (twice the rotation schedule), "
                    "or the token-age probe stopped reporting."
                ),
                threshold=token_max_age,
                evaluation_periods=1,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
                # No datapoint means the probe is broken: say so.
                treat_missing_data=cloudwatch.TreatMissingData.BREACHING,
            ),
            self.denied_metric().create_alarm(
                self,
                "AuthorizerDenialSpike",
                alarm_description=(
                    "The authorizer denied many requests: someone is calling the API "
                    "directly, or CloudFront sends a value that is not accepted."
                ),
                threshold=DENIAL_SPIKE_THRESHOLD,
                evaluation_periods=1,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            ),
            authorizer.metric_errors(period=Duration.minutes(5), statistic="Sum").create_alarm(
                self,
                "AuthorizerErrors",
                alarm_description="The authorizer function failed (every failure is a 500).",
                threshold=1,
                evaluation_periods=1,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            ),
        ]
        for alarm in alarms:
            alarm.add_alarm_action(action)
            alarm.add_ok_action(action)
        self.alarms = alarms

        self.dashboard = cloudwatch.Dashboard(self, "Dashboard")
        self.dashboard.add_widgets(
            cloudwatch.AlarmStatusWidget(title="originlock alarms", alarms=alarms, width=24),
        )
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Rotations",
                left=[
                    state_machine.metric_succeeded(statistic="Sum"),
                    state_machine.metric_failed(statistic="Sum"),
                    state_machine.metric_timed_out(statistic="Sum"),
                ],
                width=12,
            ),
            cloudwatch.GraphWidget(
                title="Token age (seconds)",
                left=[self.token_age_metric()],
                left_annotations=[
                    cloudwatch.HorizontalAnnotation(value=token_max_age, label="alarm")
                ],
                width=12,
            ),
            cloudwatch.GraphWidget(
                title="Authorizer denials",
                left=[self.denied_metric()],
                width=12,
            ),
            cloudwatch.GraphWidget(
                title="Authorizer invocations, errors, throttles",
                left=[
                    authorizer.metric_invocations(statistic="Sum"),
                    authorizer.metric_errors(statistic="Sum"),
                    authorizer.metric_throttles(statistic="Sum"),
                ],
                right=[authorizer.metric_duration(statistic="p99")],
                width=12,
            ),
        )

    @staticmethod
    def denied_metric() -> cloudwatch.Metric:
        return cloudwatch.Metric(
            namespace=METRICS_NAMESPACE,
            metric_name=DENIED_METRIC,
            dimensions_map={"service": AUTHORIZER_SERVICE},
            statistic="Sum",
            period=Duration.minutes(5),
        )

    @staticmethod
    def token_age_metric() -> cloudwatch.Metric:
        return cloudwatch.Metric(
            namespace=METRICS_NAMESPACE,
            metric_name=AGE_METRIC,
            dimensions_map={"service": AGE_PROBE_SERVICE},
            statistic="Maximum",
            period=Duration.hours(1),
        )
