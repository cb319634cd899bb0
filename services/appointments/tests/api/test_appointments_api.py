"""The appointments FHIR API, in-process against a real database."""

from __future__ import annotations

import datetime as dt
import uuid

from gpsoc_kit.db import asyncpg_url
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine


def _code(response) -> str:  # noqa: ANN001
    return response.json()["issue"][0]["details"]["coding"][0]["code"]


async def _book(clinic, booking_for, slot, patient_id, headers=None, **fields):  # noqa: ANN001, ANN202
    return await clinic.client.post("/Appointment", json=booking_for(slot, patient_id, **fields),
                                    headers=headers or clinic.headers)


async def test_a_receptionist_books_a_free_slot_and_it_is_no_longer_offered(clinic, booking_for):
    patient = await clinic.add_patient()
    slot = await clinic.slot_after(3)
    response = await _book(clinic, booking_for, slot, patient)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["status"] == "booked" and body["meta"]["versionId"] == "1"
    assert "https://fhir.hl7.org.uk/StructureDefinition/UKCore-Appointment" in body["meta"]["profile"]
    assert response.headers["location"].endswith(f"/Appointment/{body['id']}/_history/1")
    assert body["slot"] == [{"reference": f"Slot/{slot['id']}"}]
    actors = [p["actor"].get("reference") for p in body["participant"]]
    assert f"Patient/{patient}" in actors and f"Practitioner/{clinic.practitioner_id}" in actors
    assert body["extension"][0]["valueCodeableConcept"]["coding"][0]["code"] == "In-person"
    assert slot["id"] not in [s["id"] for s in await clinic.free_slots()]
    read = await clinic.client.get(f"/Slot/{slot['id']}", headers=clinic.headers)
    assert read.json()["status"] == "busy"


async def test_a_taken_slot_answers_409_duplicate_rejected(clinic, booking_for):
    slot = await clinic.slot_after(3)
    assert (await _book(clinic, booking_for, slot, await clinic.add_patient())).status_code == 201
    second = await _book(clinic, booking_for, slot, await clinic.add_patient())
    assert second.status_code == 409
    assert second.json()["resourceType"] == "OperationOutcome"
    assert _code(second) == "DUPLICATE_REJECTED"


async def test_unknown_deceased_and_deregistered_patients_cannot_be_booked(clinic, booking_for):
    slot = await clinic.slot_after(3)
    for patient in (str(uuid.uuid4()), await clinic.add_patient(deceased=True),
                    await clinic.add_patient(active=False)):
        response = await _book(clinic, booking_for, slot, patient)
        assert response.status_code == 422, response.text
        assert response.json()["issue"][0]["expression"] == ["Appointment.participant"]
    assert slot["id"] in [s["id"] for s in await clinic.free_slots()]


async def test_invalid_booking_changes_nothing(clinic, booking_for, database):
    patient = await clinic.add_patient()
    slot = await clinic.slot_after(3)
    too_long = await _book(clinic, booking_for, slot, patient, description="x" * 101)
    assert too_long.status_code == 422
    assert too_long.json()["issue"][0]["expression"] == ["Appointment.description"]
    wrong_end = await _book(clinic, booking_for, slot, patient, end=slot["start"])
    assert wrong_end.status_code == 422
    engine = create_async_engine(asyncpg_url(database.superuser_url))
    async with engine.connect() as conn:
        booked = await conn.scalar(text("SELECT count(*) FROM appointments WHERE patient_id = :p"),
                                   {"p": patient})
    await engine.dispose()
    assert booked == 0


async def test_another_practice_sees_nothing_and_reads_answer_404(clinic, booking_for, auth):
    booked = (await _book(clinic, booking_for, await clinic.slot_after(3),
                          await clinic.add_patient())).json()
    theirs = auth("gp", practice_code="TOTHER")
    for path in (f"/Appointment/{booked['id']}", f"/Appointment/{booked['id']}/_history",
                 f"/Slot/{booked['slot'][0]['reference'].split('/')[1]}",
                 f"/Schedule/{clinic.schedule_id}"):
        response = await clinic.client.get(path, headers=theirs)
        assert response.status_code == 404, path
    patient = booked["participant"][0]["actor"]["reference"]
    search = await clinic.client.get("/Appointment", params={"patient": patient}, headers=theirs)
    assert search.json()["total"] == 0
    now = dt.datetime.now(dt.UTC)
    slots = await clinic.client.get("/Slot", params=[
        ("start", f"ge{now.date()}"), ("start", f"le{now.date() + dt.timedelta(days=2)}"),
        ("schedule", clinic.schedule_id)], headers=theirs)
    assert slots.status_code == 200 and slots.json()["total"] == 0


async def test_slot_search_includes_schedule_and_practitioner_and_filters(clinic, auth):
    now = dt.datetime.now(dt.UTC)
    response = await clinic.client.get("/Slot", params=[
        ("start", f"ge{now.date()}"), ("start", f"le{now.date() + dt.timedelta(days=2)}"),
        ("status", "free"), ("_include", "Slot:schedule"),
        ("_include:recurse", "Schedule:actor:Practitioner"),
        ("schedule.actor", f"Practitioner/{clinic.practitioner_id}"), ("_count", "5")],
        headers=clinic.headers)
    assert response.status_code == 200, response.text
    bundle = response.json()
    matches = [e["resource"] for e in bundle["entry"] if e["search"]["mode"] == "match"]
    included = {e["resource"]["resourceType"]: e["resource"] for e in bundle["entry"]
                if e["search"]["mode"] == "include"}
    # More than a page matches: the total is not counted unless asked (_total=accurate).
    assert len(matches) == 5 and "total" not in bundle
    assert all(s["status"] == "free" for s in matches)
    assert included["Schedule"]["id"] == clinic.schedule_id
    assert included["Practitioner"]["id"] == clinic.practitioner_id
    assert any(link["relation"] == "next" for link in bundle["link"])
    telephone = await clinic.free_slots(**{"delivery-channel": "Telephone"})
    assert telephone == []
    routine = await clinic.free_slots(**{"service-type": "routine"})
    assert routine and all(s["serviceType"][0]["coding"][0]["code"] == "routine" for s in routine)


async def test_slot_pages_follow_each_other_and_the_total_is_counted_when_asked(clinic):
    everything = await clinic.free_slots()
    assert len(everything) > 20
    window = [("start", f"ge{everything[0]['start']}"), ("start", f"le{everything[-1]['start']}"),
              ("status", "free"), ("schedule", f"Schedule/{clinic.schedule_id}")]
    pages, url, params = [], "/Slot", [*window, ("_count", "7")]
    while url:
        response = await clinic.client.get(url, params=params, headers=clinic.headers)
        assert response.status_code == 200, response.text
        pages.append(response.json())
        following = [link["url"] for link in pages[-1]["link"] if link["relation"] == "next"]
        url, params = (following[0].split("/fhir/R4", 1)[-1], None) if following else (None, None)
    paged = [e["resource"]["id"] for page in pages for e in page["entry"]]
    assert paged == [s["id"] for s in everything]  # in start order, none twice, none missed
    assert "total" not in pages[0]
    assert pages[-1]["total"] == len(everything)  # the last page shows it anyway

    counted = await clinic.client.get("/Slot", params=[*window, ("_count", "7"),
                                                       ("_total", "accurate")],
                                      headers=clinic.headers)
    assert counted.status_code == 200 and counted.json()["total"] == len(everything)
    assert [e["resource"]["id"] for e in counted.json()["entry"]] == paged[:7]
    only_total = await clinic.client.get("/Slot", params=[*window, ("_count", "0")],
                                         headers=clinic.headers)
    assert only_total.json()["total"] == len(everything) and not only_total.json().get("entry")
    past_the_end = await clinic.client.get("/Slot", params=[
        *window, ("_offset", str(len(everything) + 5)), ("_total", "accurate")],
        headers=clinic.headers)
    assert past_the_end.json()["total"] == len(everything)
    bad = await clinic.client.get("/Slot", params=[*window, ("_total", "exact")],
                                  headers=clinic.headers)
    assert bad.status_code == 400 and bad.json()["resourceType"] == "OperationOutcome"


async def test_a_slot_found_is_the_slot_read(clinic):
    """The search renders its Slots in SQL and text; a read renders the resource. Same JSON."""
    found = (await clinic.free_slots())[:3]
    for slot in found:
        read = await clinic.client.get(f"/Slot/{slot['id']}", headers=clinic.headers)
        assert read.json() == slot


async def test_a_search_window_longer_than_14_days_answers_422(clinic):
    today = dt.date.today()
    response = await clinic.client.get("/Slot", params=[
        ("start", f"ge{today}"), ("start", f"le{today + dt.timedelta(days=15)}")],
        headers=clinic.headers)
    assert response.status_code == 422
    missing = await clinic.client.get("/Slot", params={"start": f"ge{today}"},
                                      headers=clinic.headers)
    assert missing.status_code == 422
    unknown = await clinic.client.get("/Slot", params=[
        ("start", f"ge{today}"), ("start", f"le{today}"), ("colour", "blue")],
        headers=clinic.headers)
    assert unknown.status_code == 400


async def test_slot_types_limit_who_may_book_and_the_embargo_hides_unreleased_slots(
    clinic_factory, booking_for, auth
):
    review = await clinic_factory(slot_type="review")
    slot_for_gp = await review.slot_after(3, headers=auth("gp"))
    assert await review.free_slots() == []  # a receptionist is not offered review slots
    response = await _book(review, booking_for, slot_for_gp, await review.add_patient())
    assert response.status_code == 403
    gp = await _book(review, booking_for, slot_for_gp, await review.add_patient(), auth("gp"))
    assert gp.status_code == 201, gp.text

    embargoed = await clinic_factory(slot_type="urgent", releaseHours=1)
    released = await embargoed.free_slots()
    horizon = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1, minutes=1)
    assert released and all(dt.datetime.fromisoformat(s["start"].replace("Z", "+00:00"))
                            <= horizon for s in released)


async def test_an_embargoed_slot_cannot_be_booked(clinic_factory, booking_for, auth):
    embargoed = await clinic_factory(slot_type="urgent", releaseHours=1)
    manager = auth("practice-manager")
    now = dt.datetime.now(dt.UTC)
    tomorrow = now + dt.timedelta(days=1)
    # From two hours ahead: every slot in the window is still under its one-hour embargo,
    # whatever the time of day (a whole-day window would catch the next hour late at night).
    window = [("start", "ge" + (now + dt.timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ")),
              ("start", "le" + (now + dt.timedelta(hours=26)).strftime("%Y-%m-%dT%H:%M:%SZ"))]
    everything = await embargoed.client.get("/Slot", params=window, headers=manager)
    assert everything.status_code == 200, everything.text
    assert everything.json()["total"] == 0  # not released yet, so not bookable, so not offered
    from appointments.adapters.tables import slots
    from sqlalchemy import select

    async with embargoed.uow_factory(embargoed.practice) as uow:
        row = (await uow.conn.execute(
            select(slots.c.id, slots.c.start_at, slots.c.end_at)
            .where(slots.c.schedule_id == embargoed.schedule_id,
                   slots.c.start_at > tomorrow).limit(1))).one()
    slot = {"id": row.id, "start": row.start_at.isoformat(), "end": row.end_at.isoformat()}
    response = await _book(embargoed, booking_for, slot, await embargoed.add_patient())
    assert response.status_code == 422
    assert "embargoed" in response.json()["issue"][0]["diagnostics"]


async def test_amend_description_with_if_match_and_history_keeps_both(clinic, booking_for):
    booked = (await _book(clinic, booking_for, await clinic.slot_after(3),
                          await clinic.add_patient())).json()
    path = f"/Appointment/{booked['id']}"
    stale = await clinic.client.put(path, json=dict(booked, description="Follow-up"),
                                    headers={**clinic.headers, "If-Match": 'W/"9"'})
    assert stale.status_code == 412
    missing = await clinic.client.put(path, json=dict(booked, description="Follow-up"),
                                      headers=clinic.headers)
    assert missing.status_code == 428
    moved = await clinic.client.put(path, json=dict(booked, start="2030-01-01T09:00:00Z"),
                                    headers={**clinic.headers, "If-Match": 'W/"1"'})
    assert moved.status_code == 422
    amended = await clinic.client.put(path, json=dict(booked, description="Follow-up",
                                                      comment="Prefers mornings"),
                                      headers={**clinic.headers, "If-Match": 'W/"1"'})
    assert amended.status_code == 200, amended.text
    assert amended.json()["meta"]["versionId"] == "2"
    history = (await clinic.client.get(f"{path}/_history", headers=clinic.headers)).json()
    assert [e["resource"]["description"] for e in history["entry"]] == [
        "Follow-up", "Cough for three weeks"]
    v1 = await clinic.client.get(f"{path}/_history/1", headers=clinic.headers)
    assert v1.json()["description"] == "Cough for three weeks"


async def test_cancelling_frees_the_slot_and_a_cancelled_appointment_stays_cancelled(
    clinic, booking_for
):
    slot = await clinic.slot_after(3)
    booked = (await _book(clinic, booking_for, slot, await clinic.add_patient())).json()
    path = f"/Appointment/{booked['id']}"
    no_reason = await clinic.client.put(path, json=dict(booked, status="cancelled"),
                                        headers={**clinic.headers, "If-Match": 'W/"1"'})
    assert no_reason.status_code == 422
    cancelled = await clinic.client.put(
        path, json=dict(booked, status="cancelled",
                        cancelationReason={"text": "Patient request"}),
        headers={**clinic.headers, "If-Match": 'W/"1"'})
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["cancelationReason"] == {"text": "Patient request"}
    assert slot["id"] in [s["id"] for s in await clinic.free_slots()]
    again = await clinic.client.put(path, json=dict(cancelled.json(), status="booked"),
                                    headers={**clinic.headers, "If-Match": 'W/"2"'})
    assert again.status_code == 422
    rebooked = await _book(clinic, booking_for, slot, await clinic.add_patient())
    assert rebooked.status_code == 201


async def test_arrived_then_fulfilled_and_noshow_before_the_start_is_refused(clinic, booking_for):
    soon = (await clinic.free_slots())[0]  # starts within the hour
    booked = (await _book(clinic, booking_for, soon, await clinic.add_patient())).json()
    path = f"/Appointment/{booked['id']}"
    headers = clinic.headers
    noshow = await clinic.client.put(path, json=dict(booked, status="noshow"),
                                     headers={**headers, "If-Match": 'W/"1"'})
    assert noshow.status_code == 422
    arrived = await clinic.client.put(path, json=dict(booked, status="arrived"),
                                      headers={**headers, "If-Match": 'W/"1"'})
    assert arrived.status_code == 200, arrived.text
    fulfilled = await clinic.client.put(path, json=dict(arrived.json(), status="fulfilled"),
                                        headers={**headers, "If-Match": 'W/"2"'})
    assert fulfilled.status_code == 200 and fulfilled.json()["status"] == "fulfilled"


async def test_a_blocked_slot_is_not_offered_and_only_a_manager_blocks(clinic, booking_for, auth):
    slot = await clinic.slot_after(3)
    refused = await clinic.client.post(f"/Slot/{slot['id']}/$block", headers=clinic.headers)
    assert refused.status_code == 403
    blocked = await clinic.client.post(
        f"/Slot/{slot['id']}/$block",
        json={"resourceType": "Parameters",
              "parameter": [{"name": "comment", "valueString": "Training"}]},
        headers=auth("practice-manager"))
    assert blocked.status_code == 200, blocked.text
    assert blocked.json()["status"] == "busy-unavailable"
    assert slot["id"] not in [s["id"] for s in await clinic.free_slots()]
    response = await _book(clinic, booking_for, slot, await clinic.add_patient())
    assert response.status_code == 409
    unblocked = await clinic.client.post(f"/Slot/{slot['id']}/$unblock",
                                         headers=auth("practice-manager"))
    assert unblocked.json()["status"] == "free"


async def test_a_held_slot_is_booked_only_with_its_hold_token(clinic, booking_for, auth):
    slot = await clinic.slot_after(3)
    hold = await clinic.client.post(f"/Slot/{slot['id']}/$hold", headers=clinic.headers)
    assert hold.status_code == 200, hold.text
    params = {p["name"]: p for p in hold.json()["parameter"]}
    assert params["slot"]["resource"]["status"] == "busy-tentative"
    token = params["holdToken"]["valueString"]
    assert (await clinic.client.post(f"/Slot/{slot['id']}/$hold",
                                     headers=auth("gp"))).status_code == 409
    patient = await clinic.add_patient()
    without = await _book(clinic, booking_for, slot, patient)
    assert without.status_code == 409
    wrong = await _book(clinic, booking_for, slot, patient,
                        headers={**clinic.headers, "X-Slot-Hold": str(uuid.uuid4())})
    assert wrong.status_code == 409
    with_token = await _book(clinic, booking_for, slot, patient,
                             headers={**clinic.headers, "X-Slot-Hold": token})
    assert with_token.status_code == 201, with_token.text


async def test_the_same_idempotency_key_returns_the_original_answer(clinic, booking_for,
                                                                    database):
    patient = await clinic.add_patient()
    slot = await clinic.slot_after(3)
    headers = {**clinic.headers, "Idempotency-Key": str(uuid.uuid4())}
    first = await _book(clinic, booking_for, slot, patient, headers=headers)
    retry = await _book(clinic, booking_for, slot, patient, headers=headers)
    assert first.status_code == retry.status_code == 201
    assert retry.json() == first.json()
    assert retry.headers["idempotent-replayed"] == "true"
    other = await _book(clinic, booking_for, await clinic.slot_after(4), patient, headers=headers)
    assert other.status_code == 422
    engine = create_async_engine(asyncpg_url(database.superuser_url))
    async with engine.connect() as conn:
        count = await conn.scalar(text("SELECT count(*) FROM appointments WHERE patient_id = :p"),
                                  {"p": patient})
    await engine.dispose()
    assert count == 1


async def test_a_patients_appointments_and_a_clinicians_day_list(clinic, booking_for, auth):
    patient = await clinic.add_patient()
    slots = await clinic.free_slots()
    for slot in (slots[3], slots[6]):
        assert (await _book(clinic, booking_for, slot, patient)).status_code == 201
    mine = await clinic.client.get("/Appointment", params={
        "patient": f"Patient/{patient}", "date": f"ge{dt.date.today() - dt.timedelta(days=1)}"},
        headers=auth("gp"))
    assert mine.status_code == 200 and mine.json()["total"] == 2
    day = slots[6]["start"]
    from appointments.domain.rota import PRACTICE_TIMEZONE

    local_day = dt.datetime.fromisoformat(day.replace("Z", "+00:00")).astimezone(
        PRACTICE_TIMEZONE).date()
    listing = await clinic.client.get("/Appointment", params={
        "practitioner": clinic.practitioner_id, "date": local_day.isoformat()},
        headers=auth("gp"))
    assert listing.status_code == 200
    assert slots[6]["start"] in [e["resource"]["start"] for e in listing.json()["entry"]]
    everything = await clinic.client.get("/Appointment", headers=auth("gp"))
    assert everything.status_code == 400


async def test_roles_without_booking_rights_are_refused(clinic, booking_for, auth):
    response = await clinic.client.post("/Schedule", json={"resourceType": "Schedule"},
                                        headers=auth("receptionist"))
    assert response.status_code == 403
    unauthenticated = await clinic.client.get(f"/Slot/{uuid.uuid4()}")
    assert unauthenticated.status_code == 401


async def test_metadata_lists_schedule_slot_and_appointment(client):
    statement = (await client.get("/metadata")).json()
    types = {r["type"]: r for r in statement["rest"][0]["resource"]}
    assert set(types) == {"Schedule", "Slot", "Appointment"}
    assert "Schedule:actor:Practitioner" in types["Slot"]["searchInclude"]
