"""The flows that make the platform one system, end to end through the gateway and Kafka:
an allergy recorded in clinical-notes blocks a prescription in prescribing; an arrived
appointment opens the consultation; an issued prescription reaches the record's timeline;
and Patient/$everything gathers all of it."""

from __future__ import annotations

import datetime as dt
from typing import Any

from devstack.demo import user_for
from gpsoc_kit.testing.fhir_factories import booking, patient
from gpsoc_kit.testing.flows import eventually
from prescribing import examples

SNOMED = "http://snomed.info/sct"


def coded(code: str, display: str) -> dict[str, Any]:
    return {"coding": [{"system": SNOMED, "code": code, "display": display}]}


def penicillin_allergy(patient_id: str) -> dict[str, Any]:
    return {
        "resourceType": "AllergyIntolerance",
        "clinicalStatus": {"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical",
            "code": "active"}]},
        "verificationStatus": {"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification",
            "code": "confirmed"}]},
        "category": ["medication"],
        "criticality": "high",
        "code": coded("91936005", "Allergy to penicillin"),
        "patient": {"reference": f"Patient/{patient_id}"},
        "recordedDate": "2026-11-01",
        "reaction": [{"manifestation": [coded("126485001", "Urticaria")], "severity": "moderate"}],
    }


async def new_patient(gateway, token) -> str:  # noqa: ANN001
    response = await gateway.post("/Patient", json=patient(family="Recordflow"),
                                  headers=token("receptionist"))
    assert response.status_code == 201
    return response.json()["id"]


async def when_known(send) -> Any:  # noqa: ANN001
    """Retry a write until the patient's registration has reached the service (422 before)."""

    async def attempt() -> Any:
        response = await send()
        not_yet = response.status_code == 422 and "Patient/" in response.text and (
            "not a patient of this practice" in response.text
            or "not registered" in response.text or "unknown" in response.text.lower())
        return None if not_yet else response

    return await eventually(attempt)


async def test_an_allergy_recorded_in_the_notes_blocks_a_prescription_within_seconds(
    gateway, token
):
    pid = await new_patient(gateway, token)
    gp = token("gp")
    recorded = await when_known(lambda: gateway.post("/AllergyIntolerance", headers=gp,
                                                     json=penicillin_allergy(pid)))
    assert recorded.status_code == 201, recorded.text

    # Wait until prescribing knows the patient (a harmless paracetamol plan succeeds) ...
    first = await when_known(lambda: gateway.post(
        "/MedicationRequest", headers=gp, json=examples.authorisation(pid)))
    assert first.status_code == 201, first.text

    # ... then amoxicillin must be refused once clinical.allergy-recorded.v1 has arrived.
    async def refused() -> Any:
        response = await gateway.post("/MedicationRequest", headers=gp, json=examples.authorisation(
            pid, code=examples.AMOXICILLIN_500_CAPSULES, course=examples.Course.ACUTE,
            quantity=21, unit="capsule", supply_days=7, dose=(1, "capsule"), times_a_day=3,
            dosage_text="One capsule three times a day"))
        if response.status_code == 201:
            raise AssertionError("amoxicillin was authorised despite a penicillin allergy")
        return response if response.status_code == 422 else None

    outcome = (await eventually(refused, timeout=30)).json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert any("allerg" in issue["diagnostics"].lower() for issue in outcome["issue"])


async def test_an_arrived_appointment_opens_the_consultation_and_everything_gathers_the_record(
    gateway, token
):
    pid = await new_patient(gateway, token)
    manager, reception, gp = token("practice-manager"), token("receptionist"), token("gp")
    doctor = user_for("gp", "A81001")
    schedule = await gateway.post("/Schedule", headers=manager, json={
        "resourceType": "Schedule",
        "actor": [{"reference": f"Practitioner/{doctor.id}"}, {"display": "Main surgery"}]})
    assert schedule.status_code == 201, schedule.text
    today = dt.datetime.now(dt.UTC).date()
    # Round-the-clock slots, so that a slot starts within the arrival window at any hour.
    session = await gateway.post(f"/Schedule/{schedule.json()['id']}/$add-session",
                                 headers=manager, json={"resourceType": "Parameters", "parameter": [
        *({"name": "weekday", "valueCode": d} for d in
          ("mon", "tue", "wed", "thu", "fri", "sat", "sun")),
        {"name": "start", "valueString": "00:00:00"}, {"name": "end", "valueString": "23:59:59"},
        {"name": "slotMinutes", "valueInteger": 30}, {"name": "slotType", "valueString": "routine"},
        {"name": "effectiveFrom", "valueDate": (today - dt.timedelta(days=1)).isoformat()},
        {"name": "effectiveTo", "valueDate": (today + dt.timedelta(days=2)).isoformat()}]})
    assert session.status_code == 201, session.text
    now = dt.datetime.now(dt.UTC)
    slots = (await gateway.get("/Slot", headers=reception, params=[
        ("start", "ge" + (now + dt.timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")),
        ("start", "le" + (now + dt.timedelta(hours=6)).strftime("%Y-%m-%dT%H:%M:%SZ")),
        ("status", "free"), ("schedule", f"Schedule/{schedule.json()['id']}")])).json()
    # The earliest: under an hour away at any time of day (a slot that would overrun
    # midnight is not generated, so late evening waits for the 00:00 slot).
    slot = min((e["resource"] for e in slots["entry"] if e["search"]["mode"] == "match"),
               key=lambda s: s["start"])
    booked = await when_known(lambda: gateway.post(
        "/Appointment", headers=reception, json=booking(slot, pid, "Chest pain review")))
    assert booked.status_code == 201, booked.text
    appointment = booked.json()
    arrived = await gateway.put(f"/Appointment/{appointment['id']}", headers={
        **reception, "If-Match": booked.headers["etag"]}, json=dict(appointment, status="arrived"))
    assert arrived.status_code == 200, arrived.text

    async def consultation() -> Any:
        found = await gateway.get("/Encounter", headers=gp,
                                  params={"patient": pid, "appointment": appointment["id"]})
        entries = found.json().get("entry", []) if found.status_code == 200 else []
        return entries[0]["resource"] if entries else None

    encounter = await eventually(consultation)
    assert encounter["status"] == "in-progress"

    plan = await when_known(lambda: gateway.post("/MedicationRequest", headers=gp,
                                                 json=examples.authorisation(pid)))
    assert plan.status_code == 201, plan.text
    issued = await gateway.post(f"/MedicationRequest/{plan.json()['id']}/$issue", headers=gp)
    assert issued.status_code == 201, issued.text

    async def on_timeline() -> Any:
        summary = await gateway.get("/Encounter/$patient-summary", headers=gp,
                                    params={"patient": pid})
        types = [e["resource"]["resourceType"] for e in summary.json().get("entry", [])]
        return summary.json() if "MedicationStatement" in types else None

    await eventually(on_timeline)

    everything = await gateway.get(f"/Patient/{pid}/$everything", headers=gp)
    assert everything.status_code == 200, everything.text
    kinds = {e["resource"]["resourceType"] for e in everything.json()["entry"]}
    assert {"Patient", "Appointment", "MedicationRequest"} <= kinds
    assert "OperationOutcome" not in kinds, everything.text  # every service answered
