"""FHIR conformance gate: what the platform serves validates against FHIR R4 and UK Core.

Everything goes through the gateway. One table, SERVED, says for each resource type how to
get one through the API (create it, or fetch demo data for types that have no create route),
how to search for it, which UK Core profile it must declare, and how to adapt a UK Core
example so our API can accept it. A type the CapabilityStatement lists without an entry
fails the gate; an entry whose type the platform does not serve yet is skipped.

Validation errors fail the test; warnings (and, among them, the codes in SNOMED CT, dm+d or
LOINC that cannot be checked offline) are counted into the report printed at the end.
"""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
import json
import os
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from gpsoc_kit.testing.fhir_factories import patient as patient_factory
from gpsoc_kit.testing.fhir_factories import valid_nhs_number

pytestmark = pytest.mark.integration  # needs Java, Maven and the real platform

UKCORE = "https://fhir.hl7.org.uk/StructureDefinition"
NHS = "https://fhir.nhs.uk/Id/nhs-number"
ODS = "https://fhir.nhs.uk/Id/ods-organization-code"
PRACTICE = "A81001"
# types only some roles may read
READ_ROLE = {"AuditEvent": "privacy-officer", "OrganizationAffiliation": "practice-manager"}


def _uk_core_examples_dir() -> Path:
    """<repo>/../shared/fhir/uk-core/examples, or under GPSOC_UK_CORE_DIR if set."""
    configured = os.environ.get("GPSOC_UK_CORE_DIR")
    repo = Path(__file__).resolve().parents[2]
    root = Path(configured) if configured else repo.parent / "shared" / "fhir" / "uk-core"
    return root / "examples"


# ----- what a table entry gets to work with ------------------------------------------------
@dataclass
class Api:
    gateway: httpx.AsyncClient
    token: Callable[..., dict[str, str]]
    organization_id: str  # the demo practice A81001
    practitioner_id: str  # a demo GP of A81001

    def headers(self, role: str = "gp") -> dict[str, str]:
        return self.token(role, PRACTICE)

    async def create(self, resource: dict[str, Any], role: str = "gp",
                     headers: dict[str, str] | None = None) -> httpx.Response:
        return await self.gateway.post(f"/{resource['resourceType']}", json=resource,
                                       headers={**self.headers(role), **(headers or {})})

    async def read(self, resource_type: str, resource_id: str) -> dict[str, Any]:
        response = await self.gateway.get(f"/{resource_type}/{resource_id}",
                                          headers=self.headers(READ_ROLE.get(resource_type, "gp")))
        assert response.status_code == 200, response.text
        return response.json()

    async def search(self, resource_type: str, params: Any) -> dict[str, Any]:
        response = await self.gateway.get(f"/{resource_type}", params=params,
                                          headers=self.headers(READ_ROLE.get(resource_type, "gp")))
        assert response.status_code == 200, response.text
        return response.json()


@dataclass(frozen=True)
class Served:
    """How the conformance suite exercises one resource type through the API."""

    resource_type: str
    profile: str
    # Gets one through the API: (the body a create answered, or None if the type has no
    # create route and `obtain` fetched existing data; the resource's id).
    obtain: Callable[[Api], Awaitable[tuple[dict[str, Any] | None, str]]]
    # Search parameters that find the obtained resource (given as read back).
    search: Callable[[dict[str, Any]], Any]
    # Adapts a UK Core example so our API can take it (strip id/meta, point references at
    # resources that exist); None when the type has no create route.
    prepare_example: Callable[[Api, dict[str, Any]], Awaitable[dict[str, Any]]] | None = None
    create_role: str = "gp"


def _strip(example: dict[str, Any]) -> dict[str, Any]:
    resource = copy.deepcopy(example)
    resource.pop("id", None)
    resource.pop("meta", None)
    return resource


# ----- patient-index: Patient, Organization, Practitioner ----------------------------------
def full_patient(api: Api) -> dict[str, Any]:
    """A Patient with the UK Core extensions and every element our API keeps."""
    resource = patient_factory(nhs_number=valid_nhs_number(), family="Conformance", given="Ada")
    resource["name"][0]["prefix"] = ["Mrs"]
    resource["name"][0]["given"].append("Mary")
    resource.update({
        "text": {"status": "generated",
                 "div": '<div xmlns="http://www.w3.org/1999/xhtml">Ada Mary CONFORMANCE</div>'},
        "extension": [
            {"url": f"{UKCORE}/Extension-UKCore-EthnicCategory",
             "valueCodeableConcept": {"coding": [{
                 "system": "https://fhir.hl7.org.uk/CodeSystem/UKCore-EthnicCategoryEngland",
                 "code": "A", "display": "White - British"}]}},
            {"url": f"{UKCORE}/Extension-UKCore-BirthSex",
             "valueCodeableConcept": {"coding": [{
                 "system": "http://terminology.hl7.org/CodeSystem/v3-AdministrativeGender",
                 "code": "F", "display": "Female"}]}},
            {"url": f"{UKCORE}/Extension-UKCore-ResidentialStatus",
             "valueCodeableConcept": {"coding": [{
                 "system": "https://fhir.hl7.org.uk/CodeSystem/UKCore-ResidentialStatus",
                 "code": "H", "display": "UK Resident"}]}},
            {"url": "http://hl7.org/fhir/StructureDefinition/patient-interpreterRequired",
             "valueBoolean": False},
        ],
        "active": True,
        "telecom": [{"system": "phone", "value": "01632 960587", "use": "home"},
                    {"system": "email", "value": "ada.conformance@example.org", "use": "home"}],
        "maritalStatus": {"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/v3-MaritalStatus",
            "code": "M", "display": "Married"}]},
        "contact": [{
            "relationship": [{"coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/v2-0131",
                "code": "N", "display": "Next-of-Kin"}]}],
            "name": {"use": "official", "family": "Conformance", "given": ["Bob"]},
            "telecom": [{"system": "phone", "value": "01632 960588", "use": "mobile"}],
        }],
        "communication": [{
            "language": {"coding": [{"system": "urn:ietf:bcp:47", "code": "en-GB",
                                     "display": "English (United Kingdom)"}]},
            "preferred": True,
        }],
        "generalPractitioner": [{"reference": f"Practitioner/{api.practitioner_id}"}],
        "managingOrganization": {"reference": f"Organization/{api.organization_id}",
                                 "identifier": {"system": ODS, "value": PRACTICE}},
    })
    return resource


async def obtain_patient(api: Api) -> tuple[dict[str, Any] | None, str]:
    response = await api.create(full_patient(api), role="receptionist")
    assert response.status_code == 201, response.text
    return response.json(), response.json()["id"]


async def prepare_patient_example(api: Api, example: dict[str, Any]) -> dict[str, Any]:
    resource = _strip(example)
    # Our API accepts only references to this practice's own staff and organisation.
    if "generalPractitioner" in resource:
        resource["generalPractitioner"] = [{"reference": f"Practitioner/{api.practitioner_id}"}]
    if "managingOrganization" in resource:
        resource["managingOrganization"] = {"reference": f"Organization/{api.organization_id}"}
    return resource


async def obtain_organization(api: Api) -> tuple[dict[str, Any] | None, str]:
    return None, api.organization_id


async def obtain_practitioner(api: Api) -> tuple[dict[str, Any] | None, str]:
    return None, api.practitioner_id


# A practice outside the demo data: the agreement opens nothing the other tests could see.
AGREEMENT_GRANTEE = "Y01234"


async def obtain_sharing_agreement(api: Api) -> tuple[dict[str, Any] | None, str]:
    response = await api.create({
        "resourceType": "OrganizationAffiliation",
        "active": True,
        "period": {"start": "2026-01-01", "end": "2027-01-01"},
        "organization": {"identifier": {"system": ODS, "value": PRACTICE}},
        "participatingOrganization": {"identifier": {"system": ODS, "value": AGREEMENT_GRANTEE}},
        "network": [{"display": "Conformance primary care network"}],
        "code": [{"coding": [{"system": "https://opengpsoc.org/fhir/CodeSystem/sharing-scope",
                              "code": "read-record"}]}],
    }, role="practice-manager")
    assert response.status_code == 201, response.text
    return response.json(), response.json()["id"]


# ----- appointments: Schedule, Slot, Appointment (against the service's real routes) --------
async def _free_slot(api: Api, service_type: str | None = None) -> dict[str, Any]:
    now = dt.datetime.now(dt.UTC)
    params = [("start", "ge" + (now + dt.timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ")),
              ("start", "le" + (now + dt.timedelta(days=14)).strftime("%Y-%m-%dT%H:%M:%SZ")),
              ("status", "free"), ("_count", "50")]
    if service_type:
        params.append(("service-type", service_type))
    bundle = await api.search("Slot", params)
    slots = [e["resource"] for e in bundle.get("entry", []) if e["search"]["mode"] == "match"]
    assert slots, "the demo rotas give free slots in the next fortnight"
    return slots[0]


async def obtain_slot(api: Api) -> tuple[dict[str, Any] | None, str]:
    return None, (await _free_slot(api))["id"]


async def obtain_schedule(api: Api) -> tuple[dict[str, Any] | None, str]:
    slot = await _free_slot(api)
    return None, slot["schedule"]["reference"].split("/")[-1]


async def _registered_patient(api: Api) -> str:
    registered = await api.create(full_patient(api), role="receptionist")
    assert registered.status_code == 201, registered.text
    return registered.json()["id"]


async def _book(api: Api, appointment: dict[str, Any], patient_id: str) -> httpx.Response:
    """Books `appointment` into a free slot for the patient, retrying while the patient's
    registration is still on its way to the appointments projection (422 until then)."""
    deadline = asyncio.get_running_loop().time() + 45
    while True:
        # A routine slot: the front desk may book it (a medication review, say, it may not),
        # whatever the time of day makes the earliest free slot.
        slot = await _free_slot(api, "routine")
        booking = dict(appointment, slot=[{"reference": f"Slot/{slot['id']}"}],
                       start=slot["start"], end=slot["end"])
        others = [p for p in booking.get("participant", [])
                  if not str((p.get("actor") or {}).get("reference", "")).startswith("Patient/")]
        booking["participant"] = [{"actor": {"reference": f"Patient/{patient_id}"},
                                   "status": "accepted"}, *others]
        response = await api.create(booking, role="receptionist")
        if response.status_code == 201 or asyncio.get_running_loop().time() > deadline:
            return response
        if "projection" not in response.text and "not registered" not in response.text \
                and "unknown patient" not in response.text.lower():
            return response
        await asyncio.sleep(0.5)


async def obtain_appointment(api: Api) -> tuple[dict[str, Any] | None, str]:
    patient_id = await _registered_patient(api)
    deadline = asyncio.get_running_loop().time() + 45
    while True:  # 422 until patient.registered.v1 reaches the appointments projection
        response = await _book(api, {"resourceType": "Appointment", "status": "booked",
                                     "description": "Conformance review"}, patient_id)
        if response.status_code == 201:
            return response.json(), response.json()["id"]
        assert asyncio.get_running_loop().time() < deadline, response.text
        await asyncio.sleep(0.5)


async def prepare_appointment_example(api: Api, example: dict[str, Any]) -> dict[str, Any]:
    # Slot, start/end and the patient must be ours: a free demo slot and a patient we register.
    # The example's ServiceRequest and Condition are not on our platform: sent without them.
    resource = _strip(example)
    for key in ("basedOn", "reasonReference"):
        resource.pop(key, None)
    return dict(resource, _patient_id=await _registered_patient(api))


async def prepare_schedule_example(api: Api, example: dict[str, Any]) -> dict[str, Any]:
    resource = _strip(example)
    # A schedule's actors must be one of this practice's clinicians and a named location.
    resource["actor"] = [{"reference": f"Practitioner/{api.practitioner_id}"},
                         *[a for a in resource.get("actor", [])
                           if not str(a.get("reference", "")).startswith("Practitioner/")]]
    return resource


# ----- services fed by patient.events.v1: wait for the patient to reach their projection -----
NOT_YET_PROJECTED = ("is not a patient of this practice", "is not registered at this practice")


async def _create_for_new_patient(api: Api, resource: dict[str, Any], role: str = "gp",
                                  headers: dict[str, str] | None = None) -> httpx.Response:
    """Creates `resource` (its patient reference is filled in when it is the placeholder),
    retrying while a newly registered patient is still on the way to the owning service's
    projection through Kafka (422 'not a patient of this practice' until then)."""
    deadline = asyncio.get_running_loop().time() + 45
    while True:
        response = await api.create(resource, role=role, headers=headers)
        if response.status_code != 422 or asyncio.get_running_loop().time() > deadline \
                or not any(text in response.text for text in NOT_YET_PROJECTED):
            return response
        await asyncio.sleep(0.5)


def _patient_ref(resource: dict[str, Any]) -> str:
    for key in ("subject", "patient"):
        reference = (resource.get(key) or {}).get("reference", "")
        if reference.startswith("Patient/"):
            return reference
    raise AssertionError(f"{resource['resourceType']} has no patient reference")


# References a UK Core example makes to resources that do not exist on our platform; the
# example is sent without them (the rest of it, including its patient, stays as published).
_FOREIGN_REFERENCES = ("encounter", "context", "performer", "recorder", "asserter", "requester",
                       "hasMember", "derivedFrom", "basedOn", "partOf", "specimen", "device",
                       "reasonReference", "serviceProvider", "participant", "location",
                       "episodeOfCare", "appointment", "source", "insurance", "supportingInformation",
                       "priorPrescription", "recipient", "eventHistory", "detectedIssue",
                       "medicationReference", "hospitalization", "diagnosis", "account",
                       "stage", "evidence", "focus", "note", "entry")


def _without_foreign_references(resource: dict[str, Any]) -> dict[str, Any]:
    resource = _strip(resource)
    resource.pop("contained", None)
    for key in _FOREIGN_REFERENCES:
        value = resource.get(key)
        if _has_reference(value):
            resource.pop(key)
    return resource


def _has_reference(value: Any) -> bool:
    if isinstance(value, dict):
        return "reference" in value or any(_has_reference(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_reference(v) for v in value)
    return False


def _with_patient(resource: dict[str, Any], patient_id: str) -> dict[str, Any]:
    key = "patient" if resource["resourceType"] == "AllergyIntolerance" else "subject"
    resource[key] = {"reference": f"Patient/{patient_id}"}
    return resource


async def prepare_clinical_example(api: Api, example: dict[str, Any]) -> dict[str, Any]:
    return _with_patient(_without_foreign_references(example), await _registered_patient(api))


# ----- prescribing: MedicationRequest (authorise a plan, then issue it) ------------------------
async def obtain_medication_request(api: Api) -> tuple[dict[str, Any] | None, str]:
    from prescribing.examples import authorisation, issue

    patient_id = await _registered_patient(api)
    plan = await _create_for_new_patient(
        api, authorisation(patient_id, quantity_words="fifty-six tablets"))
    assert plan.status_code == 201, plan.text
    # The issue carries the most: safety check outcome (contained), issue number, the plan.
    order = await api.create(issue(plan.json()["id"]))
    assert order.status_code == 201, order.text
    return order.json(), order.json()["id"]


async def prepare_medication_request_example(api: Api, example: dict[str, Any]
                                             ) -> dict[str, Any]:
    resource = _without_foreign_references(example)
    if _has_reference(resource.get("dispenseRequest")):
        resource.pop("dispenseRequest")  # its performer is a pharmacy we do not hold
    return _with_patient(resource, await _registered_patient(api))


# ----- clinical-notes: Encounter, Condition, Observation, AllergyIntolerance, List ------------
SNOMED = "http://snomed.info/sct"


def _coded(code: str, display: str, system: str = SNOMED) -> dict[str, Any]:
    return {"coding": [{"system": system, "code": code, "display": display}]}


def _encounter(patient_id: str) -> dict[str, Any]:
    return {"resourceType": "Encounter", "status": "finished",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                      "code": "AMB", "display": "ambulatory"},
            "type": [_coded("11429006", "Consultation")],
            "subject": {"reference": f"Patient/{patient_id}"},
            "period": {"start": "2026-02-01T09:20:00Z", "end": "2026-02-01T09:35:00Z"}}


def _clinical_bodies(patient_id: str, gp: str, encounter_id: str) -> dict[str, dict[str, Any]]:
    """Full UK Core shaped entries (as clinical_notes.examples builds them)."""
    subject = {"reference": f"Patient/{patient_id}"}
    encounter = {"reference": f"Encounter/{encounter_id}"}
    return {
        "Condition": {
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
            "code": _coded("195967001", "Asthma"),
            "subject": subject, "encounter": encounter,
            "onsetDateTime": "2020-03-01",
            "recordedDate": "2026-02-01",
            "recorder": {"reference": f"Practitioner/{gp}"},
        },
        "AllergyIntolerance": {
            "resourceType": "AllergyIntolerance",
            "clinicalStatus": {"coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical",
                "code": "active"}]},
            "verificationStatus": {"coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification",
                "code": "confirmed"}]},
            "type": "allergy",
            "category": ["medication"],
            "criticality": "high",
            "code": _coded("372687004", "Amoxicillin"),
            "patient": subject, "encounter": encounter,
            "recordedDate": "2026-01-10",
            "reaction": [{"manifestation": [_coded("126485001", "Urticaria")],
                          "severity": "moderate"}],
        },
        "Observation": {
            "resourceType": "Observation",
            "status": "final",
            "category": [{"coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                "code": "vital-signs"}]}],
            "code": {"coding": [{"system": SNOMED, "code": "27113001", "display": "Body weight"},
                                {"system": "http://loinc.org", "code": "29463-7",
                                 "display": "Body weight"}]},
            "subject": subject, "encounter": encounter,
            "effectiveDateTime": "2026-02-01T09:30:00Z",
            "performer": [{"reference": f"Practitioner/{gp}"}],
            "valueQuantity": {"value": 72.5, "unit": "kg", "system": "http://unitsofmeasure.org",
                              "code": "kg"},
        },
    }


async def _clinical_entry(api: Api, resource_type: str) -> tuple[dict[str, Any] | None, str]:
    patient_id = await _registered_patient(api)
    encounter = _encounter(patient_id)
    encounter["participant"] = [{"individual": {"reference": f"Practitioner/{api.practitioner_id}"}}]
    created = await _create_for_new_patient(api, encounter)
    assert created.status_code == 201, created.text
    if resource_type == "Encounter":
        return created.json(), created.json()["id"]
    encounter_id = created.json()["id"]
    bodies = _clinical_bodies(patient_id, api.practitioner_id, encounter_id)
    if resource_type == "List":
        items = []
        for body in bodies.values():
            entry = await api.create(body)
            assert entry.status_code == 201, entry.text
            items.append({"item": {"reference": f"{body['resourceType']}/{entry.json()['id']}"}})
        body = {"resourceType": "List", "status": "current", "mode": "snapshot",
                "title": "Examination", "code": _coded("24781000000107", "Category (EHR)"),
                "subject": {"reference": f"Patient/{patient_id}"},
                "encounter": {"reference": f"Encounter/{encounter_id}"},
                "date": "2026-02-01T09:35:00Z", "entry": items}
    else:
        body = bodies[resource_type]
    response = await api.create(body)
    assert response.status_code == 201, response.text
    return response.json(), response.json()["id"]


def _obtain_clinical(resource_type: str
                     ) -> Callable[[Api], Awaitable[tuple[dict[str, Any] | None, str]]]:
    async def obtain(api: Api) -> tuple[dict[str, Any] | None, str]:
        return await _clinical_entry(api, resource_type)

    return obtain


def _by_patient(resource: dict[str, Any]) -> dict[str, str]:
    return {"patient": _patient_ref(resource)}


# ----- prescribing: Medication (the formulary, read only) ------------------------------------
async def obtain_medication(api: Api) -> tuple[dict[str, Any] | None, str]:
    bundle = await api.search("Medication", {"_count": "1"})
    assert bundle.get("entry"), "the formulary has medications"
    return None, bundle["entry"][0]["resource"]["id"]


# ----- audit: AuditEvent (read only, for READ_AUDIT roles) -----------------------------------
async def obtain_audit_event(api: Api) -> tuple[dict[str, Any] | None, str]:
    patient_id = await _registered_patient(api)
    deadline = asyncio.get_running_loop().time() + 45
    while True:  # the registration's audit record arrives through Kafka
        bundle = await api.search("AuditEvent", {"patient": f"Patient/{patient_id}"})
        if bundle.get("entry"):
            return None, bundle["entry"][0]["resource"]["id"]
        assert asyncio.get_running_loop().time() < deadline, "no audit record arrived"
        await asyncio.sleep(0.5)


SERVED: dict[str, Served] = {s.resource_type: s for s in (
    Served("Patient", f"{UKCORE}/UKCore-Patient", obtain_patient,
           search=lambda r: {"_id": r["id"]},
           prepare_example=prepare_patient_example, create_role="receptionist"),
    Served("Organization", f"{UKCORE}/UKCore-Organization", obtain_organization,
           search=lambda r: {"identifier": f"{ODS}|{PRACTICE}"}),
    Served("Practitioner", f"{UKCORE}/UKCore-Practitioner", obtain_practitioner,
           search=lambda r: {"_id": r["id"]}),
    Served("OrganizationAffiliation", f"{UKCORE}/UKCore-OrganizationAffiliation",
           obtain_sharing_agreement,
           search=lambda r: {"participating-organization": f"{ODS}|{AGREEMENT_GRANTEE}"},
           create_role="practice-manager"),
    Served("Schedule", f"{UKCORE}/UKCore-Schedule", obtain_schedule,
           search=lambda r: {"actor": next(a["reference"] for a in r["actor"]
                                           if a.get("reference", "").startswith("Practitioner/"))},
           prepare_example=prepare_schedule_example, create_role="practice-manager"),
    Served("Slot", f"{UKCORE}/UKCore-Slot", obtain_slot,
           search=lambda r: [("schedule", r["schedule"]["reference"]), ("status", r["status"]),
                             ("start", "ge" + r["start"][:19] + "Z"),
                             ("start", "le" + r["start"][:19] + "Z")]),
    Served("Appointment", f"{UKCORE}/UKCore-Appointment", obtain_appointment,
           search=lambda r: {"patient": next(
               p["actor"]["reference"] for p in r["participant"]
               if p.get("actor", {}).get("reference", "").startswith("Patient/"))},
           prepare_example=prepare_appointment_example, create_role="receptionist"),
    Served("Medication", f"{UKCORE}/UKCore-Medication", obtain_medication,
           search=lambda r: {"_id": r["id"]}),
    Served("MedicationRequest", f"{UKCORE}/UKCore-MedicationRequest", obtain_medication_request,
           search=_by_patient, prepare_example=prepare_medication_request_example),
    *(Served(t, f"{UKCORE}/UKCore-{t}", _obtain_clinical(t), search=_by_patient,
             prepare_example=prepare_clinical_example)
      for t in ("Encounter", "Condition", "Observation", "AllergyIntolerance", "List")),
    Served("AuditEvent", f"{UKCORE}/UKCore-AuditEvent", obtain_audit_event,
           search=lambda r: {"patient": next(
               e["what"]["reference"] for e in r.get("entity", [])
               if e.get("what", {}).get("reference", "").startswith("Patient/"))}),
)}


# Types served through operations alone (no read, no search): each operation's answer is
# validated instead. (clinical-notes: SNOMED CT look-up over its reference set.)
SNOMED_ASTHMA = ("http://snomed.info/sct", "195967001")
OPERATIONS_ONLY: dict[str, tuple[str, str, Any, str]] = {
    # type: (subject, path, params, resourceType of the answer)
    "CodeSystem": ("Parameters (CodeSystem $lookup)", "/CodeSystem/$lookup",
                   {"system": SNOMED_ASTHMA[0], "code": SNOMED_ASTHMA[1]}, "Parameters"),
    "ValueSet": ("ValueSet (ValueSet $expand)", "/ValueSet/$expand",
                 {"url": "http://snomed.info/sct?fhir_vs", "filter": "asthma"}, "ValueSet"),
}


# ----- fixtures -------------------------------------------------------------------------------
@pytest.fixture(scope="session")
async def api(gateway: httpx.AsyncClient, token: Any, demo_platform: Any) -> Api:
    headers = token("gp", PRACTICE)
    orgs = (await gateway.get("/Organization", params={"identifier": f"{ODS}|{PRACTICE}"},
                              headers=headers)).json()
    assert orgs.get("entry"), "the demo data has the practice's Organization"
    staff = (await gateway.get("/Practitioner", params={"_count": "50"}, headers=headers)).json()
    gps = [e["resource"] for e in staff.get("entry", [])
           if "Dr" in (e["resource"].get("name") or [{}])[0].get("prefix", [])]
    assert gps, "the demo data has GPs at the practice"
    return Api(gateway, token, orgs["entry"][0]["resource"]["id"], gps[0]["id"])


def _served(resource_type: str, served_types: set[str]) -> Served:
    # Every entry must be served: a type that disappears from the CapabilityStatement is a
    # regression to see, not a test to skip quietly.
    assert resource_type in served_types, (
        f"{resource_type} has a conformance entry but is not in the CapabilityStatement")
    return SERVED[resource_type]


async def assert_valid(validator: Any, report: Any, subject: str, resource: dict[str, Any],
                       profile: str | None = None, note: str = "") -> Any:
    outcome = await validator.validate(resource, profile)
    report.add(subject, resource, profile, outcome, note)
    assert not outcome.errors, (
        f"{subject} does not conform to FHIR R4 / {profile or 'its declared profiles'}:\n"
        f"{outcome.describe()}\n{json.dumps(resource, indent=1)[:4000]}")
    return outcome


def assert_declares(resource: dict[str, Any], profile: str) -> None:
    meta = resource.get("meta") or {}
    assert profile in (meta.get("profile") or []), (
        f"{resource['resourceType']}/{resource.get('id')} must declare {profile} in meta.profile; "
        f"it has {meta.get('profile')}")
    assert meta.get("versionId") and meta.get("lastUpdated"), "meta.versionId and lastUpdated"


# ----- the gate -------------------------------------------------------------------------------
async def test_every_type_in_the_capability_statement_has_a_conformance_entry(served_types):
    missing = served_types - set(SERVED) - set(OPERATIONS_ONLY)
    assert not missing, f"add an entry to SERVED for: {', '.join(sorted(missing))}"


@pytest.mark.parametrize("resource_type", list(OPERATIONS_ONLY))
async def test_operation_only_type_answers_validate(resource_type, api, served_types, validator,
                                                    conformance_report):
    assert resource_type in served_types, (
        f"{resource_type} has a conformance entry but is not in the CapabilityStatement")
    subject, path, params, answer_type = OPERATIONS_ONLY[resource_type]
    response = await api.gateway.get(path, params=params, headers=api.headers())
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["resourceType"] == answer_type, response.text
    await assert_valid(validator, conformance_report, subject, answer)


async def test_the_capability_statement_validates(gateway, validator, conformance_report,
                                                  demo_platform):
    response = await gateway.get("/metadata")  # no token: it is public
    assert response.status_code == 200
    statement = response.json()
    assert statement["resourceType"] == "CapabilityStatement"
    await assert_valid(validator, conformance_report, "CapabilityStatement (GET /metadata)",
                       statement)


@pytest.mark.parametrize("resource_type", list(SERVED))
async def test_served_resource_declares_its_profile_and_validates(
        resource_type, api, served_types, validator, conformance_report):
    entry = _served(resource_type, served_types)
    created, resource_id = await entry.obtain(api)
    if created is not None:
        assert_declares(created, entry.profile)
        await assert_valid(validator, conformance_report, f"{resource_type} (create response)",
                           created, entry.profile)
    read = await api.read(resource_type, resource_id)
    assert_declares(read, entry.profile)
    await assert_valid(validator, conformance_report, f"{resource_type} (read)", read,
                       entry.profile)


@pytest.mark.parametrize("resource_type", list(SERVED))
async def test_search_bundle_validates(resource_type, api, served_types, validator,
                                       conformance_report):
    entry = _served(resource_type, served_types)
    _, resource_id = await entry.obtain(api)
    read = await api.read(resource_type, resource_id)
    bundle = await api.search(resource_type, entry.search(read))
    assert bundle["resourceType"] == "Bundle" and bundle["type"] == "searchset"
    assert isinstance(bundle.get("total"), int) and bundle["total"] >= 1
    matches = [e["resource"] for e in bundle.get("entry", []) if e["search"]["mode"] == "match"]
    assert all(r["resourceType"] == resource_type for r in matches)
    assert resource_id in {r["id"] for r in matches}, "the search finds the resource"
    for resource in matches:
        assert_declares(resource, entry.profile)
    # The bundle's entries are validated against their declared (UK Core) profiles too.
    await assert_valid(validator, conformance_report, f"Bundle ({resource_type} search)", bundle)


async def test_not_found_answers_a_valid_operation_outcome(api, validator, conformance_report):
    response = await api.gateway.get(f"/Patient/{uuid.uuid4()}", headers=api.headers())
    assert response.status_code == 404
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome" and outcome["issue"]
    await assert_valid(validator, conformance_report, "OperationOutcome (404 read)", outcome)


async def test_unprocessable_answers_a_valid_operation_outcome(api, validator,
                                                              conformance_report):
    bad = patient_factory(nhs_number="1234567890")  # fails the NHS number check digit
    response = await api.create(bad, role="receptionist")
    assert response.status_code == 422
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["severity"] in ("error", "fatal")
    await assert_valid(validator, conformance_report, "OperationOutcome (422 create)", outcome)


# ----- UK Core examples through our API ---------------------------------------------------------
def _examples() -> list[Any]:
    folder = _uk_core_examples_dir()
    found = []
    for resource_type in SERVED:
        for path in sorted(folder.glob(f"UKCore-{resource_type}-*.xml")):
            found.append(pytest.param(resource_type, path, id=path.stem))
    return found


def _values(resource: Any, path: str) -> list[Any]:
    """The JSON values at a FHIR element path (choice types match any of their types)."""
    parts = path.split(".")[1:]
    current = [resource]
    for part in parts:
        found: list[Any] = []
        for node in current:
            if not isinstance(node, dict):
                continue
            if part.endswith("[x]"):
                stem = part[:-3]
                keys = [k for k in node if k.startswith(stem) and k[len(stem):][:1].isupper()]
            else:
                keys = [part] if part in node else []
            for key in keys:
                value = node[key]
                found.extend(value if isinstance(value, list) else [value])
        current = found
    return current


async def lost_must_support(validator: Any, profile: str, sent: dict[str, Any],
                            returned: dict[str, Any]) -> list[str]:
    """Must-support elements present in what we sent and changed or missing on read back."""
    lost = []
    for element in await validator.must_support(profile):
        path = element["path"]
        if path.split(".")[1:2] in (["id"], ["meta"]):
            continue  # the server owns id and meta
        before, after = _values(sent, path), _values(returned, path)
        # Each value sent must come back whole (the server may add to it, e.g. a display).
        if any(not any(_contains(a, b) for a in after) for b in before):
            shown = [sorted(json.dumps(v, sort_keys=True) for v in vs) for vs in (before, after)]
            lost.append(f"{element['id']}: sent {shown[0]}, read back {shown[1]}")
    return sorted(set(lost))


def _contains(returned: Any, sent: Any) -> bool:
    """Everything in `sent` is in `returned`: same primitives, every key and list item kept."""
    if isinstance(sent, dict):
        return isinstance(returned, dict) and all(
            k in returned and _contains(returned[k], v) for k, v in sent.items())
    if isinstance(sent, list):
        return isinstance(returned, list) and all(
            any(_contains(r, v) for r in returned) for v in sent)
    return returned == sent


@pytest.mark.parametrize(("resource_type", "path"), _examples())
async def test_uk_core_example_round_trips_through_our_api(
        resource_type, path, api, served_types, validator, conformance_report):
    example = await validator.convert(path.read_text())
    assert example["resourceType"] == resource_type
    entry = SERVED[resource_type]
    await assert_valid(validator, conformance_report, f"example {path.stem} (as published)",
                       example, entry.profile)
    entry = _served(resource_type, served_types)
    if entry.prepare_example is None:
        # No create route: the refusal must be a clean OperationOutcome.
        response = await api.create(_strip(example), role=entry.create_role)
        assert response.status_code in (404, 405), response.text
        refusal = response.json()
        assert refusal["resourceType"] == "OperationOutcome", response.text
        await assert_valid(validator, conformance_report, f"example {path.stem} (refusal)",
                           refusal, note=f"HTTP {response.status_code}")
        conformance_report.finding(
            f"{path.stem}: not accepted, {resource_type} has no create route "
            f"(HTTP {response.status_code}: {refusal['issue'][0].get('diagnostics')})")
        return
    sent = await entry.prepare_example(api, example)
    if resource_type == "Appointment":
        patient_id = sent.pop("_patient_id")
        response = await _book(api, sent, patient_id)
        sent = {k: v for k, v in sent.items() if k not in ("slot", "start", "end", "participant")}
    else:
        response = await _create_for_new_patient(api, sent, role=entry.create_role)
    if response.status_code != 201:
        refusal = response.json()
        assert 400 <= response.status_code < 500, response.text
        assert refusal["resourceType"] == "OperationOutcome" and refusal["issue"], response.text
        await assert_valid(validator, conformance_report, f"example {path.stem} (refusal)",
                           refusal, note=f"HTTP {response.status_code}")
        reasons = "; ".join(f"{i.get('diagnostics')} at {', '.join(i.get('expression', []))}"
                            for i in refusal["issue"])
        conformance_report.finding(f"{path.stem}: refused with HTTP {response.status_code}: "
                                   f"{reasons}")
        return
    read = await api.read(resource_type, response.json()["id"])
    assert_declares(read, entry.profile)
    await assert_valid(validator, conformance_report, f"example {path.stem} (round trip)", read,
                       entry.profile)
    lost = await lost_must_support(validator, entry.profile, sent, read)
    assert not lost, "must-support elements lost in the round trip:\n" + "\n".join(lost)


# ----- the validator itself ---------------------------------------------------------------------
async def test_the_validator_reports_profile_errors_and_offline_codes_as_warnings(validator):
    """Guards the gate: a broken resource must fail, an unverifiable SNOMED code must warn."""
    broken = {"resourceType": "Patient", "meta": {"profile": [f"{UKCORE}/UKCore-Patient"]},
              "gender": "sometimes",
              "extension": [{"url": "https://example.org/not-a-known-extension",
                             "valueString": "x"}]}
    outcome = await validator.validate(broken)
    assert len(outcome.errors) >= 2, outcome.describe(outcome.warnings)
    condition = {
        "resourceType": "Condition", "meta": {"profile": [f"{UKCORE}/UKCore-Condition"]},
        "clinicalStatus": {"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]},
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": "195967001",
                             "display": "Asthma"}]},
        "subject": {"reference": "Patient/example"}}
    outcome = await validator.validate(condition)
    assert not outcome.errors, outcome.describe()
    offline = outcome.offline_terminology
    assert offline and "http://snomed.info/sct#195967001" in offline[0]["diagnostics"]
