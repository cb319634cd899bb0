"""Governed sharing end to end, through the gateway and Kafka: without an agreement another
practice's patient does not exist; an agreement in force opens the record (read-only) and
the appointment book; ending it closes both again; break-glass opens one record to one
user for a short time, audited with its reason and alerted to the holding practice."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import asyncpg
import pytest
from devstack import tokens
from gpsoc_kit.testing.fhir_factories import booking, patient
from gpsoc_kit.testing.flows import eventually

from .test_appointments_flow import free_slots
from .test_clinical_flows import penicillin_allergy, when_known

ODS = "https://fhir.nhs.uk/Id/ods-organization-code"
SCOPES = "https://opengpsoc.org/fhir/CodeSystem/sharing-scope"
HOLDER, LINKED = "A81001", "A81002"


def agreement(
    *scopes: str,
    start: dt.datetime,
    end: dt.datetime | None = None,
    grantor: str = HOLDER,
    grantee: str = LINKED,
) -> dict[str, Any]:
    period = {"start": start.isoformat()}
    if end:
        period["end"] = end.isoformat()
    return {
        "resourceType": "OrganizationAffiliation",
        "active": True,
        "period": period,
        "organization": {"identifier": {"system": ODS, "value": grantor}},
        "participatingOrganization": {"identifier": {"system": ODS, "value": grantee}},
        "network": [{"display": "Demo primary care network"}],
        "code": [{"coding": [{"system": SCOPES, "code": scope}]} for scope in scopes],
    }


def total(bundle: dict[str, Any]) -> int:
    return bundle["total"]


async def registered_with_allergy(gateway, token, family: str) -> str:  # noqa: ANN001
    response = await gateway.post(
        "/Patient", json=patient(family=family), headers=token("receptionist", HOLDER)
    )
    assert response.status_code == 201, response.text
    pid = response.json()["id"]
    recorded = await when_known(
        lambda: gateway.post(
            "/AllergyIntolerance", headers=token("gp", HOLDER), json=penicillin_allergy(pid)
        )
    )
    assert recorded.status_code == 201, recorded.text
    return pid


async def booked_in_first_free_slot(  # noqa: ANN201
    gateway,  # noqa: ANN001
    headers: dict[str, str],
    pid: str,
    description: str,
    *,
    among: set[str] | None = None,
):
    """The booking response for the first free routine slot the caller sees (of `among`,
    if given), or None while the patient's registration has not reached appointments
    (422). The demo book is shared with other tests: a slot taken meanwhile (409) sends us
    to the next one."""
    for slot in await free_slots(gateway, headers):
        if among is not None and slot["id"] not in among:
            continue
        response = await gateway.post(
            "/Appointment", headers=headers, json=booking(slot, pid, description)
        )
        if response.status_code == 422:
            return None
        if response.status_code != 409:
            return response
    return None


async def allergies_seen(gateway, headers, pid: str) -> int:  # noqa: ANN001
    response = await gateway.get("/AllergyIntolerance", params={"patient": pid}, headers=headers)
    assert response.status_code == 200, response.text
    return total(response.json())


@pytest.fixture
async def ends_agreements(gateway, token):  # noqa: ANN001, ANN201
    """Agreements a test made are ended when it finishes, pass or fail, so that no other
    test of the session finds the demo practices linked."""
    made: list[str] = []
    yield made
    manager = token("practice-manager", HOLDER)
    for agreement_id in made:
        current = await gateway.get(f"/OrganizationAffiliation/{agreement_id}", headers=manager)
        if current.status_code == 200 and current.json().get("active"):
            await gateway.put(
                f"/OrganizationAffiliation/{agreement_id}",
                json=dict(current.json(), active=False),
                headers=manager,
            )


@pytest.fixture
def other_user_token(test_stack):  # noqa: ANN001, ANN201
    """A second user of the linked practice with the same role (break-glass is personal)."""

    def headers(role: str, practice: str) -> dict[str, str]:
        claims = tokens.claims_for(role, practice)
        claims["sub"] = str(uuid.uuid4())
        return {
            "Authorization": f"Bearer {test_stack.keys.dev_keys.mint(claims)}",
            "Content-Type": "application/fhir+json",
        }

    return headers


async def test_an_agreement_in_force_opens_the_record_read_only_and_ending_it_closes_it(
    gateway, token, ends_agreements
):
    pid = await registered_with_allergy(gateway, token, "Sharedrecord")
    linked_gp = token("gp", LINKED)

    # No agreement: the patient does not exist for the linked practice.
    assert (await gateway.get(f"/Patient/{pid}", headers=linked_gp)).status_code == 404
    assert await allergies_seen(gateway, linked_gp, pid) == 0

    # Only the holding practice can share its data, and only its manager.
    start = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
    refused = await gateway.post(
        "/OrganizationAffiliation",
        headers=token("practice-manager", LINKED),
        json=agreement("read-record", start=start),
    )
    assert refused.status_code == 422
    assert "own practice" in refused.text
    assert (
        await gateway.post(
            "/OrganizationAffiliation",
            headers=token("gp", HOLDER),
            json=agreement("read-record", start=start),
        )
    ).status_code == 403

    made = await gateway.post(
        "/OrganizationAffiliation",
        headers=token("practice-manager", HOLDER),
        json=agreement("read-record", start=start),
    )
    assert made.status_code == 201, made.text
    shared = made.json()
    ends_agreements.append(shared["id"])
    assert shared["meta"]["versionId"] == "1"
    # The grantee's manager and the holder's privacy officer can review it.
    for reviewer in (token("practice-manager", LINKED), token("privacy-officer", HOLDER)):
        seen = await gateway.get(f"/OrganizationAffiliation/{shared['id']}", headers=reviewer)
        assert seen.status_code == 200, seen.text
    # The grantee finds the agreements naming it.
    listed = await gateway.get(
        "/OrganizationAffiliation",
        headers=token("practice-manager", LINKED),
        params={"participating-organization": f"{ODS}|{LINKED}", "active": "true"},
    )
    assert listed.status_code == 200, listed.text
    assert shared["id"] in {e["resource"]["id"] for e in listed.json().get("entry", [])}

    # The patient index honours the agreement from its commit on ...
    opened = await gateway.get(f"/Patient/{pid}", headers=linked_gp)
    assert opened.status_code == 200, opened.text
    # ... and the clinical record follows once the agreement event has been projected.
    assert await eventually(lambda: _when(allergies_seen(gateway, linked_gp, pid), 1))
    # Every way into the record opens with it: history, _id search, $everything.
    history = await gateway.get(f"/Patient/{pid}/_history", headers=linked_gp)
    assert history.status_code == 200 and history.json()["total"] == 1
    by_id = await gateway.get("/Patient", params={"_id": pid}, headers=linked_gp)
    assert by_id.json()["total"] == 1
    everything = await gateway.get(f"/Patient/{pid}/$everything", headers=linked_gp)
    assert everything.status_code == 200, everything.text
    types = {e["resource"]["resourceType"] for e in everything.json()["entry"]}
    assert {"Patient", "AllergyIntolerance"} <= types

    # The holder's privacy officer sees the linked practice's views of the record.
    async def disclosed() -> bool:
        found = await gateway.get(
            "/AuditEvent", params={"patient": pid}, headers=token("privacy-officer", HOLDER)
        )
        assert found.status_code == 200, found.text
        sites = {e["resource"]["source"]["site"] for e in found.json().get("entry", [])}
        return LINKED in sites

    assert await eventually(disclosed)
    # Read-only: the linked practice cannot change the holder's registration.
    changed = dict(opened.json(), gender="unknown")
    assert (
        await gateway.put(f"/Patient/{pid}", json=changed, headers=linked_gp)
    ).status_code == 404

    # Ending the agreement (a new version) closes the record again, everywhere.
    ended = dict(shared, active=False)
    amended = await gateway.put(
        f"/OrganizationAffiliation/{shared['id']}",
        json=ended,
        headers={**token("practice-manager", HOLDER), "If-Match": 'W/"1"'},
    )
    assert amended.status_code == 200, amended.text
    assert amended.json()["meta"]["versionId"] == "2"
    assert (await gateway.get(f"/Patient/{pid}", headers=linked_gp)).status_code == 404
    assert await eventually(lambda: _when(allergies_seen(gateway, linked_gp, pid), 0))
    assert (await gateway.get(f"/Patient/{pid}/$everything", headers=linked_gp)).status_code == 404
    by_id = await gateway.get("/Patient", params={"_id": pid}, headers=linked_gp)
    assert by_id.json()["total"] == 0
    # The holder's own staff never lost anything.
    assert (await gateway.get(f"/Patient/{pid}", headers=token("gp", HOLDER))).status_code == 200


async def test_an_agreement_outside_its_period_opens_nothing(gateway, token, ends_agreements):
    pid = await registered_with_allergy(gateway, token, "Futureshare")
    tomorrow = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
    made = await gateway.post(
        "/OrganizationAffiliation",
        headers=token("practice-manager", HOLDER),
        json=agreement("read-record", start=tomorrow, end=tomorrow + dt.timedelta(days=30)),
    )
    assert made.status_code == 201, made.text
    ends_agreements.append(made.json()["id"])
    assert (await gateway.get(f"/Patient/{pid}", headers=token("gp", LINKED))).status_code == 404

    # Bad agreements are refused with the field named, and nothing is stored.
    bad = agreement("read-record", start=tomorrow, end=tomorrow - dt.timedelta(days=1))
    bad["code"].append({"coding": [{"system": SCOPES, "code": "everything"}]})
    refused = await gateway.post(
        "/OrganizationAffiliation", json=bad, headers=token("practice-manager", HOLDER)
    )
    assert refused.status_code == 422
    expressions = {e for issue in refused.json()["issue"] for e in issue.get("expression", [])}
    assert {"OrganizationAffiliation.period.end", "OrganizationAffiliation.code"} <= expressions


async def test_a_booking_agreement_lets_the_linked_practice_book_into_the_shared_book(
    gateway, token, ends_agreements
):
    reception = token("receptionist", LINKED)
    holder_slots = {s["id"] for s in await free_slots(gateway, token("receptionist", HOLDER))}
    assert holder_slots
    # Without an agreement the holder's book is invisible to the linked practice.
    assert not holder_slots & {s["id"] for s in await free_slots(gateway, reception)}
    start = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
    made = await gateway.post(
        "/OrganizationAffiliation",
        headers=token("practice-manager", HOLDER),
        json=agreement(
            "read-record", "book-shared-slots", start=start, end=start + dt.timedelta(hours=2)
        ),
    )
    assert made.status_code == 201, made.text
    ends_agreements.append(made.json()["id"])
    pid = (
        await gateway.post(
            "/Patient", json=patient(family="Hubbooking"), headers=token("receptionist", HOLDER)
        )
    ).json()["id"]

    # The holder's slots as the linked practice sees them once the agreement reached
    # appointments.
    booked = await eventually(
        lambda: booked_in_first_free_slot(
            gateway, reception, pid, "Extended access", among=holder_slots
        )
    )
    assert booked.status_code == 201, booked.text
    # The appointment lives in the holder's book: its own reception sees it.
    appointment_id = booked.json()["id"]
    seen = await gateway.get(
        f"/Appointment/{appointment_id}", headers=token("receptionist", HOLDER)
    )
    assert seen.status_code == 200, seen.text
    assert (
        await gateway.get(f"/Appointment/{appointment_id}", headers=reception)
    ).status_code == 200

    # Ended, the agreement closes the book again (and leaves nothing open for other tests).
    ended = await gateway.put(
        f"/OrganizationAffiliation/{made.json()['id']}",
        json=dict(made.json(), active=False),
        headers=token("practice-manager", HOLDER),
    )
    assert ended.status_code == 200, ended.text

    async def closed() -> bool:
        seen = {s["id"] for s in await free_slots(gateway, reception)}
        return not seen & holder_slots

    assert await eventually(closed)


async def test_break_glass_opens_one_record_to_one_user_for_a_time_audited_and_alerted(
    gateway, token, other_user_token, platform
):
    pid = await registered_with_allergy(gateway, token, "Breakglass")
    neighbour = (
        await gateway.post(
            "/Patient", json=patient(family="Notopened"), headers=token("receptionist", HOLDER)
        )
    ).json()["id"]
    holder_reception = token("receptionist", HOLDER)
    allergies = await gateway.get(
        "/AllergyIntolerance", params={"patient": pid}, headers=token("gp", HOLDER)
    )
    allergy = f"/AllergyIntolerance/{allergies.json()['entry'][0]['resource']['id']}"

    booked = await eventually(
        lambda: booked_in_first_free_slot(gateway, holder_reception, pid, "Review")
    )
    assert booked.status_code == 201, booked.text
    appointment = f"/Appointment/{booked.json()['id']}"
    # Every version of the record, not only the current ones (an allergy amended, say).
    record = (
        f"/Patient/{pid}",
        f"{allergy}/_history",
        f"{allergy}/_history/1",
        appointment,
        f"{appointment}/_history",
        f"{appointment}/_history/1",
    )

    # A user of its own: the grant is personal, and no demo user is left holding one.
    gp = other_user_token("gp", LINKED)
    for path in record:
        assert (await gateway.get(path, headers=gp)).status_code == 404, path

    def reason(text: str) -> dict[str, Any]:
        return {
            "resourceType": "Parameters",
            "parameter": [{"name": "reason", "valueString": text}],
        }

    why = "Unconscious patient in the hub clinic; allergies needed before treatment"
    # Refusals: no reason, a role that may not, an unknown patient, one's own patient.
    assert (
        await gateway.post(f"/Patient/{pid}/$break-glass", json=reason(" "), headers=gp)
    ).status_code == 422
    assert (
        await gateway.post(
            f"/Patient/{pid}/$break-glass", json=reason(why), headers=token("receptionist", LINKED)
        )
    ).status_code == 403
    assert (
        await gateway.post(f"/Patient/{uuid.uuid4()}/$break-glass", json=reason(why), headers=gp)
    ).status_code == 404
    assert (
        await gateway.post(
            f"/Patient/{pid}/$break-glass", json=reason(why), headers=token("gp", HOLDER)
        )
    ).status_code == 422

    opened = await gateway.post(f"/Patient/{pid}/$break-glass", json=reason(why), headers=gp)
    assert opened.status_code == 201, opened.text
    answer = {p["name"]: p for p in opened.json()["parameter"]}
    expires = dt.datetime.fromisoformat(answer["expires"]["valueInstant"].replace("Z", "+00:00"))
    assert dt.timedelta(minutes=1) < expires - dt.datetime.now(dt.UTC) <= dt.timedelta(minutes=60)

    assert (await gateway.get(f"/Patient/{pid}", headers=gp)).status_code == 200
    assert await eventually(lambda: _when(allergies_seen(gateway, gp, pid), 1))

    async def whole_record_open() -> bool:
        statuses = [(await gateway.get(path, headers=gp)).status_code for path in record]
        return statuses == [200] * len(record)

    assert await eventually(whole_record_open)
    for history in (f"{allergy}/_history", f"{appointment}/_history"):
        assert (await gateway.get(history, headers=gp)).json()["total"] >= 1
    # One record, one user: the neighbour stays closed, and so does a colleague.
    assert (await gateway.get(f"/Patient/{neighbour}", headers=gp)).status_code == 404
    colleague = other_user_token("gp", LINKED)
    assert (await gateway.get(f"/Patient/{pid}", headers=colleague)).status_code == 404

    # The holding practice's privacy officer gets the alert, with the reason and the user.
    async def alert() -> dict[str, Any] | None:
        found = await gateway.get(
            "/AuditEvent", params={"patient": pid}, headers=token("privacy-officer", HOLDER)
        )
        assert found.status_code == 200, found.text
        for entry in found.json().get("entry", []):
            event = entry["resource"]
            if event["type"].get("code") == "110113":
                return event
        return None

    alerted = await eventually(alert)
    assert alerted["purposeOfEvent"][0]["coding"][0]["code"] == "BTG"
    assert any(
        ext["valueString"] == why
        for ext in alerted["extension"]
        if ext["url"].endswith("break-glass-reason")
    )

    # The grant is time-limited: once it has lapsed (moved into the past here, in every
    # service's projection) the record is closed again.
    for service in ("patient-index", "clinical-notes", "prescribing", "appointments"):
        conn = await asyncpg.connect(platform.databases[service].superuser_url)
        try:
            await conn.execute(
                "UPDATE access_grants SET ends_at = now() - interval '1 second' "
                "WHERE patient_id = $1",
                pid,
            )
        finally:
            await conn.close()
    for path in record:
        assert (await gateway.get(path, headers=gp)).status_code == 404, path
    assert await allergies_seen(gateway, gp, pid) == 0


async def _when(value, expected: int) -> bool:  # noqa: ANN001
    return await value == expected
