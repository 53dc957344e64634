"""``OriginLock``: one construct that locks a user's HTTP API behind CloudFront.

It takes what the user already has (``existing_api_obj``, ``existing_distribution_obj``,
``existing_authorizer_obj``) and brings the rest: the token parameter, the origin authorizer,
the distribution when none is given, the drift guard that gives the distribution its origin
header, the rotation workflow and its schedule, the alarms, and the stack outputs the
``originlock`` CLI reads.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any, TypeGuard

from aws_cdk import Aws, CfnOutput, Duration, Fn, Stack, Token
from aws_cdk import aws_apigatewayv2 as apigwv2
from aws_cdk import aws_cloudfront as cloudfront
from aws_cdk import aws_kms as kms
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from originlock.cdk.alarms import OriginLockAlarms
from originlock.cdk.authorizer import OriginAuthorizer
from originlock.cdk.distribution import LockedDistribution
from originlock.cdk.drift_guard import (
    OriginHeaderGuard,
    cfn_distribution_config,
    cfn_distribution_of,
)
from originlock.cdk.edge_signing import EdgeSigning
from originlock.cdk.props import (
    AlarmProps,
    AuthorizerProps,
    DistributionProps,
    EdgeSigningProps,
    LockMode,
    PropsError,
    RotationProps,
    check_header_name,
    check_parameter_name,
    default_parameter_name,
    name_prefix_of,
)
from originlock.cdk.rotation import RotationWorkflow, state_machine_name
from originlock.cdk.token_parameter import TokenParameter
from originlock.constants import (
    API_STAGE,
    DEFAULT_HEADER_NAME,
    OUTPUT_ALARM_TOPIC_ARN,
    OUTPUT_API_URL,
    OUTPUT_AUTHORIZER_FUNCTION_NAME,
    OUTPUT_CLOUDFRONT_URL,
    OUTPUT_DISTRIBUTION_ID,
    OUTPUT_ORIGIN_HEADER_NAME,
    OUTPUT_PARAMETER_NAME,
    OUTPUT_ROTATE_FUNCTION_NAME,
    OUTPUT_SCHEDULE_GROUP_NAME,
    OUTPUT_SCHEDULE_NAME,
    OUTPUT_STATE_MACHINE_ARN,
)


class LockConstruct(Construct):
    """What :class:`OriginLock` and :class:`~originlock.cdk.AttachedOriginLock` share: names
    that follow the stack (or ``name_prefix``), and one set of CLI outputs per stack."""

    name_prefix: str
    parameter_name: str
    creates_outputs: bool

    @staticmethod
    def others_in(stack: Stack) -> Iterator[LockConstruct]:
        for construct in stack.node.find_all():
            if isinstance(construct, LockConstruct) and Stack.of(construct) is stack:
                yield construct

    @classmethod
    def check_unique(
        cls, scope: Construct, *, prefix: str, parameter_name: str, outputs: bool
    ) -> None:
        """Two locks in one stack never share a name, a parameter or the CLI's outputs."""
        for other in cls.others_in(Stack.of(scope)):
            if other.name_prefix == prefix:
                raise PropsError(
                    f"another originlock construct in this stack ({other.node.path}) already "
                    f"names its resources {prefix}-…: give this one its own name_prefix"
                )
            if other.parameter_name == parameter_name:
                raise PropsError(
                    f"another originlock construct in this stack ({other.node.path}) already "
                    f"manages the parameter {parameter_name}"
                )
            if outputs and other.creates_outputs:
                raise PropsError(
                    "only one originlock construct per stack declares the outputs the "
                    f"originlock CLI reads ({other.node.path} does): pass create_outputs=False"
                )

    # Set by the subclass before monitor_and_declare.
    token: TokenParameter
    origin_authorizer: OriginAuthorizer
    rotation: RotationWorkflow
    cloudfront_url: str | None
    api_url: str | None

    def monitor_and_declare(
        self,
        *,
        alarm_props: AlarmProps | None,
        rotation_props: RotationProps | None,
        powertools_layer_version: int,
        distribution_id: str,
        header_name: str,
        create_outputs: bool,
        more_outputs: Mapping[str, str | None] | None = None,
    ) -> None:
        """The alarms over the rotation and the authorizer, then (if *create_outputs*) the
        outputs the CLI reads, *more_outputs* last."""
        self.alarms = OriginLockAlarms(
            self,
            "Monitoring",
            token=self.token,
            state_machine=self.rotation.state_machine,
            authorizer=self.origin_authorizer.function,
            props=alarm_props,
            rotation=rotation_props,
            powertools_layer_version=powertools_layer_version,
        )
        values: dict[str, str | None] = {
            OUTPUT_CLOUDFRONT_URL: self.cloudfront_url,
            OUTPUT_API_URL: self.api_url,
            OUTPUT_STATE_MACHINE_ARN: self.rotation.state_machine.state_machine_arn,
            OUTPUT_PARAMETER_NAME: self.token.name,
            OUTPUT_DISTRIBUTION_ID: distribution_id,
            OUTPUT_AUTHORIZER_FUNCTION_NAME: self.origin_authorizer.function.function_name,
            OUTPUT_ROTATE_FUNCTION_NAME: self.rotation.rotate.function.function_name,
            OUTPUT_ALARM_TOPIC_ARN: self.alarms.topic.topic_arn,
            OUTPUT_SCHEDULE_NAME: self.rotation.schedule.schedule_name,
            OUTPUT_SCHEDULE_GROUP_NAME: "default",
            OUTPUT_ORIGIN_HEADER_NAME: header_name,
            **(more_outputs or {}),
        }
        self.outputs = self.add_outputs(values) if create_outputs else {}

    def add_outputs(self, values: Mapping[str, str | None]) -> dict[str, CfnOutput]:
        """Stack outputs under the exact keys the CLI reads (``originlock --stack NAME``)."""
        outputs: dict[str, CfnOutput] = {}
        for key, value in values.items():
            if value is None:
                continue
            output = CfnOutput(self, key, value=value)
            output.override_logical_id(key)
            outputs[key] = output
        return outputs


def _stage_of(api: apigwv2.IHttpApi, stage: apigwv2.IHttpStage | str | None) -> tuple[str, Any]:
    """The stage's name and its URL (``None`` when the API's endpoint is not known)."""
    if stage is None:
        default = getattr(api, "default_stage", None)
        stage = default if default is not None else API_STAGE
    if not isinstance(stage, str):
        return stage.stage_name, stage.url
    endpoint = _endpoint(api)
    if endpoint is None:
        return stage, None
    return stage, f"{endpoint}/" if stage == API_STAGE else f"{endpoint}/{stage}/"


def _endpoint(api: apigwv2.IHttpApi) -> str | None:
    """The API's endpoint; ``None`` for an imported API given without one."""
    try:
        return str(api.api_endpoint)
    except RuntimeError:  # jsii: "apiEndpoint is not configured on the imported HttpApi"
        return None


def _bucket_arn_from_domain(domain: str) -> str:
    """``<bucket>.s3[.<region>].amazonaws.com`` -> the bucket's ARN."""
    if Token.is_unresolved(domain):
        name = Fn.select(0, Fn.split(".s3.", domain))
    else:
        name = domain.split(".s3.", 1)[0]
    return f"arn:{Aws.PARTITION}:s3:::{name}"


class OriginLock(LockConstruct):
    """Lock an HTTP API behind CloudFront, with the secret origin header rotated.

    Parameters
    ----------
    existing_api_obj
        The user's ``HttpApi`` (or one imported with ``HttpApi.from_http_api_attributes``; give
        it ``api_endpoint`` if OriginLock is to make the distribution). Attach the authorizer
        to its routes: ``authorizer=lock.authorizer``.
    api_stage
        The stage whose authorizer cache a revoke empties: an ``HttpStage``, a stage name, or
        ``None`` for the API's default stage (``$default``).
    existing_distribution_obj
        The user's ``Distribution`` or ``CfnDistribution``, in this stack; ``None``: OriginLock
        makes one in front of the API (:class:`~originlock.cdk.LockedDistribution`). The
        targeted origins get the origin header from the drift guard.
    origin_ids
        With ``existing_distribution_obj``: the origins that reach the API (they get the
        header, the rotation switches them). ``None``: the distribution's only origin.
    distribution_props
        Without ``existing_distribution_obj``: web ACL and standard logs of the one made.
    existing_authorizer_obj
        An :class:`~originlock.cdk.OriginAuthorizer` made beforehand (to pass its
        ``route_authorizer`` to ``HttpApi(default_authorizer=...)``, for instance); ``None``:
        OriginLock makes it.
    authorizer_props
        Without ``existing_authorizer_obj``: the authorizer's caches and reads.
    header_name
        The origin header CloudFront adds.
    parameter_name
        The token parameter; ``None``: ``/originlock/<name prefix>/origin-token``.
    adopt_existing_parameter
        Adopt a parameter of that name as it is (a bare value included) instead of refusing.
    encryption_key
        A customer managed KMS key for the parameter; ``None``: the AWS managed key.
    rotation_props
        Schedule, timings, the path the verify step requests.
    alarm_props
        Where alarms go; the token age that is stale.
    name_prefix
        The prefix of the names this construct gives (state machine and schedule
        ``<prefix>-rotation``, default parameter); ``None``: the stack's name. A second
        OriginLock in one stack needs its own.
    create_outputs
        Declare the stack outputs the ``originlock`` CLI reads (one OriginLock per stack).
    lock_mode
        How CloudFront proves itself: :attr:`LockMode.ORIGIN_HEADER` (a secret origin header),
        or :attr:`LockMode.EDGE_SIGNED` (a CloudFront Function signs every request with a key
        from a KeyValueStore; needs the distribution OriginLock makes; the authorizer's result
        TTL at most the window, the window by default: docs/edge-signed.md).
    edge_signing_props
        With :attr:`LockMode.EDGE_SIGNED`: the window, the tolerance, the propagation wait.

    Attributes
    ----------
    token : TokenParameter
    authorizer : aws_apigatewayv2_authorizers.HttpLambdaAuthorizer
        Pass it as ``authorizer=`` to the API's routes.
    origin_authorizer : OriginAuthorizer
        Its function, role and log group.
    edge : LockedDistribution or None
        The distribution OriginLock made, if it made one.
    distribution : aws_cloudfront.CfnDistribution
        The distribution, made or given (its ``CfnDistribution``).
    drift_guard : OriginHeaderGuard or None
        None in edge-signed mode (the distribution has no origin header).
    edge_signing : EdgeSigning or None
        Edge-signed mode's KeyValueStore, function and signing-key resources.
    rotation : RotationWorkflow
    alarms : OriginLockAlarms
    origin_ids : tuple[str, ...]
        The origins that send the header (empty for the distribution OriginLock made: every
        origin carrying the header, its only one).
    distribution_id, cloudfront_url, api_url, header_name, parameter_name, name_prefix
    outputs : dict[str, CfnOutput]
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        existing_api_obj: apigwv2.IHttpApi,
        api_stage: apigwv2.IHttpStage | str | None = None,
        existing_distribution_obj: cloudfront.IDistribution
        | cloudfront.CfnDistribution
        | None = None,
        origin_ids: Sequence[str] | None = None,
        distribution_props: DistributionProps | None = None,
        existing_authorizer_obj: OriginAuthorizer | None = None,
        authorizer_props: AuthorizerProps | None = None,
        header_name: str = DEFAULT_HEADER_NAME,
        parameter_name: str | None = None,
        adopt_existing_parameter: bool = True,
        encryption_key: kms.IKey | None = None,
        rotation_props: RotationProps | None = None,
        alarm_props: AlarmProps | None = None,
        name_prefix: str | None = None,
        create_outputs: bool = True,
        lock_mode: LockMode = LockMode.ORIGIN_HEADER,
        edge_signing_props: EdgeSigningProps | None = None,
    ) -> None:
        # Every setting is checked before anything joins the tree.
        edge_signed = lock_mode is LockMode.EDGE_SIGNED
        if edge_signed:
            edge_signing_props = edge_signing_props or EdgeSigningProps()
            edge_signing_props.check()
            if existing_distribution_obj is not None:
                raise PropsError(
                    "lock_mode EDGE_SIGNED needs the distribution OriginLock makes (leave out "
                    "existing_distribution_obj): associating the signing function with your own "
                    "distribution is not supported yet (docs/edge-signed.md)"
                )
            authorizer_props = self._edge_authorizer_props(
                authorizer_props, existing_authorizer_obj, edge_signing_props.window_seconds()
            )
        elif edge_signing_props is not None:
            raise PropsError("edge_signing_props needs lock_mode=LockMode.EDGE_SIGNED")
        prefix = name_prefix_of(scope, name_prefix)
        header = check_header_name(header_name)
        parameter = check_parameter_name(parameter_name or default_parameter_name(prefix))
        rotation_props = rotation_props or RotationProps()
        rotation_props.check()
        alarm_props = alarm_props or AlarmProps()
        alarm_props.token_max_age_seconds(rotation_props)
        if existing_distribution_obj is None and origin_ids is not None:
            raise PropsError("origin_ids names origins of existing_distribution_obj: give it")
        if existing_distribution_obj is not None and distribution_props is not None:
            raise PropsError(
                "distribution_props shapes the distribution OriginLock makes: leave it out "
                "with existing_distribution_obj"
            )
        if existing_distribution_obj is None and _endpoint(existing_api_obj) is None:
            raise PropsError(
                "the imported API has no endpoint: give HttpApi.from_http_api_attributes an "
                "api_endpoint, or OriginLock an existing_distribution_obj"
            )
        if existing_authorizer_obj is not None:
            self._check_authorizer(
                existing_authorizer_obj, parameter, header, encryption_key, authorizer_props
            )
        self.check_unique(scope, prefix=prefix, parameter_name=parameter, outputs=create_outputs)
        super().__init__(scope, construct_id)
        self.name_prefix = prefix
        self.parameter_name = parameter
        self.header_name = header
        self.creates_outputs = create_outputs
        self.lock_mode = lock_mode
        machine_name = state_machine_name(prefix)

        powertools = (
            existing_authorizer_obj.powertools_version
            if existing_authorizer_obj is not None
            else (authorizer_props or AuthorizerProps()).powertools_layer_version
        )

        self.token = TokenParameter(
            self,
            "TokenParameter",
            parameter_name=parameter,
            adopt_existing=adopt_existing_parameter,
            encryption_key=encryption_key,
            powertools_layer_version=powertools,
        )
        if existing_authorizer_obj is None:
            self.origin_authorizer = OriginAuthorizer(
                self,
                "Authorizer",
                token=self.token,
                header_name=header,
                props=authorizer_props,
                name_prefix=prefix,
            )
        else:
            self.origin_authorizer = existing_authorizer_obj
            # The function reads the parameter from its first invocation: it must exist by then.
            existing_authorizer_obj.function.node.add_dependency(self.token.resource)
        # What the user's routes take: an HttpLambdaAuthorizer.
        self.authorizer = self.origin_authorizer.route_authorizer

        web_acl_arn: str | None
        log_bucket_arn: str | None
        self.edge_signing: EdgeSigning | None = None
        if edge_signed:
            authorizer = self.origin_authorizer
            self.edge_signing = EdgeSigning(
                self,
                "EdgeSigning",
                token=self.token,
                header_name=header,
                state_machine_name=machine_name,
                # As a rotation's stage wait (functions/rotate/settings.py).
                stage_wait_seconds=authorizer.max_age_seconds
                + authorizer.refresh_interval_seconds
                + 5,
                props=edge_signing_props,
                powertools_layer_version=powertools,
            )
        self.drift_guard: OriginHeaderGuard | None
        if existing_distribution_obj is None:
            self.edge: LockedDistribution | None = LockedDistribution(
                self,
                "Edge",
                api_endpoint=existing_api_obj.api_endpoint,
                token=self.token,
                header_name=header,
                state_machine_name=machine_name,
                props=distribution_props,
                powertools_layer_version=powertools,
                edge_signing=self.edge_signing,
            )
            self.distribution = self.edge.distribution
            self.drift_guard = self.edge.header_value
            self.origin_ids: tuple[str, ...] = ()
            self.distribution_id = self.edge.distribution_id
            self.cloudfront_url = self.edge.url
            web_acl_arn = self.edge.web_acl_arn
            log_bucket_arn = self.edge.log_bucket.bucket_arn if self.edge.log_bucket else None
        else:
            self.edge = None
            self.distribution = cfn_distribution_of(existing_distribution_obj)
            self.drift_guard = OriginHeaderGuard(
                self,
                "OriginHeaderValue",
                token=self.token,
                header_name=header,
                state_machine_name=machine_name,
                powertools_layer_version=powertools,
            )
            self.origin_ids = self.drift_guard.guard_distribution(
                existing_distribution_obj, origin_ids
            )
            self.distribution_id = self.distribution.ref
            self.cloudfront_url = f"https://{self.distribution.attr_domain_name}"
            web_acl_arn, log_bucket_arn = self._distribution_grants(self.distribution)

        stage_name, self.api_url = _stage_of(existing_api_obj, api_stage)
        probe = rotation_props.probe_path
        self.rotation = RotationWorkflow(
            self,
            "Rotation",
            token=self.token,
            authorizer=self.origin_authorizer,
            distribution_id=self.distribution_id,
            header_name=header,
            origin_ids=self.origin_ids,
            api_id=existing_api_obj.api_id,
            api_stage=stage_name,
            probe_url=self.cloudfront_url if probe == "/" else f"{self.cloudfront_url}{probe}",
            api_url=self.api_url,
            web_acl_arn=web_acl_arn,
            log_bucket_arn=log_bucket_arn,
            props=rotation_props,
            name_prefix=prefix,
            edge_signing=self.edge_signing,
        )
        self.monitor_and_declare(
            alarm_props=alarm_props,
            rotation_props=rotation_props,
            powertools_layer_version=powertools,
            distribution_id=self.distribution_id,
            header_name=header,
            create_outputs=create_outputs,
        )

    @property
    def state_machine(self) -> sfn.StateMachine:
        """The rotation workflow's state machine."""
        return self.rotation.state_machine

    @staticmethod
    def _edge_authorizer_props(
        props: AuthorizerProps | None, existing: OriginAuthorizer | None, window: int
    ) -> AuthorizerProps | None:
        """Edge-signed mode: API Gateway's result TTL at most the window (a cached Allow would
        otherwise outlive a token's acceptance; docs/edge-signed.md), the window by default."""
        ttl = (
            existing.results_cache_ttl_seconds
            if existing is not None
            else (
                props or AuthorizerProps(results_cache_ttl=Duration.seconds(window))
            ).cache_ttl_seconds()
        )
        if ttl > window:
            raise PropsError(
                f"the authorizer's results_cache_ttl ({ttl} s) exceeds the edge-signed window "
                f"({window} s): a cached Allow would outlive the token it allowed"
            )
        if existing is None and props is None:
            return AuthorizerProps(results_cache_ttl=Duration.seconds(window))
        return props

    @staticmethod
    def _check_authorizer(
        authorizer: OriginAuthorizer,
        parameter: str,
        header: str,
        key: kms.IKey | None,
        props: AuthorizerProps | None,
    ) -> None:
        if props is not None:
            raise PropsError(
                "authorizer_props shapes the authorizer OriginLock makes: give them to "
                "the OriginAuthorizer passed as existing_authorizer_obj"
            )
        if authorizer.parameter_name != parameter:
            raise PropsError(
                f"existing_authorizer_obj reads {authorizer.parameter_name}, this OriginLock's "
                f"parameter is {parameter}: give both the same parameter_name"
            )
        if authorizer.header_name != header:
            raise PropsError(
                f"existing_authorizer_obj checks {authorizer.header_name}, this OriginLock's "
                f"header is {header}: give both the same header_name"
            )
        if authorizer.encryption_key is not key:
            raise PropsError(
                "existing_authorizer_obj and this OriginLock name different encryption keys: "
                "give both the same encryption_key"
            )

    def _distribution_grants(
        self, distribution: cloudfront.CfnDistribution
    ) -> tuple[str | None, str | None]:
        """The web ACL and the standard-log bucket of a user's distribution, as configured when
        it is handed over: CloudFront checks the caller's access to both on UpdateDistribution."""
        config = cfn_distribution_config(distribution) or {}
        if not isinstance(config, dict):
            return None, None
        stack = Stack.of(distribution)

        def configured(value: Any) -> TypeGuard[str]:
            # An L2 Distribution renders these lazily: a token that may resolve to nothing.
            return isinstance(value, str) and bool(value) and stack.resolve(value) is not None

        web_acl = config.get("webAclId")
        logging = config.get("logging")
        if not isinstance(logging, dict):
            logging = stack.resolve(logging) if logging is not None else None
        bucket = logging.get("bucket") if isinstance(logging, dict) else None
        return (
            web_acl_arn_of(web_acl) if configured(web_acl) else None,
            _bucket_arn_from_domain(bucket) if configured(bucket) else None,
        )


def web_acl_arn_of(web_acl: str) -> str:
    """A distribution's ``WebACLId`` as the ARN the rotation may read (AWS WAF v2 only)."""
    if not Token.is_unresolved(web_acl) and not web_acl.startswith("arn:"):
        raise PropsError(
            f"the distribution's web ACL {web_acl!r} is an AWS WAF Classic id: originlock "
            "supports AWS WAF (v2) web ACLs, named by ARN"
        )
    return web_acl
