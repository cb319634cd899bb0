"""The appointment book's own domain errors. The shared ones (InvalidResource, NotFound, ...) are the chassis',
in gpsoc_kit.errors, answered the same way in every service."""

from __future__ import annotations

from gpsoc_kit.errors import DomainError, Problem


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

