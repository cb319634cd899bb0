"""FastAPI dependencies of the patient index: the chassis' audited unit of work (writes;
reads open theirs in the route, with gpsoc_kit.http.reading)."""

from gpsoc_kit.http import UowDep

__all__ = ["UowDep"]
