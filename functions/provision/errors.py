"""Typed errors of the custom resources. Messages never contain a token value."""

from __future__ import annotations


class ProvisionError(Exception):
    """A custom resource request cannot be completed; the message is safe to show."""


class BadRequestError(ProvisionError):
    """The request lacks a property or carries a malformed one."""


class ParameterTakenError(ProvisionError):
    """The parameter exists and adopting existing parameters is switched off."""


class UnusableParameterError(ProvisionError):
    """The parameter exists but holds neither a token document nor a usable bare token."""


class ParameterMissingError(ProvisionError):
    """The token parameter is not there (the drift guard needs it to decide)."""


class LiveConfigUnavailableError(ProvisionError):
    """The live distribution exists but its configuration could not be read."""


class StoreUnavailableError(ProvisionError):
    """Parameter Store refused or failed a call."""
