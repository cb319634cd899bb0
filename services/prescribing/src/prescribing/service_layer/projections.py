"""Local projections of other services' events: patients (patient-index) and allergies
(clinical-notes). Prescribing never calls those services; it keeps what it needs here."""

from __future__ import annotations

from typing import Any

from gpsoc_kit.auth import Principal
from gpsoc_kit.uow import UnitOfWork

from ..adapters import repository as repo
from . import handlers

DECEASED_REASON = "Patient deceased"
DEREGISTERED_REASON = "Patient no longer registered at the practice"


def system_principal(practice: str) -> Principal:
    return Principal(user_id="system-prescribing-projections", practice=practice,
                     roles=frozenset({"system"}), name="Prescribing event consumer")


class UnusableEvent(ValueError):
    """An event whose data lacks what the projection needs (it can never apply)."""


async def apply_patient(uow: UnitOfWork, data: dict[str, Any], *, ends_prescribing: str | None
                        ) -> int:
    """Project a patient event; a death or a deregistration also stops what is current."""
    patient = data.get("patient")
    version = data.get("versionId")
    if not isinstance(patient, dict) or not isinstance(patient.get("id"), str) \
            or not isinstance(version, int):
        raise UnusableEvent("patient event without patient.id and versionId")
    await repo.PatientProjection(uow.conn).apply(patient, version, uow.practice)
    if ends_prescribing is None:
        return 0
    return await handlers.stop_everything_for(uow, system_principal(uow.practice),
                                              patient["id"], ends_prescribing)


async def apply_allergy(uow: UnitOfWork, data: dict[str, Any]) -> bool:
    allergy = data.get("allergy")
    version = data.get("versionId")
    if not isinstance(allergy, dict) or not isinstance(allergy.get("id"), str) \
            or not isinstance(allergy.get("patient"), str) or not isinstance(version, int):
        raise UnusableEvent("allergy event without allergy.id, allergy.patient and versionId")
    code = allergy.get("code") if isinstance(allergy.get("code"), dict) else {}
    no_known = bool(allergy.get("noKnownAllergies", False))
    if not no_known and not code.get("code"):
        raise UnusableEvent("allergy event without a SNOMED CT code")
    return await repo.AllergyProjection(uow.conn).apply(
        allergy_id=allergy["id"], practice=uow.practice, patient_id=allergy["patient"],
        code=code.get("code"), display=str(code.get("display") or code.get("code") or ""),
        clinical_status=allergy.get("clinicalStatus"),
        verification_status=allergy.get("verificationStatus"),
        no_known_allergies=no_known, version_id=version)


async def apply_entered_in_error(uow: UnitOfWork, data: dict[str, Any]) -> bool:
    """Only allergies matter here: a wrong allergy no longer blocks anything."""
    if data.get("resourceType") != "AllergyIntolerance":
        return False
    if not isinstance(data.get("id"), str):
        raise UnusableEvent("entered-in-error event without an id")
    return await repo.AllergyProjection(uow.conn).mark_entered_in_error(data["id"])
