"""Audit events in FHIR AuditEvent shape, sent through the outbox like any other event.

Every read and write of patient data calls `record` inside the request's unit of
work, so the audit record commits (or not) with the access it describes.
"""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .auth import Principal
from .telemetry import current_traceparent, request_id_var
from .uow import UnitOfWork

AUDIT_TOPIC = "audit.events.v1"
# The audit event's schema lives with the chassis: every service produces it.
AUDIT_SCHEMA_DIR = Path(__file__).parent / "schemas"
AUDIT_EVENT_TYPE = "audit.recorded.v1"

# FHIR restful-interaction codes -> AuditEvent.action (C R U D E).
_ACTIONS = {
    "create": "C",
    "read": "R",
    "vread": "R",
    "history": "R",
    "search": "E",
    "update": "U",
    "patch": "U",
    "delete": "D",
    "operation": "E",
}


def audit_event(
    *,
    principal: Principal,
    interaction: str,
    resource_type: str,
    resource_ids: Iterable[str] = (),
    patient_ids: Iterable[str] = (),
    outcome: str = "0",
    outcome_desc: str | None = None,
    query: str | None = None,
    source: str,
) -> dict[str, Any]:
    """An AuditEvent resource (R4) describing one access."""
    traceparent, _ = current_traceparent()
    trace_id = traceparent.split("-")[1] if traceparent else None
    entities: list[dict[str, Any]] = [
        {
            "what": {"reference": f"Patient/{pid}"},
            "type": _entity_type("1", "Person"),
            "role": {
                "system": "http://terminology.hl7.org/CodeSystem/object-role",
                "code": "1",
                "display": "Patient",
            },
        }
        for pid in dict.fromkeys(patient_ids)
    ]
    entities += [
        {
            "what": {"reference": f"{resource_type}/{rid}"},
            "type": _entity_type("2", "System Object"),
        }
        for rid in dict.fromkeys(resource_ids)
        if resource_type != "Patient"
    ]
    if query is not None:
        entities.append(
            {
                # The resource type searched: a search that finds nothing still says what it read.
                "what": {"type": resource_type},
                "type": _entity_type("2", "System Object"),
                "query": base64.b64encode(query.encode()).decode(),
            }
        )
    event: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "type": {
            "system": "http://terminology.hl7.org/CodeSystem/audit-event-type",
            "code": "rest",
            "display": "RESTful Operation",
        },
        "subtype": [{"system": "http://hl7.org/fhir/restful-interaction", "code": interaction}],
        "action": _ACTIONS.get(interaction, "E"),
        "recorded": dt.datetime.now(dt.UTC).isoformat(),
        "outcome": outcome,
        "agent": [
            {
                "who": {
                    "reference": f"Practitioner/{principal.user_id}",
                    "display": principal.name,
                },
                "requestor": True,
                "role": [
                    {
                        "coding": [
                            {
                                "system": "https://fhir.nhs.uk/CodeSystem/NHSRoleCode",
                                "code": principal.role_code,
                                "display": principal.primary_role,
                            }
                        ]
                    }
                ],
            }
        ],
        "source": {"site": principal.practice, "observer": {"display": source}},
        "entity": entities,
        # The practice is source.site; request and trace ids are our published extensions
        # (fhir/definitions/StructureDefinition-request-id.json, -trace-id.json).
        "extension": [],
    }
    if outcome_desc:
        event["outcomeDesc"] = outcome_desc
    if request_id := request_id_var.get():
        event["extension"].append(
            {
                "url": "https://opengpsoc.org/fhir/StructureDefinition/request-id",
                "valueString": request_id,
            }
        )
    if trace_id:
        event["extension"].append(
            {
                "url": "https://opengpsoc.org/fhir/StructureDefinition/trace-id",
                "valueString": trace_id,
            }
        )
    if not event["extension"]:
        del event["extension"]
    return event


def record(
    uow: UnitOfWork,
    *,
    principal: Principal,
    interaction: str,
    resource_type: str,
    resource_ids: Iterable[str] = (),
    patient_ids: Iterable[str] = (),
    outcome: str = "0",
    outcome_desc: str | None = None,
    query: str | None = None,
    source: str,
) -> None:
    patient_ids = list(patient_ids)
    event = audit_event(
        principal=principal,
        interaction=interaction,
        resource_type=resource_type,
        resource_ids=resource_ids,
        patient_ids=patient_ids,
        outcome=outcome,
        outcome_desc=outcome_desc,
        query=query,
        source=source,
    )
    # Keyed by the patient when there is exactly one, so a patient's audit trail stays in order.
    subject = patient_ids[0] if len(patient_ids) == 1 else principal.practice
    uow.emit(
        AUDIT_TOPIC,
        AUDIT_EVENT_TYPE,
        subject=subject,
        data=event,
        practice=principal.practice,
        prompt=False,
    )


def _entity_type(code: str, display: str) -> dict[str, str]:
    return {
        "system": "http://terminology.hl7.org/CodeSystem/audit-entity-type",
        "code": code,
        "display": display,
    }
