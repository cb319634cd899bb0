"""Events: what the service publishes matches its schemas, and a death on Kafka cancels bookings."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from appointments.adapters.tables import inbox, outbox
from appointments.domain import appointment as appt
from appointments.entrypoints.consumer import HANDLERS, PATIENT_TOPIC
from appointments.events import APPOINTMENT_TOPIC, SCHEMA_DIR
from gpsoc_kit.audit import AUDIT_SCHEMA_DIR
from gpsoc_kit.consumer import ConsumerConfig, ConsumerRunner
from gpsoc_kit.db import asyncpg_url
from gpsoc_kit.events import CloudEvent, SchemaRegistry
from gpsoc_kit.relay import OutboxRelay, RelayConfig
from gpsoc_kit.testing.kafka import read_topic
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

SCHEMAS = SchemaRegistry(SCHEMA_DIR, AUDIT_SCHEMA_DIR)
# The producer owns the schema: patient-index's files, read where they live in the repo.
PATIENT_SCHEMAS = SchemaRegistry(
    Path(__file__).resolve().parents[3] / "patient-index/src/patient_index/events/schemas")


async def _outbox_for(database, patient_id: str) -> list[dict[str, Any]]:  # noqa: ANN001
    engine = create_async_engine(asyncpg_url(database.superuser_url))
    async with engine.connect() as conn:
        rows = await conn.execute(text("SELECT topic, payload FROM outbox WHERE message_key = :k "
                                       "ORDER BY seq"), {"k": patient_id})
        found = [{"topic": r.topic, **r.payload} for r in rows]
    await engine.dispose()
    return found


async def test_booked_arrived_fulfilled_and_cancelled_events_match_their_schemas(
    clinic, booking_for, database
):
    patient = await clinic.add_patient()
    soon, later = (await clinic.free_slots())[0], await clinic.slot_after(5)
    headers = clinic.headers
    attended = (await clinic.client.post("/Appointment", json=booking_for(soon, patient),
                                         headers=headers)).json()
    arrived = (await clinic.client.put(f"/Appointment/{attended['id']}",
                                       json=dict(attended, status="arrived"),
                                       headers={**headers, "If-Match": 'W/"1"'})).json()
    await clinic.client.put(f"/Appointment/{attended['id']}",
                            json=dict(arrived, status="fulfilled"),
                            headers={**headers, "If-Match": 'W/"2"'})
    cancelled = (await clinic.client.post("/Appointment", json=booking_for(later, patient),
                                          headers=headers)).json()
    await clinic.client.put(f"/Appointment/{cancelled['id']}",
                            json=dict(cancelled, status="cancelled",
                                      cancelationReason={"text": "Feeling better"}),
                            headers={**headers, "If-Match": 'W/"1"'})

    events = [e for e in await _outbox_for(database, patient) if e["topic"] == APPOINTMENT_TOPIC]
    assert [e["type"] for e in events] == [
        "appointment.booked.v1", "appointment.arrived.v1", "appointment.fulfilled.v1",
        "appointment.booked.v1", "appointment.cancelled.v1"]
    for event in events:
        SCHEMAS.validate(event)
        assert event["practice"] == clinic.practice and event["subject"] == patient
    assert events[0]["data"]["appointment"]["practitioner"] == clinic.practitioner_id
    assert events[0]["data"]["appointment"]["slotCategory"] == "general-consultation-routine"
    assert events[-1]["data"]["appointment"]["cancellationReason"] == "Feeling better"
    audits = [e for e in await _outbox_for(database, patient) if e["topic"] == "audit.events.v1"]
    assert [a["data"]["action"] for a in audits] == ["C", "U", "U", "C", "U"]
    for audit_event in audits:
        SCHEMAS.validate(audit_event)

    # A did-not-attend needs the appointment's time to have passed; its event is built the same way.
    noshow = dict(attended, status="noshow")
    SCHEMAS.validate(CloudEvent(
        type=appt.EventType.NOSHOW, source="urn:opengpsoc:appointments", subject=patient,
        practice=clinic.practice,
        data=appt.event_data(noshow, patient_id=patient, practitioner_id=clinic.practitioner_id,
                             slot_ids=[soon["id"]], slot_type="routine",
                             national_category="general-consultation-routine",
                             delivery_channel="In-person", cancellation_reason=None)))


def _patient_event(event_type: str, practice: str, patient_id: str, version_id: int,
                   **changes: Any) -> CloudEvent:
    patient = {"id": patient_id, "practice": practice, "nhsNumber": "9990000018",
               "family": "Ellis", "given": "Ada", "birthDate": "1941-02-03", "gender": "female",
               "active": True, "deceased": False, "deceasedDateTime": None,
               "generalPractitioner": None, **changes}
    event = CloudEvent(type=event_type, source="urn:opengpsoc:patient-index", subject=patient_id,
                       practice=practice, data={"patient": patient, "versionId": version_id})
    PATIENT_SCHEMAS.validate(event)  # we accept what patient-index promises to send
    return event


async def _group_at_end(bootstrap: str, topic: str, group: str) -> None:
    """Start a fresh consumer group at the end of the topic, so it reads only this test's events."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group,
                                enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)
                      or await _partitions(consumer, topic)]
        consumer.assign(partitions)
        await consumer.seek_to_end(*partitions)
        await consumer.commit({tp: await consumer.position(tp) for tp in partitions})
    finally:
        await consumer.stop()


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> set[int]:
    await consumer._client.force_metadata_update()  # noqa: SLF001 - no public refresh call
    return consumer.partitions_for_topic(topic) or set()


async def _eventually(check, timeout: float = 30) -> Any:  # noqa: ANN001
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = await check()
        if result or loop.time() > deadline:
            return result
        await asyncio.sleep(0.2)


async def test_a_patient_death_on_kafka_cancels_future_bookings_and_publishes_cancellations(
    clinic, booking_for, app, settings, test_stack
):
    bootstrap = test_stack.kafka_bootstrap
    group = f"appointments.patients-test-{uuid.uuid4().hex[:8]}"
    await _group_at_end(bootstrap, PATIENT_TOPIC, group)
    runner = ConsumerRunner(
        ConsumerConfig("appointments", group, (PATIENT_TOPIC,), bootstrap),
        unit_of_work=app.state.uow_factory, inbox=inbox, handlers=HANDLERS)
    consuming = asyncio.create_task(runner.run())
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    patient = str(uuid.uuid4())
    try:
        registered = _patient_event("patient.registered.v1", clinic.practice, patient, 1)
        await producer.send_and_wait(PATIENT_TOPIC, registered.to_bytes(), key=patient.encode())

        async def booked_twice() -> list[dict[str, Any]]:
            results = []
            for hours in (3, 6):
                response = await clinic.client.post(
                    "/Appointment", json=booking_for(await clinic.slot_after(hours), patient),
                    headers=clinic.headers)
                if response.status_code != 201:
                    return []  # the registration has not reached the projection yet
                results.append(response.json())
            return results

        appointments = await _eventually(booked_twice)
        assert len(appointments) == 2

        died = _patient_event("patient.deceased.v1", clinic.practice, patient, 2, deceased=True,
                              deceasedDateTime="2026-11-23T08:00:00Z")
        await producer.send_and_wait(PATIENT_TOPIC, died.to_bytes(), key=patient.encode())

        async def all_cancelled() -> bool:
            statuses = [(await clinic.client.get(f"/Appointment/{a['id']}",
                                                 headers=clinic.headers)).json()["status"]
                        for a in appointments]
            return statuses == ["cancelled", "cancelled"]

        assert await _eventually(all_cancelled)
    finally:
        runner.stop()
        await asyncio.wait_for(consuming, 20)
        await producer.stop()

    relay = OutboxRelay(RelayConfig("appointments", settings.database_url, bootstrap),
                        app.state.engine, outbox)
    relaying = asyncio.create_task(relay.run())
    try:
        async def published() -> list[Any]:
            messages = await read_topic(bootstrap, APPOINTMENT_TOPIC, expect=0, timeout=3,
                                        settle=0.5)
            mine = [m for m in messages if m.key and m.key.decode() == patient]
            return mine if len(mine) >= 4 else []

        messages = await _eventually(published, timeout=45)
    finally:
        relay.stop()
        await asyncio.wait_for(relaying, 20)
    envelopes = [json.loads(m.value) for m in messages]
    for envelope in envelopes:
        SCHEMAS.validate(envelope)
    cancellations = [e["data"]["appointment"] for e in envelopes
                     if e["type"] == "appointment.cancelled.v1"]
    assert sorted(c["id"] for c in cancellations) == sorted(a["id"] for a in appointments)
    assert {c["cancellationReason"] for c in cancellations} == {"Patient deceased"}
    assert [e["type"] for e in envelopes].count("appointment.booked.v1") == 2
