"""boto3 adapters of the custom resources' ports, built lazily, failing with typed errors."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from provision.errors import (
    LiveConfigUnavailableError,
    LockUnavailableError,
    StackUnavailableError,
    StoreUnavailableError,
)
from provision.logic import OWNER_TAG
from tokens.store import silence_botocore_body_logs

DESCRIPTION = "originlock token document: written by the rotation workflow, never by hand"


def _client(service: str) -> Any:
    import boto3
    from botocore.config import Config

    # botocore's DEBUG records carry bodies: the token in PutParameter, GetParameter and
    # CloudFront's distribution configuration.
    silence_botocore_body_logs()
    config = Config(
        connect_timeout=5,
        read_timeout=20,
        retries={"mode": "standard", "max_attempts": 5},
    )
    return boto3.client(service, config=config)


def _code(exc: Exception) -> str:
    """An AWS error code (``ClientError``), else the exception's class name (``BotoCoreError``:
    no answer at all). Never the message, which could echo a request."""
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", type(exc).__name__))


class SsmParameterStore:
    """The token parameter in Parameter Store. Error messages carry codes only."""

    def __init__(self, client: Any = None) -> None:
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = _client("ssm")
        return self._client

    def get(self, name: str) -> str | None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            response = self.client.get_parameter(Name=name, WithDecryption=True)
        except (ClientError, BotoCoreError) as exc:
            if _code(exc) == "ParameterNotFound":
                return None
            raise StoreUnavailableError(f"GetParameter failed: {_code(exc)}") from None
        return str(response["Parameter"]["Value"])

    def create(self, name: str, value: str, key_id: str | None, owner: str | None = None) -> bool:
        from botocore.exceptions import BotoCoreError, ClientError

        kwargs: dict[str, Any] = {
            "Name": name,
            "Value": value,
            "Type": "SecureString",
            "Overwrite": False,
            "Tier": "Standard",
            "Description": DESCRIPTION,
        }
        if key_id:
            kwargs["KeyId"] = key_id
        if owner:
            # Tagged in the same call: a parameter of ours is never untagged, even briefly.
            kwargs["Tags"] = [{"Key": OWNER_TAG, "Value": owner}]
        try:
            self.client.put_parameter(**kwargs)
        except (ClientError, BotoCoreError) as exc:
            if _code(exc) == "ParameterAlreadyExists":
                return False
            raise StoreUnavailableError(f"PutParameter failed: {_code(exc)}") from None
        return True

    def delete(self, name: str) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.delete_parameter(Name=name)
        except (ClientError, BotoCoreError) as exc:
            if _code(exc) != "ParameterNotFound":
                raise StoreUnavailableError(f"DeleteParameter failed: {_code(exc)}") from None

    def owner(self, name: str) -> str | None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            tags = self.client.list_tags_for_resource(ResourceType="Parameter", ResourceId=name)
        except (ClientError, BotoCoreError) as exc:
            if _code(exc) == "InvalidResourceId":
                return None
            raise StoreUnavailableError(f"ListTagsForResource failed: {_code(exc)}") from None
        for tag in tags.get("TagList", []):
            if tag.get("Key") == OWNER_TAG:
                return str(tag.get("Value", ""))
        return None

    def set_owner(self, name: str, owner: str) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.add_tags_to_resource(
                ResourceType="Parameter",
                ResourceId=name,
                Tags=[{"Key": OWNER_TAG, "Value": owner}],
            )
        except (ClientError, BotoCoreError) as exc:
            raise StoreUnavailableError(f"AddTagsToResource failed: {_code(exc)}") from None

    def clear_owner(self, name: str) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.remove_tags_from_resource(
                ResourceType="Parameter", ResourceId=name, TagKeys=[OWNER_TAG]
            )
        except (ClientError, BotoCoreError) as exc:
            if _code(exc) != "InvalidResourceId":
                raise StoreUnavailableError(
                    f"RemoveTagsFromResource failed: {_code(exc)}"
                ) from None


class StackDistribution:
    """The live distribution behind a logical id of the stack being deployed."""

    def __init__(self, cloudformation: Any = None, cloudfront: Any = None) -> None:
        self._cloudformation = cloudformation
        self._cloudfront = cloudfront

    def distribution_config(self, stack_id: str, logical_id: str) -> Mapping[str, Any] | None:
        from botocore.exceptions import BotoCoreError, ClientError

        if self._cloudformation is None:
            self._cloudformation = _client("cloudformation")
        if self._cloudfront is None:
            self._cloudfront = _client("cloudfront")
        try:
            detail = self._cloudformation.describe_stack_resource(
                StackName=stack_id, LogicalResourceId=logical_id
            )["StackResourceDetail"]
        except (ClientError, BotoCoreError) as exc:
            # ValidationError: the stack has no such resource yet (first create).
            if _code(exc) == "ValidationError":
                return None
            raise LiveConfigUnavailableError(
                f"DescribeStackResource failed: {_code(exc)}"
            ) from None
        distribution_id = detail.get("PhysicalResourceId")
        if not distribution_id or detail.get("ResourceStatus") == "DELETE_COMPLETE":
            return None
        try:
            response = self._cloudfront.get_distribution_config(Id=distribution_id)
        except (ClientError, BotoCoreError) as exc:
            if _code(exc) == "NoSuchDistribution":
                return None
            raise LiveConfigUnavailableError(
                f"GetDistributionConfig failed: {_code(exc)}"
            ) from None
        config: Mapping[str, Any] = response["DistributionConfig"]
        return config


class StackStatusReader:
    """``StackStatus`` of the stack being deployed (``cloudformation:DescribeStacks`` on it)."""

    def __init__(self, client: Any = None) -> None:
        self._client = client

    def status(self, stack_id: str) -> str:
        from botocore.exceptions import BotoCoreError, ClientError

        if self._client is None:
            self._client = _client("cloudformation")
        try:
            stacks = self._client.describe_stacks(StackName=stack_id)["Stacks"]
        except (ClientError, BotoCoreError) as exc:
            raise StackUnavailableError(f"DescribeStacks failed: {_code(exc)}") from None
        if not stacks:
            raise StackUnavailableError("DescribeStacks returned no stack")
        return str(stacks[0]["StackStatus"])


# What ``holder`` returns for a lock value it cannot parse (not an ARN: stale to the workflow).
UNREADABLE_LOCK = "unreadable-lock"


class SsmRotationLock:
    """The rotation workflow's lock, read only: a String parameter holding
    ``{"execution": <execution ARN>, ...}`` (the format of ``rotate.adapters.Lock``), or
    ``{"execution": "released", ...}`` once a settling holder released it: not an ARN, so
    stale (nobody runs)."""

    def __init__(self, ssm: Any = None, stepfunctions: Any = None) -> None:
        self._ssm = ssm
        self._stepfunctions = stepfunctions

    def holder(self, name: str) -> str | None:
        from botocore.exceptions import BotoCoreError, ClientError

        if self._ssm is None:
            self._ssm = _client("ssm")
        try:
            value = self._ssm.get_parameter(Name=name)["Parameter"]["Value"]
        except (ClientError, BotoCoreError) as exc:
            if _code(exc) == "ParameterNotFound":
                return None
            raise LockUnavailableError(
                f"GetParameter on the rotation lock failed: {_code(exc)}"
            ) from None
        try:
            return str(json.loads(value)["execution"])
        except (ValueError, KeyError, TypeError):
            return UNREADABLE_LOCK

    def running(self, execution_arn: str) -> bool:
        from botocore.exceptions import BotoCoreError, ClientError

        if self._stepfunctions is None:
            self._stepfunctions = _client("stepfunctions")
        try:
            status = self._stepfunctions.describe_execution(executionArn=execution_arn)["status"]
        except (ClientError, BotoCoreError) as exc:
            if _code(exc) in ("ExecutionDoesNotExist", "InvalidArn"):
                return False
            raise LockUnavailableError(
                f"DescribeExecution of the lock holder failed: {_code(exc)}"
            ) from None
        return status == "RUNNING"
