"""Access and audit tests: the real platform as processes, reached through the gateway (and,
to prove defence in depth, each service on its own port).

Tokens are minted with the test stack's development key: the demo users of each role, a
user with a role the platform does not know, and fresh users whose every access a test
can find in the audit trail by their id.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from devstack.demo import ROLES
from gpsoc_kit.testing.fhir_factories import patient
from gpsoc_kit.testing.flows import eventually
from prescribing import examples

UNKNOWN_ROLE = "astronaut"
ALL_ROLES = (*ROLES, UNKNOWN_ROLE)
SNOMED = "http://snomed.info/sct"
HOME, OTHER = "A81001", "A81002"


class RetryingClient(httpx.AsyncClient):
    """Waits out the gateway's rate limit (429 Retry-After) instead of failing on it: these
    tests send hundreds of requests per user, the limit is not what they test."""

    async def send(self, request: httpx.Request, **kwargs: Any) -> httpx.Response:  # type: ignore[override]
        for _ in range(20):
            response = await super().send(request, **kwargs)
            if response.status_code != 429:
                return response
            await response.aclose()
            await asyncio.sleep(float(response.headers.get("retry-after", "1")))
        return response


@pytest.fixture(scope="session")
async def gateway(platform: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with RetryingClient(base_url=platform.fhir_base, timeout=60) as client:
        yield client


@pytest.fixture(scope="session")
async def service_clients(platform: Any) -> AsyncIterator[dict[str, httpx.AsyncClient]]:
    """Each service's own api, bypassing the gateway."""
    clients = {name: httpx.AsyncClient(base_url=url, timeout=60)
               for name, url in platform.service_urls.items()}
    try:
        yield clients
    finally:
        for client in clients.values():
            await client.aclose()


@pytest.fixture(scope="session")
def token(test_stack: Any) -> Callable[..., dict[str, str]]:
    """`token(role, practice, user=None)` -> Authorization headers.

    A known role is its demo user; `UNKNOWN_ROLE` is a user of its own holding only a role
    the platform does not know; `user=` gives the token that subject instead (a fresh user).
    """
    minted: dict[tuple[str, str, str | None], str] = {}

    def headers(role: str = "gp", practice: str = HOME, user: str | None = None) -> dict[str, str]:
        key = (role, practice, user)
        if key not in minted:
            base_role = "gp" if role == UNKNOWN_ROLE else role
            claims = test_stack.keys.claims_for(base_role, practice)
            if role == UNKNOWN_ROLE:
                claims.update(roles=[UNKNOWN_ROLE], prescriber=False,
                              sub=str(uuid.uuid5(uuid.NAMESPACE_URL, f"unknown-role/{practice}")))
            if user is not None:
                claims["sub"] = user
            minted[key] = test_stack.keys.mint(claims)
        return {"Authorization": f"Bearer {minted[key]}", "Content-Type": "application/fhir+json"}

    return headers


# ----- records: built through the gateway, as the practice's own staff would --------------
def coded(code: str, display: str) -> dict[str, Any]:
    return {"coding": [{"system": SNOMED, "code": code, "display": display}]}


def allergy(patient_id: str) -> dict[str, Any]:
    return {
        "resourceType": "AllergyIntolerance",
        "clinicalStatus": {"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical",
            "code": "active"}]},
        "verificationStatus": {"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification",
            "code": "confirmed"}]},
        "category": ["medication"],
        "criticality": "high",
        "code": coded("91936005", "Allergy to penicillin"),
        "patient": {"reference": f"Patient/{patient_id}"},
        "recordedDate": "2026-01-10",
        "reaction": [{"manifestation": [coded("126485001", "Urticaria")], "severity": "moderate"}],
    }


def encounter(patient_id: str) -> dict[str, Any]:
    return {
        "resourceType": "Encounter",
        "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
        "type": [coded("11429006", "Consultation")],
        "subject": {"reference": f"Patient/{patient_id}"},
        "period": {"start": "2026-02-01T09:20:00Z"},
    }


def condition(patient_id: str) -> dict[str, Any]:
    return {
        "resourceType": "Condition",
        "clinicalStatus": {"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
            "code": "active"}]},
        "verificationStatus": {"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/condition-ver-status",
            "code": "confirmed"}]},
        "category": [{"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/condition-category",
            "code": "problem-list-item"}]}],
        "code": coded("195967001", "Asthma"),
        "subject": {"reference": f"Patient/{patient_id}"},
        "onsetDateTime": "2020-03-01",
    }


def weight(patient_id: str) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "category": [{"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/observation-category",
            "code": "vital-signs"}]}],
        "code": {"coding": [
            {"system": SNOMED, "code": "27113001", "display": "Body weight"},
            {"system": "http://loinc.org", "code": "29463-7", "display": "Body weight"}]},
        "subject": {"reference": f"Patient/{patient_id}"},
        "effectiveDateTime": "2026-02-01T09:30:00Z",
        "valueQuantity": {"value": 72.5, "unit": "kg", "system": "http://unitsofmeasure.org",
                          "code": "kg"},
    }


def slot_window(days: int = 7) -> list[tuple[str, str]]:
    now = dt.datetime.now(dt.UTC)
    return [
        ("start", "ge" + (now + dt.timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ")),
        ("start", "le" + (now + dt.timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%SZ")),
        ("status", "free"),
    ]


def appointment(slot: dict[str, Any], patient_id: str) -> dict[str, Any]:
    return {
        "resourceType": "Appointment",
        "status": "booked",
        "slot": [{"reference": f"Slot/{slot['id']}"}],
        "start": slot["start"],
        "end": slot["end"],
        "participant": [{"actor": {"reference": f"Patient/{patient_id}"}, "status": "accepted"}],
        "description": "Access test booking",
    }


async def free_slots(gateway: httpx.AsyncClient, headers: dict[str, str]) -> list[dict[str, Any]]:
    params = [*slot_window(), ("_count", "100")]
    response = await gateway.get("/Slot", params=params, headers=headers)
    assert response.status_code == 200, response.text
    return [e["resource"] for e in response.json().get("entry", [])
            if e["search"]["mode"] == "match"]


async def when_known(send: Callable[[], Awaitable[httpx.Response]]) -> httpx.Response:
    """Retry a write until the patient's registration has reached the service (422 before)."""

    async def attempt() -> httpx.Response | None:
        response = await send()
        return None if response.status_code == 422 else response

    return await eventually(attempt, timeout=90)


@dataclass
class PracticeRecord:
    """One patient's record at a practice, with every kind of resource the platform serves."""

    practice: str
    family: str
    ids: dict[str, str] = field(default_factory=dict)  # resource type -> id

    def all_ids(self) -> set[str]:
        return set(self.ids.values())


async def build_record(gateway: httpx.AsyncClient, token: Callable[..., dict[str, str]],
                       practice: str, family: str) -> PracticeRecord:
    record = PracticeRecord(practice, family)
    reception, gp = token("receptionist", practice), token("gp", practice)
    created = await gateway.post("/Patient", json=patient(family=family), headers=reception)
    assert created.status_code == 201, created.text
    pid = record.ids["Patient"] = created.json()["id"]
    updated = await gateway.put(f"/Patient/{pid}", json=dict(created.json(), gender="male"),
                                headers=reception)
    assert updated.status_code == 200, updated.text

    async def book() -> httpx.Response:
        slot = (await free_slots(gateway, reception))[0]
        response = await gateway.post("/Appointment", json=appointment(slot, pid),
                                      headers=reception)
        # 422 until the registration reached appointments; 409 if someone took the slot.
        return response if response.status_code != 409 else httpx.Response(422)

    booked = await when_known(book)
    assert booked.status_code == 201, booked.text
    record.ids["Appointment"] = booked.json()["id"]
    record.ids["Slot"] = booked.json()["slot"][0]["reference"].removeprefix("Slot/")
    slot = await gateway.get(f"/Slot/{record.ids['Slot']}", headers=reception)
    assert slot.status_code == 200, slot.text
    record.ids["Schedule"] = slot.json()["schedule"]["reference"].removeprefix("Schedule/")
    for resource in (encounter(pid), condition(pid), weight(pid), allergy(pid)):
        response = await when_known(
            lambda resource=resource: gateway.post(f"/{resource['resourceType']}",
                                                   json=resource, headers=gp))
        assert response.status_code == 201, response.text
        record.ids[resource["resourceType"]] = response.json()["id"]
    prescribed = await when_known(lambda: gateway.post(
        "/MedicationRequest", json=examples.authorisation(pid), headers=gp))
    assert prescribed.status_code == 201, prescribed.text
    record.ids["MedicationRequest"] = prescribed.json()["id"]
    return record


@pytest.fixture(scope="session")
async def home_record(gateway: httpx.AsyncClient, token: Any) -> PracticeRecord:
    """A patient of A81001 with an appointment, a consultation, a problem, an observation,
    an allergy and a prescription - all made through the gateway by A81001's staff."""
    return await build_record(gateway, token, HOME, f"Probe{uuid.uuid4().hex[:8]}")


@pytest.fixture(scope="session")
def records() -> SimpleNamespace:
    """The record builders above, for the test modules (they cannot import this conftest)."""
    return SimpleNamespace(
        allergy=allergy, encounter=encounter, condition=condition, weight=weight,
        appointment=appointment, free_slots=free_slots, when_known=when_known,
        build_record=build_record, slot_window=slot_window,
    )
