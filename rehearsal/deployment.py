"""The deployed stack as the rehearsal sees it: resources, the root's view of state, and the
functions invoked directly (the root invokes; each function acts under its own role).

Nothing here prints a token value: the rehearsal reads values to send them (the blog's test)
or to put state back, and reports fingerprints.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from originlock.document import TokenDocument, fingerprint, key_id
from rehearsal.cdk import construct_path
from rehearsal.emulator import Ministack
from rehearsal.errors import RehearsalError

STACK = "Originlock"
WAF_STACK = "OriginlockEdgeWaf"
KVS_KEY = "signing-key"  # the KeyValueStore's one key (functions/tokens/edge.py, KVS_KEY_NAME)


@dataclass
class Invocation:
    """What a function answered: its payload, or the error it raised."""

    payload: Any
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


class Deployment:
    """The ``Originlock`` stack in ministack, read through the root's credentials."""

    def __init__(self, ministack: Ministack, assembly: Path, stack: str = STACK) -> None:
        self.ministack = ministack
        self.assembly = assembly
        self.stack = stack
        self._clients: dict[str, Any] = {}
        self.refresh()

    def client(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = self.ministack.client(service)
        return self._clients[service]

    def refresh(self) -> None:
        cloudformation = self.client("cloudformation")
        described = cloudformation.describe_stacks(StackName=self.stack)["Stacks"][0]
        self.stack_id = str(described["StackId"])
        self.outputs = {o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs", [])}
        summaries = cloudformation.get_paginator("list_stack_resources").paginate(
            StackName=self.stack
        )
        self.physical: dict[str, str] = {}
        self.types: dict[str, str] = {}
        for page in summaries:
            for resource in page["StackResourceSummaries"]:
                self.physical[resource["LogicalResourceId"]] = resource.get(
                    "PhysicalResourceId", ""
                )
                self.types[resource["LogicalResourceId"]] = resource["ResourceType"]
        self.template = json.loads((self.assembly / f"{self.stack}.template.json").read_text())
        # Edge-signed mode: a CloudFront Function signs with the KeyValueStore's key.
        self.edge_signed = any(
            resource["Type"] == "AWS::CloudFront::KeyValueStore"
            for resource in self.template["Resources"].values()
        )
        self._kvs_arn: str | None = None

    # -- names -------------------------------------------------------------------------
    def logical_id(self, path: str) -> str:
        """The logical id of the resource at construct *path* (``Rotation/Rotate/Function``)."""

        def short(text: str) -> str:
            return text.removesuffix("/Resource")

        for logical_id, resource in self.template["Resources"].items():
            found = (resource.get("Metadata") or {}).get("aws:cdk:path", "")
            if short(construct_path(found)) == short(construct_path(f"stack/{path}")):
                return str(logical_id)
        raise RehearsalError(f"no resource at {path} in the {self.stack} template")

    def resource(self, path: str) -> str:
        return self.physical[self.logical_id(path)]

    @property
    def parameter_name(self) -> str:
        return self.outputs["ParameterName"]

    @property
    def lock_name(self) -> str:
        return f"{self.parameter_name}.lock"

    @property
    def distribution_id(self) -> str:
        return self.outputs["DistributionId"]

    @property
    def api_id(self) -> str:
        return self.resource("LockdownApi/Api")

    @property
    def api_url(self) -> str:
        """The API's ``$default`` stage on ministack's data plane (the output's host is AWS's)."""
        return f"{self.ministack.endpoint}/_aws/execute-api/{self.api_id}/"

    @property
    def header_name(self) -> str:
        return self.outputs["OriginHeaderName"]

    @property
    def state_machine_arn(self) -> str:
        return self.outputs["StateMachineArn"]

    @property
    def execution_prefix(self) -> str:
        return self.state_machine_arn.replace(":stateMachine:", ":execution:") + ":"

    # -- state, as the root sees it ----------------------------------------------------
    def document(self) -> TokenDocument:
        value = self.client("ssm").get_parameter(Name=self.parameter_name, WithDecryption=True)
        return TokenDocument.parse(value["Parameter"]["Value"])

    def put_document(self, document: TokenDocument) -> None:
        self.client("ssm").put_parameter(
            Name=self.parameter_name,
            Value=document.to_json(),
            Type="SecureString",
            Overwrite=True,
        )

    def distribution_config(self) -> tuple[dict[str, Any], str]:
        response = self.client("cloudfront").get_distribution_config(Id=self.distribution_id)
        return response["DistributionConfig"], str(response["ETag"])

    def header_value(self) -> str:
        """The static origin header's value (header mode)."""
        config, _ = self.distribution_config()
        for origin in config["Origins"]["Items"]:
            for header in (origin.get("CustomHeaders") or {}).get("Items", []):
                if header["HeaderName"].lower() == self.header_name:
                    return str(header["HeaderValue"])
        raise RehearsalError(f"distribution {self.distribution_id} sends no {self.header_name}")

    # -- what the edges use: the header value, or (edge-signed) the store's signing key ------
    @property
    def kvs_arn(self) -> str:
        """The KeyValueStore's ARN (its physical id is its name)."""
        if self._kvs_arn is None:
            [name] = [
                self.physical[logical_id]
                for logical_id, kind in self.types.items()
                if kind == "AWS::CloudFront::KeyValueStore"
            ]
            described = self.client("cloudfront").describe_key_value_store(Name=name)
            self._kvs_arn = str(described["KeyValueStore"]["ARN"])
        return self._kvs_arn

    def store_key(self) -> tuple[str | None, str]:
        """The KeyValueStore's signing key (``None`` when it holds none) and its ETag."""
        kvs = self.client("cloudfront-keyvaluestore")
        etag = str(kvs.describe_key_value_store(KvsARN=self.kvs_arn)["ETag"])
        try:
            value = kvs.get_key(KvsARN=self.kvs_arn, Key=KVS_KEY)["Value"]
        except kvs.exceptions.ResourceNotFoundException:
            return None, etag
        return str(value), etag

    def set_store_key(self, key: str | None) -> None:
        """Write (or, ``None``, delete) the store's signing key, with its ETag."""
        _, etag = self.store_key()
        change: dict[str, Any] = (
            {"Puts": [{"Key": KVS_KEY, "Value": key}]}
            if key is not None
            else {"Deletes": [{"Key": KVS_KEY}]}
        )
        self.client("cloudfront-keyvaluestore").update_keys(
            KvsARN=self.kvs_arn, IfMatch=etag, **change
        )

    def live_value(self) -> str | None:
        """What the edges use: the header value, or (edge-signed) the store's key."""
        return self.store_key()[0] if self.edge_signed else self.header_value()

    def set_live_value(self, value: str) -> None:
        if self.edge_signed:
            self.set_store_key(value)
        else:
            self.set_header_value(value)

    def identify(self, value: str | None) -> str | None:
        """A value's public name: its fingerprint, or (edge-signed) its key id."""
        if value is None:
            return None
        return f"kid {key_id(value)}" if self.edge_signed else fingerprint(value)

    def sends(self) -> str | None:
        """The public name of what the edges use (never the value itself)."""
        return self.identify(self.live_value())

    def set_header_value(self, value: str) -> None:
        config, etag = self.distribution_config()
        for origin in config["Origins"]["Items"]:
            for header in (origin.get("CustomHeaders") or {}).get("Items", []):
                if header["HeaderName"].lower() == self.header_name:
                    header["HeaderValue"] = value
        self.client("cloudfront").update_distribution(
            Id=self.distribution_id, IfMatch=etag, DistributionConfig=config
        )

    # -- functions ---------------------------------------------------------------------
    def invoke(self, path: str, event: dict[str, Any]) -> Invocation:
        """Invoke the function at construct *path* (``.../Function``) synchronously."""
        response = self.client("lambda").invoke(
            FunctionName=self.resource(path), Payload=json.dumps(event).encode()
        )
        payload = json.loads(response["Payload"].read() or b"null")
        if response.get("FunctionError"):
            if isinstance(payload, dict):
                text = f"{payload.get('errorType', 'Error')}: {payload.get('errorMessage', '')}"
            else:
                text = str(payload)
            return Invocation(payload, " ".join(text.split()))
        return Invocation(payload)

    def update_environment(self, path: str, changes: dict[str, str | None]) -> None:
        """Change a function's environment (the root's call; ``None`` removes a variable) and
        wait until it is Successful."""
        lambda_ = self.client("lambda")
        name = self.resource(path)
        config = lambda_.get_function_configuration(FunctionName=name)
        variables = dict((config.get("Environment") or {}).get("Variables") or {})
        for variable, value in changes.items():
            if value is None:
                variables.pop(variable, None)
            else:
                variables[variable] = value
        lambda_.update_function_configuration(
            FunctionName=name, Environment={"Variables": variables}
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            status = lambda_.get_function_configuration(FunctionName=name).get("LastUpdateStatus")
            if status in (None, "Successful"):
                return
            time.sleep(0.2)
        raise RehearsalError(f"UpdateFunctionConfiguration of {path} did not finish in 30 s")

    def fresh_instances(self, path: str) -> None:
        """New invocations of the function start new instances (an environment change)."""
        self.update_environment(path, {"REHEARSAL_EPOCH": f"{time.monotonic_ns()}"})

    def log_messages(self, path: str) -> list[str]:
        """Everything the function at *path* (``.../Function``) logged so far."""
        group = self._log_group(path)
        logs = self.client("logs")
        messages: list[str] = []
        kwargs: dict[str, Any] = {"logGroupName": group}
        while True:
            page = logs.filter_log_events(**kwargs)
            messages += [str(e["message"]) for e in page["events"]]
            if not page.get("nextToken"):
                return messages
            kwargs["nextToken"] = page["nextToken"]

    def _log_group(self, path: str) -> str:
        function = self.template["Resources"][self.logical_id(path)]
        reference = function["Properties"]["LoggingConfig"]["LogGroup"]["Ref"]
        return self.physical[reference]


def zip_bytes(folder: Path) -> bytes:
    """*folder* zipped (its content at the archive's root)."""
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                archive.write(path, path.relative_to(folder))
    return buffer.getvalue()
