"""The walking skeleton end to end: token -> gateway -> patient-index -> outbox -> Kafka."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
from gpsoc_kit.testing.fhir_factories import patient, valid_nhs_number
from gpsoc_kit.testing.kafka import read_topic

NHS = "https://fhir.nhs.uk/Id/nhs-number"


async def test_register_then_find_by_nhs_number_and_read_through_the_gateway(gateway, token):
    nhs = valid_nhs_number()
    created = await gateway.post(
        "/Patient", json=patient(nhs_number=nhs, family="Gateway"), headers=token("receptionist")
    )
    assert created.status_code == 201, created.text
    assert created.headers["etag"] == 'W/"1"'
    pid = created.json()["id"]
    assert created.headers["location"].endswith(f"/fhir/R4/Patient/{pid}/_history/1")
    found = await gateway.get("/Patient", params={"identifier": f"{NHS}|{nhs}"}, headers=token())
    assert found.status_code == 200
    bundle = found.json()
    assert bundle["resourceType"] == "Bundle" and bundle["type"] == "searchset"
    assert bundle["total"] == 1 and bundle["entry"][0]["resource"]["id"] == pid
    read = await gateway.get(f"/Patient/{pid}", headers=token("nurse"))
    assert read.status_code == 200 and read.json()["name"][0]["family"] == "Gateway"


async def test_other_practice_gets_404_and_empty_searches_through_the_gateway(gateway, token):
    nhs = valid_nhs_number()
    pid = (await gateway.post("/Patient", json=patient(nhs_number=nhs), headers=token())).json()[
        "id"
    ]
    other = token("gp", "A81002")
    assert (await gateway.get(f"/Patient/{pid}", headers=other)).status_code == 404
    assert (await gateway.get(f"/Patient/{pid}/_history", headers=other)).status_code == 404
    for params in ({"identifier": f"{NHS}|{nhs}"}, {"_id": pid}, {"family": "Smith"}):
        bundle = (await gateway.get("/Patient", params=params, headers=other)).json()
        assert pid not in [e["resource"]["id"] for e in bundle.get("entry", [])]


async def test_the_gateway_refuses_missing_and_forged_tokens_with_401(gateway, token, test_stack):
    assert (await gateway.get("/Patient")).status_code == 401
    good = token()["Authorization"]
    forged = good[:-4] + ("AAAA" if not good.endswith("AAAA") else "BBBB")
    response = await gateway.get("/Patient", headers={"Authorization": forged})
    assert response.status_code == 401
    assert response.json()["resourceType"] == "OperationOutcome"
    claims = test_stack.keys.claims_for("gp", "A81001")
    claims["aud"] = "someone-else"
    wrong_audience = test_stack.keys.mint(claims)
    response = await gateway.get("/Patient", headers={"Authorization": f"Bearer {wrong_audience}"})
    assert response.status_code == 401


async def test_unknown_resource_type_and_bad_input_answer_operation_outcomes(gateway, token):
    response = await gateway.get("/Spaceship/1", headers=token())
    assert response.status_code == 404 and response.json()["resourceType"] == "OperationOutcome"
    response = await gateway.post("/Patient", content=b"{nope", headers=token())
    assert response.status_code == 400 and response.json()["resourceType"] == "OperationOutcome"
    response = await gateway.post(
        "/Patient", json=patient(nhs_number="1234567890"), headers=token()
    )
    assert response.status_code == 422
    assert response.json()["issue"][0]["expression"] == ["Patient.identifier[0].value"]


async def test_health_readiness_and_capability_statement(platform, gateway):
    async with httpx.AsyncClient(base_url=platform.gateway_url) as root:
        assert (await root.get("/healthz")).status_code == 200
        ready = await root.get("/readyz")
        assert ready.status_code == 200 and ready.json()["checks"]["patient-index"] == "ok"
    statement = (await gateway.get("/metadata")).json()
    assert statement["resourceType"] == "CapabilityStatement"
    types = {r["type"] for r in statement["rest"][0]["resource"]}
    assert {"Patient", "Organization", "Practitioner"} <= types
    patient_entry = next(r for r in statement["rest"][0]["resource"] if r["type"] == "Patient")
    assert "phonetic" in {p["name"] for p in patient_entry["searchParam"]}


async def test_a_registration_through_the_gateway_reaches_kafka_via_the_relay(
    gateway, token, test_stack
):
    created = await gateway.post("/Patient", json=patient(), headers=token())
    pid = created.json()["id"]
    messages: list[Any] = []
    for _ in range(20):
        messages = [
            m
            for m in await read_topic(
                test_stack.kafka_bootstrap, "patient.events.v1", expect=0, timeout=2, settle=0.3
            )
            if m.key == pid.encode()
        ]
        if messages:
            break
        await asyncio.sleep(0.5)
    assert [json.loads(m.value)["type"] for m in messages] == ["patient.registered.v1"]
    assert json.loads(messages[0].value)["practice"] == "A81001"


async def test_logs_of_every_process_never_contain_patient_data(
    gateway, token, platform, test_stack
):
    nhs = valid_nhs_number()
    family = "Logcanary" + nhs[-4:]
    created = await gateway.post(
        "/Patient", json=patient(nhs_number=nhs, family=family), headers=token()
    )
    pid = created.json()["id"]
    await gateway.get("/Patient", params={"identifier": f"{NHS}|{nhs}"}, headers=token())
    await gateway.get("/Patient", params={"phonetic": family}, headers=token())
    await gateway.post(
        "/Patient", json=patient(nhs_number=nhs, family=family), headers=token()
    )  # 409
    await gateway.put(
        f"/Patient/{pid}",
        json={
            "resourceType": "Patient",
            "id": pid,
            "name": [{"family": family}],
            "birthDate": "not-a-date",
        },
        headers=token(),
    )  # 422
    await asyncio.sleep(1.0)  # relay and consumers log asynchronously
    logs = "".join(p.read_text(errors="replace") for p in test_stack.config.logs_dir.glob("*.log"))
    assert logs, "the platform wrote no logs at all"
    assert nhs not in logs
    assert family not in logs
