"""The patient index's FHIR API, in-process against a real database."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from gpsoc_kit.db import asyncpg_url
from gpsoc_kit.testing.fhir_factories import patient, valid_nhs_number
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

NHS = "https://fhir.nhs.uk/Id/nhs-number"


async def register(
    client: httpx.AsyncClient, headers: dict[str, str], **fields: Any
) -> dict[str, Any]:
    response = await client.post("/Patient", json=patient(**fields), headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


async def test_registering_a_patient_stores_it_with_version_1_and_uk_core_profile(client, auth):
    response = await client.post("/Patient", json=patient(family="Jones"), headers=auth())
    assert response.status_code == 201
    body = response.json()
    assert body["meta"]["versionId"] == "1"
    assert "https://fhir.hl7.org.uk/StructureDefinition/UKCore-Patient" in body["meta"]["profile"]
    assert response.headers["etag"] == 'W/"1"'
    assert response.headers["location"].endswith(f"/Patient/{body['id']}/_history/1")
    read = await client.get(f"/Patient/{body['id']}", headers=auth())
    assert read.status_code == 200
    assert read.json()["name"][0]["family"] == "Jones"


async def test_invalid_nhs_number_is_refused_naming_the_field_and_nothing_is_stored(
    client, auth, database
):
    bad = "9990000019"  # check digit wrong
    response = await client.post("/Patient", json=patient(nhs_number=bad), headers=auth())
    assert response.status_code == 422
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["expression"] == ["Patient.identifier[0].value"]
    engine = create_async_engine(asyncpg_url(database.superuser_url))
    async with engine.connect() as conn:
        count = await conn.scalar(
            text("SELECT count(*) FROM patients WHERE nhs_number = :n"), {"n": bad}
        )
    await engine.dispose()
    assert count == 0


@pytest.mark.parametrize("value", ["123", "99900000AB", "9990000010x", "999 000 0018"])
async def test_malformed_nhs_numbers_are_refused(client, auth, value):
    response = await client.post("/Patient", json=patient(nhs_number=value), headers=auth())
    assert response.status_code == 422


async def test_nhs_number_already_registered_in_any_practice_answers_409(client, auth):
    nhs = valid_nhs_number()
    await register(client, auth(), nhs_number=nhs)
    other_practice = auth(practice_code="TOTHER")
    response = await client.post("/Patient", json=patient(nhs_number=nhs), headers=other_practice)
    assert response.status_code == 409
    assert response.json()["issue"][0]["details"]["coding"][0]["code"] == "DUPLICATE_REJECTED"


async def test_another_practice_patient_answers_404_and_never_appears_in_search(client, auth):
    nhs = valid_nhs_number()
    mine = await register(client, auth(), nhs_number=nhs, family="Isolated")
    theirs = auth(practice_code="TELSEW")
    assert (await client.get(f"/Patient/{mine['id']}", headers=theirs)).status_code == 404
    assert (await client.get(f"/Patient/{mine['id']}/_history", headers=theirs)).status_code == 404
    search = await client.get("/Patient", params={"identifier": f"{NHS}|{nhs}"}, headers=theirs)
    assert search.status_code == 200
    assert search.json()["total"] == 0
    by_id = await client.get("/Patient", params={"_id": mine["id"]}, headers=theirs)
    assert by_id.json()["total"] == 0


async def test_update_with_matching_if_match_makes_version_2_and_history_keeps_both(client, auth):
    created = await register(client, auth())
    changed = dict(created, name=[{"use": "official", "family": "Brown", "given": ["Alice"]}])
    response = await client.put(
        f"/Patient/{created['id']}", json=changed, headers={**auth(), "If-Match": 'W/"1"'}
    )
    assert response.status_code == 200, response.text
    assert response.json()["meta"]["versionId"] == "2"
    assert response.headers["etag"] == 'W/"2"'
    history = (await client.get(f"/Patient/{created['id']}/_history", headers=auth())).json()
    assert history["type"] == "history"
    assert [e["resource"]["meta"]["versionId"] for e in history["entry"]] == ["2", "1"]
    v1 = await client.get(f"/Patient/{created['id']}/_history/1", headers=auth())
    assert v1.json()["name"][0]["family"] == "Smith"


async def test_update_with_stale_if_match_answers_412_and_changes_nothing(client, auth):
    created = await register(client, auth())
    changed = dict(created, gender="male")
    response = await client.put(
        f"/Patient/{created['id']}", json=changed, headers={**auth(), "If-Match": 'W/"7"'}
    )
    assert response.status_code == 412
    current = (await client.get(f"/Patient/{created['id']}", headers=auth())).json()
    assert current["gender"] == "female" and current["meta"]["versionId"] == "1"


async def test_search_by_family_birthdate_gender_and_postcode(client, auth):
    headers = auth()
    await register(
        client,
        headers,
        family="Wainwright",
        birth_date="1950-01-01",
        gender="male",
        postcode="TS18 2BB",
    )
    await register(
        client,
        headers,
        family="Wainwright",
        birth_date="1990-06-01",
        gender="female",
        postcode="TS19 9ZZ",
    )
    await register(client, headers, family="Other", birth_date="1990-06-01")

    async def total(**params: str) -> int:
        response = await client.get("/Patient", params=params, headers=headers)
        assert response.status_code == 200, response.text
        return response.json()["total"]

    assert await total(family="wainw") == 2
    assert await total(family="Wainwright", birthdate="ge1960-01-01") == 1
    assert await total(birthdate="le1955-12-31") == 1
    assert await total(birthdate="1990-06-01") == 2
    assert await total(gender="male") == 1
    assert await total(**{"address-postalcode": "ts18 2bb"}) == 1


async def test_search_by_identifier_id_given_and_name(client, auth):
    headers = auth()
    mary = await register(client, headers, family="Featherstone", given="Mary Anne")
    other = await register(client, headers, family="Annesley", given="Robert")
    await register(client, headers, family="Unrelated", given="Zoe")
    nhs = mary["identifier"][0]["value"]

    async def ids(**params: str) -> list[str]:
        response = await client.get("/Patient", params=params, headers=headers)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["total"] == len(body.get("entry", []))
        return [e["resource"]["id"] for e in body.get("entry", [])]

    assert await ids(identifier=f"{NHS}|{nhs}") == [mary["id"]]
    assert await ids(identifier=nhs) == [mary["id"]]
    assert await ids(_id=mary["id"]) == [mary["id"]]
    assert await ids(_id=mary["id"].upper()) == [mary["id"]]
    assert await ids(_id="not-a-uuid") == []
    assert await ids(given="mary") == [mary["id"]]
    assert await ids(given="anne") == [mary["id"]]  # a later given name
    # name: a family or a given name starting with it; ordered by family, given, id
    assert await ids(name="Anne") == [other["id"], mary["id"]]
    assert await ids(name="feath", given="mary anne") == [mary["id"]]
    assert await ids(family="feath", gender="male") == []


async def test_a_page_past_the_end_still_has_the_total(client, auth):
    headers = auth()
    for given in ("One", "Two", "Three"):
        await register(client, headers, family="Pastend", given=given)
    response = await client.get(
        "/Patient", params={"family": "Pastend", "_count": "2", "_offset": "4"}, headers=headers
    )
    assert response.status_code == 200
    body = response.json()
    assert body["total"] == 3 and body.get("entry", []) == []
    assert [link["relation"] for link in body["link"]] == ["self", "previous"]


async def test_phonetic_search_ranks_the_closest_name_first(client, auth):
    headers = auth()
    smyth = await register(client, headers, family="Smyth", given="Jo")
    smith = await register(client, headers, family="Smith", given="Jo")
    response = await client.get("/Patient", params={"phonetic": "Smith"}, headers=headers)
    assert [e["resource"]["id"] for e in response.json()["entry"]] == [smith["id"], smyth["id"]]
    response = await client.get("/Patient", params={"phonetic": "!!"}, headers=headers)
    assert response.json()["total"] == 0


async def test_phonetic_search_finds_a_name_typed_with_a_typo(client, auth):
    headers = auth()
    created = await register(client, headers, family="Thompson", given="Margaret")
    response = await client.get("/Patient", params={"phonetic": "Tompson"}, headers=headers)
    assert created["id"] in [e["resource"]["id"] for e in response.json()["entry"]]
    response = await client.get("/Patient", params={"phonetic": "Margret Thomson"}, headers=headers)
    assert created["id"] in [e["resource"]["id"] for e in response.json()["entry"]]


async def test_search_pages_with_count_and_next_link(client, auth):
    headers = auth()
    for i in range(5):
        await register(client, headers, family="Pager", given=f"P{i}")
    first = (
        await client.get("/Patient", params={"family": "Pager", "_count": "2"}, headers=headers)
    ).json()
    assert first["total"] == 5 and len(first["entry"]) == 2
    next_link = next(link["url"] for link in first["link"] if link["relation"] == "next")
    query = next_link.split("?", 1)[1]
    second = (await client.get(f"/Patient?{query}", headers=headers)).json()
    assert len(second["entry"]) == 2
    assert {e["resource"]["id"] for e in first["entry"]}.isdisjoint(
        {e["resource"]["id"] for e in second["entry"]}
    )


async def test_unknown_search_parameter_is_an_error_not_ignored(client, auth):
    response = await client.get("/Patient", params={"birthdat": "1980-01-01"}, headers=auth())
    assert response.status_code == 400
    assert response.json()["issue"][0]["expression"] == ["birthdat"]


async def test_recording_a_death_is_an_update_with_its_own_event(client, auth, database):
    created = await register(client, auth())
    died = dict(created, deceasedDateTime="2026-11-01T10:00:00+00:00")
    response = await client.put(f"/Patient/{created['id']}", json=died, headers=auth())
    assert response.status_code == 200
    types = await outbox_types(database, created["id"])
    assert types == ["patient.registered.v1", "patient.deceased.v1"]


async def test_deregistration_is_an_update_with_its_own_event(client, auth, database):
    created = await register(client, auth())
    left = dict(created, active=False)
    response = await client.put(f"/Patient/{created['id']}", json=left, headers=auth())
    assert response.status_code == 200
    assert await outbox_types(database, created["id"]) == [
        "patient.registered.v1",
        "patient.deregistered.v1",
    ]


async def test_every_read_and_search_leaves_an_audit_event(client, auth, database):
    created = await register(client, auth())
    await client.get(f"/Patient/{created['id']}", headers=auth())
    await client.get("/Patient", params={"_id": created["id"]}, headers=auth())
    engine = create_async_engine(asyncpg_url(database.superuser_url))
    async with engine.connect() as conn:
        rows = (
            (
                await conn.execute(
                    text(
                        "SELECT payload->'data'->'subtype'->0->>'code' FROM outbox "
                        "WHERE topic = 'audit.events.v1' AND payload->'data'->'entity' @> "
                        "jsonb_build_array(jsonb_build_object('what', jsonb_build_object('reference', CAST(:ref AS text)))) "
                        "ORDER BY seq"
                    ),
                    {"ref": f"Patient/{created['id']}"},
                )
            )
            .scalars()
            .all()
        )
    await engine.dispose()
    assert rows == ["create", "read", "search"]


async def test_receptionist_may_register_but_an_unknown_role_may_not_read(client, auth):
    assert (
        await client.post("/Patient", json=patient(), headers=auth("receptionist"))
    ).status_code == 201
    response = await client.get(
        "/Patient", params={"family": "x"}, headers=auth("gp", roles=["janitor"])
    )
    assert response.status_code == 403


async def test_missing_or_bad_token_answers_401(client):
    assert (await client.get("/Patient")).status_code == 401
    response = await client.get("/Patient", headers={"Authorization": "Bearer not.a.jwt"})
    assert response.status_code == 401
    assert response.json()["resourceType"] == "OperationOutcome"


async def test_delete_is_refused_with_405(client, auth):
    created = await register(client, auth())
    assert (await client.delete(f"/Patient/{created['id']}", headers=auth())).status_code == 405


async def outbox_types(database: Any, patient_id: str) -> list[str]:
    engine = create_async_engine(asyncpg_url(database.superuser_url))
    async with engine.connect() as conn:
        rows = (
            (
                await conn.execute(
                    text(
                        "SELECT payload->>'type' FROM outbox WHERE topic = 'patient.events.v1' "
                        "AND message_key = :id ORDER BY seq"
                    ),
                    {"id": patient_id},
                )
            )
            .scalars()
            .all()
        )
    await engine.dispose()
    return list(rows)


async def test_denied_and_failed_accesses_are_audited_too(client, auth, database):
    created = await register(client, auth())
    pid = created["id"]
    assert (
        await client.get(f"/Patient/{pid}", headers=auth(practice_code="TPROBE"))
    ).status_code == 404
    denied = await client.get(f"/Patient/{pid}", headers=auth("gp", roles=["janitor"]))
    assert denied.status_code == 403
    engine = create_async_engine(asyncpg_url(database.superuser_url))
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                text(
                    "SELECT payload->'data'->>'outcome', payload->'data'->>'outcomeDesc', "
                    "payload->>'practice' FROM outbox WHERE topic = 'audit.events.v1' "
                    "AND message_key = :pid ORDER BY seq"
                ),
                {"pid": pid},
            )
        ).all()
    await engine.dispose()
    outcomes = [
        (outcome, desc.split(":")[0] if desc else None, practice)
        for outcome, desc, practice in rows
    ]
    assert ("4", "failed", "TPROBE") in outcomes
    assert any(o[0] == "4" and o[1] == "denied" for o in outcomes)
