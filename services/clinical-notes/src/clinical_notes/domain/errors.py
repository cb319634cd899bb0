"""Domain errors: the chassis' (answered the same way in every service), re-exported."""

from gpsoc_kit.errors import (
    DomainError,
    InvalidResource,
    InvalidSearch,
    InvalidTransition,
    NotFound,
    Problem,
    VersionConflict,
)

__all__ = [
    "DomainError",
    "InvalidResource",
    "InvalidSearch",
    "InvalidTransition",
    "NotFound",
    "Problem",
    "VersionConflict",
]
