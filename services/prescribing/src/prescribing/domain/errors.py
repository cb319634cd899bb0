"""Prescribing's own domain errors. The shared ones (InvalidResource, NotFound, ...) are the chassis',
in gpsoc_kit.errors, answered the same way in every service."""

from __future__ import annotations

from typing import TYPE_CHECKING

from gpsoc_kit.errors import DomainError

if TYPE_CHECKING:
    from .safety import Finding


class SafetyCheckRefused(DomainError):
    """A high-severity safety finding that was not (or cannot be) overridden; nothing is stored."""

    def __init__(self, findings: list[Finding], *, reason: str) -> None:
        super().__init__(reason)
        self.findings = findings


class KnowledgeBaseUnavailable(DomainError):
    """The clinical knowledge base is missing, empty or out of date: checks cannot run, so nothing may pass."""

