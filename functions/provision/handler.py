"""Thin handlers of the custom resources: decide, then answer CloudFormation.

``token_parameter_handler`` serves ``Custom::OriginlockTokenParameter``,
``origin_header_handler`` serves ``Custom::OriginlockOriginHeaderValue`` and
``signing_key_handler`` serves ``Custom::OriginlockSigningKey`` (edge-signed mode); each runs
in its own function with its own role. A handler always answers, whatever
happens: an unanswered request keeps the stack waiting for the service timeout.
Neither ever logs the event (it holds the pre-signed ResponseURL) nor a value.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aws_lambda_powertools import Logger

from provision.aws import SsmParameterStore, SsmRotationLock, StackDistribution, StackStatusReader
from provision.cloudformation import FAILED, SUCCESS, build_response, send_response
from provision.errors import ProvisionError
from provision.logic import (
    ORIGIN_HEADER_PHYSICAL_ID,
    LiveDistribution,
    ParameterStore,
    RotationLock,
    StackStatus,
    TokenParameterStore,
    origin_header_value,
    provision_parameter,
    remove_parameter,
    stack_name_of,
)
from provision.signing import (
    SIGNING_KEY_PHYSICAL_ID,
    DistributionIds,
    DocumentStore,
    KeyStore,
    release_signing_key,
)
from provision.signing import signing_key as decide_signing_key
from tokens.document import fingerprint

logger = Logger(service="provision")


@dataclass(frozen=True)
class Answer:
    physical_id: str
    data: Mapping[str, str] = field(default_factory=dict, repr=False)
    no_echo: bool = False


def token_parameter(event: Mapping[str, Any], store: TokenParameterStore) -> Answer:
    request_type = event["RequestType"]
    physical_id = event.get("PhysicalResourceId")
    owner = stack_name_of(str(event.get("StackId") or ""))
    if request_type == "Delete":
        outcome = remove_parameter(physical_id, store, owner=owner)
        logger.info("token parameter delete", outcome=outcome, physical_id=physical_id)
        return Answer(physical_id or "")
    result = provision_parameter(
        request_type, event.get("ResourceProperties") or {}, physical_id, store, owner=owner
    )
    logger.info(
        "token parameter ready",
        parameter_name=result.name,
        adopted=result.adopted,
        owner=owner,
        current_fingerprint=result.fingerprint,
    )
    return Answer(result.physical_id, result.data())


def origin_header(
    event: Mapping[str, Any],
    store: ParameterStore,
    live: LiveDistribution,
    lock: RotationLock,
    stacks: StackStatus,
) -> Answer:
    if event["RequestType"] == "Delete":
        return Answer(ORIGIN_HEADER_PHYSICAL_ID)
    choice = origin_header_value(
        event.get("ResourceProperties") or {}, event["StackId"], store, live, lock, stacks
    )
    if choice.stack_status.startswith("unreadable"):
        # Not fatal (a forward deploy stays guarded by the lock), but a rollback during a
        # rotation would then be refused: say so now, not then.
        logger.warning(
            "stack status unreadable: a rollback during a rotation would be refused",
            stack_status=choice.stack_status,
        )
    logger.info(
        "origin header value chosen",
        source=choice.source,
        fingerprint=fingerprint(choice.value),
        rotation_lock=choice.lock,
        stack_status=choice.stack_status,
    )
    return Answer(ORIGIN_HEADER_PHYSICAL_ID, {"Value": choice.value}, no_echo=True)


def signing_key(
    event: Mapping[str, Any],
    store: DocumentStore,
    keys: KeyStore,
    distributions: DistributionIds,
    lock: RotationLock,
    stacks: StackStatus,
    sleep: Callable[[float], None],
) -> Answer:
    if event["RequestType"] == "Delete":
        released = release_signing_key(event.get("ResourceProperties") or {}, store)
        logger.info("signing key released", outcome=released)
        return Answer(SIGNING_KEY_PHYSICAL_ID)
    outcome = decide_signing_key(
        event.get("ResourceProperties") or {},
        event["StackId"],
        store,
        keys,
        distributions,
        lock,
        stacks,
        sleep,
    )
    logger.info("signing key", state=outcome.state, kid=outcome.kid, rotation_lock=outcome.lock)
    return Answer(SIGNING_KEY_PHYSICAL_ID, outcome.data())


def respond(
    event: Mapping[str, Any],
    action: Callable[[], Answer],
    sender: Callable[[str, Mapping[str, Any]], None] | None = None,
) -> None:
    """Run *action* and answer CloudFormation with its outcome; never raise before answering."""
    # A failed Create still needs a physical id; CloudFormation then sends a
    # Delete with it, which both resources treat as "nothing to do".
    fallback_id = event.get("PhysicalResourceId") or f"failed:{event.get('RequestId', '')}"
    try:
        answer = action()
        body = build_response(
            event, SUCCESS, answer.physical_id, data=answer.data, no_echo=answer.no_echo
        )
    except ProvisionError as exc:
        logger.error("custom resource failed", error_type=type(exc).__name__, error=str(exc))
        body = build_response(event, FAILED, fallback_id, reason=f"{type(exc).__name__}: {exc}")
    except Exception as exc:  # answer whatever happened, with the type only
        logger.error("custom resource failed", error_type=type(exc).__name__)
        body = build_response(event, FAILED, fallback_id, reason=type(exc).__name__)
    (sender or send_response)(event["ResponseURL"], body)
    logger.info(
        "custom resource answered",
        request_type=event.get("RequestType"),
        resource_type=event.get("ResourceType"),
        logical_id=event.get("LogicalResourceId"),
        status=body["Status"],
    )


@logger.inject_lambda_context
def token_parameter_handler(event: dict[str, Any], context: Any) -> None:
    respond(event, lambda: token_parameter(event, SsmParameterStore()))


@logger.inject_lambda_context
def signing_key_handler(event: dict[str, Any], context: Any) -> None:
    import time

    from provision.signing_aws import KvsKeyStore, SsmDocumentStore, StackDistributionIds

    properties = event.get("ResourceProperties") or {}
    respond(
        event,
        lambda: signing_key(
            event,
            SsmDocumentStore(),
            KvsKeyStore(str(properties.get("KvsArn") or "")),
            StackDistributionIds(),
            SsmRotationLock(),
            StackStatusReader(),
            time.sleep,
        ),
    )


@logger.inject_lambda_context
def origin_header_handler(event: dict[str, Any], context: Any) -> None:
    respond(
        event,
        lambda: origin_header(
            event, SsmParameterStore(), StackDistribution(), SsmRotationLock(), StackStatusReader()
        ),
    )
