"""Stored records as FHIR AuditEvent resources."""

from __future__ import annotations

import copy
import datetime as dt
from typing import Any

from ..domain.chain import AuditRecord

UK_CORE_AUDIT_EVENT_PROFILE = "https://fhir.hl7.org.uk/StructureDefinition/UKCore-AuditEvent"


def audit_event_resource(record: AuditRecord) -> dict[str, Any]:
    """The AuditEvent as it was recorded, with the store's id and meta. Records never
    change, so every one is version 1."""
    resource = copy.deepcopy(record.entry.audit_event)
    resource["id"] = record.id
    resource["meta"] = {
        "versionId": "1",
        "lastUpdated": record.stored_at.astimezone(dt.UTC).isoformat().replace("+00:00", "Z"),
        "profile": [UK_CORE_AUDIT_EVENT_PROFILE],
    }
    return resource
