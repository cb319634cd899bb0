"""Which service owns which FHIR resource type. Adding a service is one entry here."""

from __future__ import annotations

from dataclasses import dataclass

from .config import GatewaySettings


@dataclass(frozen=True)
class Upstream:
    name: str
    base_url: str
    resource_types: frozenset[str]


# Resource types each service owns (ARCHITECTURE.md). A service whose URL is not
# configured is simply not routed: its resource types answer 404 like any unknown type.
OWNERSHIP: dict[str, tuple[str, frozenset[str]]] = {
    "patient-index": (
        "patient_index_url",
        frozenset({"Patient", "Organization", "Practitioner", "OrganizationAffiliation"}),
    ),
    "appointments": ("appointments_url", frozenset({"Schedule", "Slot", "Appointment"})),
    "prescribing": ("prescribing_url", frozenset({"Medication", "MedicationRequest"})),
    "clinical-notes": (
        "clinical_notes_url",
        frozenset(
            {
                "Encounter", "Condition", "Observation", "AllergyIntolerance", "List",
                # SNOMED CT look-up ($lookup, $expand) over the service's reference set.
                "CodeSystem", "ValueSet",
            }
        ),
    ),
    "audit": ("audit_url", frozenset({"AuditEvent"})),
}


def configured_upstreams(settings: GatewaySettings) -> list[Upstream]:
    upstreams = []
    for name, (setting, types) in OWNERSHIP.items():
        url = getattr(settings, setting)
        if url:
            upstreams.append(Upstream(name, url.rstrip("/"), types))
    return upstreams


class RouteTable:
    def __init__(self, upstreams: list[Upstream]) -> None:
        self.upstreams = upstreams
        self._by_type = {t: u for u in upstreams for t in u.resource_types}

    def for_resource_type(self, resource_type: str) -> Upstream | None:
        return self._by_type.get(resource_type)
