"""Real calls, one exercise per role: each runs the deployed function whose role it is, so every
call it makes is checked by ministack against that role.

An exercise either passes or raises :class:`Refused`, naming the step or call that failed and
the error it got. The least-privilege proof runs each one with the full policy (it must pass)
and with each action removed (ministack must deny that action); :mod:`rehearsal.checks` runs
the rotate function's one as its step-by-step check.

Errors are reported in a stable form (``Operation: Code``; ARNs and ids left out), so the
table the proof writes into docs/security.md is the same from one run to the next.
"""

from __future__ import annotations

import contextlib
import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from originlock.document import TokenDocument, fingerprint, key_id
from rehearsal.deployment import Deployment
from rehearsal.errors import RehearsalError
from rehearsal.loopback import ResponseCollector

CURRENT_SINCE_TAG = "originlock:current-since"
OWNER_TAG = "originlock:stack"
_CALL = re.compile(r"\((\w+)\) when calling the (\w+) operation")


class Refused(RehearsalError):
    """A call of the exercise failed: *call* says which, *detail* what it got."""

    def __init__(self, call: str, detail: str) -> None:
        super().__init__(f"{call}: {detail}")
        self.call = call
        self.detail = detail

    @property
    def denied(self) -> bool:
        """Whether IAM refused it (and not something else)."""
        return "AccessDenied" in self.detail or "not authorized" in self.detail


def stable(error: str) -> str:
    """An error message without what changes between runs (ARNs, ids, request ids)."""
    # ministack names every handler exception Runtime.HandlerError (docs/rehearsal.md).
    error = error.removeprefix("Runtime.HandlerError: ")
    head = error.split(":", 1)[0]
    kind = head if ":" in error and re.fullmatch(r"[\w.]+", head) else ""
    found = _CALL.search(error)
    if found:
        return f"{kind + ': ' if kind else ''}{found.group(2)} {found.group(1)}"
    text = re.sub(r"arn:aws[\w:/.*+=,@-]*", "<arn>", error)
    return " ".join(text.split())[:200]


@dataclass
class Baseline:
    """The state every exercise starts from: the document, its tags, and what the edges use
    (the value CloudFront sends, or the KeyValueStore's signing key)."""

    document: TokenDocument
    tags: dict[str, str]
    # A header value or a signing key: kept out of the repr (a traceback, a log line).
    live: str | None = field(repr=False)

    @classmethod
    def capture(cls, deployment: Deployment) -> Baseline:
        tags = deployment.client("ssm").list_tags_for_resource(
            ResourceType="Parameter", ResourceId=deployment.parameter_name
        )["TagList"]
        return cls(
            deployment.document(),
            {tag["Key"]: tag["Value"] for tag in tags},
            deployment.live_value(),
        )

    def restore(self, deployment: Deployment) -> None:
        ssm = deployment.client("ssm")
        prefix = deployment.lock_name
        names = []
        pages = ssm.get_paginator("describe_parameters").paginate(
            ParameterFilters=[{"Key": "Name", "Option": "BeginsWith", "Values": [prefix]}]
        )
        for page in pages:
            names += [p["Name"] for p in page["Parameters"]]
        for name in names:
            with contextlib.suppress(ssm.exceptions.ParameterNotFound):
                ssm.delete_parameter(Name=name)
        try:
            live = deployment.document()
        except Exception:
            live = None
        if live is None or live.to_json() != self.document.to_json():
            deployment.put_document(self.document)
        if self.tags:
            ssm.add_tags_to_resource(
                ResourceType="Parameter",
                ResourceId=deployment.parameter_name,
                Tags=[{"Key": key, "Value": value} for key, value in self.tags.items()],
            )
        if self.live is not None and deployment.live_value() != self.live:
            deployment.set_live_value(self.live)


class Exercise:
    """Calls made under one role; :meth:`run` raises :class:`Refused` at the first failure."""

    role: str = ""
    title: str = ""

    def __init__(self, deployment: Deployment, baseline: Baseline) -> None:
        self.deployment = deployment
        self.baseline = baseline

    def reset(self) -> None:
        self.baseline.restore(self.deployment)

    def run(self) -> None:
        raise NotImplementedError


class AuthorizerExercise(Exercise):
    role = "LockdownApi/Authorizer/Role"
    title = "a request with the current value, straight to the API (a fresh authorizer)"

    def run(self) -> None:
        import urllib3

        deployment = self.deployment
        deployment.client("apigatewayv2").reset_authorizers_cache(
            ApiId=deployment.api_id, StageName="$default"
        )
        deployment.fresh_instances("LockdownApi/Authorizer/Function")
        assert self.baseline.document.current is not None
        http = urllib3.PoolManager(ca_certs=str(deployment.ministack.ca_bundle), retries=False)
        status = http.request(
            "GET",
            f"{deployment.api_url}rehearsal",
            headers={deployment.header_name: self.baseline.document.current},
            timeout=30,
        ).status
        if status != 200:
            # Not the authorizer's log line: ministack may lose a function's log lines, and the
            # table must read the same from run to run (the denial log names the action).
            raise Refused("API request with the current value", f"{status}")


class RotateExercise(Exercise):
    role = "Rotation/Rotate/Role"
    FUNCTION = "Rotation/Rotate/Function"

    def __init__(self, deployment: Deployment, baseline: Baseline) -> None:
        super().__init__(deployment, baseline)
        switch = "switch (UpdateKeys with the store's ETag)" if deployment.edge_signed else "switch"
        self.title = (
            f"rotate steps: acquire_lock (taking over a stale lock), stage, {switch}, "
            "check_deployed, promote, retire, reset_authorizer_caches (fresh instances), "
            "release_lock"
        )
        self.results: dict[str, Any] = {}
        self.after: Callable[[str, dict[str, Any]], None] = lambda step, result: None

    def reset(self) -> None:
        super().reset()
        # replace_instances changes the authorizer's environment only when the document's
        # generation differs from the last one it set: every run starts from the same
        # generation, so the mark is put back too.
        self.deployment.update_environment(
            "LockdownApi/Authorizer/Function", {"ORIGINLOCK_REVOKE_EPOCH": "rehearsal-baseline"}
        )

    def step(self, name: str, state: dict[str, Any], **params: Any) -> dict[str, Any]:
        event = {"step": name, "execution_id": self.execution, "state": state, **params}
        answer = self.deployment.invoke(self.FUNCTION, event)
        if not answer.ok:
            raise Refused(f"rotate step {name}", stable(answer.error or ""))
        result = dict(answer.payload)
        state[name] = {"result": result}
        self.after(name, result)
        return result

    def run(self) -> None:
        deployment = self.deployment
        run = uuid.uuid4().hex[:8]
        self.execution = f"{deployment.execution_prefix}rehearsal-{run}"
        # A lock left by an execution that no longer exists: acquire_lock takes it over.
        deployment.client("ssm").put_parameter(
            Name=deployment.lock_name,
            Value=json.dumps({"execution": f"{deployment.execution_prefix}gone-{run}"}),
            Type="String",
            Overwrite=True,
        )
        state: dict[str, Any] = {
            "request": {"mode": "rotate", "revoke": None, "trigger": "manual"},
        }
        lock = self.step("acquire_lock", state)
        if not lock.get("took_over"):
            raise Refused("rotate step acquire_lock", "the stale lock was not taken over")
        self.step("stage", state)
        state["switch"] = {"result": self.step("switch", state)}
        state["poll"] = {"result": self.step("check_deployed", state)}
        self.step("promote", state)
        self._check_tag()
        self.step("retire", state)
        self.step("reset_authorizer_caches", state, fresh_instances=True)
        released = self.step("release_lock", state)
        if not released.get("released"):
            raise Refused("rotate step release_lock", "the lock was not released")
        self.results = state

    def _check_tag(self) -> None:
        """AddTagsToResource is best effort in the function (a warning): read the tag back."""
        deployment = self.deployment
        since = deployment.document().current_since
        tags = deployment.client("ssm").list_tags_for_resource(
            ResourceType="Parameter", ResourceId=deployment.parameter_name
        )["TagList"]
        if {"Key": CURRENT_SINCE_TAG, "Value": since} not in tags:
            raise Refused(
                "rotate step promote: AddTagsToResource",
                f"tag {CURRENT_SINCE_TAG} not updated (the function only warns)",
            )


class _CustomResourceExercise(Exercise):
    FUNCTION = ""
    RESOURCE = ""

    def __init__(
        self, deployment: Deployment, baseline: Baseline, collector: ResponseCollector
    ) -> None:
        super().__init__(deployment, baseline)
        self.collector = collector

    def request(
        self, request_type: str, physical_id: str | None = None, **overrides: str
    ) -> dict[str, Any]:
        deployment = self.deployment
        logical_id = deployment.logical_id(self.RESOURCE)
        resource = deployment.template["Resources"][logical_id]
        properties = {**_resolved(resource["Properties"], deployment), **overrides}
        token = uuid.uuid4().hex
        event = {
            "RequestType": request_type,
            "RequestId": token,
            "StackId": deployment.stack_id,
            "ResponseURL": self.collector.url(token),
            "ResourceType": resource["Type"],
            "LogicalResourceId": logical_id,
            "ResourceProperties": properties,
        }
        if physical_id is not None:
            event["PhysicalResourceId"] = physical_id
        if request_type == "Update":
            event["OldResourceProperties"] = properties
        call = f"{resource['Type']} {request_type}"
        invoked = deployment.invoke(self.FUNCTION, event)
        if not invoked.ok:
            raise Refused(call, stable(invoked.error or ""))
        answer = self.collector.answer(token, timeout=60)
        if answer is None:
            raise Refused(call, "no answer at the ResponseURL")
        if answer.get("Status") != "SUCCESS":
            raise Refused(call, stable(str(answer.get("Reason", ""))))
        return answer


def _resolved(properties: dict[str, Any], deployment: Deployment) -> dict[str, Any]:
    """The custom resource's properties as CloudFormation sends them (strings; references
    resolved; the drift guard's big DistributionConfig copy is not read by its function)."""
    resolved: dict[str, Any] = {}
    for key, value in properties.items():
        if isinstance(value, str):
            resolved[key] = value
        elif isinstance(value, bool):
            resolved[key] = "true" if value else "false"
        elif isinstance(value, dict) and "Fn::GetAtt" in value:
            logical_id, attribute = value["Fn::GetAtt"]
            if deployment.types.get(logical_id) == "AWS::CloudFront::KeyValueStore":
                assert attribute == "Arn", attribute
                resolved[key] = deployment.kvs_arn  # its physical id is its name
            else:
                resolved[key] = deployment.physical[logical_id]
        elif isinstance(value, dict) and "Ref" in value:
            resolved[key] = deployment.physical.get(value["Ref"], value["Ref"])
    return resolved


class TokenParameterExercise(_CustomResourceExercise):
    role = "TokenParameter/Provider/Role"
    title = (
        "Custom::OriginlockTokenParameter: Create with no parameter, Delete; Create adopting an "
        "untagged parameter, Delete"
    )
    FUNCTION = "TokenParameter/Provider/Function"
    RESOURCE = "TokenParameter/Resource"

    def run(self) -> None:
        deployment = self.deployment
        ssm = deployment.client("ssm")
        name = deployment.parameter_name
        ssm.delete_parameter(Name=name)
        created = self.request("Create")
        if created.get("PhysicalResourceId") != f"created:{name}":
            raise Refused("Custom::OriginlockTokenParameter Create", "the parameter was adopted")
        self.request("Delete", physical_id=f"created:{name}")
        # A parameter the stack did not create (a blog-style setup): adopted, then released.
        deployment.put_document(self.baseline.document)
        adopted = self.request("Create")
        if adopted.get("PhysicalResourceId") != f"adopted:{name}":
            raise Refused("Custom::OriginlockTokenParameter Create (adopt)", "not adopted")
        if OWNER_TAG not in self._tags():
            raise Refused("Custom::OriginlockTokenParameter Create (adopt)", "not tagged")
        self.request("Delete", physical_id=f"adopted:{name}")
        if OWNER_TAG in self._tags():
            raise Refused(
                "Custom::OriginlockTokenParameter Delete (adopted)",
                f"the {OWNER_TAG} tag was left on the parameter",
            )

    def _tags(self) -> dict[str, str]:
        tags = self.deployment.client("ssm").list_tags_for_resource(
            ResourceType="Parameter", ResourceId=self.deployment.parameter_name
        )["TagList"]
        return {tag["Key"]: tag["Value"] for tag in tags}


class DriftGuardExercise(_CustomResourceExercise):
    role = "Edge/OriginHeaderValue/Provider/Role"
    title = "Custom::OriginlockOriginHeaderValue Update (with a stale rotation lock)"
    FUNCTION = "Edge/OriginHeaderValue/Provider/Function"
    RESOURCE = "Edge/OriginHeaderValue/Resource"

    def run(self) -> None:
        deployment = self.deployment
        deployment.client("ssm").put_parameter(
            Name=deployment.lock_name,
            Value=json.dumps({"execution": f"{deployment.execution_prefix}gone-guard"}),
            Type="String",
            Overwrite=True,
        )
        answer = self.request("Update", physical_id="originlock-origin-header-value")
        value = (answer.get("Data") or {}).get("Value")
        if fingerprint(value) != deployment.sends():
            raise Refused(
                "Custom::OriginlockOriginHeaderValue Update", "the live header was not kept"
            )


class SigningKeyExercise(_CustomResourceExercise):
    """Edge-signed mode's ``Custom::OriginlockSigningKey``, the copy before the distribution
    (it finds the distribution's id through CloudFormation): with a stale rotation lock and a
    store that lost its key, it stages a new key in the document and writes it to the store.
    Its waits are set to 0 s here (the deploy ran them as the template says): the calls are the
    same, the proof takes seconds."""

    role = "EdgeSigning/Provider/Role"
    title = (
        "Custom::OriginlockSigningKey Update before the distribution (a stale rotation lock, "
        "no key in the store; its waits 0 s)"
    )
    FUNCTION = "EdgeSigning/Provider/Function"
    RESOURCE = "EdgeSigning/KeyBeforeDistribution"
    WAITS = {"StageWaitSeconds": "0", "PropagationSeconds": "0"}

    def run(self) -> None:
        deployment = self.deployment
        deployment.client("ssm").put_parameter(
            Name=deployment.lock_name,
            Value=json.dumps({"execution": f"{deployment.execution_prefix}gone-signing"}),
            Type="String",
            Overwrite=True,
        )
        deployment.set_store_key(None)
        answer = self.request("Update", physical_id="originlock-signing-key", **self.WAITS)
        data = answer.get("Data") or {}
        pending = deployment.document().pending
        stored, _ = deployment.store_key()
        call = "Custom::OriginlockSigningKey Update"
        if data.get("State") != "staged" or pending is None or stored != pending:
            raise Refused(call, "no key was staged in the document and written to the store")
        assert stored is not None
        if data.get("KeyId") != key_id(stored):
            raise Refused(call, "the key id it answered is not the stored key's")


class TokenAgeExercise(Exercise):
    role = "Monitoring/TokenAgeProbe/Role"
    title = "the token-age probe, as its schedule invokes it"

    def run(self) -> None:
        answer = self.deployment.invoke("Monitoring/TokenAgeProbe/Function", {})
        if not answer.ok:
            raise Refused("token-age probe", stable(answer.error or ""))
        if (answer.payload or {}).get("age_seconds") is None:
            raise Refused("token-age probe", "no age published")


def exercises(
    deployment: Deployment, baseline: Baseline, collector: ResponseCollector
) -> list[Exercise]:
    return [
        AuthorizerExercise(deployment, baseline),
        RotateExercise(deployment, baseline),
        TokenParameterExercise(deployment, baseline, collector),
        DriftGuardExercise(deployment, baseline, collector),
        TokenAgeExercise(deployment, baseline),
    ]


def edge_exercises(
    deployment: Deployment, baseline: Baseline, collector: ResponseCollector
) -> list[Exercise]:
    """The roles edge-signed mode grants differently from header mode (the others are the
    header-mode proof's)."""
    return [
        RotateExercise(deployment, baseline),
        SigningKeyExercise(deployment, baseline, collector),
    ]
