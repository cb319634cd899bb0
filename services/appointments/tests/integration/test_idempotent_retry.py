"""A client that timed out and retries with the same Idempotency-Key books once and gets the answer."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from gpsoc_kit.db import asyncpg_url
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine


async def test_a_retry_after_a_client_timeout_returns_the_original_booking(
    clinic, booking_for, database
):
    patient = await clinic.add_patient()
    slot = await clinic.slot_after(3)
    headers = {**clinic.headers, "Idempotency-Key": str(uuid.uuid4())}
    body = booking_for(slot, patient)
    engine = create_async_engine(asyncpg_url(database.superuser_url))
    try:
        async with engine.connect() as blocker:
            # Another transaction holds the slot's row, so the first attempt is slow to answer.
            await blocker.execute(text("SELECT id FROM slots WHERE id = :s FOR UPDATE"),
                                  {"s": slot["id"]})
            first = asyncio.create_task(clinic.client.post("/Appointment", json=body,
                                                           headers=headers))
            with pytest.raises(TimeoutError):  # the client gives up waiting
                await asyncio.wait_for(asyncio.shield(first), 0.5)
            retry = asyncio.create_task(clinic.client.post("/Appointment", json=body,
                                                           headers=headers))
            await asyncio.sleep(0.2)
            assert not retry.done()  # it waits for the first attempt's outcome
            await blocker.rollback()
        original, retried = await asyncio.wait_for(asyncio.gather(first, retry), 30)
        async with engine.connect() as conn:
            count = await conn.scalar(
                text("SELECT count(*) FROM appointments WHERE patient_id = :p"), {"p": patient})
    finally:
        await engine.dispose()
    assert original.status_code == retried.status_code == 201
    assert retried.json() == original.json()
    assert count == 1
