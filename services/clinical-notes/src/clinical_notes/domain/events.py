"""The clinical record's events on clinical.events.v1: which one a write raises, and its data.

Other services keep projections from these (prescribing's allergy checks read the
allergy events), so each carries the whole of what a projection needs.
"""

from __future__ import annotations

from typing import Any

from .entries import ENTERED_IN_ERROR_REASON_URL, EntryFacts


class EventType:
    CONSULTATION_RECORDED = "clinical.consultation-recorded.v1"
    CONDITION_RECORDED = "clinical.condition-recorded.v1"
    CONDITION_UPDATED = "clinical.condition-updated.v1"
    OBSERVATION_RECORDED = "clinical.observation-recorded.v1"
    ALLERGY_RECORDED = "clinical.allergy-recorded.v1"
    ALLERGY_UPDATED = "clinical.allergy-updated.v1"
    ENTERED_IN_ERROR = "clinical.entry-entered-in-error.v1"


ALL_TYPES = tuple(v for k, v in vars(EventType).items() if k.isupper())


def event_for(facts: EntryFacts, *, created: bool) -> str | None:
    """The event a new version raises; None when it concerns no other service.

    An Observation has no 'updated' event: a corrected value is recorded again (its
    versionId says it is a correction). A consultation is announced once it is finished.
    """
    kind = facts.resource_type
    if facts.entered_in_error:
        return EventType.ENTERED_IN_ERROR
    if kind == "Condition":
        return EventType.CONDITION_RECORDED if created else EventType.CONDITION_UPDATED
    if kind == "AllergyIntolerance":
        return EventType.ALLERGY_RECORDED if created else EventType.ALLERGY_UPDATED
    if kind == "Observation":
        return EventType.OBSERVATION_RECORDED
    if kind == "Encounter" and facts.status == "finished":
        return EventType.CONSULTATION_RECORDED
    return None


def _coding(facts: EntryFacts) -> dict[str, Any] | None:
    if not facts.codes:
        return None
    system, code = facts.codes[0]
    return {"system": system, "code": code, "display": facts.display}


def event_data(facts: EntryFacts, resource: dict[str, Any], version_id: int) -> dict[str, Any]:
    kind, entry_id = facts.resource_type, resource["id"]
    if facts.entered_in_error:
        reason = next(
            (
                e.get("valueString")
                for e in resource.get("extension") or []
                if e.get("url") == ENTERED_IN_ERROR_REASON_URL
            ),
            "",
        )
        return {"resourceType": kind, "id": entry_id, "patient": facts.patient_id, "reason": reason}
    if kind == "AllergyIntolerance":
        return {
            "allergy": {
                "id": entry_id,
                "patient": facts.patient_id,
                "clinicalStatus": facts.clinical_status,
                "verificationStatus": facts.status,
                "code": _coding(facts),
                "category": list(facts.category),
                "criticality": facts.extra.get("criticality"),
                "noKnownAllergies": facts.no_known_allergy,
            },
            "versionId": version_id,
        }
    if kind == "Condition":
        return {
            "condition": {
                "id": entry_id,
                "patient": facts.patient_id,
                "clinicalStatus": facts.clinical_status,
                "verificationStatus": facts.status,
                "code": _coding(facts),
                "category": list(facts.category),
                "onsetDateTime": facts.extra.get("onset"),
                "abatementDateTime": facts.extra.get("abatement"),
                "significance": facts.extra.get("significance"),
            },
            "versionId": version_id,
        }
    if kind == "Observation":
        quantity = resource.get("valueQuantity")
        components = [
            {
                "code": (c.get("code") or {}).get("coding", [{}])[0].get("code"),
                "value": (c.get("valueQuantity") or {}).get("value"),
                "unit": (c.get("valueQuantity") or {}).get("code"),
            }
            for c in resource.get("component") or []
            if isinstance(c, dict)
        ]
        return {
            "observation": {
                "id": entry_id,
                "patient": facts.patient_id,
                "status": facts.status,
                "code": _coding(facts),
                "category": list(facts.category),
                "effectiveDateTime": resource.get("effectiveDateTime"),
                "value": (
                    {"value": quantity.get("value"), "unit": quantity.get("code")}
                    if isinstance(quantity, dict)
                    else None
                ),
                "components": components,
                "derived": bool(resource.get("derivedFrom")),
            },
            "versionId": version_id,
        }
    # Encounter
    participant = next(
        (
            p["individual"]["reference"].split("/", 1)[1]
            for p in resource.get("participant") or []
            if isinstance(p, dict)
            and isinstance(p.get("individual"), dict)
            and "/" in p["individual"].get("reference", "")
        ),
        None,
    )
    period = resource.get("period") or {}
    return {
        "encounter": {
            "id": entry_id,
            "patient": facts.patient_id,
            "status": facts.status,
            "start": period.get("start"),
            "end": period.get("end"),
            "practitioner": participant,
            "appointment": facts.appointment_id,
            "type": _coding(facts),
        },
        "versionId": version_id,
    }
