"""The permission matrix at the front door, with the gateway in-process: refusals are 403
OperationOutcomes that never reach a service and are audited on Kafka; unknown routes are 404."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer
from gpsoc_kit.audit import AUDIT_SCHEMA_DIR, AUDIT_TOPIC
from gpsoc_kit.events import CloudEvent, SchemaRegistry


def bearer(test_stack: Any, role: str, practice: str = "A81001", **claims: Any) -> dict[str, str]:
    token_claims = {**test_stack.keys.claims_for("gp", practice), "roles": [role], **claims}
    return {"Authorization": f"Bearer {test_stack.keys.mint(token_claims)}",
            "Content-Type": "application/fhir+json"}


class AuditTopic:
    """audit.events.v1 read from its end as it was when the test began."""

    def __init__(self, bootstrap: str) -> None:
        self._consumer = AIOKafkaConsumer(AUDIT_TOPIC, bootstrap_servers=bootstrap,
                                          enable_auto_commit=False, group_id=None)

    async def start(self) -> None:
        await self._consumer.start()
        assigned = list(self._consumer.assignment())
        assert assigned, f"{AUDIT_TOPIC} exists on the test stack"
        await self._consumer.seek_to_end(*assigned)
        for tp in assigned:  # resolve the end offsets now, before the request is sent
            await self._consumer.position(tp)

    async def find(self, request_id: str, *, timeout: float = 20.0) -> list[Any]:
        found: list[Any] = []
        deadline = asyncio.get_running_loop().time() + timeout
        while asyncio.get_running_loop().time() < deadline:
            batch = await self._consumer.getmany(timeout_ms=300)
            for records in batch.values():
                for record in records:
                    if request_id.encode() in record.value:
                        found.append(record)
            if found:
                # A little longer, so that a second (duplicate) record would be seen too.
                await asyncio.sleep(1.0)
                for records in (await self._consumer.getmany(timeout_ms=300)).values():
                    found += [r for r in records if request_id.encode() in r.value]
                return found
        return found

    async def stop(self) -> None:
        await self._consumer.stop()


@pytest.fixture
async def audit_topic(test_stack) -> AsyncIterator[AuditTopic]:  # noqa: ANN001
    topic = AuditTopic(test_stack.kafka_bootstrap)
    await topic.start()
    try:
        yield topic
    finally:
        await topic.stop()


def failures_counted(metrics_text: str) -> float:
    found = re.search(r"^gateway_audit_publish_failures_total (\S+)$", metrics_text, re.M)
    return float(found.group(1)) if found else 0.0


async def test_a_refused_request_is_403_never_proxied_and_audited_once_on_kafka(
    upstream, gateway_client, test_stack, audit_topic
):
    app, client = gateway_client(f"http://127.0.0.1:{upstream.port}",
                                 audit_url=f"http://127.0.0.1:{upstream.port}",
                                 kafka_bootstrap_servers=test_stack.kafka_bootstrap)
    request_id = f"deny-{uuid.uuid4()}"
    patient_id = str(uuid.uuid4())
    receptionist = bearer(test_stack, "receptionist")
    async with app.router.lifespan_context(app), client:
        response = await client.get(
            "/fhir/R4/AuditEvent", params={"patient": patient_id},
            headers={**receptionist, "X-Request-Id": request_id})
    assert response.status_code == 403
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["code"] == "forbidden"
    assert "read-audit" in outcome["issue"][0]["diagnostics"]
    assert upstream.seen_headers == {}, "a refused request never reaches the service"

    records = await audit_topic.find(request_id)
    assert len(records) == 1, "audited exactly once"
    record = records[0]
    assert record.key == patient_id.encode(), "keyed by the patient the request names"
    envelope = orjson.loads(record.value)
    SchemaRegistry(AUDIT_SCHEMA_DIR).validate(envelope)
    event = CloudEvent.from_dict(envelope)
    assert event.source == "urn:opengpsoc:gateway" and event.practice == "A81001"
    audit_event = event.data
    assert audit_event["outcome"] == "4" and audit_event["action"] == "E"
    assert audit_event["outcomeDesc"] == "denied: needs read-audit"
    assert audit_event["subtype"][0]["code"] == "search"
    agent = audit_event["agent"][0]
    assert agent["who"]["reference"].startswith("Practitioner/")
    assert agent["role"][0]["coding"][0]["code"] == "R8009"
    assert {"reference": f"Patient/{patient_id}"} in [e.get("what") for e in audit_event["entity"]]
    extensions = {e["url"].rsplit("/", 1)[-1]: e["valueString"] for e in audit_event["extension"]}
    assert extensions["request-id"] == request_id
    assert re.fullmatch(r"[0-9a-f]{32}", extensions["trace-id"])


async def test_the_callers_trace_id_is_kept_in_the_refusals_audit_record(
    upstream, gateway_client, test_stack, audit_topic
):
    app, client = gateway_client(f"http://127.0.0.1:{upstream.port}",
                                 kafka_bootstrap_servers=test_stack.kafka_bootstrap)
    trace_id = uuid.uuid4().hex
    request_id = f"trace-{uuid.uuid4()}"
    async with app.router.lifespan_context(app), client:
        response = await client.post(
            "/fhir/R4/Patient", json={"resourceType": "Patient"},
            headers={**bearer(test_stack, "privacy-officer"), "X-Request-Id": request_id,
                     "traceparent": f"00-{trace_id}-{'1' * 16}-01"})
    assert response.status_code == 403
    [record] = await audit_topic.find(request_id)
    extensions = {e["url"].rsplit("/", 1)[-1]: e["valueString"]
                  for e in orjson.loads(record.value)["data"]["extension"]}
    assert extensions["trace-id"] == trace_id


async def test_with_kafka_unreachable_the_refusal_stands_and_the_loss_is_counted(
    upstream, gateway_client, test_stack, dead_url
):
    dead_kafka = dead_url.removeprefix("http://")
    app, client = gateway_client(f"http://127.0.0.1:{upstream.port}",
                                 kafka_bootstrap_servers=dead_kafka)
    async with app.router.lifespan_context(app), client:
        before = failures_counted((await client.get("/metrics")).text)
        started = asyncio.get_running_loop().time()
        response = await client.get("/fhir/R4/Patient/p1", headers=bearer(test_stack, "astronaut"))
        took = asyncio.get_running_loop().time() - started
        after = failures_counted((await client.get("/metrics")).text)
    assert response.status_code == 403
    assert response.json()["issue"][0]["code"] == "forbidden"
    assert upstream.seen_headers == {}
    assert after == before + 1
    assert took < 10


async def test_an_unknown_role_is_refused_even_the_formulary(upstream, gateway_client, test_stack,
                                                              dead_url):
    app, client = gateway_client(f"http://127.0.0.1:{upstream.port}",
                                 prescribing_url=f"http://127.0.0.1:{upstream.port}",
                                 kafka_bootstrap_servers=dead_url.removeprefix("http://"))
    async with app.router.lifespan_context(app), client:
        refused = await client.get("/fhir/R4/Medication", headers=bearer(test_stack, "astronaut"))
        assert upstream.seen_headers == {}
        allowed = await client.get("/fhir/R4/Medication",
                                   headers=bearer(test_stack, "practice-manager"))
    assert refused.status_code == 403
    assert "a known role" in refused.json()["issue"][0]["diagnostics"]
    assert allowed.status_code == 200 and upstream.seen_headers


async def test_a_route_not_in_the_matrix_is_404_and_never_proxied(upstream, gateway_client,
                                                                   headers):
    app, client = gateway_client(f"http://127.0.0.1:{upstream.port}")
    async with app.router.lifespan_context(app), client:
        responses = [
            await client.patch("/fhir/R4/Patient/p1", headers=headers, content=b"{}"),
            await client.get("/fhir/R4/Patient/p1/_history/1/extra", headers=headers),
            await client.get("/fhir/R4/Spaceship/1", headers=headers),
            await client.post("/fhir/R4/Patient/p1/$everything", headers=headers),
        ]
    for response in responses:
        assert response.status_code == 404
        assert response.json()["resourceType"] == "OperationOutcome"
    assert upstream.seen_headers == {}


async def test_a_route_whose_service_is_not_configured_is_404(upstream, gateway_client, headers):
    app, client = gateway_client(f"http://127.0.0.1:{upstream.port}")  # no appointments_url
    async with app.router.lifespan_context(app), client:
        response = await client.get("/fhir/R4/Appointment/a1", headers=headers)
    assert response.status_code == 404
    assert upstream.seen_headers == {}


@pytest.mark.parametrize(
    ("body", "receptionist_status"),
    [
        ({"resourceType": "MedicationRequest", "intent": "plan"}, 403),
        ({"resourceType": "MedicationRequest", "intent": "order"}, 403),
        ({"resourceType": "MedicationRequest", "intent": "order", "status": "draft"}, 200),
    ],
    ids=["authorise", "issue", "repeat-request"],
)
async def test_a_prescription_create_is_judged_by_its_intent(
    upstream, gateway_client, test_stack, dead_url, body, receptionist_status
):
    app, client = gateway_client(f"http://127.0.0.1:{upstream.port}",
                                 prescribing_url=f"http://127.0.0.1:{upstream.port}",
                                 kafka_bootstrap_servers=dead_url.removeprefix("http://"))
    async with app.router.lifespan_context(app), client:
        response = await client.post("/fhir/R4/MedicationRequest", json=body,
                                     headers=bearer(test_stack, "receptionist"))
    assert response.status_code == receptionist_status
    assert bool(upstream.seen_headers) is (receptionist_status != 403)


async def test_the_capability_statement_stays_public(upstream, gateway_client):
    app, client = gateway_client(f"http://127.0.0.1:{upstream.port}")
    async with app.router.lifespan_context(app), client:
        response = await client.get("/fhir/R4/metadata")
    assert response.status_code == 200
    assert response.json()["resourceType"] == "CapabilityStatement"


async def test_everything_needs_the_clinical_record(upstream, gateway_client, test_stack,
                                                     dead_url):
    app, client = gateway_client(f"http://127.0.0.1:{upstream.port}",
                                 kafka_bootstrap_servers=dead_url.removeprefix("http://"))
    async with app.router.lifespan_context(app), client:
        refused = await client.get("/fhir/R4/Patient/p1/$everything",
                                   headers=bearer(test_stack, "receptionist"))
    assert refused.status_code == 403
    assert "read-clinical" in refused.json()["issue"][0]["diagnostics"]
    assert upstream.seen_headers == {}
