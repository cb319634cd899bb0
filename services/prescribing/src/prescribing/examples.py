"""Example requests and incoming events, built the same way by the tests, the benchmark
(bench_support.py) and anyone trying the API. Codes are the demo formulary's."""

from __future__ import annotations

import datetime as dt
from typing import Any

from gpsoc_kit.events import CloudEvent

from .domain.formulary import DMD_SYSTEM, SNOMED_SYSTEM
from .domain.prescription import (
    COURSE_CODING,
    OVERRIDE_URL,
    QUANTITY_TEXT_URL,
    REPEAT_INFORMATION_URL,
    Course,
)

AMOXICILLIN_500_CAPSULES = "39732411000001106"
PARACETAMOL_500_TABLETS = "322236009"
SIMVASTATIN_40_TABLETS = "320000009"
CLARITHROMYCIN_500_TABLETS = "41946511000001109"
IBUPROFEN_200_TABLETS = "329652003"
CIPROFLOXACIN_500_TABLETS = "39687811000001107"
MORPHINE_10_MR_TABLETS = "36126511000001106"
TEMAZEPAM_10_TABLETS = "321152004"
ALLERGY_TO_PENICILLIN = ("91936005", "Allergy to penicillin")


def authorisation(patient_id: str, *, code: str = PARACETAMOL_500_TABLETS,
                  course: Course = Course.CONTINUOUS, repeats: int = 5, quantity: int = 56,
                  unit: str = "tablet", quantity_words: str | None = None, supply_days: int = 14,
                  dose: tuple[float, str] | None = (1, "tablet"), times_a_day: int | None = 4,
                  review_in_days: int | None = 180,
                  dosage_text: str = "One tablet four times a day",
                  override_reason: str | None = None,
                  prior_plan_id: str | None = None) -> dict[str, Any]:
    """A MedicationRequest intent=plan, as a prescriber's system would send it."""
    dosage: dict[str, Any] = {"text": dosage_text}
    if dose is not None:
        dosage["doseAndRate"] = [{"doseQuantity": {"value": dose[0], "unit": dose[1]}}]
    if times_a_day is not None:
        dosage["timing"] = {"repeat": {"frequency": times_a_day, "period": 1, "periodUnit": "d"}}
    quantity_element: dict[str, Any] = {"value": quantity, "unit": unit}
    if quantity_words is not None:
        quantity_element["extension"] = [{"url": QUANTITY_TEXT_URL, "valueString": quantity_words}]
    body: dict[str, Any] = {
        "resourceType": "MedicationRequest",
        "status": "active",
        "intent": "plan",
        "subject": {"reference": f"Patient/{patient_id}"},
        "medicationCodeableConcept": {"coding": [{"system": DMD_SYSTEM, "code": code}]},
        "courseOfTherapyType": {"coding": [COURSE_CODING[course]]},
        "dosageInstruction": [dosage],
        "dispenseRequest": {
            "quantity": quantity_element,
            "expectedSupplyDuration": {"value": supply_days, "unit": "day",
                                       "system": "http://unitsofmeasure.org", "code": "d"},
            "numberOfRepeatsAllowed": 0 if course is Course.ACUTE else repeats,
        },
        "extension": [],
    }
    if review_in_days is not None:
        review = (dt.date.today() + dt.timedelta(days=review_in_days)).isoformat()
        body["extension"].append({"url": REPEAT_INFORMATION_URL, "extension": [
            {"url": "authorisationExpiryDate", "valueDateTime": review}]})
    if override_reason is not None:
        body["extension"].append(override(override_reason))
    if prior_plan_id is not None:
        body["priorPrescription"] = {"reference": f"MedicationRequest/{prior_plan_id}"}
    return body


def override(reason: str) -> dict[str, Any]:
    return {"url": OVERRIDE_URL, "extension": [{"url": "reason", "valueString": reason}]}


def issue(plan_id: str, *, override_reason: str | None = None) -> dict[str, Any]:
    """A MedicationRequest intent=order: the next issue of the plan."""
    body: dict[str, Any] = {"resourceType": "MedicationRequest", "status": "active",
                            "intent": "order",
                            "basedOn": [{"reference": f"MedicationRequest/{plan_id}"}]}
    if override_reason is not None:
        body["extension"] = [override(override_reason)]
    return body


def repeat_request(plan_id: str) -> dict[str, Any]:
    """A repeat request a receptionist raises: a draft issue waiting for a prescriber."""
    return {"resourceType": "MedicationRequest", "status": "draft", "intent": "order",
            "basedOn": [{"reference": f"MedicationRequest/{plan_id}"}],
            "note": [{"text": "Requested at the front desk"}]}


def parameters(**values: str) -> dict[str, Any]:
    return {"resourceType": "Parameters",
            "parameter": [{"name": k, "valueString": v} for k, v in values.items()]}


def patient_event(event_type: str, *, patient_id: str, practice: str, nhs_number: str,
                  version_id: int = 1, family: str = "Example", given: str = "Pat",
                  deceased_at: str | None = None, active: bool = True) -> CloudEvent:
    """A patient.events.v1 event as patient-index publishes it."""
    return CloudEvent(
        type=event_type, source="urn:opengpsoc:patient-index", subject=patient_id,
        practice=practice,
        data={"patient": {"id": patient_id, "practice": practice, "nhsNumber": nhs_number,
                          "family": family, "given": given, "birthDate": "1950-02-03",
                          "gender": "female", "active": active,
                          "deceased": deceased_at is not None, "deceasedDateTime": deceased_at,
                          "generalPractitioner": None},
              "versionId": version_id})


def allergy_event(*, allergy_id: str, patient_id: str, practice: str,
                  code: tuple[str, str] = ALLERGY_TO_PENICILLIN, version_id: int = 1,
                  verification_status: str = "confirmed",
                  event_type: str = "clinical.allergy-recorded.v1") -> CloudEvent:
    """A clinical.events.v1 allergy event as clinical-notes publishes it (per the contract)."""
    return CloudEvent(
        type=event_type, source="urn:opengpsoc:clinical-notes", subject=patient_id,
        practice=practice,
        data={"allergy": {"id": allergy_id, "patient": patient_id, "clinicalStatus": "active",
                          "verificationStatus": verification_status,
                          "code": {"system": SNOMED_SYSTEM, "code": code[0], "display": code[1]},
                          "category": ["medication"], "criticality": "high",
                          "noKnownAllergies": False},
              "versionId": version_id})


def entered_in_error_event(*, allergy_id: str, patient_id: str, practice: str) -> CloudEvent:
    return CloudEvent(
        type="clinical.entry-entered-in-error.v1", source="urn:opengpsoc:clinical-notes",
        subject=patient_id, practice=practice,
        data={"resourceType": "AllergyIntolerance", "id": allergy_id, "patient": patient_id,
              "reason": "Recorded against the wrong patient"})
