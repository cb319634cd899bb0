"""Prescribing's FHIR API, in-process against a real database with the demo formulary."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from gpsoc_kit.db import asyncpg_url
from prescribing import examples
from prescribing.domain.eps import is_valid_short_form_id
from prescribing.domain.prescription import OVERRIDE_URL, Course
from prescribing.service_layer.transport import EpsTransport
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine


async def authorise(client: httpx.AsyncClient, headers: dict[str, str], patient_id: str,
                    **fields: Any) -> dict[str, Any]:
    response = await client.post("/MedicationRequest",
                                 json=examples.authorisation(patient_id, **fields), headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


async def issue(client: httpx.AsyncClient, headers: dict[str, str], plan_id: str,
                **params: str) -> httpx.Response:
    return await client.post(f"/MedicationRequest/{plan_id}/$issue",
                             json=examples.parameters(**params) if params else None,
                             headers=headers)


async def query(database: Any, sql: str, **params: Any) -> list[Any]:
    engine = create_async_engine(asyncpg_url(database.superuser_url))
    async with engine.begin() as conn:
        result = await conn.execute(text(sql), params)
        rows = result.all() if result.returns_rows else []
    await engine.dispose()
    return rows


def warnings_of(resource: dict[str, Any]) -> list[str]:
    outcome = resource["contained"][0]
    return [i["details"]["coding"][0]["code"] for i in outcome["issue"]
            if i["severity"] in ("warning", "error")]


# ---- formulary --------------------------------------------------------------------------
async def test_medication_search_by_prefix_typo_and_code(client, auth, app):
    headers = auth("receptionist")
    by_prefix = (await client.get("/Medication", params={"name": "amox"}, headers=headers)).json()
    names = [e["resource"]["code"]["coding"][0]["display"] for e in by_prefix["entry"]]
    assert "Amoxicillin 500mg capsules" in names and "Paracetamol 500mg tablets" not in names
    by_typo = (await client.get("/Medication", params={"name": "amoxcillin"},
                                headers=headers)).json()
    assert "Amoxicillin 500mg capsules" in [
        e["resource"]["code"]["coding"][0]["display"] for e in by_typo["entry"]]
    by_code = (await client.get("/Medication", params={
        "code": "https://dmd.nhs.uk|" + examples.MORPHINE_10_MR_TABLETS}, headers=headers)).json()
    assert by_code["total"] == 1
    morphine = by_code["entry"][0]["resource"]
    assert morphine["extension"][1]["valueCodeableConcept"]["text"] == "Schedule 2 (CD)"
    read = await client.get(f"/Medication/{examples.AMOXICILLIN_500_CAPSULES}", headers=headers)
    assert read.json()["meta"]["profile"] == [
        "https://fhir.hl7.org.uk/StructureDefinition/UKCore-Medication"]
    assert (await client.get("/Medication/123", headers=headers)).status_code == 404


async def test_metadata_lists_medication_and_medication_request(client):
    statement = (await client.get("/metadata")).json()
    assert [r["type"] for r in statement["rest"][0]["resource"]] == [
        "Medication", "MedicationRequest"]


# ---- authorising ----------------------------------------------------------------------------
async def test_a_gp_authorises_a_repeat_with_uk_core_profile_checks_and_an_event(
    client, auth, add_patient, database
):
    patient_id = await add_patient()
    plan = await authorise(client, auth(), patient_id)
    assert plan["meta"]["versionId"] == "1" and plan["intent"] == "plan"
    assert plan["dispenseRequest"]["numberOfRepeatsAllowed"] == 5
    assert plan["contained"][0]["resourceType"] == "OperationOutcome"
    assert "SAMPLE" in plan["contained"][0]["issue"][-1]["diagnostics"]
    rows = await query(database, "SELECT payload->>'type' FROM outbox WHERE message_key = :p "
                       "AND topic = 'prescription.events.v1'", p=patient_id)
    assert [r[0] for r in rows] == ["prescription.authorised.v1"]


async def test_only_prescribers_authorise(client, auth, add_patient):
    patient_id = await add_patient()
    body = examples.authorisation(patient_id)
    for headers in (auth("receptionist"), auth("nurse", prescriber=False),
                    auth("pharmacist", prescriber=False), auth("practice-manager")):
        response = await client.post("/MedicationRequest", json=body, headers=headers)
        assert response.status_code == 403, response.text
        assert response.json()["issue"][0]["code"] == "forbidden"
    assert (await client.post("/MedicationRequest", json=body,
                              headers=auth("nurse", prescriber=True))).status_code == 201


async def test_another_practices_prescription_answers_404_and_is_not_found_by_search(
    client, auth, add_patient
):
    patient_id = await add_patient()
    plan = await authorise(client, auth(), patient_id)
    theirs = auth(practice_code="TOTHER")
    assert (await client.get(f"/MedicationRequest/{plan['id']}", headers=theirs)).status_code == 404
    assert (await issue(client, theirs, plan["id"])).status_code == 404
    search = await client.get("/MedicationRequest", params={"patient": patient_id}, headers=theirs)
    assert search.json()["total"] == 0
    # ...and their prescriber cannot prescribe for our patient either.
    response = await client.post("/MedicationRequest",
                                 json=examples.authorisation(patient_id), headers=theirs)
    assert response.status_code == 422


async def test_an_unknown_medicine_or_patient_is_refused_and_nothing_is_stored(
    client, auth, add_patient, database
):
    patient_id = await add_patient()
    response = await client.post("/MedicationRequest", json=examples.authorisation(
        patient_id, code="999999999"), headers=auth())
    assert response.status_code == 422
    assert response.json()["issue"][0]["expression"] == [
        "MedicationRequest.medicationCodeableConcept"]
    response = await client.post("/MedicationRequest", json=examples.authorisation(
        "2f0b9a7e-0000-4000-8000-000000000000"), headers=auth())
    assert response.status_code == 422
    assert await query(database, "SELECT id FROM medication_requests WHERE patient_id = :p",
                       p=patient_id) == []


# ---- issuing ----------------------------------------------------------------------------
async def test_issues_are_numbered_and_the_count_is_enforced(client, auth, add_patient):
    patient_id = await add_patient()
    headers = auth()
    plan = await authorise(client, headers, patient_id, repeats=2)
    numbers = []
    for _ in range(3):
        response = await issue(client, headers, plan["id"])
        assert response.status_code == 201, response.text
        order = response.json()
        assert order["basedOn"] == [{"reference": f"MedicationRequest/{plan['id']}"}]
        numbers.append(order["extension"][-1]["valueUnsignedInt"])
    assert numbers == [1, 2, 3]
    fourth = await issue(client, headers, plan["id"])
    assert fourth.status_code == 422 and "All 3 authorised issues" in fourth.text
    current = (await client.get(f"/MedicationRequest/{plan['id']}", headers=headers)).json()
    assert current["status"] == "completed" and current["meta"]["versionId"] == "4"
    history = (await client.get(f"/MedicationRequest/{plan['id']}/_history",
                                headers=headers)).json()
    assert history["total"] == 4


async def test_concurrent_issues_never_exceed_the_count_or_repeat_a_number(
    client, auth, add_patient, database
):
    patient_id = await add_patient()
    headers = auth()
    plan = await authorise(client, headers, patient_id, repeats=2)
    responses = await asyncio.gather(*(issue(client, headers, plan["id"]) for _ in range(6)))
    assert sorted(r.status_code for r in responses) == [201, 201, 201, 422, 422, 422]
    rows = await query(database, "SELECT issue_number FROM medication_requests WHERE "
                       "based_on = :p ORDER BY issue_number", p=plan["id"])
    assert [r[0] for r in rows] == [1, 2, 3]


async def test_issuing_after_the_review_date_is_refused(client, auth, add_patient, database):
    patient_id = await add_patient()
    plan = await authorise(client, auth(), patient_id)
    await query(database, "UPDATE medication_requests SET review_date = current_date - 1 "
                "WHERE id = :p", p=plan["id"])
    response = await issue(client, auth(), plan["id"])
    assert response.status_code == 422 and "due for review" in response.text


async def test_an_issue_by_post_needs_the_issue_permission(client, auth, add_patient):
    patient_id = await add_patient()
    plan = await authorise(client, auth(), patient_id)
    response = await client.post("/MedicationRequest", json=examples.issue(plan["id"]),
                                 headers=auth("receptionist"))
    assert response.status_code == 403
    response = await client.post("/MedicationRequest", json=examples.issue(plan["id"]),
                                 headers=auth("pharmacist", prescriber=True))
    assert response.status_code == 201


async def test_each_issue_leaves_an_eps_message_that_the_simulated_transport_sends(
    client, auth, add_patient, database, app
):
    patient_id = await add_patient()
    plan = await authorise(client, auth(), patient_id)
    order = (await issue(client, auth(), plan["id"])).json()
    prescription_id = order["groupIdentifier"]["value"]
    assert is_valid_short_form_id(prescription_id)
    [(status, message)] = await query(database, "SELECT status, message FROM eps_outbox WHERE "
                                      "request_id = :r", r=order["id"])
    assert status == "pending" and message["type"] == "message"
    assert message["entry"][0]["resource"]["eventCoding"]["code"] == "prescription-order"
    transport = EpsTransport(app.state.engine)
    while await transport.send_pending():
        pass
    [(status, response)] = await query(database, "SELECT status, spine_response FROM eps_outbox "
                                       "WHERE request_id = :r", r=order["id"])
    assert status == "sent" and response == {
        **response, "simulated": True, "status": "accepted", "prescriptionId": prescription_id}


# ---- repeat requests, stopping, cancelling, re-authorising -----------------------------------
async def test_a_receptionist_raises_a_repeat_request_that_waits_for_a_prescriber(
    client, auth, add_patient
):
    patient_id = await add_patient()
    plan = await authorise(client, auth(), patient_id)
    response = await client.post("/MedicationRequest", json=examples.repeat_request(plan["id"]),
                                 headers=auth("receptionist"))
    assert response.status_code == 201, response.text
    waiting = response.json()
    assert (waiting["status"], waiting["intent"]) == ("draft", "order")
    assert (await issue(client, auth("receptionist"), waiting["id"])).status_code == 403
    issued = await issue(client, auth(), waiting["id"])
    assert issued.status_code == 201, issued.text
    assert issued.json()["id"] == waiting["id"] and issued.json()["status"] == "active"
    assert issued.json()["meta"]["versionId"] == "2"


async def test_stopping_needs_a_reason_and_a_stopped_plan_cannot_be_issued(
    client, auth, add_patient, database
):
    patient_id = await add_patient()
    plan = await authorise(client, auth(), patient_id)
    no_reason = await client.post(f"/MedicationRequest/{plan['id']}/$stop",
                                  json=examples.parameters(), headers=auth())
    assert no_reason.status_code == 422
    stopped = await client.post(f"/MedicationRequest/{plan['id']}/$stop",
                                json=examples.parameters(reason="Rash after starting"),
                                headers=auth())
    assert stopped.status_code == 200
    assert stopped.json()["statusReason"] == {"text": "Rash after starting"}
    assert (await issue(client, auth(), plan["id"])).status_code == 422
    rows = await query(database, "SELECT payload->'data'->'medicationRequest'->>'statusReason' "
                       "FROM outbox WHERE payload->>'type' = 'prescription.stopped.v1' AND "
                       "message_key = :p", p=patient_id)
    assert [r[0] for r in rows] == ["Rash after starting"]


async def test_cancelling_an_issue_withdraws_its_unsent_eps_message(
    client, auth, add_patient, database
):
    patient_id = await add_patient()
    plan = await authorise(client, auth(), patient_id)
    order = (await issue(client, auth(), plan["id"])).json()
    cancelled = await client.post(f"/MedicationRequest/{order['id']}/$cancel",
                                  json=examples.parameters(reason="Wrong strength"),
                                  headers=auth())
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    [(status,)] = await query(database, "SELECT status FROM eps_outbox WHERE request_id = :r",
                              r=order["id"])
    assert status == "withdrawn"


async def test_re_authorising_makes_a_new_plan_linked_to_the_old_one(client, auth, add_patient):
    patient_id = await add_patient()
    old = await authorise(client, auth(), patient_id)
    new = await authorise(client, auth(), patient_id, prior_plan_id=old["id"])
    assert new["priorPrescription"] == {"reference": f"MedicationRequest/{old['id']}"}
    old_now = (await client.get(f"/MedicationRequest/{old['id']}", headers=auth())).json()
    assert old_now["status"] == "completed"
    assert old_now["statusReason"]["text"] == f"Re-authorised as MedicationRequest/{new['id']}"


async def test_prescriptions_are_never_deleted_or_replaced_wholesale(client, auth, add_patient):
    patient_id = await add_patient()
    plan = await authorise(client, auth(), patient_id)
    url = f"/MedicationRequest/{plan['id']}"
    assert (await client.delete(url, headers=auth())).status_code == 405
    assert (await client.put(url, json=plan, headers=auth())).status_code == 405


# ---- safety checks ----------------------------------------------------------------------------
async def test_an_allergy_refuses_with_every_finding_and_an_override_is_kept_and_emitted(
    client, auth, add_patient, add_allergy, database
):
    patient_id = await add_patient()
    await add_allergy(patient_id)
    body = examples.authorisation(patient_id, code=examples.AMOXICILLIN_500_CAPSULES,
                                  course=Course.ACUTE, quantity=21, unit="capsule",
                                  supply_days=7, dose=(1, "capsule"), times_a_day=3,
                                  dosage_text="One capsule three times a day")
    refused = await client.post("/MedicationRequest", json=body, headers=auth())
    assert refused.status_code == 422
    issues = refused.json()["issue"]
    assert issues[1]["details"]["coding"][0]["code"] == "allergy"
    assert issues[1]["severity"] == "error"
    body["extension"].append(examples.override("Tolerated amoxicillin in 2024; rash was viral"))
    accepted = await client.post("/MedicationRequest", json=body, headers=auth())
    assert accepted.status_code == 201, accepted.text
    plan = accepted.json()
    override = next(e for e in plan["extension"] if e["url"] == OVERRIDE_URL)
    assert override["extension"][0]["valueString"].startswith("Tolerated")
    rows = await query(database, "SELECT reason, findings FROM safety_overrides WHERE "
                       "request_id = :r", r=plan["id"])
    assert rows[0][0].startswith("Tolerated") and rows[0][1][0]["kind"] == "allergy"
    types = await query(database, "SELECT payload->>'type' FROM outbox WHERE message_key = :p "
                        "AND topic = 'prescription.events.v1' ORDER BY seq", p=patient_id)
    assert [t[0] for t in types] == ["prescription.authorised.v1",
                                     "prescription.override-recorded.v1"]
    # Issuing the overridden plan does not re-argue the same allergy.
    assert (await issue(client, auth(), plan["id"])).status_code == 201


async def test_an_interaction_refuses_and_a_moderate_one_is_returned_as_a_warning(
    client, auth, add_patient
):
    patient_id = await add_patient()
    await authorise(client, auth(), patient_id, code=examples.CLARITHROMYCIN_500_TABLETS,
                    course=Course.ACUTE, quantity=14, supply_days=7, dose=(1, "tablet"),
                    times_a_day=2, dosage_text="One tablet twice a day")
    refused = await client.post("/MedicationRequest", json=examples.authorisation(
        patient_id, code=examples.SIMVASTATIN_40_TABLETS, dose=(1, "tablet"), times_a_day=1,
        quantity=28, supply_days=28, dosage_text="One at night"), headers=auth())
    assert refused.status_code == 422
    assert "interaction" in [i.get("details", {}).get("coding", [{}])[0].get("code")
                             for i in refused.json()["issue"]]
    other = await add_patient()
    await authorise(client, auth(), other, code=examples.CIPROFLOXACIN_500_TABLETS,
                    course=Course.ACUTE, quantity=14, supply_days=7, dose=(1, "tablet"),
                    times_a_day=2, dosage_text="One tablet twice a day")
    warned = await authorise(client, auth(), other, code=examples.IBUPROFEN_200_TABLETS,
                             dose=(2, "tablet"), times_a_day=3, quantity=84, supply_days=14,
                             dosage_text="Two tablets three times a day")
    assert warnings_of(warned) == ["interaction"]


async def test_duplicate_therapy_refuses(client, auth, add_patient):
    patient_id = await add_patient()
    await authorise(client, auth(), patient_id)
    response = await client.post("/MedicationRequest",
                                 json=examples.authorisation(patient_id), headers=auth())
    assert response.status_code == 422 and "Duplicate therapy" in response.text


async def test_controlled_drug_rules_cannot_be_overridden_but_a_correct_one_passes(
    client, auth, add_patient
):
    patient_id = await add_patient()
    morphine = dict(code=examples.MORPHINE_10_MR_TABLETS, course=Course.ACUTE, quantity=56,
                    supply_days=28, dose=(1, "tablet"), times_a_day=2,
                    dosage_text="One tablet twice a day")
    refused = await client.post("/MedicationRequest", json=examples.authorisation(
        patient_id, override_reason="Palliative care", **morphine), headers=auth())
    assert refused.status_code == 422 and "cannot be overridden" in refused.text
    plan = await authorise(client, auth(), patient_id, quantity_words="fifty-six", **morphine)
    assert plan["status"] == "active"


async def test_a_dose_above_the_maximum_refuses(client, auth, add_patient):
    patient_id = await add_patient()
    response = await client.post("/MedicationRequest", json=examples.authorisation(
        patient_id, dose=(2, "tablet"), times_a_day=6), headers=auth())
    assert response.status_code == 422 and "maximum daily dose" in response.text


async def test_a_missing_or_out_of_date_knowledge_base_refuses_every_prescription_loudly(
    client, auth, add_patient, database
):
    patient_id = await add_patient()
    body = examples.authorisation(patient_id)
    try:
        await query(database, "UPDATE knowledge_base_release SET valid_until = current_date - 1")
        stale = await client.post("/MedicationRequest", json=body, headers=auth())
        assert stale.status_code == 503
        assert "out of date" in stale.json()["issue"][0]["diagnostics"]
        await query(database, "DELETE FROM knowledge_base_release")
        missing = await client.post("/MedicationRequest", json=body, headers=auth())
        assert missing.status_code == 503
        assert missing.json()["issue"][0]["details"]["coding"][0]["code"] == (
            "KNOWLEDGE_BASE_UNAVAILABLE")
    finally:
        from prescribing.service_layer.seed import seed_demo

        engine = create_async_engine(asyncpg_url(database.app_url))
        await seed_demo(engine)
        await engine.dispose()
    assert (await client.post("/MedicationRequest", json=body, headers=auth())).status_code == 201


async def test_reads_and_writes_of_prescriptions_are_audited(client, auth, add_patient, database):
    patient_id = await add_patient()
    plan = await authorise(client, auth(), patient_id)
    await client.get(f"/MedicationRequest/{plan['id']}", headers=auth())
    await client.get("/MedicationRequest", params={"patient": patient_id}, headers=auth())
    rows = await query(database, (
        "SELECT payload->'data'->'subtype'->0->>'code' FROM outbox "
        "WHERE topic = 'audit.events.v1' AND payload->'data'->'entity' @> "
        "jsonb_build_array(jsonb_build_object('what', jsonb_build_object('reference', "
        "CAST(:ref AS text)))) ORDER BY seq"), ref=f"Patient/{patient_id}")
    assert [r[0] for r in rows] == ["create", "read", "search"]
