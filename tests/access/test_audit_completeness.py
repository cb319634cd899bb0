"""Audit completeness: every access of a scripted session through the gateway is in the audit
store exactly once - no access missing, none recorded twice - with who, role, practice,
patient, resource, action, outcome, time, request id and trace id.

The session is one fresh user (a GP of A81001 whose id nothing else uses), so the trail
holds nothing of theirs but this script. Each request carries its own X-Request-Id and W3C
traceparent, and the records are matched to requests by them. Slots are looked up by
another user: a free-slot search is not an access to patient data and is not audited.

What each request should leave:
- one record per access in the service that served it (create C, read R, search E,
  update U), including a failed one (404: outcome 4);
- a request the gateway refuses leaves one record, from the gateway (outcome 4), and
  none from any service (it never reached one);
- `Patient/$everything` is assembled by the gateway from one read and five searches, each
  made to the service that owns the data, which audits it: six records, all with the one
  request id (the gateway itself adds none, so the record is neither missing nor doubled).

This suite found, and now guards: service records carry the caller's trace id even with
tracing off; a search of a patient's record that finds nothing still names the patient and
the type; every service (appointments and the audit store included) audits failures.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import pytest
from gpsoc_kit.testing.fhir_factories import patient, valid_nhs_number
from gpsoc_kit.testing.flows import eventually
from prescribing import examples

PRACTICE = "A81001"
NHS = "https://fhir.nhs.uk/Id/nhs-number"
EXT = "https://opengpsoc.org/fhir/StructureDefinition/"


@dataclass(frozen=True)
class Expected:
    """One audit record an access should leave."""

    observer: str  # the service that recorded it
    interaction: str
    action: str
    outcome: str = "0"
    resource: str | None = None  # "Type/id" the record names, beyond the patient
    patient: str | None = None  # None: the session's patient


@dataclass
class Sent:
    label: str
    request_id: str
    trace_id: str
    response: httpx.Response
    expected: list[Expected]


class Session:
    """Requests of one user, each with its own request id and trace context."""

    def __init__(self, gateway: httpx.AsyncClient, headers: dict[str, str]) -> None:
        self.gateway = gateway
        self.headers = headers
        self.sent: list[Sent] = []

    async def send(self, label: str, method: str, url: str, expected: list[Expected],
                   **kwargs: Any) -> httpx.Response:
        request_id, trace_id = f"audit-{uuid.uuid4()}", uuid.uuid4().hex
        headers = {**self.headers, "X-Request-Id": request_id,
                   "traceparent": f"00-{trace_id}-{uuid.uuid4().hex[:16]}-01"}
        response = await self.gateway.request(method, url, headers=headers, **kwargs)
        self.sent.append(Sent(label, request_id, trace_id, response, expected))
        return response


async def projected(platform: Any, patient_id: str) -> None:
    """Wait (outside the session) until every service's projection knows the patient, so
    that no write of the session has to be retried."""
    for service in ("appointments", "prescribing", "clinical-notes"):
        url = platform.databases[service].superuser_url

        async def known(url: str = url) -> bool:
            conn = await asyncpg.connect(url)
            try:
                return bool(await conn.fetchval("SELECT 1 FROM patients WHERE id = $1::uuid",
                                                patient_id))
            finally:
                await conn.close()

        await eventually(known, timeout=90)


def extensions(record: dict[str, Any]) -> dict[str, str]:
    return {e["url"].removeprefix(EXT): e["valueString"] for e in record.get("extension", [])}


def patients_of(record: dict[str, Any]) -> set[str]:
    return {e["what"]["reference"].removeprefix("Patient/") for e in record["entity"]
            if e.get("what", {}).get("reference", "").startswith("Patient/")}


def others_of(record: dict[str, Any]) -> set[str]:
    return {e["what"]["reference"] for e in record["entity"]
            if "what" in e and not e["what"]["reference"].startswith("Patient/")}


@dataclass
class Trail:
    session: Session
    stored: list[dict[str, Any]]
    user: str
    patient_id: str
    window: tuple[dt.datetime, dt.datetime]

    def pairs(self) -> list[tuple[Sent, Expected, dict[str, Any]]]:
        """Each expected record with the stored record matched to it."""
        matched = []
        for sent in self.session.sent:
            found = [r for r in self.stored if extensions(r).get("request-id") == sent.request_id]
            for expected in sent.expected:
                record = next(r for r in found if key(r) == (expected.observer,
                                                              expected.interaction))
                found.remove(record)
                matched.append((sent, expected, record))
        return matched


def key(record: dict[str, Any]) -> tuple[str, str]:
    return record["source"]["observer"]["display"], record["subtype"][0]["code"]


@pytest.fixture(scope="module")
async def trail(gateway, token, platform, records) -> Trail:  # noqa: ANN001
    """The scripted session, then its user's whole trail once the store has caught up."""
    user = str(uuid.uuid4())
    session = Session(gateway, token("gp", PRACTICE, user=user))
    helper = token("receptionist", PRACTICE)
    started = dt.datetime.now(dt.UTC)
    pi, appts, rx, notes = (f"urn:opengpsoc:{s}" for s in
                            ("patient-index", "appointments", "prescribing", "clinical-notes"))

    nhs = valid_nhs_number()
    registered = await session.send("register", "POST", "/Patient",
                                    [Expected(pi, "create", "C")],
                                    json=patient(nhs_number=nhs, family="Auditcomplete"))
    assert registered.status_code == 201, registered.text
    pid = registered.json()["id"]
    assert (await session.send("read", "GET", f"/Patient/{pid}",
                               [Expected(pi, "read", "R")])).status_code == 200
    found = await session.send("search", "GET", "/Patient", [Expected(pi, "search", "E")],
                               params={"identifier": f"{NHS}|{nhs}"})
    assert found.status_code == 200 and found.json()["total"] == 1
    updated = await session.send("update", "PUT", f"/Patient/{pid}",
                                 [Expected(pi, "update", "U")],
                                 json=dict(registered.json(), gender="male"))
    assert updated.status_code == 200, updated.text

    await projected(platform, pid)
    slot = (await records.free_slots(gateway, helper))[0]
    booked = await session.send("book", "POST", "/Appointment",
                                [Expected(appts, "create", "C")],
                                json=records.appointment(slot, pid))
    assert booked.status_code == 201, booked.text
    session.sent[-1].expected[0] = Expected(appts, "create", "C",
                                            resource=f"Appointment/{booked.json()['id']}")
    for kind, body in (("allergy", records.allergy(pid)), ("encounter", records.encounter(pid))):
        recorded = await session.send(kind, "POST", f"/{body['resourceType']}",
                                      [Expected(notes, "create", "C")], json=body)
        assert recorded.status_code == 201, recorded.text
        session.sent[-1].expected[0] = Expected(
            notes, "create", "C", resource=f"{body['resourceType']}/{recorded.json()['id']}")
    prescribed = await session.send("prescribe", "POST", "/MedicationRequest",
                                    [Expected(rx, "create", "C")],
                                    json=examples.authorisation(pid))
    assert prescribed.status_code == 201, prescribed.text
    session.sent[-1].expected[0] = Expected(
        rx, "create", "C", resource=f"MedicationRequest/{prescribed.json()['id']}")

    everything = await session.send(
        "everything", "GET", f"/Patient/{pid}/$everything",
        [Expected(pi, "read", "R"), Expected(appts, "search", "E"), Expected(rx, "search", "E"),
         Expected(notes, "search", "E"), Expected(notes, "search", "E"),
         Expected(notes, "search", "E")])
    assert everything.status_code == 200, everything.text
    assert not [e for e in everything.json()["entry"]
                if e["resource"]["resourceType"] == "OperationOutcome"], "a complete record"

    denied = await session.send(
        "denied", "GET", "/AuditEvent",
        [Expected("urn:opengpsoc:gateway", "search", "E", outcome="4")],
        params={"patient": pid})
    assert denied.status_code == 403
    missing = str(uuid.uuid4())
    failed = await session.send("failed", "GET", f"/Patient/{missing}",
                                [Expected(pi, "read", "R", outcome="4", patient=missing)])
    assert failed.status_code == 404
    finished = dt.datetime.now(dt.UTC)

    stored = await trail_of(gateway, token("privacy-officer", PRACTICE), user,
                            expect=sum(len(s.expected) for s in session.sent))
    return Trail(session, stored, user, pid,
                 (started - dt.timedelta(seconds=5), finished + dt.timedelta(seconds=5)))


async def test_every_access_is_in_the_store_exactly_once(trail):
    """None missing, none twice, none that the session did not make."""
    by_request: dict[str, list[tuple[str, str]]] = {}
    for record in trail.stored:
        by_request.setdefault(extensions(record).get("request-id", "(none)"), []).append(
            key(record))
    problems = [f"{len(v)} record(s) with request id {k} the session never sent"
                for k, v in by_request.items()
                if k not in {s.request_id for s in trail.session.sent}]
    for sent in trail.session.sent:
        got = sorted(by_request.get(sent.request_id, []))
        wanted = sorted((e.observer, e.interaction) for e in sent.expected)
        if got != wanted:
            problems.append(f"{sent.label} (HTTP {sent.response.status_code}): expected "
                            f"{wanted}, stored {got}")
    assert not problems, "\n".join(problems)
    assert len(trail.stored) == 16


async def test_every_record_says_who_where_what_when_and_how_it_ended(trail):
    problems = []
    for sent, expected, record in trail.pairs():
        where = f"{sent.label} / {expected.observer} {expected.interaction}"
        agent = record["agent"][0]
        recorded = dt.datetime.fromisoformat(record["recorded"].replace("Z", "+00:00"))
        patient = expected.patient or trail.patient_id
        facts = {
            "user": (agent["who"]["reference"], f"Practitioner/{trail.user}"),
            "role code": (agent["role"][0]["coding"][0]["code"], "R8000"),
            "practice": (record["source"]["site"], PRACTICE),
            # A search that found nothing names no patient: see the test after next.
            "patient": (patients_of(record) <= {patient}, True),
            "action": (record["action"], expected.action),
            "outcome": (record["outcome"], expected.outcome),
            "time": (trail.window[0] <= recorded <= trail.window[1], True),
            "request id": (extensions(record).get("request-id"), sent.request_id),
        }
        if expected.interaction != "search":
            facts["named patient"] = (patients_of(record), {patient})
        if expected.resource is not None:
            facts["resource"] = (expected.resource in others_of(record), True)
        problems += [f"{where}: {name} is {got!r}, expected {want!r}"
                     for name, (got, want) in facts.items() if got != want]
    assert not problems, "\n".join(problems)


async def test_the_gateways_refusal_is_recorded_by_the_gateway_with_the_callers_trace_id(trail):
    [(sent, _, record)] = [p for p in trail.pairs() if p[0].label == "denied"]
    assert sent.response.status_code == 403
    assert record["outcomeDesc"] == "denied: needs read-audit"
    assert extensions(record).get("trace-id") == sent.trace_id


async def test_every_record_carries_the_callers_trace_id(trail):
    missing = [f"{sent.label} / {expected.observer} {expected.interaction}"
               for sent, expected, record in trail.pairs()
               if extensions(record).get("trace-id") != sent.trace_id]
    assert not missing, "no trace id: " + ", ".join(missing)


async def test_a_search_of_a_patients_record_names_the_patient_even_if_it_found_nothing(trail):
    unnamed = [f"{sent.label} / {expected.observer}"
               for sent, expected, record in trail.pairs()
               if expected.interaction == "search" and patients_of(record) != {trail.patient_id}]
    assert not unnamed, "search records that do not name the patient: " + ", ".join(unnamed)


async def trail_of(gateway: httpx.AsyncClient, officer: dict[str, str], user: str, *,
                   expect: int) -> list[dict[str, Any]]:
    """The user's whole audit trail, once the store has caught up (and a little longer, so a
    late duplicate would be seen too)."""

    async def read() -> tuple[int, list[dict[str, Any]]]:
        response = await gateway.get("/AuditEvent", params={"agent": user, "_count": "100"},
                                     headers=officer)
        assert response.status_code == 200, response.text
        bundle = response.json()
        return bundle["total"], [e["resource"] for e in bundle.get("entry", [])]

    await eventually(lambda: _at_least(read, expect), timeout=90)
    await asyncio.sleep(3)
    total, stored = await read()
    # Only now: while records are still arriving, the count and the page can be taken a
    # moment apart by the store and disagree.
    assert total == len(stored), "one page holds the whole trail"
    return stored


async def _at_least(read: Any, count: int) -> bool:
    return len((await read())[1]) >= count


# ----- a failed request, in every service ----------------------------------------------------
FAILED_READS = {  # service -> (role, a read of something that does not exist)
    "patient-index": ("gp", "Patient"),
    "appointments": ("gp", "Appointment"),
    "prescribing": ("gp", "MedicationRequest"),
    "clinical-notes": ("gp", "Condition"),
    "audit": ("privacy-officer", "AuditEvent"),
}


@pytest.fixture(scope="module")
async def failed_reads(gateway, token) -> dict[str, tuple[str, list[dict[str, Any]]]]:  # noqa: ANN001
    """One 404 read per service by a fresh user; then that user's trail."""
    user = str(uuid.uuid4())
    sent: dict[str, str] = {}
    for service, (role, resource_type) in FAILED_READS.items():
        request_id = f"failed-{uuid.uuid4()}"
        response = await gateway.get(f"/{resource_type}/{uuid.uuid4()}",
                                     headers={**token(role, PRACTICE, user=user),
                                              "X-Request-Id": request_id})
        assert response.status_code == 404, f"{service}: {response.text}"
        sent[service] = request_id
    # The services that do audit failures: wait for theirs, then a little longer.
    stored = await trail_of(gateway, token("privacy-officer", PRACTICE), user, expect=3)
    return {service: (request_id, [r for r in stored
                                   if extensions(r).get("request-id") == request_id])
            for service, request_id in sent.items()}


@pytest.mark.parametrize("service", list(FAILED_READS))
async def test_a_failed_request_is_audited_once_in_every_service(failed_reads, service):
    _, records = failed_reads[service]
    assert len(records) == 1, f"{service}: {len(records)} records of its failed read"
    assert records[0]["outcome"] == "4"
    assert records[0]["source"]["observer"]["display"] == f"urn:opengpsoc:{service}"
