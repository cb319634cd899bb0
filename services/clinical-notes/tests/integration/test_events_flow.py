"""Events in and out on the real Kafka: what the record publishes matches its schemas, and the
real consumer opens one consultation per arrived appointment, however often it is delivered."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer
from clinical_notes.adapters.tables import inbox, outbox
from clinical_notes.entrypoints.api.app import unit_of_work_factory
from clinical_notes.entrypoints.consumer import HANDLERS, TOPICS
from clinical_notes.events import SCHEMA_DIR
from clinical_notes.examples import allergy, condition, encounter, height, no_known_allergy, weight
from gpsoc_kit.audit import AUDIT_SCHEMA_DIR
from gpsoc_kit.consumer import ConsumerConfig, ConsumerRunner
from gpsoc_kit.db import asyncpg_url
from gpsoc_kit.events import CloudEvent, SchemaRegistry
from gpsoc_kit.relay import OutboxRelay, RelayConfig
from gpsoc_kit.testing.kafka import position_group_at_end, read_topic
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

REPO = Path(__file__).resolve().parents[4]
OUR_SCHEMAS = SchemaRegistry(SCHEMA_DIR, AUDIT_SCHEMA_DIR)
PATIENT_INDEX_SCHEMAS = SchemaRegistry(
    REPO / "services/patient-index/src/patient_index/events/schemas"
)
DEADLINE_SECONDS = 30
# Joining a new consumer group on the shared test broker took 9 to 20 s, once over 30 s.
CONSUMER_DEADLINE_SECONDS = 60


async def test_published_clinical_events_reach_kafka_and_match_their_schemas(
    client, auth, register, app, settings, test_stack
):
    patient = await register()
    headers = auth()

    async def post(resource: dict[str, Any]) -> dict[str, Any]:
        response = await client.post(f"/{resource['resourceType']}", json=resource, headers=headers)
        assert response.status_code == 201, response.text
        return response.json()

    problem = await post(condition(patient))
    await client.put(
        f"/Condition/{problem['id']}",
        headers=headers,
        json=condition(
            patient, clinical="resolved", abatementDateTime="2026-01-01", id=problem["id"]
        ),
    )
    await post(no_known_allergy(patient))
    await post(allergy(patient))  # supersedes the statement: allergy-updated, then allergy-recorded
    await post(height(patient, 1.8))
    heavy = await post(weight(patient, 81))  # and its BMI
    await post(encounter(patient))
    marked = await client.post(
        f"/Observation/{heavy['id']}/$entered-in-error",
        headers=headers,
        json={
            "resourceType": "Parameters",
            "parameter": [{"name": "reason", "valueString": "Scales not zeroed"}],
        },
    )
    assert marked.status_code == 200, marked.text

    relay = OutboxRelay(
        RelayConfig("clinical-notes", settings.database_url, test_stack.kafka_bootstrap),
        app.state.engine,
        outbox,
    )
    task = asyncio.create_task(relay.run())
    try:
        messages = await _for_key(test_stack, "clinical.events.v1", patient, expect=11)
    finally:
        relay.stop()
        await asyncio.wait_for(task, 20)

    envelopes = [json.loads(m.value) for m in messages]
    for envelope in envelopes:
        OUR_SCHEMAS.validate(envelope)
    assert [e["type"].removeprefix("clinical.") for e in envelopes] == [
        "condition-recorded.v1",
        "condition-updated.v1",
        "allergy-recorded.v1",
        "allergy-updated.v1",
        "allergy-recorded.v1",
        "observation-recorded.v1",
        "observation-recorded.v1",
        "observation-recorded.v1",
        "consultation-recorded.v1",
        "entry-entered-in-error.v1",
        "entry-entered-in-error.v1",
    ]
    statement = envelopes[2]["data"]["allergy"]
    assert statement["noKnownAllergies"] is True and statement["code"]["code"] == "716186003"
    bmi = envelopes[7]["data"]["observation"]
    assert bmi["derived"] is True and bmi["value"] == {"value": 25.0, "unit": "kg/m2"}
    assert envelopes[9]["data"] == {
        "resourceType": "Observation",
        "id": heavy["id"],
        "patient": patient,
        "reason": "Scales not zeroed",
    }
    # The BMI computed from the wrong weight goes with it.
    assert envelopes[10]["data"]["id"] == envelopes[7]["data"]["observation"]["id"]


async def test_arrived_appointment_opens_one_consultation_through_the_real_consumer(
    client, auth, app, settings, database, test_stack, practice
):
    patient, practitioner = str(uuid.uuid4()), str(uuid.uuid4())
    first_appointment, second_appointment = str(uuid.uuid4()), str(uuid.uuid4())
    registered = _event(
        "patient.registered.v1",
        "urn:opengpsoc:patient-index",
        patient,
        practice,
        {
            "patient": {
                "id": patient,
                "practice": practice,
                "nhsNumber": "9990000018",
                "family": "Tester",
                "given": "Ann",
                "birthDate": "1970-01-01",
                "gender": "female",
                "active": True,
                "deceased": False,
                "deceasedDateTime": None,
                "generalPractitioner": None,
            },
            "versionId": 1,
        },
    )
    PATIENT_INDEX_SCHEMAS.validate(registered)
    arrived = _arrival(patient, practice, first_appointment, practitioner)
    redelivered_under_new_id = _arrival(patient, practice, first_appointment, practitioner)
    later = _arrival(patient, practice, second_appointment, practitioner)
    issued = _event(
        "prescription.issued.v1",
        "urn:opengpsoc:prescribing",
        patient,
        practice,
        {
            "medicationRequest": {
                "id": str(uuid.uuid4()),
                "patient": patient,
                "intent": "order",
                "basedOn": str(uuid.uuid4()),
                "medication": {
                    "system": "https://dmd.nhs.uk",
                    "code": "39732311000001104",
                    "display": "Amoxicillin 500mg capsules",
                },
                "courseOfTherapyType": "acute",
                "dosageText": "One capsule three times a day",
                "quantity": {"value": 15, "unit": "capsule"},
                "issueNumber": 1,
                "authoredOn": "2026-02-01T10:00:00Z",
                "prescriber": practitioner,
                "status": "active",
            }
        },
    )

    # A group of this test's own (the platform's consumer, group clinical-notes.record, may
    # be running against the same broker), starting from now, not from the topics' history.
    group = f"clinical-notes.test-{uuid.uuid4().hex[:8]}"
    await position_group_at_end(test_stack.kafka_bootstrap, group, TOPICS)
    runner = ConsumerRunner(
        ConsumerConfig("clinical-notes", group, TOPICS, test_stack.kafka_bootstrap),
        unit_of_work=unit_of_work_factory(app.state.engine, settings),
        inbox=inbox,
        handlers=HANDLERS,
    )
    task = asyncio.create_task(runner.run())
    producer = AIOKafkaProducer(bootstrap_servers=test_stack.kafka_bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(
            "patient.events.v1", json.dumps(registered).encode(), key=patient.encode()
        )
        # The same event twice (a redelivery), the same arrival again under a new event id,
        # then a later arrival on the same partition: once it shows, the others were handled.
        for envelope in (arrived, arrived, redelivered_under_new_id, later):
            await producer.send_and_wait(
                "appointment.events.v1", json.dumps(envelope).encode(), key=patient.encode()
            )
        await producer.send_and_wait(
            "prescription.events.v1", json.dumps(issued).encode(), key=patient.encode()
        )
        summary = await _summary_when(
            client,
            auth(),
            patient,
            lambda types: types.count("Encounter") == 2 and "MedicationStatement" in types,
        )
    finally:
        await producer.stop()
        runner.stop()
        await asyncio.wait_for(task, 20)

    consultations = [
        e["resource"] for e in summary["entry"] if e["resource"]["resourceType"] == "Encounter"
    ]
    draft = next(
        c
        for c in consultations
        if c["appointment"] == [{"reference": f"Appointment/{first_appointment}"}]
    )
    assert draft["status"] == "in-progress" and draft["class"]["code"] == "AMB"
    assert draft["participant"][0]["individual"]["reference"] == f"Practitioner/{practitioner}"
    medication = next(
        e["resource"]
        for e in summary["entry"]
        if e["resource"]["resourceType"] == "MedicationStatement"
    )
    assert medication["medicationCodeableConcept"]["coding"][0]["code"] == "39732311000001104"
    engine = create_async_engine(asyncpg_url(database.superuser_url))
    async with engine.connect() as conn:
        opened = await conn.scalar(
            text("SELECT count(*) FROM clinical_entries WHERE appointment_id = :a"),
            {"a": first_appointment},
        )
        applied = await conn.scalar(
            text("SELECT count(*) FROM inbox WHERE event_id = :e"), {"e": arrived["id"]}
        )
    await engine.dispose()
    assert opened == 1 and applied == 1


async def test_clinical_rows_cannot_be_deleted_or_versions_rewritten_even_by_the_owner(database):
    engine = create_async_engine(asyncpg_url(database.superuser_url))
    refused = []
    for statement in (
        "DELETE FROM clinical_entries",
        "UPDATE entry_versions SET recorded_by = 'x'",
        "DELETE FROM entry_versions",
    ):
        async with engine.connect() as conn:
            try:
                await conn.execute(text(statement))
            except Exception as exc:  # noqa: BLE001 - the trigger's refusal is what we want
                refused.append("never deleted or rewritten" in str(exc))
            await conn.rollback()
    await engine.dispose()
    assert refused == [True, True, True]


def _event(
    event_type: str, source: str, patient: str, practice: str, data: dict[str, Any]
) -> dict[str, Any]:
    return CloudEvent(
        type=event_type, source=source, subject=patient, practice=practice, data=data
    ).to_dict()


def _arrival(patient: str, practice: str, appointment: str, practitioner: str) -> dict[str, Any]:
    return _event(
        "appointment.arrived.v1",
        "urn:opengpsoc:appointments",
        patient,
        practice,
        {
            "appointment": {
                "id": appointment,
                "status": "arrived",
                "start": "2026-02-01T09:20:00Z",
                "end": "2026-02-01T09:30:00Z",
                "patient": patient,
                "practitioner": practitioner,
                "slotIds": [str(uuid.uuid4())],
                "slotCategory": "General Consultation Routine",
                "deliveryChannel": "In-person",
                "description": "Review",
            }
        },
    )


async def _summary_when(
    client: Any, headers: dict[str, str], patient: str, ready: Any
) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE_SECONDS
    while True:
        response = await client.get(
            "/Encounter/$patient-summary", params={"patient": patient}, headers=headers
        )
        if response.status_code == 200:
            body = response.json()
            if ready([e["resource"]["resourceType"] for e in body["entry"]]):
                return body
        assert loop.time() < deadline, f"the consumer did not apply the events: {response.text}"
        await asyncio.sleep(0.2)


async def _for_key(test_stack: Any, topic: str, key: str, *, expect: int) -> list[Any]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE_SECONDS
    while True:
        messages = [
            m
            for m in await read_topic(
                test_stack.kafka_bootstrap, topic, expect=0, timeout=3, settle=0.5
            )
            if m.key and m.key.decode() == key
        ]
        if len(messages) >= expect or loop.time() > deadline:
            return messages
