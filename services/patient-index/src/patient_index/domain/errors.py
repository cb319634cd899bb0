"""The patient index's own domain errors. The shared ones (InvalidResource, NotFound, ...) are the chassis',
in gpsoc_kit.errors, answered the same way in every service."""

from __future__ import annotations

from gpsoc_kit.errors import DomainError


class DuplicateNhsNumber(DomainError):
    """The NHS number is already registered in this deployment."""

