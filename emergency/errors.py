"""Errors the domain raises; ``code`` is what the gateway puts in ``{"error": code}``."""

from __future__ import annotations

from typing import ClassVar


class DomainError(Exception):
    code: ClassVar[str] = "error"


class NotFound(DomainError):
    code = "not_found"


class Forbidden(DomainError):
    code = "forbidden"


class InvalidTransition(DomainError):
    """The command is not allowed in the emergency's current state."""

    code = "invalid_transition"


class Conflict(DomainError):
    code = "conflict"


class Invalid(DomainError):
    code = "invalid"


class SiteError(ValueError):
    """A site file that cannot be trusted; the message starts with the bad key's path."""
