"""Errors the CLI reports as one readable line (and a non-zero exit), never as a traceback.

Messages name resources and fingerprints, never a token value.
"""

from __future__ import annotations

# botocore reads only AWS_DEFAULT_REGION; the CLI reads AWS_REGION first (target.session_for).
NO_REGION = (
    "no AWS region: pass --region, or set AWS_REGION or AWS_DEFAULT_REGION, "
    "or give the profile a region"
)


class OriginlockError(Exception):
    """Something the operator can act on: the message says what, in one line."""


class TargetError(OriginlockError):
    """The deployment to operate on cannot be found (stack, sandbox, endpoint, names)."""


class RotationRunningError(OriginlockError):
    """An execution of the rotation workflow is already running for this target."""


class ParameterError(OriginlockError):
    """The token parameter is missing or does not hold a token document."""


def describe_error(exc: BaseException) -> str:
    """One line for any error the CLI may meet: ours, botocore's, or an unexpected one."""
    from botocore.exceptions import (
        ClientError,
        EndpointConnectionError,
        NoCredentialsError,
        NoRegionError,
        PartialCredentialsError,
        ProfileNotFound,
        TokenRetrievalError,
        UnauthorizedSSOTokenError,
    )

    if isinstance(exc, OriginlockError):
        text = str(exc)
    elif isinstance(exc, NoCredentialsError | PartialCredentialsError):
        text = (
            "no AWS credentials found: use --profile, set AWS_PROFILE or the AWS_* variables, "
            "or run `aws sso login` (for the local sandbox: --sandbox)"
        )
    elif isinstance(exc, TokenRetrievalError | UnauthorizedSSOTokenError):
        text = "the AWS SSO session has expired: run `aws sso login` and try again"
    elif isinstance(exc, ProfileNotFound):
        text = f"AWS profile not found: {exc.kwargs.get('profile', '?')}"
    elif isinstance(exc, NoRegionError):
        text = NO_REGION
    elif isinstance(exc, EndpointConnectionError):
        text = (
            f"cannot reach {exc.kwargs.get('endpoint_url', 'the endpoint')}: "
            "is the network (or the sandbox) up?"
        )
    elif isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        operation = getattr(exc, "operation_name", "") or "AWS call"
        text = f"{operation} failed: {error.get('Code', 'Error')}: {error.get('Message', '')}"
    else:
        text = f"unexpected {type(exc).__name__}: {exc}"
    return " ".join(text.split())
