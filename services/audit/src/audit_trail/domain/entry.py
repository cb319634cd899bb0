"""What the store keeps of one audit event: its searchable facts beside the AuditEvent itself.

The facts are read out of the FHIR AuditEvent that `gpsoc_kit.audit` writes (agent,
role code, entities, extensions), so searching never has to open the JSON.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from .errors import UnreadableAuditEvent

EXTENSION_BASE = "https://opengpsoc.org/fhir/StructureDefinition/"
REQUEST_ID_URL = EXTENSION_BASE + "request-id"
TRACE_ID_URL = EXTENSION_BASE + "trace-id"
BREAK_GLASS_REASON_URL = EXTENSION_BASE + "break-glass-reason"
NHS_ROLE_CODE_SYSTEM = "https://fhir.nhs.uk/CodeSystem/NHSRoleCode"

# AuditEvent.action and AuditEvent.outcome (FHIR R4 required bindings).
ACTIONS = frozenset({"C", "R", "U", "D", "E"})
OUTCOMES = frozenset({"0", "4", "8", "12"})


@dataclass(frozen=True)
class AuditEntry:
    """One access, as the store indexes it; `audit_event` is the full FHIR AuditEvent."""

    event_id: str
    source: str  # the producing service (CloudEvent source)
    practice_code: str
    agent_id: str | None  # the requesting user: Practitioner id
    role_code: str | None  # NHS national RBAC role code
    patient_ids: tuple[str, ...]
    resource_refs: tuple[str, ...]  # "Type/id" of the other resources touched
    action: str
    outcome: str
    recorded_at: dt.datetime
    request_id: str | None
    trace_id: str | None
    break_glass_reason: str | None
    audit_event: dict[str, Any]


def entry_from_event(*, event_id: str, source: str, practice: str,
                     audit_event: dict[str, Any]) -> AuditEntry:
    """Read the indexed facts out of an AuditEvent; refuses one that cannot be indexed."""
    if audit_event.get("resourceType") != "AuditEvent":
        raise UnreadableAuditEvent("the data is not an AuditEvent")
    if not practice:
        raise UnreadableAuditEvent("the event names no practice")
    action = audit_event.get("action")
    if action not in ACTIONS:
        raise UnreadableAuditEvent("AuditEvent.action is not one of C R U D E")
    outcome = audit_event.get("outcome")
    if outcome not in OUTCOMES:
        raise UnreadableAuditEvent("AuditEvent.outcome is not one of 0 4 8 12")
    agent = _requesting_agent(audit_event)
    extensions = _extensions(audit_event)
    patient_ids: list[str] = []
    resource_refs: list[str] = []
    for entity in audit_event.get("entity") or ():
        reference = (entity.get("what") or {}).get("reference") if isinstance(entity, dict) else None
        if not isinstance(reference, str) or "/" not in reference:
            continue
        if reference.startswith("Patient/"):
            patient_ids.append(reference.removeprefix("Patient/"))
        else:
            resource_refs.append(reference)
    return AuditEntry(
        event_id=event_id,
        source=source,
        practice_code=practice,
        agent_id=_reference_id(agent.get("who"), "Practitioner"),
        role_code=_role_code(agent),
        patient_ids=tuple(dict.fromkeys(patient_ids)),
        resource_refs=tuple(dict.fromkeys(resource_refs)),
        action=action,
        outcome=outcome,
        recorded_at=_instant(audit_event.get("recorded")),
        request_id=extensions.get(REQUEST_ID_URL),
        trace_id=extensions.get(TRACE_ID_URL),
        break_glass_reason=extensions.get(BREAK_GLASS_REASON_URL),
        audit_event=audit_event,
    )


def _requesting_agent(audit_event: dict[str, Any]) -> dict[str, Any]:
    agents = [a for a in audit_event.get("agent") or () if isinstance(a, dict)]
    if not agents:
        raise UnreadableAuditEvent("AuditEvent has no agent")
    return next((a for a in agents if a.get("requestor") is True), agents[0])


def _reference_id(who: Any, resource_type: str) -> str | None:
    reference = who.get("reference") if isinstance(who, dict) else None
    if not isinstance(reference, str):
        return None
    return reference.removeprefix(f"{resource_type}/")


def _role_code(agent: dict[str, Any]) -> str | None:
    for role in agent.get("role") or ():
        for coding in (role.get("coding") or ()) if isinstance(role, dict) else ():
            if isinstance(coding, dict) and coding.get("system") == NHS_ROLE_CODE_SYSTEM:
                code = coding.get("code")
                if isinstance(code, str) and code:
                    return code
    return None


def _extensions(audit_event: dict[str, Any]) -> dict[str, str]:
    values: dict[str, str] = {}
    for extension in audit_event.get("extension") or ():
        if isinstance(extension, dict) and isinstance(extension.get("valueString"), str):
            values.setdefault(extension.get("url", ""), extension["valueString"])
    return values


def _instant(value: Any) -> dt.datetime:
    if not isinstance(value, str):
        raise UnreadableAuditEvent("AuditEvent.recorded is missing")
    try:
        moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise UnreadableAuditEvent("AuditEvent.recorded is not an instant") from None
    if moment.tzinfo is None:
        raise UnreadableAuditEvent("AuditEvent.recorded has no time zone")
    return moment.astimezone(dt.UTC)
