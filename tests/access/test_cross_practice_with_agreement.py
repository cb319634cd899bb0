"""The same probes as test_cross_practice_probes, with a sharing agreement in force.

A81001 shares its records with A81002 (`read-record`): A81002's clinicians then read, page
and search A81001's record on every route, read-only, while the appointment book (Schedule,
Slot: `book-shared-slots` only) and the audit trail (never shared) stay closed. Ending the
agreement closes every route again. The agreement is ended whatever happens, so no other
test of the session finds the practices linked.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest
from gpsoc_kit.testing.flows import eventually

from .test_cross_practice_probes import (
    CLINICAL,
    HOME,
    ODS,
    OTHER,
    READ_BY_ID,
    SEARCH_BY_ID,
    SEARCH_BY_PATIENT,
    WITH_HISTORY,
    Home,
    home_of,
)

SHARED = ("Patient", "Practitioner", "Organization", "Appointment", "MedicationRequest",
          *CLINICAL)
NOT_SHARED = tuple(t for t in READ_BY_ID if t not in SHARED)  # Schedule, Slot, AuditEvent
SCOPES = "https://opengpsoc.org/fhir/CodeSystem/sharing-scope"


@pytest.fixture(scope="module")
async def home(gateway, token, records) -> Home:  # noqa: ANN001
    """A record of A81001's own for this module: the probes without an agreement assert that
    A81002 never read theirs, whatever order the modules run in."""
    record = await records.build_record(gateway, token, HOME, f"Shared{uuid.uuid4().hex[:8]}")
    return await home_of(gateway, token, record)


@pytest.fixture(scope="module")
async def agreement(gateway, token) -> Any:  # noqa: ANN001
    manager = token("practice-manager", HOME)
    made = await gateway.post("/OrganizationAffiliation", headers=manager, json={
        "resourceType": "OrganizationAffiliation",
        "active": True,
        "period": {"start": (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)).isoformat()},
        "organization": {"identifier": {"system": ODS, "value": HOME}},
        "participatingOrganization": {"identifier": {"system": ODS, "value": OTHER}},
        "code": [{"coding": [{"system": SCOPES, "code": "read-record"}]}],
    })
    assert made.status_code == 201, made.text
    try:
        yield made.json()
    finally:
        current = await gateway.get(f"/OrganizationAffiliation/{made.json()['id']}",
                                    headers=manager)
        if current.json().get("active"):
            await gateway.put(f"/OrganizationAffiliation/{made.json()['id']}", headers=manager,
                              json=dict(current.json(), active=False))


async def _status(gateway, headers, path: str, params: Any = None) -> int:  # noqa: ANN001
    return (await gateway.get(path, params=params, headers=headers)).status_code


async def test_with_an_agreement_every_route_into_the_record_opens_and_ending_it_closes_them(
    gateway, token, home, agreement
):
    gp = token("gp", OTHER)
    officer = token("privacy-officer", OTHER)
    ids = home.ids

    # Reads: each service honours the agreement once it has projected it.
    for resource_type in SHARED:
        path = f"/{resource_type}/{ids[resource_type]}"
        assert await eventually(lambda p=path: _is(gateway, gp, p, 200)), path
    for resource_type in NOT_SHARED:
        headers = officer if resource_type == "AuditEvent" else gp
        assert await _status(gateway, headers, f"/{resource_type}/{ids[resource_type]}") == 404

    for resource_type in WITH_HISTORY:
        history = await gateway.get(f"/{resource_type}/{ids[resource_type]}/_history",
                                    headers=gp)
        assert history.status_code == 200, (resource_type, history.text[:300])
        assert history.json()["total"] >= 1
    for resource_type in SEARCH_BY_ID:
        found = await gateway.get(f"/{resource_type}", params={"_id": ids[resource_type]},
                                  headers=gp)
        assert found.status_code == 200 and found.json()["total"] == 1, resource_type
    for resource_type in SEARCH_BY_PATIENT:
        found = await gateway.get(f"/{resource_type}", params={"patient": ids["Patient"]},
                                  headers=gp)
        assert found.status_code == 200 and found.json()["total"] >= 1, resource_type
        assert ids[resource_type] in {e["resource"]["id"] for e in found.json()["entry"]}

    everything = await gateway.get(f"/Patient/{ids['Patient']}/$everything", headers=gp)
    assert everything.status_code == 200, everything.text[:300]
    gathered = {e["resource"]["id"] for e in everything.json()["entry"]}
    assert {ids["Patient"], ids["AllergyIntolerance"]} <= gathered

    # Read-only: the linked practice may not change what it may read.
    patient = (await gateway.get(f"/Patient/{ids['Patient']}", headers=gp)).json()
    assert (await gateway.put(f"/Patient/{ids['Patient']}", headers=gp,
                              json=dict(patient, gender="other"))).status_code == 404

    # Ended, the agreement closes every route again, in every service.
    manager = token("practice-manager", HOME)
    ended = await gateway.put(f"/OrganizationAffiliation/{agreement['id']}", headers=manager,
                              json=dict(agreement, active=False))
    assert ended.status_code == 200, ended.text
    for resource_type in SHARED:
        if resource_type in ("Practitioner", "Organization"):
            continue  # directory entries: checked by the probes without an agreement
        path = f"/{resource_type}/{ids[resource_type]}"
        assert await eventually(lambda p=path: _is(gateway, gp, p, 404)), path
    assert await _status(gateway, gp, f"/Patient/{ids['Patient']}/$everything") == 404


async def _is(gateway, headers, path: str, status: int) -> bool:  # noqa: ANN001
    return await _status(gateway, headers, path) == status
