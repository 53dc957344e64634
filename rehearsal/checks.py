"""The rehearsal's checks of the deployed stack (each raises :class:`RehearsalError` in one line).

The least-privilege proof is in :mod:`rehearsal.least_privilege`; the smoke test, which also
runs against AWS and the sandbox, in :mod:`originlock.smoke`.
"""

from __future__ import annotations

from typing import Any

import urllib3

from originlock.document import fingerprint
from rehearsal.deployment import KVS_KEY, Deployment
from rehearsal.errors import RehearsalError
from rehearsal.exercises import Baseline, RotateExercise


def _status(deployment: Deployment, url: str, headers: dict[str, str]) -> int:
    http = urllib3.PoolManager(ca_certs=str(deployment.ministack.ca_bundle), retries=False)
    try:
        return int(http.request("GET", url, headers=headers, timeout=30).status)
    except urllib3.exceptions.HTTPError as exc:
        raise RehearsalError(f"GET {url}: no answer ({type(exc).__name__})") from None


def blog_test(deployment: Deployment, edge_url: str) -> list[str]:
    """The blog's test: 401 without the header, 403 with a wrong value, 200 through CloudFront
    (and with the current value straight to the API, as CloudFront sends it)."""
    current = deployment.document().current
    assert current is not None
    header = deployment.header_name
    checks = [
        ("API, no header", deployment.api_url, {}, 401),
        ("API, a wrong value", deployment.api_url, {header: "a-guess"}, 403),
        ("API, the current value", deployment.api_url, {header: current}, 200),
        ("through CloudFront", edge_url, {}, 200),
    ]
    lines = []
    for what, url, headers, expected in checks:
        status = _status(deployment, url, headers)
        if status != expected:
            raise RehearsalError(f"blog test, {what}: {status}, expected {expected}")
        lines.append(f"{what}: {status}")
    return lines


def rotate_steps(deployment: Deployment, baseline: Baseline) -> list[str]:
    """Each rotate step invoked with its real role, the state checked after each. What the
    edges use is the header value, or (edge-signed) the KeyValueStore's signing key."""
    exercise = RotateExercise(deployment, baseline)
    start = deployment.document()
    name = deployment.identify
    lines: list[str] = []
    edges = "the store holds" if deployment.edge_signed else "CloudFront sends"

    def after(step: str, result: dict[str, Any]) -> None:
        document = deployment.document()
        sends = deployment.sends()
        if step == "stage" and (document.pending is None or document.current != start.current):
            raise RehearsalError("rotate step stage: no value was staged")
        if step == "switch" and sends != name(document.pending):
            raise RehearsalError(f"rotate step switch: {edges} {sends}, not the staged value")
        if step == "check_deployed" and not result.get("deployed"):
            raise RehearsalError(f"rotate step check_deployed: {result.get('status')}")
        if step == "promote" and (document.current is None or name(document.current) != sends):
            raise RehearsalError(f"rotate step promote: current is not what {edges}")
        if step == "retire" and document.previous is not None:
            raise RehearsalError("rotate step retire: the previous value is still accepted")
        staged = f"staged {name(document.pending)}, " if step == "stage" else ""
        lines.append(f"{step}: ok ({staged}{edges} {sends}, generation {document.generation})")

    exercise.after = after
    exercise.reset()
    exercise.run()
    if deployment.edge_signed:
        _store_write_is_conditional(deployment)
    else:
        _switch_is_conditional(deployment)
    return lines


def _switch_is_conditional(deployment: Deployment) -> None:
    """UpdateDistribution with a stale ETag must be refused (the switch relies on it)."""
    from botocore.exceptions import ClientError

    config, etag = deployment.distribution_config()
    deployment.client("cloudfront").update_distribution(
        Id=deployment.distribution_id, IfMatch=etag, DistributionConfig=config
    )
    try:
        deployment.client("cloudfront").update_distribution(
            Id=deployment.distribution_id, IfMatch=etag, DistributionConfig=config
        )
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "PreconditionFailed":
            return
        raise
    raise RehearsalError("UpdateDistribution with a stale IfMatch was accepted")


def _store_write_is_conditional(deployment: Deployment) -> None:
    """UpdateKeys with a stale ETag must be refused (the edge-signed switch relies on it)."""
    from botocore.exceptions import ClientError

    key, etag = deployment.store_key()
    assert key is not None
    deployment.set_store_key(key)  # the same key: a new ETag
    try:
        deployment.client("cloudfront-keyvaluestore").update_keys(
            KvsARN=deployment.kvs_arn, IfMatch=etag, Puts=[{"Key": KVS_KEY, "Value": key}]
        )
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "ConflictException":
            return
        raise
    raise RehearsalError("UpdateKeys with a stale IfMatch was accepted")


def interrupted_after_switch(deployment: Deployment) -> str:
    """A rotation that stopped after its switch: a value staged, CloudFront sending it, no lock.
    The drift guard must keep that value (it is accepted), not put ``current`` back."""
    from originlock.document import TokenDocument, generate_token

    staged = deployment.document().evolve(pending=generate_token())
    assert isinstance(staged, TokenDocument) and staged.pending is not None
    deployment.put_document(staged)
    deployment.set_header_value(staged.pending)
    return str(fingerprint(staged.pending))


def header_kept(deployment: Deployment, before: str) -> str:
    """After a deploy that changed the distribution: the guard ran, the header is unchanged."""
    events = deployment.client("cloudformation").describe_stack_events(StackName=deployment.stack)[
        "StackEvents"
    ]
    guard = deployment.logical_id("Edge/OriginHeaderValue/Resource")
    if not any(
        e["LogicalResourceId"] == guard and e["ResourceStatus"] == "UPDATE_COMPLETE" for e in events
    ):
        raise RehearsalError("second deploy: the drift guard was not updated (did not run)")
    after = deployment.sends()
    if after != before:
        raise RehearsalError(
            f"second deploy: CloudFront sends {after}, it sent {before} (pending) before"
        )
    return f"drift guard ran and kept the staged value CloudFront sends ({after})"


def destroyed(deployment: Deployment) -> str:
    """After ``cdk destroy``: the parameter the stack created is gone, so is the stack."""
    ssm = deployment.client("ssm")
    try:
        ssm.get_parameter(Name=deployment.parameter_name)
    except ssm.exceptions.ParameterNotFound:
        pass
    else:
        raise RehearsalError(
            f"destroy: parameter {deployment.parameter_name} (created by the stack) is still there"
        )
    names = [
        s["StackName"]
        for s in deployment.client("cloudformation").list_stacks()["StackSummaries"]
        if s["StackStatus"] != "DELETE_COMPLETE"
    ]
    left = [name for name in names if name.startswith(deployment.stack)]
    if left:
        raise RehearsalError(f"destroy: stacks left: {', '.join(left)}")
    return "parameter deleted with the stack; no originlock stack left"
