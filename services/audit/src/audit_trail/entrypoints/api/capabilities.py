"""What the audit store serves, declared once: /metadata and the gateway are built from it."""

from gpsoc_kit.capability import ResourceCapability, SearchParam

from ...adapters.fhir import UK_CORE_AUDIT_EVENT_PROFILE

RESOURCES = [
    ResourceCapability(
        type="AuditEvent",
        profile=UK_CORE_AUDIT_EVENT_PROFILE,
        interactions=("read", "search-type"),
        search_params=(
            SearchParam("patient", "reference", "Patient id or Patient/<id>: every access to that patient's record"),
            SearchParam("agent", "reference", "Practitioner id or Practitioner/<id>: the user who acted"),
            SearchParam("date", "date", "AuditEvent.recorded; eq, ge, le, gt, lt prefixes, repeatable"),
            SearchParam("action", "token", "C R U D E; comma-separated for any of"),
            SearchParam("outcome", "token", "0 4 8 12; comma-separated for any of"),
        ),
        # Records are append-only: each stays at version 1 for ever.
        versioning="no-version",
    ),
]
