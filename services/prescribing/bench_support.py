"""Helpers for `make bench` (the lead wires them into bench/): load a practice's patients into
prescribing's projection, and the request bodies of the two measured paths.

  - authorisation with all checks: `authorisation_body(patient_id)` is a continuous
    paracetamol authorisation with a structured dose, so every check runs (allergy against the
    patient's projected allergies, interactions and duplicate therapy against current
    medication, controlled drug rules, dose limits) against the installed knowledge base.
    Use each patient once: a second paracetamol plan for one patient is duplicate therapy
    and is (rightly) refused.
  - issue throughput: `issue_body(plan_id)` (POST /MedicationRequest) or an empty POST to
    /MedicationRequest/{plan_id}/$issue; plans made with `plan_for_issues_body` allow 52 issues.
"""

from __future__ import annotations

from typing import Any

from prescribing import examples
from prescribing.domain.prescription import Course
from prescribing.service_layer import projections


async def load_patient_projection(uow_factory: Any, patients: list[dict[str, Any]]) -> int:
    """Project demo-dataset patients ({"practice", "resource"} entries, devstack.demo) directly,
    as patient.registered.v1 would; returns how many were applied."""
    applied = 0
    by_practice: dict[str, list[dict[str, Any]]] = {}
    for entry in patients:
        by_practice.setdefault(entry["practice"], []).append(entry["resource"])
    for practice, resources in by_practice.items():
        async with uow_factory(practice) as uow:
            for resource in resources:
                nhs = next((i["value"] for i in resource.get("identifier", [])
                            if i.get("system") == "https://fhir.nhs.uk/Id/nhs-number"), None)
                name = (resource.get("name") or [{}])[0]
                event = examples.patient_event(
                    "patient.registered.v1", patient_id=resource["id"], practice=practice,
                    nhs_number=nhs, family=name.get("family", ""),
                    given=" ".join(name.get("given", [])))
                await projections.apply_patient(uow, event.data, ends_prescribing=None)
                applied += 1
            await uow.commit()
    return applied


def authorisation_body(patient_id: str) -> dict[str, Any]:
    return examples.authorisation(patient_id)


def plan_for_issues_body(patient_id: str) -> dict[str, Any]:
    return examples.authorisation(patient_id, course=Course.CONTINUOUS, repeats=51)


def issue_body(plan_id: str) -> dict[str, Any]:
    return examples.issue(plan_id)
