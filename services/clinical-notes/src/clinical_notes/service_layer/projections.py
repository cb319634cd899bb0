"""What the record learns from other services' events: registered patients, arrived
appointments (a consultation opens) and issued prescriptions (the medication timeline)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from gpsoc_kit.auth import Principal
from gpsoc_kit.errors import DomainError
from gpsoc_kit.uow import UnitOfWork

from ..adapters import repository as repo
from ..domain.entries import ENCOUNTER_CLASS_SYSTEM, is_uuid, parse_datetime, read_entry
from ..domain.snomed import SNOMED_SYSTEM
from .handlers import record_access, store_new_entry

DMD_SYSTEM = "https://dmd.nhs.uk"
MEDICATION_STATEMENT_PROFILE = (
    "https://fhir.hl7.org.uk/StructureDefinition/UKCore-MedicationStatement"
)

# The national appointment delivery channel -> Encounter.class and the encounter's type.
_CHANNELS = {
    "in-person": (("AMB", "ambulatory"), ("11429006", "Consultation")),
    "telephone": (("VR", "virtual"), ("185317003", "Telephone encounter")),
    "video": (("VR", "virtual"), ("11429006", "Consultation")),
    "home visit": (("HH", "home health"), ("11429006", "Consultation")),
}


class UnusableEvent(DomainError):
    """An event whose data can never be applied (the consumer dead-letters it)."""


def system_principal(practice: str, name: str) -> Principal:
    return Principal(
        user_id=f"system-{name.lower().replace(' ', '-')}",
        practice=practice,
        roles=frozenset({"system"}),
        name=name,
    )


async def apply_patient_event(uow: UnitOfWork, data: dict[str, Any]) -> None:
    patient = data.get("patient") or {}
    version = data.get("versionId")
    if not is_uuid(patient.get("id")) or not isinstance(version, int):
        raise UnusableEvent("patient event without a patient id and versionId")
    await repo.PatientRepository(uow.conn).apply(
        patient_id=patient["id"],
        practice=uow.practice,
        active=bool(patient.get("active", True)),
        deceased=bool(patient.get("deceased", False)),
        version_id=version,
        at=dt.datetime.now(dt.UTC),
    )


async def open_consultation(
    uow: UnitOfWork, data: dict[str, Any], *, arrived_at: str
) -> str | None:
    """Open an in-progress consultation for an arrived appointment, once per appointment.

    Returns the Encounter's id, or None when the appointment already has one."""
    appointment = data.get("appointment") or {}
    appointment_id, patient_id = appointment.get("id"), appointment.get("patient")
    if not is_uuid(appointment_id) or not is_uuid(patient_id):
        raise UnusableEvent("arrived appointment without appointment and patient ids")
    entries = repo.EntryRepository(uow.conn)
    if await entries.consultation_for_appointment(appointment_id) is not None:
        return None
    (class_code, class_display), (type_code, type_display) = _CHANNELS.get(
        str(appointment.get("deliveryChannel", "")).lower(), _CHANNELS["in-person"]
    )
    start = arrived_at if parse_datetime(arrived_at) else appointment.get("start")
    resource: dict[str, Any] = {
        "resourceType": "Encounter",
        "status": "in-progress",
        "class": {"system": ENCOUNTER_CLASS_SYSTEM, "code": class_code, "display": class_display},
        "type": [
            {"coding": [{"system": SNOMED_SYSTEM, "code": type_code, "display": type_display}]}
        ],
        "subject": {"reference": f"Patient/{patient_id}"},
        "period": {"start": start},
        "appointment": [{"reference": f"Appointment/{appointment_id}"}],
    }
    if appointment.get("slotCategory"):
        resource["serviceType"] = {"text": appointment["slotCategory"]}
    if is_uuid(appointment.get("practitioner")):
        resource["participant"] = [
            {"individual": {"reference": f"Practitioner/{appointment['practitioner']}"}}
        ]
    principal = system_principal(uow.practice, "Appointment arrivals")
    try:
        stored = await store_new_entry(
            uow, principal, read_entry(resource), resource, at=dt.datetime.now(dt.UTC)
        )
    except repo.DuplicateAppointmentConsultation:
        return None
    record_access(
        uow, principal, "create", "Encounter", patient_ids=[patient_id], resource_ids=[stored["id"]]
    )
    return stored["id"]


async def record_issue(uow: UnitOfWork, data: dict[str, Any], *, event_time: str) -> None:
    """Put an issued prescription on the patient's medication timeline (once per issue)."""
    request = data.get("medicationRequest") or {}
    issued_at = parse_datetime(request.get("authoredOn")) or parse_datetime(event_time)
    medication = request.get("medication") or {}
    if (
        not is_uuid(request.get("id"))
        or not is_uuid(request.get("patient"))
        or issued_at is None
        or not medication.get("code")
    ):
        raise UnusableEvent("issued prescription without ids, medication or date")
    statement: dict[str, Any] = {
        "resourceType": "MedicationStatement",
        "id": request["id"],
        "meta": {"profile": [MEDICATION_STATEMENT_PROFILE]},
        "status": "active",
        "basedOn": [{"reference": f"MedicationRequest/{request['id']}"}],
        "medicationCodeableConcept": {
            "coding": [
                {
                    "system": medication.get("system", DMD_SYSTEM),
                    "code": medication["code"],
                    "display": medication.get("display"),
                }
            ]
        },
        "subject": {"reference": f"Patient/{request['patient']}"},
        "effectiveDateTime": request.get("authoredOn") or event_time,
        "dateAsserted": event_time,
        "dosage": [{"text": request["dosageText"]}] if request.get("dosageText") else [],
    }
    if is_uuid(request.get("prescriber")):
        statement["informationSource"] = {"reference": f"Practitioner/{request['prescriber']}"}
    if request.get("courseOfTherapyType"):
        statement["category"] = {"text": request["courseOfTherapyType"]}
    await repo.MedicationTimeline(uow.conn).record(
        issue_id=request["id"],
        practice=uow.practice,
        patient_id=request["patient"],
        issued_at=issued_at,
        resource=statement,
    )
