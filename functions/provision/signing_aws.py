"""boto3 adapters of ``Custom::OriginlockSigningKey``'s ports (provision.signing).

The KeyValueStore's data-plane API is signed with SigV4A: botocore needs ``awscrt`` for it
(a layer in the stack; ../shared/FACTS.md). Error messages carry AWS error codes only.
"""

from __future__ import annotations

from typing import Any

from provision.aws import DESCRIPTION, SsmParameterStore, _client, _code
from provision.errors import LiveConfigUnavailableError, StoreUnavailableError
from tokens.edge import KVS_KEY_NAME


class KeyValueStoreUnavailableError(StoreUnavailableError):
    """The KeyValueStore refused or failed a call (its ETag moved: ``ConflictException``)."""


class SsmDocumentStore(SsmParameterStore):
    """The token parameter, read and overwritten (a SecureString, with the stack's KMS key)."""

    def put(self, name: str, value: str, key_id: str | None) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        kwargs: dict[str, Any] = {
            "Name": name,
            "Value": value,
            "Type": "SecureString",
            "Overwrite": True,
            "Tier": "Standard",
            "Description": DESCRIPTION,
        }
        if key_id:
            kwargs["KeyId"] = key_id
        try:
            self.client.put_parameter(**kwargs)
        except (ClientError, BotoCoreError) as exc:
            raise StoreUnavailableError(f"PutParameter failed: {_code(exc)}") from None


class KvsKeyStore:
    """The distribution's KeyValueStore, by ARN."""

    def __init__(self, kvs_arn: str, client: Any = None) -> None:
        self.kvs_arn = kvs_arn
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = _client("cloudfront-keyvaluestore")
        return self._client

    def read(self) -> tuple[str | None, str]:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            etag = str(self.client.describe_key_value_store(KvsARN=self.kvs_arn)["ETag"])
        except (ClientError, BotoCoreError) as exc:
            raise KeyValueStoreUnavailableError(
                f"DescribeKeyValueStore failed: {_code(exc)}"
            ) from None
        try:
            key = self.client.get_key(KvsARN=self.kvs_arn, Key=KVS_KEY_NAME).get("Value")
        except (ClientError, BotoCoreError) as exc:
            if _code(exc) == "ResourceNotFoundException":
                return None, etag  # the store exists (described above): the key does not
            raise KeyValueStoreUnavailableError(f"GetKey failed: {_code(exc)}") from None
        return (str(key) if key is not None else None), etag

    def write(self, key: str, etag: str) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.update_keys(
                KvsARN=self.kvs_arn, IfMatch=etag, Puts=[{"Key": KVS_KEY_NAME, "Value": key}]
            )
        except (ClientError, BotoCoreError) as exc:
            raise KeyValueStoreUnavailableError(f"UpdateKeys failed: {_code(exc)}") from None


class StackDistributionIds:
    """The id of the distribution behind a logical id of the stack being deployed."""

    def __init__(self, client: Any = None) -> None:
        self._client = client

    def distribution_id(self, stack_id: str, logical_id: str) -> str | None:
        from botocore.exceptions import BotoCoreError, ClientError

        if self._client is None:
            self._client = _client("cloudformation")
        try:
            detail = self._client.describe_stack_resource(
                StackName=stack_id, LogicalResourceId=logical_id
            )["StackResourceDetail"]
        except (ClientError, BotoCoreError) as exc:
            # ValidationError: the stack has no such resource yet (first create).
            if _code(exc) == "ValidationError":
                return None
            raise LiveConfigUnavailableError(
                f"DescribeStackResource failed: {_code(exc)}"
            ) from None
        physical = detail.get("PhysicalResourceId")
        if not physical or detail.get("ResourceStatus") in ("DELETE_COMPLETE", "CREATE_FAILED"):
            return None
        return str(physical)
