"""What clinical-notes serves, declared once: /metadata and the gateway are built from it."""


from gpsoc_kit.capability import ResourceCapability, SearchParam

from ...domain.entries import PROFILES
from ...service_layer.search import SEARCH_PARAMETERS

INTERACTIONS = ("read", "vread", "update", "history-instance", "create", "search-type")
_DOCS = {
    "_id": ("token", ""),
    "patient": ("reference", "Required (or _id): Patient/<id>"),
    "date": ("date", "The clinical date (onset, effective, period start); eq, ge, le, gt, lt"),
    "code": ("token", "system|code or code; comma-separated for any of several"),
    "category": ("token", ""),
    "clinical-status": ("token", ""),
    "verification-status": ("token", "entered-in-error entries appear only when asked for by name"),
    "status": ("token", "entered-in-error entries appear only when asked for by name"),
    "encounter": ("reference", ""),
    "appointment": ("reference", "The appointment a consultation was opened for"),
    "_sort": ("special", "date or -date (newest first, the default)"),
}
_OPERATIONS = {
    "Encounter": ("entered-in-error", "patient-summary"),
}


RESOURCES = [
    ResourceCapability(
        type=resource_type,
        profile=PROFILES[resource_type],
        interactions=INTERACTIONS,
        search_params=tuple(SearchParam(name, *_DOCS[name]) for name in params),
        operations=_OPERATIONS.get(resource_type, ("entered-in-error",)),
    )
    for resource_type, params in SEARCH_PARAMETERS.items()
] + [
    ResourceCapability(
        type="CodeSystem",
        profile="http://hl7.org/fhir/StructureDefinition/CodeSystem",
        interactions=(),
        operations=("lookup",),
        versioning="no-version",
    ),
    ResourceCapability(
        type="ValueSet",
        profile="http://hl7.org/fhir/StructureDefinition/ValueSet",
        interactions=(),
        operations=("expand",),
        versioning="no-version",
    ),
]
