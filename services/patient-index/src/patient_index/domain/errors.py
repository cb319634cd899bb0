"""Domain errors: the chassis' (answered the same way in every service) and this service's own."""

from __future__ import annotations

from gpsoc_kit.errors import (
    DomainError,
    InvalidResource,
    InvalidSearch,
    InvalidTransition,
    NotFound,
    Problem,
    VersionConflict,
)


class DuplicateNhsNumber(DomainError):
    """The NHS number is already registered in this deployment."""


__all__ = [
    "DomainError",
    "DuplicateNhsNumber",
    "InvalidResource",
    "InvalidSearch",
    "InvalidTransition",
    "NotFound",
    "Problem",
    "VersionConflict",
]
