"""Which service answers which FHIR resource types: read from the permission matrix, so a
route added there is routed and enforced in one place. Adding a service is one entry here."""

from __future__ import annotations

from dataclasses import dataclass

from gpsoc_kit.access import MATRIX, PermissionMatrix

from .config import GatewaySettings


@dataclass(frozen=True)
class Upstream:
    name: str
    base_url: str
    resource_types: frozenset[str]


# Each service and the setting that holds its URL. A service whose URL is not configured
# is simply not routed: its routes answer 404 like any route the platform does not serve.
SERVICE_URL_SETTINGS: dict[str, str] = {
    "patient-index": "patient_index_url",
    "appointments": "appointments_url",
    "prescribing": "prescribing_url",
    "clinical-notes": "clinical_notes_url",
    "audit": "audit_url",
}


def configured_upstreams(
    settings: GatewaySettings, matrix: PermissionMatrix = MATRIX
) -> list[Upstream]:
    upstreams = []
    for name, setting in SERVICE_URL_SETTINGS.items():
        url = getattr(settings, setting)
        if url:
            upstreams.append(Upstream(name, url.rstrip("/"), matrix.served_by(name)))
    return upstreams


class RouteTable:
    def __init__(self, upstreams: list[Upstream]) -> None:
        self.upstreams = upstreams
        self._by_type = {t: u for u in upstreams for t in u.resource_types}
        self._by_name = {u.name: u for u in upstreams}

    def for_resource_type(self, resource_type: str) -> Upstream | None:
        return self._by_type.get(resource_type)

    def for_service(self, name: str) -> Upstream | None:
        return self._by_name.get(name)
