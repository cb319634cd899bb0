"""Appointments end to end: book through the gateway, and a death recorded in the patient
index cancels the booking through Kafka, with no call between the services."""

from __future__ import annotations

import datetime as dt
from typing import Any

from gpsoc_kit.testing.fhir_factories import booking, patient
from gpsoc_kit.testing.flows import eventually


async def free_slots(gateway, headers) -> list[dict[str, Any]]:  # noqa: ANN001
    now = dt.datetime.now(dt.UTC)
    params = [
        ("start", "ge" + (now + dt.timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ")),
        ("start", "le" + (now + dt.timedelta(days=7)).strftime("%Y-%m-%dT%H:%M:%SZ")),
        ("status", "free"),
        # Routine: the front desk books these (not, say, a medication review), whatever the
        # time of day makes the earliest free slots.
        ("service-type", "routine"),
        ("_include", "Slot:schedule"),
        ("_count", "100"),
    ]
    response = await gateway.get("/Slot", params=params, headers=headers)
    assert response.status_code == 200, response.text
    return [e["resource"] for e in response.json()["entry"] if e["search"]["mode"] == "match"]


async def test_book_a_demo_slot_then_a_recorded_death_cancels_it(gateway, token):
    reception = token("receptionist", "A81001")
    registered = await gateway.post("/Patient", json=patient(family="Flowtest"), headers=reception)
    assert registered.status_code == 201
    pid = registered.json()["id"]
    slots = await free_slots(gateway, reception)
    assert slots, "the demo rotas give free slots in the next week"

    async def book() -> Any:
        slot = (await free_slots(gateway, reception))[0]
        response = await gateway.post(
            "/Appointment", headers=reception, json=booking(slot, pid, "Review of cough")
        )
        # 422 until patient.registered.v1 has reached the appointments projection.
        return response if response.status_code == 201 else None

    booked = (await eventually(book)).json()
    assert booked["status"] == "booked"

    died = dict(registered.json(), deceasedDateTime="2026-11-20T08:00:00+00:00")
    assert (await gateway.put(f"/Patient/{pid}", json=died, headers=token("gp"))).status_code == 200

    async def cancelled() -> Any:
        current = (await gateway.get(f"/Appointment/{booked['id']}", headers=reception)).json()
        return current if current["status"] == "cancelled" else None

    appointment = await eventually(cancelled)
    assert "deceased" in appointment["cancelationReason"]["text"].lower()


async def test_another_practice_cannot_see_or_book_this_practice_slots(gateway, token):
    mine = await free_slots(gateway, token("receptionist", "A81001"))
    theirs = await free_slots(gateway, token("receptionist", "A81002"))
    assert mine and theirs
    assert not {s["id"] for s in mine} & {s["id"] for s in theirs}
    response = await gateway.get(f"/Slot/{mine[0]['id']}", headers=token("gp", "A81002"))
    assert response.status_code == 404
