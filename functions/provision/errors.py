"""Typed errors of the custom resources. Messages never contain a token value."""

from __future__ import annotations


class ProvisionError(Exception):
    """A custom resource request cannot be completed; the message is safe to show."""


class BadRequestError(ProvisionError):
    """The request lacks a property or carries a malformed one."""


class ParameterTakenError(ProvisionError):
    """The parameter exists and adopting existing parameters is switched off."""


class ParameterOwnedError(ProvisionError):
    """The parameter is tagged as managed by another originlock stack: never adopted."""


class UnusableParameterError(ProvisionError):
    """The parameter exists but holds neither a token document nor a usable bare token."""


class ParameterMissingError(ProvisionError):
    """The token parameter is not there (the drift guard needs it to decide)."""


class LiveConfigUnavailableError(ProvisionError):
    """The live distribution exists but its configuration could not be read."""


class StoreUnavailableError(ProvisionError):
    """Parameter Store refused or failed a call."""


class RotationRunningError(ProvisionError):
    """A rotation execution holds the workflow's lock: the deploy must wait for it to end."""


class LockUnavailableError(ProvisionError):
    """The workflow's lock, or the state of its holder, could not be read."""


class StackUnavailableError(ProvisionError):
    """The status of the stack being deployed could not be read."""
