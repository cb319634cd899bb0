"""An appointment lives in the appointment book of the practice whose slot it takes.

Today row-level security shows a caller only their own practice's slots, so the two are
always the same. A sharing agreement will let a clinician of a linked practice book into
another practice's shared slots; this test stands in for that agreement by running the
use case as the cluster superuser (which row-level security does not filter).
"""

from __future__ import annotations

import uuid

from appointments.config import Settings
from appointments.entrypoints.api.app import unit_of_work_factory
from appointments.service_layer import handlers
from gpsoc_kit.auth import Principal
from gpsoc_kit.db import create_engine
from sqlalchemy import text


async def test_a_booking_into_another_practices_slot_lives_in_the_slot_owners_book(
    clinic, booking_for, database
):
    owner = clinic.practice  # the practice whose rota the slot is on
    booker = "L" + uuid.uuid4().hex[:5].upper()  # a linked practice's receptionist
    slot = await clinic.slot_after(3)
    engine = create_engine(database.superuser_url, pool_size=2, max_overflow=0)
    factory = unit_of_work_factory(engine, Settings(database_url=database.superuser_url))
    principal = Principal(user_id=str(uuid.uuid4()), practice=booker,
                          roles=frozenset({"receptionist"}), name="Linked receptionist")
    try:
        patient = str(uuid.uuid4())
        async with factory(booker) as uow:
            await handlers.record_patient(uow, patient_id=patient, nhs_number=None,
                                          display="Linked Patient", active=True, deceased=False,
                                          version_id=1, cancellation_reason=None)
            await uow.commit()
        async with factory(booker) as uow:
            outcome = await handlers.book_appointment(uow, principal, booking_for(slot, patient),
                                                      idempotency_key=None, hold_token=None)
            await uow.commit()
        assert outcome.status == 201
        appointment_id = outcome.resource["id"]
        async with factory(booker) as uow:
            await handlers.update_appointment(
                uow, principal, appointment_id,
                dict(outcome.resource, status="cancelled",
                     cancelationReason={"text": "Booked at the wrong surgery"}),
                if_match=1)
            await uow.commit()

        async with engine.connect() as conn:
            async def practices(sql: str) -> list[str]:
                rows = await conn.execute(text(sql), {"a": appointment_id})
                return [row[0] for row in rows]

            assert await practices("SELECT practice_code FROM appointments WHERE id = :a") \
                == [owner]
            assert await practices("SELECT practice_code FROM appointment_slots "
                                   "WHERE appointment_id = :a") == [owner]
            assert await practices("SELECT practice_code FROM appointment_versions "
                                   "WHERE appointment_id = :a ORDER BY version_id") \
                == [owner, owner]
            events = (await conn.execute(text(
                "SELECT topic, practice_code, payload FROM outbox WHERE message_key = :p "
                "ORDER BY seq"), {"p": patient})).all()
    finally:
        await engine.dispose()

    appointment_events = [e for e in events if e.topic == "appointment.events.v1"]
    assert [e.payload["type"] for e in appointment_events] == [
        "appointment.booked.v1", "appointment.cancelled.v1"]
    # The appointment's events are the slot owner's book's...
    assert {(e.practice_code, e.payload["practice"]) for e in appointment_events} == {
        (owner, owner)}
    # ...while the audit records name the booker's practice, the actor's.
    audits = [e for e in events if e.topic == "audit.events.v1"
              and e.payload["data"]["entity"][-1]["what"]["reference"]
              == f"Appointment/{appointment_id}"]
    assert [a.payload["data"]["action"] for a in audits] == ["C", "U"]
    assert {(a.practice_code, a.payload["practice"], a.payload["data"]["source"]["site"])
            for a in audits} == {(booker, booker, booker)}
