"""FastAPI dependencies of the patient index: the chassis' audited units of work (a read's
for the routes whose use case only reads)."""

from gpsoc_kit.http import ReadUowDep, UowDep

__all__ = ["ReadUowDep", "UowDep"]
