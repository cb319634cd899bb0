"""Domain errors; the API edge and the consumer turn them into answers."""

from __future__ import annotations


class DomainError(Exception):
    """Base for rule violations."""


class UnreadableAuditEvent(DomainError):
    """An audit event the store cannot index; retrying cannot help (dead-lettered)."""


class InvalidSearch(DomainError):
    """A search parameter's value cannot be used; answered 400."""

    def __init__(self, message: str, expression: str) -> None:
        super().__init__(message)
        self.expression = expression


class NotFound(DomainError):
    """No such record in the caller's practice (another practice's is not disclosed)."""


class AccessDenied(DomainError):
    """The caller's roles do not permit reading the audit trail; the attempt is audited."""
