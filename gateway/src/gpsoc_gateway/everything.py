"""Patient/{id}/$everything: one Bundle of the patient's record, gathered from every service.

The parts are fetched in parallel, each with a timeout. A service that is slow or
down degrades the answer (an OperationOutcome warning in the Bundle says what is
missing) instead of failing it: a clinician with a partial record and a clear
warning is better off than one with an error page.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import httpx
from gpsoc_kit.fhir import FhirError, Issue, operation_outcome
from gpsoc_kit.telemetry import inject_headers, request_id_var

from .routing import RouteTable


@dataclass(frozen=True)
class RecordPart:
    """One search whose results belong in the record, and the service that answers it."""

    label: str
    resource_type: str
    query: str  # with {patient} for the patient id


RECORD_PARTS: tuple[RecordPart, ...] = (
    RecordPart("appointments", "Appointment", "patient={patient}&_count=100"),
    RecordPart("active medication", "MedicationRequest",
               "patient={patient}&intent=plan&status=active&_count=100"),
    RecordPart("problems", "Condition", "patient={patient}&_count=100"),
    RecordPart("allergies", "AllergyIntolerance", "patient={patient}&_count=100"),
    RecordPart("recent observations", "Observation", "patient={patient}&_sort=-date&_count=50"),
)


async def patient_everything(
    client: httpx.AsyncClient,
    routes: RouteTable,
    *,
    patient_id: str,
    authorization: str,
    base_url: str,
    timeout: float,
) -> dict[str, Any]:
    headers = {"authorization": authorization, "accept": "application/fhir+json"}
    if (request_id := request_id_var.get()) is not None:
        headers["x-request-id"] = request_id
    inject_headers(headers)

    patient_upstream = routes.for_resource_type("Patient")
    if patient_upstream is None:
        raise FhirError(503, "The patient index is not available", code="transient")
    try:
        patient_response = await client.get(
            f"{patient_upstream.base_url}/Patient/{patient_id}", headers=headers, timeout=timeout
        )
    except httpx.HTTPError:
        raise FhirError(502, "The patient index is unavailable", code="transient") from None
    if patient_response.status_code != 200:
        # 404 for another practice's patient, exactly as a plain read would answer.
        raise FhirError(
            patient_response.status_code,
            patient_response.json()
            .get("issue", [{}])[0]
            .get("diagnostics", "Patient not available"),
        )
    patient = patient_response.json()

    async def fetch(part: RecordPart) -> tuple[RecordPart, list[dict[str, Any]] | str]:
        upstream = routes.for_resource_type(part.resource_type)
        if upstream is None:
            return part, "is not served by this deployment"
        url = f"{upstream.base_url}/{part.resource_type}?{part.query.format(patient=patient_id)}"
        try:
            response = await asyncio.wait_for(client.get(url, headers=headers), timeout)
        except (TimeoutError, httpx.TimeoutException):
            return part, f"did not arrive in time from {upstream.name}"
        except httpx.HTTPError:
            return part, f"could not be fetched: {upstream.name} is unavailable"
        if response.status_code != 200:
            return part, f"could not be fetched: {upstream.name} answered {response.status_code}"
        return part, [
            e["resource"]
            for e in response.json().get("entry", [])
            if e.get("search", {}).get("mode", "match") == "match"
        ]

    results = await asyncio.gather(*(fetch(part) for part in RECORD_PARTS))
    resources: list[dict[str, Any]] = [patient]
    warnings: list[Issue] = []
    for part, outcome in results:
        if isinstance(outcome, str):
            warnings.append(
                Issue(
                    f"The patient's {part.label} {outcome}; this record is incomplete",
                    severity="warning",
                    code="incomplete",
                )
            )
        else:
            resources += outcome
    entries = [
        {
            "fullUrl": f"{base_url}/{r['resourceType']}/{r['id']}",
            "resource": r,
            "search": {"mode": "match"},
        }
        for r in resources
    ]
    if warnings:
        outcome_resource = operation_outcome(warnings)
        outcome_resource["id"] = "everything-warnings"
        entries.append({"resource": outcome_resource, "search": {"mode": "outcome"}})
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(resources),
        "link": [{"relation": "self", "url": f"{base_url}/Patient/{patient_id}/$everything"}],
        "entry": entries,
    }
