"""Prescribing end to end: authorise and issue through the gateway, and a death recorded in
the patient index stops the repeat through Kafka."""

from __future__ import annotations

from typing import Any

from gpsoc_kit.testing.fhir_factories import patient
from gpsoc_kit.testing.flows import eventually
from prescribing import examples


async def registered_patient(gateway, token) -> dict[str, Any]:  # noqa: ANN001
    response = await gateway.post(
        "/Patient", json=patient(family="Rxflow"), headers=token("receptionist")
    )
    assert response.status_code == 201
    return response.json()


async def authorise_when_known(gateway, headers, patient_id: str, **fields: Any) -> Any:  # noqa: ANN001
    """Authorise once patient.registered.v1 has reached prescribing's projection."""

    async def attempt() -> Any:
        response = await gateway.post(
            "/MedicationRequest", headers=headers, json=examples.authorisation(patient_id, **fields)
        )
        unknown = response.status_code == 422 and "not a patient of this practice" in response.text
        return None if unknown else response

    return await eventually(attempt)


async def test_authorise_issue_and_a_death_stops_the_repeat(gateway, token):
    person = await registered_patient(gateway, token)
    gp = token("gp")
    plan_response = await authorise_when_known(gateway, gp, person["id"])
    assert plan_response.status_code == 201, plan_response.text
    plan = plan_response.json()
    assert plan["intent"] == "plan"
    issued = await gateway.post(f"/MedicationRequest/{plan['id']}/$issue", headers=gp)
    assert issued.status_code == 201, issued.text
    assert issued.json()["basedOn"] == [{"reference": f"MedicationRequest/{plan['id']}"}]

    refused = await gateway.post(
        "/MedicationRequest",
        headers=token("receptionist"),
        json=examples.authorisation(person["id"]),
    )
    assert refused.status_code == 403

    died = dict(person, deceasedDateTime="2026-11-21T09:00:00+00:00")
    assert (await gateway.put(f"/Patient/{person['id']}", json=died, headers=gp)).status_code == 200

    async def stopped() -> Any:
        current = (await gateway.get(f"/MedicationRequest/{plan['id']}", headers=gp)).json()
        return current if current["status"] == "stopped" else None

    assert (await eventually(stopped))["statusReason"]["text"]
