"""Domain errors: the chassis' (answered the same way in every service) and the store's own."""

from __future__ import annotations

from gpsoc_kit.errors import DomainError, InvalidSearch, NotFound, Problem


class UnreadableAuditEvent(DomainError):
    """An audit event the store cannot index; retrying cannot help (dead-lettered)."""


class AccessDenied(DomainError):
    """The caller's roles do not permit reading the audit trail; the attempt is audited."""


__all__ = [
    "AccessDenied",
    "DomainError",
    "InvalidSearch",
    "NotFound",
    "Problem",
    "UnreadableAuditEvent",
]
