"""Fixtures of the appointments tests: a migrated database, the app in-process, a clinic per test."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from appointments.config import Settings
from appointments.entrypoints.api.app import create_app
from gpsoc_kit.testing.service_fixtures import ServiceUnderTest, service_fixtures

SERVICE_DIR = Path(__file__).resolve().parents[1]
# Not "appointments": the end-to-end platform owns that database name in the test profile.
TEST_DB = "appointments_t"


database, settings, app, client, practice, auth = service_fixtures(
    ServiceUnderTest(
        test_db=TEST_DB, service_dir=SERVICE_DIR, settings=Settings, create_app=create_app,
        extra_settings=lambda database: {"db_pool_size": 10, "db_max_overflow": 10},
        default_role="receptionist", client_timeout=30,
    )
)


@dataclass
class Clinic:
    """One clinician's schedule in a test's practice, with slots every half hour."""

    practice: str
    practitioner_id: str
    schedule_id: str
    client: httpx.AsyncClient
    headers: dict[str, str]
    uow_factory: Any

    async def free_slots(self, *, days: int = 2, headers: dict[str, str] | None = None,
                         **params: str) -> list[dict[str, Any]]:
        now = dt.datetime.now(dt.UTC)
        query = [("start", "ge" + now.isoformat().replace("+00:00", "Z")),
                 ("start", "le" + (now + dt.timedelta(days=days)).isoformat()
                  .replace("+00:00", "Z")),
                 ("status", "free"), ("schedule", f"Schedule/{self.schedule_id}"),
                 ("_count", "500"), *params.items()]
        response = await self.client.get("/Slot", params=query, headers=headers or self.headers)
        assert response.status_code == 200, response.text
        return [e["resource"] for e in response.json()["entry"]
                if e["search"]["mode"] == "match"]

    async def slot_after(self, hours: float, *, headers: dict[str, str] | None = None,
                         **params: str) -> dict[str, Any]:
        """The first free slot starting at least `hours` from now."""
        after = dt.datetime.now(dt.UTC) + dt.timedelta(hours=hours)
        return next(s for s in await self.free_slots(headers=headers, **params)
                    if dt.datetime.fromisoformat(s["start"].replace("Z", "+00:00")) >= after)

    async def add_patient(self, *, deceased: bool = False, active: bool = True) -> str:
        from appointments.service_layer import handlers

        patient_id = str(uuid.uuid4())
        async with self.uow_factory(self.practice) as uow:
            await handlers.record_patient(uow, patient_id=patient_id, nhs_number=None,
                                          display="Test Patient", active=active,
                                          deceased=deceased, version_id=1,
                                          cancellation_reason=None)
            await uow.commit()
        return patient_id

    async def add_session(self, **parameters: Any) -> dict[str, Any]:
        return await add_session(self.client, self.headers, self.schedule_id, **parameters)


async def add_session(client: httpx.AsyncClient, headers: dict[str, str], schedule_id: str,
                      **values: Any) -> dict[str, Any]:
    parameter = [{"name": "weekday", "valueCode": day}
                 for day in values.pop("weekdays", ["mon", "tue", "wed", "thu", "fri", "sat",
                                                    "sun"])]
    kinds = {"slotMinutes": "valueInteger", "releaseHours": "valueInteger",
             "effectiveFrom": "valueDate", "effectiveTo": "valueDate"}
    for name, value in values.items():
        if isinstance(value, list):
            parameter += [{"name": name, "valueCode": v} for v in value]
        else:
            parameter.append({"name": name, kinds.get(name, "valueString"): value})
    response = await client.post(f"/Schedule/{schedule_id}/$add-session",
                                 json={"resourceType": "Parameters", "parameter": parameter},
                                 headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


async def make_clinic(client: httpx.AsyncClient, app: Any, auth: Any, practice: str, *,
                      slot_type: str = "routine", **session: Any) -> Clinic:
    from appointments.service_layer import handlers

    practitioner_id = str(uuid.uuid4())
    async with app.state.uow_factory(practice) as uow:
        await handlers.add_staff(uow, {"resourceType": "Practitioner", "id": practitioner_id,
                                       "name": [{"family": "Khan", "given": ["Amira"],
                                                 "prefix": ["Dr"]}]},
                                 role="gp", display="Dr Amira Khan")
        await uow.commit()
    manager = auth("practice-manager")
    response = await client.post("/Schedule", json={
        "resourceType": "Schedule",
        "actor": [{"reference": f"Practitioner/{practitioner_id}"}, {"display": "Main surgery"}],
    }, headers=manager)
    assert response.status_code == 201, response.text
    schedule_id = response.json()["id"]
    today = dt.datetime.now(dt.UTC).date()
    # Half-hourly slots round the clock for three days: a slot is always less than an hour away.
    values = {"start": "00:00:00", "end": "23:59:59", "slotMinutes": 30, "slotType": slot_type,
              "effectiveFrom": (today - dt.timedelta(days=1)).isoformat(),
              "effectiveTo": (today + dt.timedelta(days=2)).isoformat(), **session}
    await add_session(client, manager, schedule_id, **values)
    return Clinic(practice, practitioner_id, schedule_id, client, auth("receptionist"),
                  app.state.uow_factory)


@pytest.fixture
async def clinic(client: httpx.AsyncClient, app: Any, auth: Any, practice: str) -> Clinic:
    return await make_clinic(client, app, auth, practice)


def booking(slot: dict[str, Any], patient_id: str, **fields: Any) -> dict[str, Any]:
    """A GP Connect-style booking request for one slot."""
    return {
        "resourceType": "Appointment",
        "status": "booked",
        "slot": [{"reference": f"Slot/{slot['id']}"}],
        "start": slot["start"],
        "end": slot["end"],
        "participant": [{"actor": {"reference": f"Patient/{patient_id}"}, "status": "accepted"}],
        "description": "Cough for three weeks",
        **fields,
    }


@pytest.fixture
def booking_for():  # noqa: ANN201
    """`booking_for(slot, patient_id, **fields)` -> an Appointment to POST."""
    return booking


@pytest.fixture
def clinic_factory(client: httpx.AsyncClient, app: Any, auth: Any, practice: str):  # noqa: ANN201
    """`await clinic_factory(slot_type=..., releaseHours=...)` -> another Clinic in this practice."""

    async def make(**options: Any) -> Clinic:
        return await make_clinic(client, app, auth, practice, **options)

    return make
