"""The audit store's own domain errors. The shared ones (InvalidResource, NotFound, ...) are the chassis',
in gpsoc_kit.errors, answered the same way in every service."""

from __future__ import annotations

from gpsoc_kit.errors import DomainError


class UnreadableAuditEvent(DomainError):
    """An audit event the store cannot index; retrying cannot help (dead-lettered)."""


class AccessDenied(DomainError):
    """The caller's roles do not permit reading the audit trail; the attempt is audited."""

