"""Domain errors; the API edge turns them into OperationOutcomes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .safety import Finding


@dataclass(frozen=True)
class Problem:
    message: str
    expression: str | None = None


class DomainError(Exception):
    """Base for rule violations a caller can fix."""


class InvalidResource(DomainError):
    """The resource breaks a rule; nothing is stored."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(p.message for p in problems))
        self.problems = problems


class InvalidSearch(DomainError):
    """A search parameter's value cannot be used; answered 400."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(p.message for p in problems))
        self.problems = problems


class NotFound(DomainError):
    """No such resource in the caller's practice."""


class VersionConflict(DomainError):
    """The client's If-Match names a version that is no longer current."""


class InvalidTransition(DomainError):
    """A change the record's state does not allow (issuing a stopped plan, a fifth issue of four)."""


class SafetyCheckRefused(DomainError):
    """A high-severity safety finding that was not (or cannot be) overridden; nothing is stored."""

    def __init__(self, findings: list[Finding], *, reason: str) -> None:
        super().__init__(reason)
        self.findings = findings


class KnowledgeBaseUnavailable(DomainError):
    """The clinical knowledge base is missing, empty or out of date: checks cannot run, so nothing may pass."""
