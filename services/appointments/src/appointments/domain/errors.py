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
    """The resource or request breaks a rule; nothing is stored (422)."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(p.message for p in problems))
        self.problems = problems


class InvalidSearch(DomainError):
    """A search parameter's value cannot be parsed (400)."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(p.message for p in problems))
        self.problems = problems


class UnprocessableSearch(DomainError):
    """A well-formed search the rules refuse, e.g. a window longer than 14 days (422)."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(p.message for p in problems))
        self.problems = problems


class SlotUnavailable(DomainError):
    """The slot is taken, held by someone else or blocked (409 DUPLICATE_REJECTED)."""


class BookingNotPermitted(DomainError):
    """The caller's role may not book this type of slot (403)."""


class IdempotencyKeyReused(DomainError):
    """The Idempotency-Key was first used with a different request (422)."""


class VersionConflict(DomainError):
    """The client's If-Match names a version that is no longer current (412)."""


class NotFound(DomainError):
    """No such resource in the caller's practice (404); the message is `Type/id`."""


class InvalidTransition(DomainError):
    """A status change the appointment's state does not allow (422)."""
