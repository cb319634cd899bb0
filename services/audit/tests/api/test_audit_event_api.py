"""The AuditEvent API in-process against a real database: who may read the trail, what
they see of it, and that reading it is audited in turn."""

from __future__ import annotations

import base64
import uuid
from typing import Any

import pytest
from audit_trail.adapters.tables import outbox
from gpsoc_kit.audit import AUDIT_SCHEMA_DIR, AUDIT_TOPIC
from gpsoc_kit.events import SchemaRegistry
from sqlalchemy import select

AUDIT_SCHEMAS = SchemaRegistry(AUDIT_SCHEMA_DIR)


@pytest.fixture
async def trail(store, audit_cloud_event, practice) -> dict[str, Any]:  # noqa: ANN001
    """A patient's trail at this test's practice, plus the same patient id elsewhere."""
    patient, gp, receptionist = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())
    at = "2026-11-{day}T09:00:00+00:00"
    events = {
        "registered": audit_cloud_event(practice=practice, role="receptionist",
                                        user_id=receptionist, interaction="create",
                                        patient_ids=[patient], recorded=at.format(day="02")),
        "gp_read": audit_cloud_event(practice=practice, user_id=gp, interaction="read",
                                     patient_ids=[patient], recorded=at.format(day="10"),
                                     request_id="req-gp-read"),
        "condition": audit_cloud_event(practice=practice, user_id=gp, interaction="create",
                                       resource_type="Condition", resource_ids=["c1"],
                                       patient_ids=[patient], recorded=at.format(day="11")),
        "break_glass": audit_cloud_event(practice=practice, user_id=gp, interaction="read",
                                         patient_ids=[patient], recorded=at.format(day="20"),
                                         break_glass_reason="Unconscious in A&E"),
        "denied": audit_cloud_event(practice=practice, role="receptionist",
                                    user_id=receptionist, interaction="read", outcome="4",
                                    patient_ids=[patient], recorded=at.format(day="21")),
        "other_patient": audit_cloud_event(practice=practice, user_id=gp, interaction="read",
                                           patient_ids=[str(uuid.uuid4())],
                                           recorded=at.format(day="15")),
        "elsewhere": audit_cloud_event(practice="Z" + practice[1:], user_id=gp,
                                       interaction="read", patient_ids=[patient],
                                       recorded=at.format(day="22")),
    }
    records = dict(zip(events, await store(*events.values()), strict=True))
    return {"patient": patient, "gp": gp, "receptionist": receptionist, "events": events,
            "ids": {name: record.id for name, record in records.items()}}


def ids_of(bundle: dict[str, Any]) -> list[str]:
    return [entry["resource"]["id"] for entry in bundle["entry"]]


async def outbox_events(superuser, practice: str) -> list[dict[str, Any]]:  # noqa: ANN001
    async with superuser.connect() as conn:
        rows = (await conn.execute(
            select(outbox.c.topic, outbox.c.payload)
            .where(outbox.c.practice_code == practice).order_by(outbox.c.seq))).all()
    assert all(row.topic == AUDIT_TOPIC for row in rows)
    return [row.payload for row in rows]


async def test_who_viewed_this_patients_record_is_one_query_newest_first(client, auth, trail):
    response = await client.get("/AuditEvent", params={"patient": trail["patient"], "action": "R"},
                                headers=auth())
    assert response.status_code == 200, response.text
    bundle = response.json()
    assert (bundle["resourceType"], bundle["type"], bundle["total"]) == ("Bundle", "searchset", 3)
    ids = trail["ids"]
    assert ids_of(bundle) == [ids["denied"], ids["break_glass"], ids["gp_read"]]
    newest = bundle["entry"][0]["resource"]
    assert newest["agent"][0]["who"]["reference"] == f"Practitioner/{trail['receptionist']}"
    assert newest["agent"][0]["role"][0]["coding"][0]["code"] == "R8009"
    assert newest["outcome"] == "4"
    assert newest["meta"]["profile"] == [
        "https://fhir.hl7.org.uk/StructureDefinition/UKCore-AuditEvent"]
    break_glass = bundle["entry"][1]["resource"]
    assert {"url": "https://opengpsoc.org/fhir/StructureDefinition/break-glass-reason",
            "valueString": "Unconscious in A&E"} in break_glass["extension"]


async def test_a_practice_manager_sees_only_their_practices_records(client, auth, trail):
    bundle = (await client.get("/AuditEvent", params={"patient": f"Patient/{trail['patient']}"},
                               headers=auth())).json()
    assert bundle["total"] == 5
    assert trail["ids"]["elsewhere"] not in ids_of(bundle)
    assert trail["ids"]["other_patient"] not in ids_of(bundle)


async def test_another_practices_records_are_invisible_to_search_and_read(
    client, auth, trail, practice
):
    elsewhere = "Z" + practice[1:]
    bundle = (await client.get("/AuditEvent", params={"patient": trail["patient"]},
                               headers=auth(practice_code=elsewhere))).json()
    assert ids_of(bundle) == [trail["ids"]["elsewhere"]]
    response = await client.get(f"/AuditEvent/{trail['ids']['gp_read']}",
                                headers=auth(practice_code=elsewhere))
    assert response.status_code == 404
    assert response.json()["resourceType"] == "OperationOutcome"


async def test_a_privacy_officer_may_read_the_trail(client, auth, trail):
    response = await client.get("/AuditEvent", params={"patient": trail["patient"]},
                                headers=auth("privacy-officer"))
    assert response.status_code == 200
    assert response.json()["total"] == 5


@pytest.mark.parametrize("role", ["receptionist", "gp", "nurse", "unknown-role"])
async def test_roles_without_read_audit_are_refused_and_the_attempt_is_audited(
    client, auth, trail, superuser, practice, role
):
    search = await client.get("/AuditEvent", params={"patient": trail["patient"]},
                              headers=auth(role))
    read = await client.get(f"/AuditEvent/{trail['ids']['gp_read']}", headers=auth(role))
    assert (search.status_code, read.status_code) == (403, 403)
    assert search.json()["issue"][0]["code"] == "forbidden"
    attempts = await outbox_events(superuser, practice)
    assert [(e["data"]["subtype"][0]["code"], e["data"]["outcome"]) for e in attempts] == [
        ("search", "4"), ("read", "4")]
    assert attempts[1]["data"]["entity"][0]["what"]["reference"] == (
        f"AuditEvent/{trail['ids']['gp_read']}")


async def test_search_by_agent_date_and_outcome(client, auth, trail):
    ids = trail["ids"]

    async def search(**params: str) -> list[str]:
        response = await client.get("/AuditEvent", params=params, headers=auth())
        assert response.status_code == 200, response.text
        return ids_of(response.json())

    assert await search(agent=trail["receptionist"]) == [ids["denied"], ids["registered"]]
    assert await search(agent=f"Practitioner/{trail['gp']}", action="C") == [ids["condition"]]
    assert await search(patient=trail["patient"], outcome="4") == [ids["denied"]]
    assert await search(patient=trail["patient"], action="C,U") == [
        ids["condition"], ids["registered"]]
    window = [("date", "ge2026-11-10"), ("date", "le2026-11-15")]
    response = await client.get("/AuditEvent", params=window, headers=auth())
    assert ids_of(response.json()) == [ids["other_patient"], ids["condition"], ids["gp_read"]]
    assert await search(date="2026-11-11") == [ids["condition"]]
    assert await search(date="gt2026-11-20T09:00:00Z") == [ids["denied"]]


async def test_paging_follows_newest_first_with_next_links(client, auth, trail):
    first = (await client.get("/AuditEvent", params={"patient": trail["patient"], "_count": "2"},
                              headers=auth())).json()
    assert first["total"] == 5 and len(first["entry"]) == 2
    next_url = next(link["url"] for link in first["link"] if link["relation"] == "next")
    assert "_offset=2" in next_url
    second = (await client.get("/AuditEvent", params={"patient": trail["patient"], "_count": "2",
                                                      "_offset": "2"}, headers=auth())).json()
    ids = trail["ids"]
    assert ids_of(first) + ids_of(second) == [
        ids["denied"], ids["break_glass"], ids["condition"], ids["gp_read"]]


async def test_read_answers_the_audit_event_as_recorded(client, auth, trail):
    record_id = trail["ids"]["gp_read"]
    response = await client.get(f"/AuditEvent/{record_id}", headers=auth())
    assert response.status_code == 200
    resource = response.json()
    recorded = trail["events"]["gp_read"].data
    assert resource["id"] == record_id
    assert resource["meta"]["versionId"] == "1"
    assert {k: v for k, v in resource.items() if k not in ("id", "meta")} == recorded
    assert {"url": "https://opengpsoc.org/fhir/StructureDefinition/request-id",
            "valueString": "req-gp-read"} in resource["extension"]


@pytest.mark.parametrize("record_id", ["not-a-uuid", str(uuid.uuid4())])
async def test_an_unknown_record_answers_404(client, auth, record_id):
    response = await client.get(f"/AuditEvent/{record_id}", headers=auth())
    assert response.status_code == 404


async def test_reading_the_trail_is_itself_audited_through_the_outbox(
    client, auth, trail, superuser, practice
):
    await client.get("/AuditEvent", params={"patient": trail["patient"], "action": "R"},
                     headers=auth(), )
    await client.get(f"/AuditEvent/{trail['ids']['gp_read']}", headers=auth())
    events = await outbox_events(superuser, practice)
    for event in events:
        AUDIT_SCHEMAS.validate(event)
    search, read = (e["data"] for e in events)
    assert events[0]["source"] == "urn:opengpsoc:audit"
    assert (search["subtype"][0]["code"], search["action"], search["outcome"]) == ("search", "E", "0")
    assert {"what": {"reference": f"Patient/{trail['patient']}"}}.items() <= search["entity"][0].items()
    query = next(e["query"] for e in search["entity"] if "query" in e)
    assert base64.b64decode(query).decode() == f"patient={trail['patient']}&action=R"
    assert (read["subtype"][0]["code"], read["action"]) == ("read", "R")
    assert f"AuditEvent/{trail['ids']['gp_read']}" in [
        e.get("what", {}).get("reference") for e in read["entity"]]


@pytest.mark.parametrize(("params", "expression"), [
    ({"action": "X"}, "action"),
    ({"outcome": "1"}, "outcome"),
    ({"date": "yesterday"}, "date"),
    ({"patient": "Practitioner/abc"}, None),
    ({"subject": "abc"}, "subject"),
    ({"_count": "1000"}, "_count"),
])
async def test_bad_search_parameters_answer_400_and_the_failed_search_is_audited(
    client, auth, params, expression, superuser, practice
):
    response = await client.get("/AuditEvent", params=params, headers=auth())
    assert response.status_code == 400
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    if expression:
        assert outcome["issue"][0]["expression"] == [expression]
    # Failed requests are audited too (outcome 4: the caller's to fix), once.
    events = await outbox_events(superuser, practice)
    assert [e["data"]["outcome"] for e in events] == ["4"]


async def test_without_a_token_the_answer_is_401(client):
    assert (await client.get("/AuditEvent")).status_code == 401


async def test_the_capability_statement_declares_audit_event_with_its_searches(client):
    statement = (await client.get("/metadata")).json()
    (resource,) = statement["rest"][0]["resource"]
    assert resource["type"] == "AuditEvent"
    assert resource["profile"] == "https://fhir.hl7.org.uk/StructureDefinition/UKCore-AuditEvent"
    assert {i["code"] for i in resource["interaction"]} == {"read", "search-type"}
    assert {p["name"] for p in resource["searchParam"]} == {
        "patient", "agent", "date", "action", "outcome"}


async def test_health_and_metrics_answer(client):
    assert (await client.get("/healthz")).status_code == 200
    ready = await client.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert "audit_http_request_duration_seconds" in (await client.get("/metrics")).text
