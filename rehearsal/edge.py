"""Edge-signed mode's checks of the deployed stack (docs/rehearsal.md, "Edge-signed mode").

ministack's CloudFront runs a distribution's CloudFront Functions, but cannot give them their
KeyValueStore (``import cf from 'cloudfront'`` is refused: every request through the
distribution answers 503), and it has no ``TestFunction``. So the edge's part is played here:
the function's published (``LIVE``) code, read back from ministack, runs in the sandbox's Node
worker (:class:`originlock.sandbox.edgefunction.EdgeWorker`, the same runtime shim the sandbox's
edges use) with the key read from the deployed store, and its header goes straight to the API.

Nothing here prints a key: key ids (``kid``) only.
"""

from __future__ import annotations

import re
import time
from typing import Any

import urllib3

from originlock.document import key_id
from rehearsal.deployment import KVS_KEY, Deployment
from rehearsal.errors import RehearsalError

# What a user may set for any deploy (cdk.json context), chosen for a rehearsal, on top of the
# header-mode rehearsal's: the shortest window the function allows, and waits of a second.
EDGE_CONTEXT = {
    "lockMode": "edge-signed",
    "edgeWindowSeconds": "10",
    "edgePropagationSeconds": "1",
    "edgeDrainSeconds": "1",
    "edgePollIntervalSeconds": "1",
}
# A distribution id no distribution has: the function's token for it must open nothing.
OTHER_DISTRIBUTION = "E2QWRUHAPOMQZL"
_KEY_LIKE = re.compile(r"[A-Za-z0-9_-]{40,}")


def _function_name(deployment: Deployment) -> str:
    [physical] = [
        deployment.physical[logical_id]
        for logical_id, kind in deployment.types.items()
        if kind == "AWS::CloudFront::Function"
    ]
    return physical.rsplit("/", 1)[-1]


def live_code(deployment: Deployment) -> str:
    """The function's published code, as CloudFront runs it."""
    name = _function_name(deployment)
    answer = deployment.client("cloudfront").get_function(Name=name, Stage="LIVE")
    return bytes(answer["FunctionCode"].read()).decode("utf-8")


def resources(deployment: Deployment) -> list[str]:
    """The store holds the key the document staged; the function is published, associated with
    the store, on viewer request of every behaviour that reaches the API; no static header."""
    document = deployment.document()
    key, _ = deployment.store_key()
    if key is None:
        raise RehearsalError("the KeyValueStore holds no signing key after the deploy")
    slot = document.slot_of(key)
    if slot is None:
        raise RehearsalError(f"the store's key (kid {key_id(key)}) is in no slot of the document")
    signing = document.signing
    if document.mode != "edge-signed" or signing is None:
        raise RehearsalError(f"the token document is in {document.mode} mode, without signing")
    if signing.distribution_id != deployment.distribution_id:
        raise RehearsalError("the document signs for another distribution")
    lines = [
        f"store {deployment.kvs_arn.rsplit('/', 1)[-1]}: kid {key_id(key)}, the document's "
        f"{slot} (mode edge-signed, window {signing.window_seconds} s)"
    ]

    cloudfront = deployment.client("cloudfront")
    name = _function_name(deployment)
    described = cloudfront.describe_function(Name=name, Stage="LIVE")["FunctionSummary"]
    config = described["FunctionConfig"]
    stores = [
        item["KeyValueStoreARN"]
        for item in (config.get("KeyValueStoreAssociations") or {}).get("Items", [])
    ]
    if config.get("Runtime") != "cloudfront-js-2.0" or stores != [deployment.kvs_arn]:
        raise RehearsalError(
            f"function {name}: runtime {config.get('Runtime')}, stores {stores}: expected "
            "cloudfront-js-2.0 with the stack's store"
        )
    code = live_code(deployment)
    if key in code or _KEY_LIKE.search(code):
        raise RehearsalError(f"function {name}: its published code holds something key-like")
    lines.append(f"function {name}: published (LIVE), cloudfront-js-2.0, reads the store")

    distribution, _ = deployment.distribution_config()
    function_arn = str(described["FunctionMetadata"]["FunctionARN"])
    api_origins = {
        origin["Id"]
        for origin in distribution["Origins"]["Items"]
        if origin.get("CustomOriginConfig") is not None
    }
    ordered = (distribution.get("CacheBehaviors") or {}).get("Items", [])
    behaviours = [("default", distribution["DefaultCacheBehavior"])]
    behaviours += [(str(b["PathPattern"]), b) for b in ordered]
    reaching = [(path, b) for path, b in behaviours if b["TargetOriginId"] in api_origins]
    if not reaching:
        raise RehearsalError("no behaviour of the distribution reaches the API")
    for path, behaviour in reaching:
        associated = [
            (item["EventType"], item["FunctionARN"])
            for item in (behaviour.get("FunctionAssociations") or {}).get("Items", [])
        ]
        if associated != [("viewer-request", function_arn)]:
            raise RehearsalError(f"behaviour {path}: functions {associated}, not the signer")
    headers = [
        header["HeaderName"]
        for origin in distribution["Origins"]["Items"]
        for header in (origin.get("CustomHeaders") or {}).get("Items", [])
    ]
    if headers:
        raise RehearsalError(f"the distribution still sends static origin headers: {headers}")
    lines.append(
        f"distribution: {', '.join(path for path, _ in reaching)} behaviour(s) run it on "
        "viewer request; no static origin header"
    )
    return lines


def sign(deployment: Deployment, code: str, distribution_id: str) -> str | None:
    """The origin header the function's *code* sets with the store's key for a viewer request
    to *distribution_id* (``None``: it set none)."""
    from originlock.sandbox.edgefunction import EdgeWorker, forwarded_headers, viewer_request_event

    key, etag = deployment.store_key()
    event = viewer_request_event(
        [(deployment.header_name, "a-viewer's-value")], distribution_id=distribution_id
    )
    with EdgeWorker(code) as worker:
        data = {KVS_KEY: key} if key is not None else {}
        answer = worker.invoke(event, edge=0, now=time.time(), store=(etag, data))
    sent = dict(forwarded_headers(answer["result"]))
    return sent.get(deployment.header_name)


def blog_test(deployment: Deployment) -> list[str]:
    """The blog's test straight to the API, with the header the published function computes
    from the deployed store's key (what an edge sends)."""
    code = live_code(deployment)
    header = deployment.header_name
    signed = sign(deployment, code, deployment.distribution_id)
    foreign = sign(deployment, code, OTHER_DISTRIBUTION)
    if signed is None or foreign is None:
        raise RehearsalError("the published function set no origin header with the store's key")
    checks: list[tuple[str, dict[str, Any], int]] = [
        ("API, no header", {}, 401),
        ("API, a wrong value", {header: "a-guess"}, 403),
        ("API, the function's token for this distribution", {header: signed}, 200),
        ("API, the function's token for another distribution", {header: foreign}, 403),
    ]
    http = urllib3.PoolManager(ca_certs=str(deployment.ministack.ca_bundle), retries=False)
    lines = []
    for what, headers, expected in checks:
        try:
            status = http.request("GET", deployment.api_url, headers=headers, timeout=30).status
        except urllib3.exceptions.HTTPError as exc:
            raise RehearsalError(f"blog test, {what}: no answer ({type(exc).__name__})") from None
        if status != expected:
            raise RehearsalError(f"blog test, {what}: {status}, expected {expected}")
        lines.append(f"{what}: {status}")
    return lines
