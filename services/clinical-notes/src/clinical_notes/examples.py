"""Valid clinical entries, UK Core shaped, built the same way by the tests and anyone trying the API."""

from __future__ import annotations

from typing import Any

SNOMED = "http://snomed.info/sct"
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"


def coded(code: str, display: str, system: str = SNOMED) -> dict[str, Any]:
    return {"coding": [{"system": system, "code": code, "display": display}]}


def condition(
    patient_id: str,
    *,
    code: str = "195967001",
    display: str = "Asthma",
    clinical: str = "active",
    onset: str = "2020-03-01",
    **extra: Any,
) -> dict[str, Any]:
    return {
        "resourceType": "Condition",
        "clinicalStatus": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                    "code": clinical,
                }
            ]
        },
        "verificationStatus": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/condition-ver-status",
                    "code": "confirmed",
                }
            ]
        },
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/condition-category",
                        "code": "problem-list-item",
                    }
                ]
            }
        ],
        "code": coded(code, display),
        "subject": {"reference": f"Patient/{patient_id}"},
        "onsetDateTime": onset,
        **extra,
    }


def allergy(
    patient_id: str, *, code: str = "372687004", display: str = "Amoxicillin", **extra: Any
) -> dict[str, Any]:
    resource = {
        "resourceType": "AllergyIntolerance",
        "clinicalStatus": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical",
                    "code": "active",
                }
            ]
        },
        "verificationStatus": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification",
                    "code": "confirmed",
                }
            ]
        },
        "category": ["medication"],
        "criticality": "high",
        "code": coded(code, display),
        "patient": {"reference": f"Patient/{patient_id}"},
        "recordedDate": "2026-01-10",
        "reaction": [{"manifestation": [coded("126485001", "Urticaria")], "severity": "moderate"}],
    }
    resource.update(extra)
    return resource


def no_known_allergy(patient_id: str) -> dict[str, Any]:
    resource = allergy(patient_id, code="716186003", display="No known allergy")
    for key in ("criticality", "reaction", "category"):
        resource.pop(key)
    return resource


def vital(
    patient_id: str,
    loinc: str,
    snomed: str,
    display: str,
    value: float,
    unit: str,
    *,
    effective: str = "2026-02-01T09:30:00Z",
    **extra: Any,
) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                        "code": "vital-signs",
                    }
                ]
            }
        ],
        "code": {
            "coding": [
                {"system": SNOMED, "code": snomed, "display": display},
                {"system": LOINC, "code": loinc, "display": display},
            ]
        },
        "subject": {"reference": f"Patient/{patient_id}"},
        "effectiveDateTime": effective,
        "valueQuantity": {"value": value, "unit": unit, "system": UCUM, "code": unit},
        **extra,
    }


def weight(patient_id: str, kg: float, **extra: Any) -> dict[str, Any]:
    return vital(patient_id, "29463-7", "27113001", "Body weight", kg, "kg", **extra)


def height(patient_id: str, value: float, unit: str = "m", **extra: Any) -> dict[str, Any]:
    return vital(patient_id, "8302-2", "50373000", "Body height", value, unit, **extra)


def hba1c(patient_id: str, value: float, **extra: Any) -> dict[str, Any]:
    resource = vital(patient_id, "59261-8", "999791000000106", "HbA1c", value, "mmol/mol", **extra)
    resource["category"][0]["coding"][0]["code"] = "laboratory"
    return resource


def blood_pressure(
    patient_id: str, systolic: float, diastolic: float, **extra: Any
) -> dict[str, Any]:
    resource = vital(patient_id, "85354-9", "75367002", "Blood pressure", 0, "mm[Hg]", **extra)
    resource.pop("valueQuantity")

    def component(loinc: str, snomed: str, display: str, value: float) -> dict[str, Any]:
        return {
            "code": {
                "coding": [
                    {"system": SNOMED, "code": snomed, "display": display},
                    {"system": LOINC, "code": loinc, "display": display},
                ]
            },
            "valueQuantity": {"value": value, "unit": "mmHg", "system": UCUM, "code": "mm[Hg]"},
        }

    resource["component"] = [
        component("8480-6", "72313002", "Systolic arterial pressure", systolic),
        component("8462-4", "1091811000000102", "Diastolic arterial pressure", diastolic),
    ]
    return resource


def encounter(
    patient_id: str, *, status: str = "finished", start: str = "2026-02-01T09:20:00Z", **extra: Any
) -> dict[str, Any]:
    return {
        "resourceType": "Encounter",
        "status": status,
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
        "type": [coded("11429006", "Consultation")],
        "subject": {"reference": f"Patient/{patient_id}"},
        "period": {"start": start},
        **extra,
    }


def heading_list(
    patient_id: str, encounter_id: str, title: str, items: list[str]
) -> dict[str, Any]:
    return {
        "resourceType": "List",
        "status": "current",
        "mode": "snapshot",
        "title": title,
        "code": coded("24781000000107", "Category (EHR)"),
        "subject": {"reference": f"Patient/{patient_id}"},
        "encounter": {"reference": f"Encounter/{encounter_id}"},
        "entry": [{"item": {"reference": ref}} for ref in items],
    }
