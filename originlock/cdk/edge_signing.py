"""Edge-signed mode's CloudFront pieces (docs/edge-signed.md).

* a CloudFront **KeyValueStore** that holds the signing key (written only at run time: by the
  rotate function and by ``Custom::OriginlockSigningKey``; never by the template);
* a **CloudFront Function** (``cloudfront-js-2.0``, associated with the store) that, on
  viewer request, sets the origin header to ``v1.<window>.<kid>.<mac>``; its code is
  ``functions/edge/viewer_request.js`` with the header name and the window filled in, and holds
  no key;
* the **awscrt layer** (SigV4A, which the KeyValueStore's API requires) for the functions that
  call it;
* ``Custom::OriginlockSigningKey`` twice: once *before* the distribution (on a stack whose
  distribution exists, a key is in place before CloudFront deploys the function) and once
  *after* it (a first create), see :mod:`provision.signing`.

The distribution itself gets :meth:`EdgeSigning.function_association` on every behaviour that
reaches the API, and no static origin header: CloudFront would let one of the same name win.
"""

from __future__ import annotations

from aws_cdk import CustomResource, Duration, Stack
from aws_cdk import aws_cloudfront as cloudfront
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from originlock.bundle import awscrt_layer_dir, functions_dir
from originlock.cdk.functions import RUNTIME, PythonFunction, acknowledge
from originlock.cdk.props import EdgeSigningProps, PropsError, check_header_name
from originlock.cdk.rotation import executions_arn, executions_nag_id
from originlock.cdk.token_parameter import TokenParameter
from originlock.constants import SIGNING_KEY_PROVIDER_HANDLER, SIGNING_KEY_RESOURCE_TYPE

# Lambda's limit; the provider waits the stage wait and needs a margin for its calls.
MAX_FUNCTION_SECONDS = 900
PROVIDER_MARGIN_SECONDS = 120


def render_function_code(header_name: str, window_seconds: int) -> str:
    """The viewer-request function's code, placeholders filled in (no key: checked there)."""
    # functions/edge, the one way to fill in the placeholders, loaded from its file under a
    # name of ours: nothing added to sys.path (a user's own `edge` module stays theirs).
    import importlib.util

    source = functions_dir() / "edge" / "__init__.py"
    spec = importlib.util.spec_from_file_location("originlock._edge_function", source)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return str(module.render(header_name, window_seconds))


def awscrt_layer(scope: Construct) -> lambda_.ILayerVersion:
    """The awscrt layer, one per stack (arm64, Python 3.13)."""
    stack = Stack.of(scope)
    existing = stack.node.try_find_child("AwscrtLayer")
    if existing is not None:
        return existing  # type: ignore[return-value]
    return lambda_.LayerVersion(
        stack,
        "AwscrtLayer",
        code=lambda_.Code.from_asset(str(awscrt_layer_dir())),
        compatible_runtimes=[RUNTIME],
        compatible_architectures=[lambda_.Architecture.ARM_64],
        description="originlock: awscrt (SigV4A for the CloudFront KeyValueStore API)",
    )


class EdgeSigning(Construct):
    """The KeyValueStore, the signing function, and the custom resources that put a key in place.

    Parameters
    ----------
    token
        The token parameter (the signing-key resource writes it) and its lock.
    header_name
        The origin header the function sets.
    state_machine_name
        The rotation workflow's state machine (a deploy refuses while it holds the lock).
    stage_wait_seconds
        How long the signing-key resource waits between writing the document and the store:
        the authorizers' max age, refresh interval and 5 s, as a rotation's stage wait.
    props
        The window, the tolerance and the propagation wait.
    powertools_layer_version
        The Powertools layer of the provider function.

    Attributes
    ----------
    store, function, provider, layer, window_seconds, tolerance_windows, propagation_seconds
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        token: TokenParameter,
        header_name: str,
        state_machine_name: str,
        stage_wait_seconds: int,
        props: EdgeSigningProps | None = None,
        powertools_layer_version: int,
    ) -> None:
        props = props or EdgeSigningProps()
        props.check()
        header = check_header_name(header_name)
        super().__init__(scope, construct_id)
        self.token = token
        self.window_seconds = props.window_seconds()
        self.tolerance_windows = props.tolerance_windows
        self.propagation_seconds = props.propagation_seconds()
        self.stage_wait_seconds = stage_wait_seconds
        self.store = cloudfront.KeyValueStore(
            self, "Store", comment="originlock: the edge-signed mode's signing key"
        )
        self.function = cloudfront.Function(
            self,
            "Function",
            code=cloudfront.FunctionCode.from_inline(
                render_function_code(header, self.window_seconds)
            ),
            runtime=cloudfront.FunctionRuntime.JS_2_0,
            key_value_store=self.store,
            auto_publish=True,
            comment="originlock: signs the origin header with the KeyValueStore's key",
        )
        self.layer = awscrt_layer(self)
        waits = stage_wait_seconds + self.propagation_seconds
        if waits + PROVIDER_MARGIN_SECONDS > MAX_FUNCTION_SECONDS:
            raise PropsError(
                f"the signing-key resource would wait {waits} s (the authorizers' stage wait "
                f"and the propagation wait), more than a custom resource's function may run "
                f"({MAX_FUNCTION_SECONDS - PROVIDER_MARGIN_SECONDS} s): shorten the "
                "authorizer's max age or the propagation wait"
            )
        timeout = waits + PROVIDER_MARGIN_SECONDS
        self.provider = PythonFunction(
            self,
            "Provider",
            handler=SIGNING_KEY_PROVIDER_HANDLER,
            description="originlock: puts the edge-signed mode's key in place (custom resource)",
            environment={"POWERTOOLS_SERVICE_NAME": "provision"},
            powertools_version=powertools_layer_version,
            timeout=Duration.seconds(timeout),
            extra_layers=[self.layer],
            no_dead_letter_queue=(
                "Invoked by CloudFormation for a custom resource: the handler always answers "
                "CloudFormation, which fails (and rolls back) the deploy on an error."
            ),
        )
        role = self.provider.role
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["ssm:GetParameter", "ssm:PutParameter"], resources=[token.arn]
            )
        )
        if token.key is not None:
            token.key.grant(role, "kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey")
        stack = Stack.of(self)
        role.add_to_policy(
            iam.PolicyStatement(
                # The distribution's physical id, and whether the stack is rolling back.
                actions=["cloudformation:DescribeStackResource", "cloudformation:DescribeStacks"],
                resources=[stack.stack_id],
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(actions=["ssm:GetParameter"], resources=[token.lock_arn])
        )
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["states:DescribeExecution"],
                resources=[executions_arn(self, state_machine_name)],
            )
        )
        self.grant_store(role)
        acknowledge(
            role,
            (
                executions_nag_id(self, state_machine_name),
                "DescribeExecution on this stack's rotation executions only: is the lock's "
                "holder still running? Execution names are made at run time.",
            ),
        )
        self._properties = {
            "ParameterName": token.name,
            "KvsArn": self.store.key_value_store_arn,
            "LockParameterName": token.lock_name,
            "WindowSeconds": str(self.window_seconds),
            "ToleranceWindows": str(self.tolerance_windows),
            "StageWaitSeconds": str(stage_wait_seconds),
            "PropagationSeconds": str(self.propagation_seconds),
        }
        if token.key is not None:
            self._properties["KeyId"] = token.key.key_arn
        self.service_timeout = Duration.seconds(min(3600, timeout + 60))

    def grant_store(self, grantee: iam.IGrantable) -> None:
        """Read the store's metadata and key, and write its key (nothing else, this store)."""
        grantee.grant_principal.add_to_principal_policy(
            iam.PolicyStatement(
                actions=[
                    "cloudfront-keyvaluestore:DescribeKeyValueStore",
                    "cloudfront-keyvaluestore:GetKey",
                    "cloudfront-keyvaluestore:UpdateKeys",
                ],
                resources=[self.store.key_value_store_arn],
            )
        )

    def grant_test_function(self, grantee: iam.IGrantable) -> None:
        """Run the published function in CloudFront (``TestFunction``: the rotation's check that
        the edges sign with the new key), this function only."""
        grantee.grant_principal.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["cloudfront:DescribeFunction", "cloudfront:TestFunction"],
                resources=[self.function.function_arn],
            )
        )

    @staticmethod
    def function_association_of(
        function: cloudfront.Function,
    ) -> cloudfront.CfnDistribution.FunctionAssociationProperty:
        return cloudfront.CfnDistribution.FunctionAssociationProperty(
            event_type="viewer-request", function_arn=function.function_arn
        )

    def function_association(self) -> cloudfront.CfnDistribution.FunctionAssociationProperty:
        """The viewer-request association for every behaviour that reaches the API."""
        return self.function_association_of(self.function)

    def guard(self, distribution: cloudfront.CfnDistribution) -> None:
        """Put a key in place around *distribution*: before it (when it exists) and after it."""
        stack = Stack.of(self)
        self.before = self._resource(
            "KeyBeforeDistribution",
            {"DistributionLogicalId": stack.get_logical_id(distribution)},
        )
        distribution.node.add_dependency(self.before)
        # The function's code too: a deploy the resource refuses (a window changed in place)
        # must fail before new code numbers the windows differently from the authorizers.
        self.function.node.add_dependency(self.before)
        self.after = self._resource("KeyAfterDistribution", {"DistributionId": distribution.ref})

    def _resource(self, construct_id: str, extra: dict[str, str]) -> CustomResource:
        resource = CustomResource(
            self,
            construct_id,
            service_token=self.provider.function.function_arn,
            resource_type=SIGNING_KEY_RESOURCE_TYPE,
            service_timeout=self.service_timeout,
            properties={**self._properties, **extra},
        )
        resource.node.add_dependency(self.token.resource, self.provider.role)
        return resource

    @property
    def key_id(self) -> str:
        """The key id the signing key resource reports (public: every token carries it)."""
        return self.after.get_att_string("KeyId")
