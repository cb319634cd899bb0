"""Loading the demo rotas: the practices' staff, and a schedule with sessions per clinician.

Idempotent: ids are derived from the clinician's, so a second run adds nothing. Demo
patients are not loaded here: they arrive on patient.events.v1 when the patient
index registers them, and the consumer builds the projection as it would for any patient.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from gpsoc_kit.uow import UnitOfWork

from ..adapters.repository import ScheduleRepository
from . import handlers

SEED_NAMESPACE = uuid.UUID("0b8a3c5e-6f41-4d2a-9a8e-2f7f5f0d9c11")
WORKING_DAYS = ["mon", "tue", "wed", "thu", "fri"]
CLINICAL_ROLES = ("gp", "nurse", "pharmacist")
LOCATION = "Main surgery"

# A morning and an afternoon per clinician, every working day.
SESSIONS: dict[str, list[dict[str, Any]]] = {
    "gp": [
        {"start": "09:00", "end": "12:00", "slotMinutes": 10, "slotType": "routine"},
        {"start": "14:00", "end": "15:00", "slotMinutes": 10, "slotType": "urgent"},
        {"start": "15:00", "end": "17:00", "slotMinutes": 10, "slotType": "routine",
         "deliveryChannel": "Telephone"},
    ],
    "nurse": [
        {"start": "08:30", "end": "12:30", "slotMinutes": 15, "slotType": "routine"},
        {"start": "14:00", "end": "16:00", "slotMinutes": 20, "slotType": "review"},
    ],
    "pharmacist": [
        {"start": "09:00", "end": "12:00", "slotMinutes": 20, "slotType": "medication-review",
         "deliveryChannel": "Telephone"},
        {"start": "13:30", "end": "16:30", "slotMinutes": 15, "slotType": "routine",
         "deliveryChannel": "Video"},
    ],
}


def _parameters(session: dict[str, Any]) -> dict[str, Any]:
    parameter = [{"name": "weekday", "valueCode": day} for day in WORKING_DAYS]
    parameter += [{"name": "start", "valueTime": session["start"] + ":00"},
                  {"name": "end", "valueTime": session["end"] + ":00"},
                  {"name": "slotMinutes", "valueInteger": session["slotMinutes"]},
                  {"name": "slotType", "valueCode": session["slotType"]},
                  {"name": "deliveryChannel",
                   "valueCode": session.get("deliveryChannel", "In-person")}]
    return {"resourceType": "Parameters", "parameter": parameter}


async def seed_demo(dataset: dict[str, Any], uow_factory: Callable[[str], UnitOfWork], *,
                    window_days: int) -> dict[str, int]:
    counts: dict[str, int] = defaultdict(int)
    by_practice: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for member in dataset["practitioners"]:
        by_practice[member["practice"]].append(member)
    for practice, members in by_practice.items():
        async with uow_factory(practice) as uow:
            for member in members:
                counts["staff"] += await handlers.add_staff(
                    uow, member["resource"], role=member["role"], display=member["display"])
            for member in members:
                if member["role"] not in CLINICAL_ROLES:
                    continue
                practitioner_id = member["resource"]["id"]
                schedule_id = str(uuid.uuid5(SEED_NAMESPACE, f"{practitioner_id}:schedule"))
                if await ScheduleRepository(uow.conn).get(schedule_id) is not None:
                    continue
                await handlers.create_schedule(uow, {
                    "resourceType": "Schedule",
                    "actor": [{"reference": f"Practitioner/{practitioner_id}"},
                              {"display": LOCATION}],
                }, window_days=window_days, schedule_id=schedule_id)
                counts["schedules"] += 1
                for n, session in enumerate(SESSIONS[member["role"]]):
                    added = await handlers.add_session(
                        uow, schedule_id, _parameters(session), window_days=window_days,
                        session_id=str(uuid.uuid5(SEED_NAMESPACE, f"{schedule_id}:session:{n}")))
                    counts["slots"] += next(p["valueInteger"] for p in added["parameter"]
                                            if p["name"] == "slotsGenerated")
            await uow.commit()
    return dict(counts)
