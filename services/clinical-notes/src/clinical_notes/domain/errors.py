"""Domain errors; the API edge turns them into OperationOutcomes."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    message: str
    expression: str | None = None


class DomainError(Exception):
    """Base for rule violations a caller can fix."""


class InvalidResource(DomainError):
    """The resource breaks a rule (including an implausible value); nothing is stored."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(p.message for p in problems))
        self.problems = problems


class InvalidSearch(DomainError):
    """A search parameter's value cannot be used; answered 400."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(p.message for p in problems))
        self.problems = problems


class VersionConflict(DomainError):
    """The client's If-Match names a version that is no longer current."""


class NotFound(DomainError):
    """No such resource in the caller's practice (`str(exc)` is `Type/id`)."""


class InvalidTransition(DomainError):
    """A change the entry's state does not allow (e.g. editing an entry marked entered-in-error)."""
