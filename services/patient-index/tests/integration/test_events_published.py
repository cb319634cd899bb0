"""What the patient index publishes: every event matches its JSON Schema and arrives on its topic."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from gpsoc_kit.audit import AUDIT_SCHEMA_DIR
from gpsoc_kit.events import SchemaRegistry
from gpsoc_kit.relay import OutboxRelay, RelayConfig
from gpsoc_kit.testing.fhir_factories import patient
from gpsoc_kit.testing.kafka import read_topic
from patient_index.adapters.tables import outbox
from patient_index.events import SCHEMA_DIR

SCHEMAS = SchemaRegistry(SCHEMA_DIR, AUDIT_SCHEMA_DIR)


async def test_registration_update_death_and_audit_events_reach_kafka_and_match_their_schemas(
    client, auth, app, settings, test_stack
):
    headers = auth()
    created = (await client.post("/Patient", json=patient(), headers=headers)).json()
    pid = created["id"]
    moved = dict(created, address=[{"use": "home", "postalCode": "TS20 1AB"}])
    moved = (await client.put(f"/Patient/{pid}", json=moved, headers=headers)).json()
    await client.put(
        f"/Patient/{pid}", json=dict(moved, deceasedDateTime="2026-11-20"), headers=headers
    )
    await client.get(f"/Patient/{pid}", headers=headers)

    relay = OutboxRelay(
        RelayConfig("patient-index", settings.database_url, test_stack.kafka_bootstrap),
        app.state.engine,
        outbox,
    )
    task = asyncio.create_task(relay.run())
    try:
        patient_messages = await _for_patient(test_stack, "patient.events.v1", pid, expect=3)
        audit_messages = await _for_patient(test_stack, "audit.events.v1", pid, expect=4)
    finally:
        relay.stop()
        await asyncio.wait_for(task, 20)

    envelopes = [json.loads(m.value) for m in patient_messages]
    assert [e["type"] for e in envelopes] == [
        "patient.registered.v1",
        "patient.updated.v1",
        "patient.deceased.v1",
    ]
    assert all(m.key.decode() == pid for m in patient_messages)
    for envelope in envelopes + [json.loads(m.value) for m in audit_messages]:
        SCHEMAS.validate(envelope)
    assert envelopes[2]["data"]["patient"]["deceasedDateTime"] == "2026-11-20"
    assert [json.loads(m.value)["data"]["action"] for m in audit_messages] == ["C", "U", "U", "R"]


async def _for_patient(test_stack: Any, topic: str, pid: str, *, expect: int) -> list[Any]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    while True:
        messages = [
            m
            for m in await read_topic(
                test_stack.kafka_bootstrap, topic, expect=0, timeout=3, settle=0.5
            )
            if m.key and m.key.decode() == pid
        ]
        if len(messages) >= expect or loop.time() > deadline:
            return messages
