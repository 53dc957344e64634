"""The token parameter: a SecureString that CloudFormation cannot create, so a custom resource does.

``Custom::OriginlockTokenParameter`` puts a fresh token document on create, or
adopts an existing parameter as it is (a blog-style bare value included). It tags
the parameter ``originlock:stack=<stack name>`` and refuses one that another
originlock stack's tag names. On delete it removes a parameter it created, and
keeps one it adopted, without our tag. The template carries the parameter's name,
never its value.
"""

from __future__ import annotations

from aws_cdk import ArnFormat, CustomResource, Duration, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from constructs import Construct

from originlock.cdk.functions import PythonFunction
from originlock.cdk.props import check_parameter_name
from originlock.constants import (
    CURRENT_SINCE_TAG,
    OWNER_TAG,
    PARAMETER_PROVIDER_HANDLER,
    PARAMETER_RESOURCE_TYPE,
    POWERTOOLS_LAYER_VERSION,
)


def parameter_arn(scope: Construct, name: str) -> str:
    """ARN of a parameter by name (a leading slash is not repeated in the ARN)."""
    return Stack.of(scope).format_arn(
        service="ssm",
        resource="parameter",
        resource_name=name.lstrip("/"),
        arn_format=ArnFormat.SLASH_RESOURCE_NAME,
    )


def lock_parameter_name(parameter_name: str) -> str:
    """The rotation lock's parameter (a String, no secret) beside the token parameter."""
    return f"{parameter_name}.lock"


class TokenParameter(Construct):
    """The SecureString token parameter and the custom resource that provisions it.

    Parameters
    ----------
    parameter_name
        The parameter's name; an existing parameter of that name is adopted as it is (a
        blog-style bare value included) unless *adopt_existing* is false.
    encryption_key
        A customer managed KMS key for the SecureString; ``None``: the AWS managed key.
    powertools_layer_version
        The Powertools layer of the provisioning function.

    Attributes
    ----------
    name, arn, key, lock_name, lock_arn, lock_takeover_arn, provider, resource
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        parameter_name: str,
        adopt_existing: bool = True,
        encryption_key: kms.IKey | None = None,
        powertools_layer_version: int = POWERTOOLS_LAYER_VERSION,
    ) -> None:
        super().__init__(scope, construct_id)
        self.name = check_parameter_name(parameter_name)
        self.key = encryption_key
        key = encryption_key
        self.arn = parameter_arn(self, self.name)
        self.lock_name = lock_parameter_name(self.name)
        self.lock_arn = parameter_arn(self, self.lock_name)
        # Takeover markers of the rotation lock: their suffix is made at run time.
        self.lock_takeover_arn = parameter_arn(self, f"{self.lock_name}.takeover.*")

        self.provider = PythonFunction(
            self,
            "Provider",
            handler=PARAMETER_PROVIDER_HANDLER,
            description="originlock: creates or adopts the token parameter (custom resource)",
            environment={"POWERTOOLS_SERVICE_NAME": "provision"},
            powertools_version=powertools_layer_version,
            timeout=Duration.minutes(2),
            no_dead_letter_queue=(
                "Invoked by CloudFormation for a custom resource: the handler always answers "
                "CloudFormation, which fails (and rolls back) the deploy on an error."
            ),
        )
        self.provider.role.add_to_policy(
            iam.PolicyStatement(
                actions=["ssm:GetParameter", "ssm:PutParameter", "ssm:DeleteParameter"],
                resources=[self.arn],
            )
        )
        # The owner tag (originlock:stack): read it, set it (also on PutParameter with Tags),
        # remove it from an adopted parameter on delete. No other tag key.
        self.provider.role.add_to_policy(
            iam.PolicyStatement(actions=["ssm:ListTagsForResource"], resources=[self.arn])
        )
        self.provider.role.add_to_policy(
            iam.PolicyStatement(
                actions=["ssm:AddTagsToResource", "ssm:RemoveTagsFromResource"],
                resources=[self.arn],
                conditions={"ForAllValues:StringEquals": {"aws:TagKeys": [OWNER_TAG]}},
            )
        )
        if key is not None:
            key.grant(self.provider.role, "kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey")

        properties: dict[str, str] = {
            "ParameterName": self.name,
            "AdoptExisting": "true" if adopt_existing else "false",
        }
        if key is not None:
            properties["KeyId"] = key.key_arn
        self.resource = CustomResource(
            self,
            "Resource",
            service_token=self.provider.function.function_arn,
            resource_type=PARAMETER_RESOURCE_TYPE,
            properties=properties,
            service_timeout=Duration.minutes(5),
        )
        # The role's policy must exist before CloudFormation calls the function.
        self.resource.node.add_dependency(self.provider.role)

    def grant_read(self, grantee: iam.IGrantable) -> None:
        """``ssm:GetParameter`` on this one parameter (and decrypt with its key, if any)."""
        grantee.grant_principal.add_to_principal_policy(
            iam.PolicyStatement(actions=["ssm:GetParameter"], resources=[self.arn])
        )
        if self.key is not None:
            self.key.grant_decrypt(grantee)

    def grant_read_write(self, grantee: iam.IGrantable) -> None:
        """``ssm:GetParameter``/``PutParameter`` on this one parameter (and its key, if any),
        and setting its ``originlock:current-since`` tag (no other tag)."""
        grantee.grant_principal.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["ssm:GetParameter", "ssm:PutParameter"], resources=[self.arn]
            )
        )
        grantee.grant_principal.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["ssm:AddTagsToResource"],
                resources=[self.arn],
                conditions={"ForAllValues:StringEquals": {"aws:TagKeys": [CURRENT_SINCE_TAG]}},
            )
        )
        if self.key is not None:
            self.key.grant(grantee, "kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey")
