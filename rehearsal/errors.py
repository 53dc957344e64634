"""The one error a rehearsal step raises: its message is the line the run ends with."""


class RehearsalError(Exception):
    """A check or a setup step failed; the message names the resource or the call."""
