"""The few error types EchoPilot raises across module boundaries."""

from __future__ import annotations


class EchoPilotError(Exception):
    """Base of EchoPilot's own errors."""


class ConfigError(EchoPilotError):
    """A setting has a bad value; the message names it and what it accepts."""


class InputError(EchoPilotError):
    """Bad input from a user: the message names the field that was wrong."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.reason = message


class NotFoundError(EchoPilotError):
    """The thing asked for does not exist."""

    def __init__(self, kind: str, ident: object, hint: str | None = None) -> None:
        super().__init__(f"{kind} {ident} not found" + (f"; {hint}" if hint else ""))
        self.kind = kind
        self.ident = ident


class ConflictError(EchoPilotError):
    """The request is valid but the thing's current state does not allow it."""


class AlreadyRunningError(EchoPilotError):
    """Another process already does this for the same home; the message names it (pid)."""


class OperationFailed(EchoPilotError):
    """An operation could not be done (a service unreachable, a lock held too long); the
    message says what and what to do. The CLI exits 1."""
