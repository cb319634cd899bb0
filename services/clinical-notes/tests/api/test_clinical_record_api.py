"""The clinical record's FHIR API, in-process against a real database."""

from __future__ import annotations

from typing import Any

import httpx
from clinical_notes.examples import (
    allergy,
    blood_pressure,
    condition,
    encounter,
    hba1c,
    heading_list,
    height,
    no_known_allergy,
    weight,
)
from gpsoc_kit.db import asyncpg_url
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

UK_CORE = "https://fhir.hl7.org.uk/StructureDefinition/"


async def post(
    client: httpx.AsyncClient, headers: dict[str, str], resource: dict[str, Any]
) -> dict[str, Any]:
    response = await client.post(f"/{resource['resourceType']}", json=resource, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


async def ids(
    client: httpx.AsyncClient, headers: dict[str, str], path: str, **params: str
) -> list[str]:
    response = await client.get(path, params=params, headers=headers)
    assert response.status_code == 200, response.text
    return [e["resource"]["id"] for e in response.json()["entry"]]


async def superuser_scalars(database: Any, sql: str, **params: Any) -> list[Any]:
    engine = create_async_engine(asyncpg_url(database.superuser_url))
    async with engine.connect() as conn:
        rows = (await conn.execute(text(sql), params)).scalars().all()
    await engine.dispose()
    return list(rows)


async def test_recording_a_problem_stores_version_1_with_profile_and_who_recorded_it(
    client, auth, register
):
    patient = await register()
    headers = auth("nurse", name="Nurse Jones")
    response = await client.post("/Condition", json=condition(patient), headers=headers)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["meta"]["versionId"] == "1" and response.headers["etag"] == 'W/"1"'
    assert UK_CORE + "UKCore-Condition" in body["meta"]["profile"]
    assert body["meta"]["extension"][0]["valueReference"]["display"] == "Nurse Jones"
    assert response.headers["location"].endswith(f"/Condition/{body['id']}/_history/1")
    read = await client.get(f"/Condition/{body['id']}", headers=auth())
    assert read.status_code == 200 and read.json()["code"]["coding"][0]["code"] == "195967001"


async def test_receptionist_may_neither_read_nor_write_the_clinical_record(client, auth, register):
    patient = await register()
    created = await post(client, auth(), condition(patient))
    receptionist = auth("receptionist")
    assert (
        await client.get(f"/Condition/{created['id']}", headers=receptionist)
    ).status_code == 403
    assert (
        await client.get("/Condition", params={"patient": patient}, headers=receptionist)
    ).status_code == 403
    assert (
        await client.post("/Condition", json=condition(patient), headers=receptionist)
    ).status_code == 403
    summary = await client.get(
        "/Encounter/$patient-summary", params={"patient": patient}, headers=receptionist
    )
    assert summary.status_code == 403 and summary.json()["resourceType"] == "OperationOutcome"
    assert (
        await client.get(f"/Condition/{created['id']}", headers=auth("pharmacist"))
    ).status_code == 200


async def test_another_practice_sees_nothing_and_cannot_write_to_the_record(client, auth, register):
    patient = await register()
    created = await post(client, auth(), allergy(patient))
    theirs = auth(practice_code="TELSEW")
    assert (
        await client.get(f"/AllergyIntolerance/{created['id']}", headers=theirs)
    ).status_code == 404
    assert (
        await client.get(f"/AllergyIntolerance/{created['id']}/_history", headers=theirs)
    ).status_code == 404
    assert await ids(client, theirs, "/AllergyIntolerance", patient=patient) == []
    summary = await client.get(
        "/Encounter/$patient-summary", params={"patient": patient}, headers=theirs
    )
    assert summary.status_code == 404
    refused = await client.post("/Condition", json=condition(patient), headers=theirs)
    assert refused.status_code == 422
    assert refused.json()["issue"][0]["expression"] == ["Condition.subject"]


async def test_an_update_is_a_new_version_and_history_keeps_every_version(client, auth, register):
    patient = await register()
    created = await post(client, auth(), condition(patient))
    resolved = condition(
        patient, clinical="resolved", abatementDateTime="2026-01-05", id=created["id"]
    )
    response = await client.put(
        f"/Condition/{created['id']}", json=resolved, headers={**auth(), "If-Match": 'W/"1"'}
    )
    assert response.status_code == 200, response.text
    assert response.json()["meta"]["versionId"] == "2"
    history = (await client.get(f"/Condition/{created['id']}/_history", headers=auth())).json()
    assert [e["resource"]["meta"]["versionId"] for e in history["entry"]] == ["2", "1"]
    first = (await client.get(f"/Condition/{created['id']}/_history/1", headers=auth())).json()
    assert first["clinicalStatus"]["coding"][0]["code"] == "active"
    stale = await client.put(
        f"/Condition/{created['id']}", json=resolved, headers={**auth(), "If-Match": 'W/"1"'}
    )
    assert stale.status_code == 412


async def test_entered_in_error_is_hidden_from_default_views_but_kept_and_readable(
    client, auth, register, database
):
    patient = await register()
    wrong = await post(client, auth(), weight(patient, 82))
    marked = await client.post(
        f"/Observation/{wrong['id']}/$entered-in-error",
        headers=auth(),
        json={
            "resourceType": "Parameters",
            "parameter": [{"name": "reason", "valueString": "Recorded on the wrong patient"}],
        },
    )
    assert marked.status_code == 200, marked.text
    assert (
        marked.json()["status"] == "entered-in-error" and marked.json()["meta"]["versionId"] == "2"
    )
    assert await ids(client, auth(), "/Observation", patient=patient) == []
    assert await ids(
        client, auth(), "/Observation", patient=patient, status="entered-in-error"
    ) == [wrong["id"]]
    read = await client.get(f"/Observation/{wrong['id']}", headers=auth())
    assert (
        read.status_code == 200
        and read.json()["extension"][-1]["valueString"] == "Recorded on the wrong patient"
    )
    again = await client.put(
        f"/Observation/{wrong['id']}",
        json=dict(weight(patient, 80), id=wrong["id"]),
        headers=auth(),
    )
    assert again.status_code == 422
    assert (await client.delete(f"/Observation/{wrong['id']}", headers=auth())).status_code == 405
    types = await superuser_scalars(
        database,
        "SELECT payload->>'type' FROM outbox WHERE topic = 'clinical.events.v1' "
        "AND message_key = :p ORDER BY seq",
        p=patient,
    )
    assert types == ["clinical.observation-recorded.v1", "clinical.entry-entered-in-error.v1"]


async def test_marking_entered_in_error_needs_a_reason(client, auth, register):
    patient = await register()
    created = await post(client, auth(), condition(patient))
    response = await client.post(
        f"/Condition/{created['id']}/$entered-in-error",
        headers=auth(),
        json={"resourceType": "Parameters", "parameter": []},
    )
    assert response.status_code == 422
    assert (await client.get(f"/Condition/{created['id']}", headers=auth())).json()["meta"][
        "versionId"
    ] == "1"


async def test_implausible_blood_pressure_is_refused_with_422_and_nothing_is_stored(
    client, auth, register, database
):
    patient = await register()
    response = await client.post(
        "/Observation", json=blood_pressure(patient, 900, 80), headers=auth()
    )
    assert response.status_code == 422
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["expression"] == ["Observation.component[0].valueQuantity.value"]
    stored = await superuser_scalars(
        database, "SELECT count(*) FROM clinical_entries WHERE patient_id = :p", p=patient
    )
    assert stored == [0]
    ok = await post(client, auth(), blood_pressure(patient, 142, 94))
    assert UK_CORE + "UKCore-Observation-VitalSigns-BloodPressure" in ok["meta"]["profile"]


async def test_bmi_is_recorded_when_a_weight_follows_a_height(client, auth, register):
    patient = await register()
    tall = await post(client, auth(), height(patient, 175, "cm", effective="2025-06-01T10:00:00Z"))
    heavy = await post(client, auth(), weight(patient, 70))
    response = await client.get(
        "/Observation", params={"patient": patient, "code": "60621009"}, headers=auth()
    )
    [bmi] = [e["resource"] for e in response.json()["entry"]]
    assert bmi["valueQuantity"]["value"] == 22.9 and bmi["valueQuantity"]["code"] == "kg/m2"
    assert {r["reference"] for r in bmi["derivedFrom"]} == {
        f"Observation/{tall['id']}",
        f"Observation/{heavy['id']}",
    }
    assert UK_CORE + "UKCore-Observation-VitalSigns-BMI" in bmi["meta"]["profile"]


async def test_no_bmi_without_a_height_and_an_implausible_bmi_is_refused(client, auth, register):
    patient = await register()
    await post(client, auth(), weight(patient, 70))
    assert await ids(client, auth(), "/Observation", patient=patient, code="60621009") == []
    # A height typed in metres but meant as 1.75 m... keyed as 0.5 m: BMI 280.
    response = await client.post("/Observation", json=height(patient, 0.5), headers=auth())
    assert response.status_code == 422 and "BMI" in response.json()["issue"][0]["diagnostics"]


async def test_search_by_code_date_category_clinical_status_and_sort(client, auth, register):
    patient = await register()
    asthma = await post(client, auth(), condition(patient, onset="2019-05-01"))
    diabetes = await post(
        client,
        auth(),
        condition(patient, code="44054006", display="Diabetes mellitus type 2", onset="2023-02-01"),
    )
    resolved = await post(
        client,
        auth(),
        condition(
            patient,
            code="6142004",
            display="Influenza",
            clinical="resolved",
            onset="2024-12-01",
            abatementDateTime="2024-12-20",
        ),
    )
    await post(client, auth(), hba1c(patient, 58))
    headers = auth()
    assert await ids(client, headers, "/Condition", patient=patient) == [
        resolved["id"],
        diabetes["id"],
        asthma["id"],
    ]
    assert await ids(client, headers, "/Condition", patient=patient, _sort="date") == [
        asthma["id"],
        diabetes["id"],
        resolved["id"],
    ]
    assert await ids(
        client, headers, "/Condition", patient=patient, code="http://snomed.info/sct|44054006"
    ) == [diabetes["id"]]
    assert await ids(
        client, headers, "/Condition", patient=patient, **{"clinical-status": "active"}
    ) == [diabetes["id"], asthma["id"]]
    assert await ids(
        client, headers, "/Condition", patient=patient, date="ge2023-01-01", _sort="-date"
    ) == [resolved["id"], diabetes["id"]]
    assert await ids(client, headers, "/Condition", patient=patient, date="2019-05-01") == [
        asthma["id"]
    ]
    assert (
        len(await ids(client, headers, "/Observation", patient=patient, category="laboratory")) == 1
    )
    assert await ids(client, headers, "/Observation", patient=patient, category="vital-signs") == []


async def test_a_search_must_name_the_patient_and_unknown_parameters_are_errors(client, auth):
    assert (
        await client.get("/Condition", params={"code": "195967001"}, headers=auth())
    ).status_code == 400
    response = await client.get(
        "/Condition", params={"patient": "x", "onset": "2020"}, headers=auth()
    )
    assert response.status_code == 400 and response.json()["issue"][0]["expression"] == ["onset"]


async def test_patient_summary_gives_problems_allergies_latest_observations_and_consultations(
    client, auth, register
):
    patient = await register()
    problem = await post(client, auth(), condition(patient))
    await post(
        client,
        auth(),
        condition(
            patient,
            code="6142004",
            display="Influenza",
            clinical="resolved",
            abatementDateTime="2024-01-01",
            onset="2023-12-20",
        ),
    )
    penicillin = await post(
        client, auth(), allergy(patient, code="764146007", display="Penicillin")
    )
    await post(client, auth(), hba1c(patient, 64, effective="2025-01-10T09:00:00Z"))
    latest = await post(client, auth(), hba1c(patient, 52, effective="2026-01-10T09:00:00Z"))
    consultation = await post(client, auth(), encounter(patient))
    response = await client.get(
        "/Encounter/$patient-summary", params={"patient": patient}, headers=auth()
    )
    assert response.status_code == 200, response.text
    bundle = response.json()
    assert bundle["type"] == "collection"
    by_type: dict[str, list[str]] = {}
    for entry in bundle["entry"]:
        by_type.setdefault(entry["resource"]["resourceType"], []).append(entry["resource"]["id"])
    assert by_type == {
        "Condition": [problem["id"]],
        "AllergyIntolerance": [penicillin["id"]],
        "Observation": [latest["id"]],
        "Encounter": [consultation["id"]],
    }


async def test_an_allergy_supersedes_no_known_allergy_which_cannot_deny_an_active_allergy(
    client, auth, register
):
    patient = await register()
    nka = await post(client, auth(), no_known_allergy(patient))
    await post(client, auth(), allergy(patient))
    superseded = (await client.get(f"/AllergyIntolerance/{nka['id']}", headers=auth())).json()
    assert superseded["clinicalStatus"]["coding"][0]["code"] == "inactive"
    assert superseded["meta"]["versionId"] == "2"
    response = await client.post(
        "/AllergyIntolerance", json=no_known_allergy(patient), headers=auth()
    )
    assert response.status_code == 422


async def test_consultation_lists_nest_as_gp_connect_and_reference_only_this_patient(
    client, auth, register
):
    patient, other = await register(), await register()
    consultation = await post(client, auth(), encounter(patient))
    note = await post(
        client,
        auth(),
        {
            "resourceType": "Observation",
            "status": "final",
            "code": {
                "coding": [
                    {
                        "system": "http://snomed.info/sct",
                        "code": "37331000000100",
                        "display": "Comment note",
                    }
                ]
            },
            "subject": {"reference": f"Patient/{patient}"},
            "effectiveDateTime": "2026-02-01T09:25:00Z",
            "encounter": {"reference": f"Encounter/{consultation['id']}"},
            "valueString": "Wheeze for three days, worse at night.",
        },
    )
    history = await post(
        client,
        auth(),
        heading_list(patient, consultation["id"], "History", [f"Observation/{note['id']}"]),
    )
    topic = dict(
        heading_list(patient, consultation["id"], "Asthma", [f"List/{history['id']}"]),
        code={"coding": [{"system": "http://snomed.info/sct", "code": "25851000000105"}]},
    )
    topic = await post(client, auth(), topic)
    top = dict(
        heading_list(patient, consultation["id"], "Consultation", [f"List/{topic['id']}"]),
        code={"coding": [{"system": "http://snomed.info/sct", "code": "325851000000107"}]},
    )
    await post(client, auth(), top)
    assert (
        len(await ids(client, auth(), "/List", patient=patient, encounter=consultation["id"])) == 3
    )
    skipping = dict(top, entry=[{"item": {"reference": f"List/{history['id']}"}}])
    assert (await client.post("/List", json=skipping, headers=auth())).status_code == 422
    stranger = await post(client, auth(), weight(other, 70))
    foreign = heading_list(
        patient, consultation["id"], "Examination", [f"Observation/{stranger['id']}"]
    )
    response = await client.post("/List", json=foreign, headers=auth())
    assert (
        response.status_code == 422
        and "another patient" in response.json()["issue"][0]["diagnostics"]
    )


async def test_codes_unknown_to_the_terminology_are_refused(client, auth, register):
    patient = await register()
    # A well-formed id (check digit right) that is neither curated nor an active imported concept.
    response = await client.post(
        "/Condition", json=condition(patient, code="99999900004"), headers=auth()
    )
    assert response.status_code == 422
    assert response.json()["issue"][0]["expression"] == ["Condition.code.coding[0].code"]


async def test_snomed_lookup_and_text_search(client, auth):
    found = await client.get(
        "/CodeSystem/$lookup",
        headers=auth(),
        params={"system": "http://snomed.info/sct", "code": "44054006"},
    )
    assert found.status_code == 200
    assert {"name": "display", "valueString": "Diabetes mellitus type 2"} in found.json()[
        "parameter"
    ]
    missing = await client.get(
        "/CodeSystem/$lookup",
        headers=auth(),
        params={"system": "http://snomed.info/sct", "code": "99999900004"},
    )
    assert missing.status_code == 404
    expansion = await client.get("/ValueSet/$expand", headers=auth(), params={"filter": "penicil"})
    codes = [c["code"] for c in expansion.json()["expansion"]["contains"]]
    assert codes[:2] == ["764146007", "91936005"]


async def test_reads_and_searches_leave_audit_events(client, auth, register, database):
    patient = await register()
    created = await post(client, auth(), condition(patient))
    await client.get(f"/Condition/{created['id']}", headers=auth())
    await client.get("/Condition", params={"patient": patient}, headers=auth())
    await client.get("/Encounter/$patient-summary", params={"patient": patient}, headers=auth())
    rows = await superuser_scalars(
        database,
        "SELECT payload->'data'->'subtype'->0->>'code' FROM outbox "
        "WHERE topic = 'audit.events.v1' AND message_key = :p ORDER BY seq",
        p=patient,
    )
    assert rows == ["create", "read", "search", "operation"]


async def test_capability_statement_lists_the_clinical_resources(client):
    statement = (await client.get("/metadata")).json()
    types = {r["type"] for r in statement["rest"][0]["resource"]}
    assert {"Encounter", "Condition", "Observation", "AllergyIntolerance", "List"} <= types
