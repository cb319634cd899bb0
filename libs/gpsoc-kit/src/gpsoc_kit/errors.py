"""Domain errors every service raises the same way (plain Python, no framework).

A service's domain/errors.py re-exports these and adds its own; the chassis' service
app turns each into an OperationOutcome with the right status (`service.py`), so no
service writes that mapping again. `str(exc)` of a NotFound is `Type/id`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    message: str
    expression: str | None = None


class DomainError(Exception):
    """Base for rule violations a caller can fix."""


class InvalidResource(DomainError):
    """The resource breaks a rule; nothing is stored. Answered 422, naming each field."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(p.message for p in problems))
        self.problems = problems


class InvalidSearch(DomainError):
    """A search parameter's value cannot be used; answered 400."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(p.message for p in problems))
        self.problems = problems


class VersionConflict(DomainError):
    """The client's If-Match names a version that is no longer current; answered 412."""


class NotFound(DomainError):
    """No such resource in the caller's practice (another practice's is not disclosed)."""


class InvalidTransition(DomainError):
    """A change the resource's state does not allow; answered 422 (business-rule)."""
