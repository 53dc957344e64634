"""Answer a CloudFormation custom resource request: one PUT to its pre-signed ResponseURL.

This replaces the CDK provider framework on purpose: its framework Lambda logs
the responses it relays, and the drift guard's response carries the origin secret.
Nothing here logs or raises with the body.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any

SUCCESS = "SUCCESS"
FAILED = "FAILED"
# CloudFormation refuses a response body over 4 KiB: keep the reason short.
MAX_REASON = 1000


class ResponseNotSentError(Exception):
    """CloudFormation's ResponseURL could not be reached (the stack waits for a timeout)."""


def build_response(
    event: Mapping[str, Any],
    status: str,
    physical_id: str,
    *,
    data: Mapping[str, str] | None = None,
    reason: str = "",
    no_echo: bool = False,
) -> dict[str, Any]:
    """The response document CloudFormation expects for *event*.

    ``no_echo`` masks ``Data`` wherever CloudFormation would show it (``Fn::GetAtt``
    still resolves): the drift guard sets it because its ``Value`` is the secret.
    """
    return {
        "Status": status,
        "Reason": (reason or "see the function's CloudWatch logs")[:MAX_REASON],
        "PhysicalResourceId": physical_id,
        "StackId": event["StackId"],
        "RequestId": event["RequestId"],
        "LogicalResourceId": event["LogicalResourceId"],
        "NoEcho": no_echo,
        "Data": dict(data or {}),
    }


Opener = Callable[..., Any]


def send_response(
    url: str,
    body: Mapping[str, Any],
    *,
    opener: Opener | None = None,
    attempts: int = 3,
    timeout: float = 10.0,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """PUT *body* to the pre-signed *url*, retrying network failures.

    Raises
    ------
    ResponseNotSentError
        Every attempt failed. The message names the error type, never the body.
    """
    if not url.startswith("https://"):
        raise ResponseNotSentError("ResponseURL is not an https URL")
    payload = json.dumps(body, separators=(",", ":")).encode("utf-8")
    # An empty Content-Type: the URL is pre-signed without one.
    request = urllib.request.Request(  # noqa: S310 - scheme checked above
        url,
        data=payload,
        method="PUT",
        headers={"Content-Type": "", "Content-Length": str(len(payload))},
    )
    open_url = opener or urllib.request.urlopen
    last_error = "unknown"
    for attempt in range(attempts):
        try:
            with open_url(request, timeout=timeout) as response:
                response.read()
            return
        except (urllib.error.URLError, OSError) as exc:
            last_error = type(exc).__name__
            if attempt + 1 < attempts:
                sleep(2.0**attempt)
    raise ResponseNotSentError(f"could not reach ResponseURL: {last_error}")
