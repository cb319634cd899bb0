"""FastAPI dependencies of the audit store: the chassis' audited unit of work."""

from gpsoc_kit.http import UowDep

__all__ = ["UowDep"]
