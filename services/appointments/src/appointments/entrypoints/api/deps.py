"""FastAPI dependencies of appointments: the chassis' audited unit of work."""

from gpsoc_kit.http import UowDep

__all__ = ["UowDep"]
