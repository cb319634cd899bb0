"""Double booking is impossible: concurrent bookings of one slot, and the bench's own checks."""

from __future__ import annotations

import asyncio
import datetime as dt
import importlib.util
import sys
import uuid
from pathlib import Path

from gpsoc_kit.db import asyncpg_url
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

BENCH_SUPPORT = Path(__file__).resolve().parents[2] / "bench_support.py"


def _bench_support():  # noqa: ANN202
    spec = importlib.util.spec_from_file_location("appointments_bench_support", BENCH_SUPPORT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while being defined
    spec.loader.exec_module(module)
    return module


async def _scalar(database, sql: str, **params):  # noqa: ANN001, ANN202
    engine = create_async_engine(asyncpg_url(database.superuser_url))
    try:
        async with engine.connect() as conn:
            return await conn.scalar(text(sql), params)
    finally:
        await engine.dispose()


async def test_fifty_concurrent_bookings_of_one_slot_give_one_201_and_49_409(
    clinic, booking_for, database
):
    slot = await clinic.slot_after(3)
    patients = [await clinic.add_patient() for _ in range(50)]
    responses = await asyncio.wait_for(asyncio.gather(*(
        clinic.client.post("/Appointment", json=booking_for(slot, patient),
                           headers=clinic.headers)
        for patient in patients)), 120)
    statuses = [r.status_code for r in responses]
    assert statuses.count(201) == 1, statuses
    assert statuses.count(409) == 49, statuses
    assert {r.json()["issue"][0]["details"]["coding"][0]["code"]
            for r in responses if r.status_code == 409} == {"DUPLICATE_REJECTED"}
    booked = await _scalar(database, "SELECT count(*) FROM appointment_slots WHERE slot_id = :s",
                           s=slot["id"])
    assert booked == 1
    assert await _scalar(database, _bench_support().double_bookings_query()) == 0


async def test_bench_loader_makes_bookable_slots_idempotently_as_the_owner(database, client,
                                                                          auth):
    bench = _bench_support()
    practice = "B" + uuid.uuid4().hex[:5].upper()
    first_day = dt.date.today() + dt.timedelta(days=1)
    loaded = await bench.load_bench_slots(database.owner_url, practices=[practice],
                                          clinicians=2, days=2, slots_per_day=3,
                                          first_day=first_day)
    assert loaded.slots_inserted == 2 * 2 * 3
    again = await bench.load_bench_slots(database.owner_url, practices=[practice],
                                         clinicians=2, days=2, slots_per_day=3,
                                         first_day=first_day)
    assert again.slots_inserted == 0
    search = await client.get("/Slot", params=[
        ("start", f"ge{first_day}"), ("start", f"le{first_day + dt.timedelta(days=1)}"),
        ("_include:recurse", "Schedule:actor:Practitioner"), ("_include", "Slot:schedule")],
        headers=auth(practice_code=practice))
    assert search.status_code == 200, search.text
    bundle = search.json()
    assert bundle["total"] == 12
    assert {e["resource"]["resourceType"] for e in bundle["entry"]} == {
        "Slot", "Schedule", "Practitioner"}
    first = min(e["resource"]["start"] for e in bundle["entry"]
                if e["resource"]["resourceType"] == "Slot")
    assert first.startswith(first_day.isoformat())
