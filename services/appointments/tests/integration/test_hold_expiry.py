"""An expired hold frees the slot by itself: at once for readers, and in storage by the sweep."""

from __future__ import annotations

import asyncio
import uuid

from appointments.entrypoints.housekeeping import Housekeeper
from appointments.service_layer import handlers
from gpsoc_kit.auth import Principal
from gpsoc_kit.db import asyncpg_url
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine


async def test_an_expired_hold_frees_the_slot_for_anyone(clinic, booking_for, app, database):
    first, second = (await clinic.free_slots())[4:6]
    holder = Principal(user_id=str(uuid.uuid4()), practice=clinic.practice,
                       roles=frozenset({"receptionist"}))
    async with clinic.uow_factory(clinic.practice) as uow:
        for slot in (first, second):
            await handlers.hold_slot(uow, holder, slot["id"], hold_seconds=1)
        await uow.commit()
    held = await clinic.client.get(f"/Slot/{first['id']}", headers=clinic.headers)
    assert held.json()["status"] == "busy-tentative"

    await asyncio.sleep(1.2)
    read = await clinic.client.get(f"/Slot/{first['id']}", headers=clinic.headers)
    assert read.json()["status"] == "free"
    # Found again, exactly as read: free, in its second version (the hold changed it).
    found = {s["id"]: s for s in await clinic.free_slots()}
    assert found[first["id"]] == read.json() and read.json()["meta"]["versionId"] == "2"
    booked = await clinic.client.post("/Appointment",
                                      json=booking_for(first, await clinic.add_patient()),
                                      headers=clinic.headers)
    assert booked.status_code == 201, booked.text

    housekeeper = Housekeeper(app.state.engine, clinic.uow_factory, interval_seconds=60,
                              window_days=2)
    totals = await housekeeper.run_once()
    assert totals["holds_released"] >= 1
    engine = create_async_engine(asyncpg_url(database.superuser_url))
    async with engine.connect() as conn:
        stored = (await conn.execute(
            text("SELECT status, hold_token FROM slots WHERE id = :s"), {"s": second["id"]})).one()
    await engine.dispose()
    assert stored.status == "free" and stored.hold_token is None
