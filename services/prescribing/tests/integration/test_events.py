"""Events on real Kafka: allergy and patient events in through the real consumer, and
prescription events out through the real relay, each checked against its JSON Schema."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from gpsoc_kit.audit import AUDIT_SCHEMA_DIR
from gpsoc_kit.consumer import ConsumerConfig, ConsumerRunner
from gpsoc_kit.events import CloudEvent, SchemaRegistry
from gpsoc_kit.relay import OutboxRelay, RelayConfig
from gpsoc_kit.testing.fhir_factories import valid_nhs_number
from gpsoc_kit.testing.kafka import read_topic
from prescribing import examples
from prescribing.adapters.tables import inbox, outbox
from prescribing.entrypoints.consumer import HANDLERS, TOPICS
from prescribing.events import SCHEMA_DIR

REPO = Path(__file__).resolve().parents[4]
PATIENT_SCHEMAS = SchemaRegistry(REPO / "services/patient-index/src/patient_index/events/schemas")
OUR_SCHEMAS = SchemaRegistry(SCHEMA_DIR, AUDIT_SCHEMA_DIR)
DEADLINE_SECONDS = 20


@pytest.fixture
async def consumer(app: Any, settings: Any) -> AsyncIterator[ConsumerRunner]:
    """Prescribing's real consumer in a fresh group whose offsets start at the topics' ends,
    so events from earlier sessions are not replayed."""
    group = f"prescribing.projections.test-{uuid.uuid4().hex[:8]}"
    await _commit_latest_offsets(settings.kafka_bootstrap_servers, group)
    runner = ConsumerRunner(
        ConsumerConfig("prescribing", group, TOPICS, settings.kafka_bootstrap_servers),
        unit_of_work=app.state.uow_factory, inbox=inbox, handlers=HANDLERS)
    task = asyncio.create_task(runner.run())
    yield runner
    runner.stop()
    await asyncio.wait_for(task, 20)


async def _commit_latest_offsets(bootstrap: str, group: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        described = await admin.describe_topics(list(TOPICS))
    finally:
        await admin.close()
    partitions = [TopicPartition(topic["topic"], p["partition"]) for topic in described
                  for p in topic["partitions"]]
    positioner = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group,
                                  enable_auto_commit=False)
    await positioner.start()
    try:
        positioner.assign(partitions)
        await positioner.commit(await positioner.end_offsets(partitions))
    finally:
        await positioner.stop()


async def publish(bootstrap: str, topic: str, event: CloudEvent) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(topic, key=event.subject.encode(), value=event.to_bytes())
    finally:
        await producer.stop()


async def eventually(check: Callable[[], Awaitable[bool]]) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE_SECONDS
    while not await check():
        assert loop.time() < deadline, "not within the deadline"
        await asyncio.sleep(0.2)


async def test_an_allergy_recorded_in_clinical_notes_blocks_an_authorisation_within_seconds(
    consumer, client, auth, practice, test_stack
):
    patient_id = str(uuid.uuid4())
    registered = examples.patient_event("patient.registered.v1", patient_id=patient_id,
                                        practice=practice, nhs_number=valid_nhs_number())
    PATIENT_SCHEMAS.validate(registered)
    await publish(test_stack.kafka_bootstrap, "patient.events.v1", registered)
    amoxicillin = examples.authorisation(
        patient_id, code=examples.AMOXICILLIN_500_CAPSULES, course=examples.Course.ACUTE,
        quantity=21, unit="capsule", supply_days=7, dose=(1, "capsule"), times_a_day=3,
        dosage_text="One capsule three times a day")

    async def patient_known() -> bool:
        response = await client.get("/MedicationRequest", params={"patient": patient_id},
                                    headers=auth())
        return response.status_code == 200 and await _authorisable(client, auth, patient_id)

    await eventually(patient_known)
    allergy_id = str(uuid.uuid4())
    await publish(test_stack.kafka_bootstrap, "clinical.events.v1", examples.allergy_event(
        allergy_id=allergy_id, patient_id=patient_id, practice=practice))
    loop = asyncio.get_running_loop()
    started = loop.time()

    async def blocked() -> bool:
        response = await client.post("/MedicationRequest", json=amoxicillin, headers=auth())
        assert response.status_code in (201, 422), response.text
        if response.status_code == 201:  # not projected yet: undo, try again
            await client.post(f"/MedicationRequest/{response.json()['id']}/$stop",
                              json=examples.parameters(reason="test retry"), headers=auth())
            return False
        return "allergy" in response.text

    await eventually(blocked)
    assert loop.time() - started < DEADLINE_SECONDS

    # Marked entered-in-error in clinical-notes, the allergy no longer counts.
    await publish(test_stack.kafka_bootstrap, "clinical.events.v1",
                  examples.entered_in_error_event(allergy_id=allergy_id, patient_id=patient_id,
                                                  practice=practice))

    async def allowed() -> bool:
        response = await client.post("/MedicationRequest", json=amoxicillin, headers=auth())
        return response.status_code == 201

    await eventually(allowed)


async def _authorisable(client: Any, auth: Any, patient_id: str) -> bool:
    # A patient unknown to the projection is refused as "not a patient of this practice".
    response = await client.post("/MedicationRequest", json=examples.authorisation(
        patient_id, code=examples.CLARITHROMYCIN_500_TABLETS, course=examples.Course.ACUTE,
        quantity=2, supply_days=1, dose=(1, "tablet"), times_a_day=2,
        dosage_text="One tablet twice a day"), headers=auth())
    return response.status_code == 201


async def test_a_death_notified_by_patient_index_stops_current_repeats(
    consumer, client, auth, practice, add_patient, test_stack, database
):
    patient_id = await add_patient()
    plan = (await client.post("/MedicationRequest", json=examples.authorisation(patient_id),
                              headers=auth())).json()
    waiting = (await client.post("/MedicationRequest", json=examples.repeat_request(plan["id"]),
                                 headers=auth("receptionist"))).json()
    died = examples.patient_event("patient.deceased.v1", patient_id=patient_id, practice=practice,
                                  nhs_number=valid_nhs_number(), version_id=2,
                                  deceased_at="2026-11-20T08:00:00+00:00")
    PATIENT_SCHEMAS.validate(died)
    await publish(test_stack.kafka_bootstrap, "patient.events.v1", died)

    async def stopped() -> bool:
        current = (await client.get(f"/MedicationRequest/{plan['id']}", headers=auth())).json()
        return current["status"] == "stopped"

    await eventually(stopped)
    current = (await client.get(f"/MedicationRequest/{plan['id']}", headers=auth())).json()
    assert current["statusReason"] == {"text": "Patient deceased"}
    request = (await client.get(f"/MedicationRequest/{waiting['id']}", headers=auth())).json()
    assert request["status"] == "cancelled"
    refused = await client.post("/MedicationRequest", json=examples.authorisation(patient_id),
                                headers=auth())
    assert refused.status_code == 422 and "deceased" in refused.text


async def test_prescription_events_reach_kafka_and_match_their_schemas(
    client, auth, add_patient, add_allergy, app, settings, test_stack
):
    patient_id = await add_patient()
    await add_allergy(patient_id)
    headers = auth()
    plan = (await client.post("/MedicationRequest", json=examples.authorisation(
        patient_id, code=examples.AMOXICILLIN_500_CAPSULES, repeats=2, quantity=21,
        unit="capsule", supply_days=7, dose=(1, "capsule"), times_a_day=3,
        dosage_text="One capsule three times a day",
        override_reason="Penicillin allergy label disproved by challenge test"),
        headers=headers)).json()
    assert (await client.post(f"/MedicationRequest/{plan['id']}/$issue",
                              headers=headers)).status_code == 201
    assert (await client.post(f"/MedicationRequest/{plan['id']}/$stop", json=examples.parameters(
        reason="Course changed"), headers=headers)).status_code == 200

    relay = OutboxRelay(RelayConfig("prescribing", settings.database_url,
                                    test_stack.kafka_bootstrap), app.state.engine, outbox)
    task = asyncio.create_task(relay.run())
    try:
        messages = await _for_patient(test_stack, "prescription.events.v1", patient_id, expect=4)
        audit = await _for_patient(test_stack, "audit.events.v1", patient_id, expect=3)
    finally:
        relay.stop()
        await asyncio.wait_for(task, 20)
    envelopes = [json.loads(m.value) for m in messages]
    assert [e["type"] for e in envelopes] == [
        "prescription.authorised.v1", "prescription.override-recorded.v1",
        "prescription.issued.v1", "prescription.stopped.v1"]
    for envelope in envelopes + [json.loads(m.value) for m in audit]:
        OUR_SCHEMAS.validate(envelope)
    issued = envelopes[2]["data"]["medicationRequest"]
    assert (issued["basedOn"], issued["issueNumber"]) == (plan["id"], 1)
    assert envelopes[3]["data"]["medicationRequest"]["statusReason"] == "Course changed"


async def _for_patient(test_stack: Any, topic: str, pid: str, *, expect: int) -> list[Any]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    while True:
        messages = [m for m in await read_topic(test_stack.kafka_bootstrap, topic, expect=0,
                                                timeout=3, settle=0.5)
                    if m.key and m.key.decode() == pid]
        if len(messages) >= expect or loop.time() > deadline:
            return messages
