"""Sharing on the patient index alone: agreements and break-glass grants are written with
their events (matching their schemas) and audit records in one transaction, and the
index's own policies honour them from the commit on."""

from __future__ import annotations

import uuid
from typing import Any

from gpsoc_kit.audit import AUDIT_SCHEMA_DIR
from gpsoc_kit.events import SchemaRegistry
from gpsoc_kit.testing.fhir_factories import patient
from patient_index.adapters.tables import outbox
from patient_index.domain.sharing import ODS_SYSTEM, SHARING_SCOPE_SYSTEM
from patient_index.events import SCHEMA_DIR
from sqlalchemy import select

SCHEMAS = SchemaRegistry(SCHEMA_DIR, AUDIT_SCHEMA_DIR)


def agreement(grantor: str, grantee: str) -> dict[str, Any]:
    return {
        "resourceType": "OrganizationAffiliation",
        "active": True,
        "period": {"start": "2026-01-01"},
        "organization": {"identifier": {"system": ODS_SYSTEM, "value": grantor}},
        "participatingOrganization": {"identifier": {"system": ODS_SYSTEM, "value": grantee}},
        "code": [{"coding": [{"system": SHARING_SCOPE_SYSTEM, "code": "read-record"}]}],
    }


async def outbox_events(app: Any, subject: str) -> list[dict[str, Any]]:
    async with app.state.engine.connect() as conn:
        rows = await conn.execute(
            select(outbox.c.topic, outbox.c.payload)
            .where(outbox.c.message_key == subject)
            .order_by(outbox.c.seq)
        )
        return [{"topic": topic, **payload} for topic, payload in rows]


async def test_an_agreement_is_stored_versioned_published_and_honoured(client, auth, app, practice):
    grantee = "U" + uuid.uuid4().hex[:5].upper()
    pid = (await client.post("/Patient", json=patient(), headers=auth("receptionist"))).json()["id"]
    outsider = auth("gp", practice_code=grantee)
    assert (await client.get(f"/Patient/{pid}", headers=outsider)).status_code == 404

    manager = auth("practice-manager")
    made = await client.post(
        "/OrganizationAffiliation", json=agreement(practice, grantee), headers=manager
    )
    assert made.status_code == 201, made.text
    assert made.headers["etag"] == 'W/"1"'
    assert (await client.get(f"/Patient/{pid}", headers=outsider)).status_code == 200

    stale = dict(made.json(), active=False)
    conflict = await client.put(
        f"/OrganizationAffiliation/{made.json()['id']}",
        json=stale,
        headers={**manager, "If-Match": 'W/"7"'},
    )
    assert conflict.status_code in (409, 412)
    ended = await client.put(
        f"/OrganizationAffiliation/{made.json()['id']}",
        json=stale,
        headers={**manager, "If-Match": 'W/"1"'},
    )
    assert ended.status_code == 200, ended.text
    assert (await client.get(f"/Patient/{pid}", headers=outsider)).status_code == 404
    # The grantee may read the agreement, not change it.
    assert (
        await client.put(
            f"/OrganizationAffiliation/{made.json()['id']}",
            json=stale,
            headers=auth("practice-manager", practice_code=grantee),
        )
    ).status_code == 404

    events = await outbox_events(app, made.json()["id"])
    published = [e for e in events if e["topic"] == "patient.events.v1"]
    assert [e["data"]["versionId"] for e in published] == [1, 2]
    assert [e["data"]["active"] for e in published] == [True, False]
    for envelope in events:
        SCHEMAS.validate({k: v for k, v in envelope.items() if k != "topic"})


async def test_break_glass_grants_one_user_publishes_the_grant_and_alerts_the_holder(
    client, auth, app, practice
):
    other = "U" + uuid.uuid4().hex[:5].upper()
    pid = (await client.post("/Patient", json=patient(), headers=auth("receptionist"))).json()["id"]
    clinician = auth("gp", practice_code=other)
    body = {
        "resourceType": "Parameters",
        "parameter": [{"name": "reason", "valueString": "Collapsed in the waiting room"}],
    }
    opened = await client.post(f"/Patient/{pid}/$break-glass", json=body, headers=clinician)
    assert opened.status_code == 201, opened.text
    assert (await client.get(f"/Patient/{pid}", headers=clinician)).status_code == 200

    events = await outbox_events(app, pid)
    granted = [e for e in events if e["type"] == "access.break-glass.granted.v1"]
    assert len(granted) == 1 and granted[0]["practice"] == practice
    audits = [
        e for e in events if e["topic"] == "audit.events.v1" and e["data"].get("purposeOfEvent")
    ]
    # One record of the access in the user's practice, one alert in the holder's.
    assert sorted(e["practice"] for e in audits) == sorted([other, practice])
    alert = next(e for e in audits if e["practice"] == practice)
    assert alert["data"]["type"]["code"] == "110113"
    for envelope in events:
        SCHEMAS.validate({k: v for k, v in envelope.items() if k != "topic"})
