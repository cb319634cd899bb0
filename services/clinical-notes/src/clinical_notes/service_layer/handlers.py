"""Use cases of the clinical record, one function each, on a unit of work.

Handlers never commit: the entry point that opened the unit of work commits it,
so an entry's row, its version, its events and its audit record stand or fall together.
"""

from __future__ import annotations

import copy
import datetime as dt
import uuid
from typing import Any

from gpsoc_kit import audit
from gpsoc_kit.auth import Principal
from gpsoc_kit.errors import InvalidResource, InvalidTransition, NotFound, Problem, VersionConflict
from gpsoc_kit.uow import UnitOfWork

from ..adapters import repository as repo
from ..domain import entries, observations
from ..domain.entries import EntryFacts, Reference, is_uuid, read_entry
from ..domain.events import event_data, event_for
from ..domain.primary_care_refset import BY_ID as CURATED
from ..events import CLINICAL_TOPIC

SOURCE = "urn:opengpsoc:clinical-notes"
RECORDED_BY_URL = "https://opengpsoc.org/fhir/StructureDefinition/recorded-by"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _instant(at: dt.datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


def _stamp(
    resource: dict[str, Any],
    *,
    entry_id: str,
    version_id: int,
    at: dt.datetime,
    profile: str,
    principal: Principal,
) -> dict[str, Any]:
    """The stored form: our id and version, who wrote it and when, the UK Core profile in meta."""
    stamped = copy.deepcopy(resource)
    stamped["id"] = entry_id
    meta = dict(stamped.get("meta") or {})
    profiles = [p for p in meta.get("profile", []) if isinstance(p, str)]
    if profile not in profiles:
        profiles.insert(0, profile)
    if stamped.get("resourceType") == "Observation":
        observations.with_profile_units(stamped)
    # A specialised profile (a vital sign's) is declared beside the type's UK Core profile.
    base = entries.PROFILES.get(str(stamped.get("resourceType")))
    if base and base not in profiles:
        profiles.insert(0, base)
    meta.update(versionId=str(version_id), lastUpdated=_instant(at), profile=profiles)
    meta.pop("source", None)
    meta["extension"] = [
        e
        for e in meta.get("extension", [])
        if isinstance(e, dict) and e.get("url") != RECORDED_BY_URL
    ]
    meta["extension"].append(
        {
            "url": RECORDED_BY_URL,
            "valueReference": {
                "reference": f"Practitioner/{principal.user_id}",
                "display": principal.name,
            },
        }
    )
    stamped["meta"] = meta
    return stamped


def record_access(
    uow: UnitOfWork,
    principal: Principal,
    interaction: str,
    resource_type: str,
    *,
    patient_ids: list[str],
    resource_ids: list[str] = (),
    query: str | None = None,
) -> None:
    audit.record(
        uow,
        principal=principal,
        interaction=interaction,
        resource_type=resource_type,
        patient_ids=patient_ids,
        resource_ids=resource_ids,
        query=query,
        source=SOURCE,
    )


async def check_codes(uow: UnitOfWork, facts: EntryFacts) -> None:
    """Every SNOMED CT code must be a concept this system knows: curated, or imported from RF2."""
    unknown = [(code, where) for code, where in facts.snomed_codes if code not in CURATED]
    if not unknown:
        return
    known = await repo.TerminologyRepository(uow.conn).active_concepts(c for c, _ in unknown)
    problems = [
        Problem(f"{code} is not an active SNOMED CT concept known to this system", where)
        for code, where in unknown
        if code not in known
    ]
    if problems:
        raise InvalidResource(problems)


async def check_references(
    uow: UnitOfWork, facts: EntryFacts, *, resolved: dict[str, repo.StoredEntry] | None = None
) -> None:
    """Referenced entries exist in this practice, belong to the same patient and are not
    entered-in-error; a consultation structure's lists nest in GP Connect's order."""
    if not facts.references:
        return
    found = await repo.EntryRepository(uow.conn).get_many(r.id for r in facts.references)
    if resolved:
        found.update(resolved)
    problems = [
        p for ref in facts.references if (p := _reference_problem(ref, found.get(ref.id), facts))
    ]
    if problems:
        raise InvalidResource(problems)


def _reference_problem(
    ref: Reference, target: repo.StoredEntry | None, facts: EntryFacts
) -> Problem | None:
    if target is None or target.resource_type != ref.resource_type:
        return Problem(
            f"{ref.resource_type}/{ref.id} is not an entry of this record", ref.expression
        )
    if target.patient_id != facts.patient_id:
        return Problem(f"{ref.resource_type}/{ref.id} belongs to another patient", ref.expression)
    if target.entered_in_error:
        return Problem(f"{ref.resource_type}/{ref.id} is marked entered-in-error", ref.expression)
    if ref.list_kind and ref.list_kind not in target.category:
        return Problem(f"List/{ref.id} is not a {ref.list_kind} list", ref.expression)
    return None


async def _check_patient(uow: UnitOfWork, facts: EntryFacts) -> None:
    if not await repo.PatientRepository(uow.conn).exists(facts.patient_id):
        field = "patient" if facts.resource_type == "AllergyIntolerance" else "subject"
        raise InvalidResource(
            [
                Problem(
                    f"Patient/{facts.patient_id} is not registered at this practice",
                    f"{facts.resource_type}.{field}",
                )
            ]
        )


async def store_new_entry(
    uow: UnitOfWork,
    principal: Principal,
    facts: EntryFacts,
    resource: dict[str, Any],
    *,
    at: dt.datetime,
) -> dict[str, Any]:
    entry_id = str(uuid.uuid4())
    stored = _stamp(
        resource,
        entry_id=entry_id,
        version_id=1,
        at=at,
        profile=entries.profile_for(facts, resource),
        principal=principal,
    )
    await repo.EntryRepository(uow.conn).add(
        entry_id=entry_id,
        practice=uow.practice,
        facts=facts,
        resource=stored,
        recorded_at=at,
        recorded_by=principal.user_id,
        recorded_by_name=principal.name,
    )
    _emit(uow, facts, stored, 1, created=True)
    return stored


async def _store_version(
    uow: UnitOfWork,
    principal: Principal,
    current: repo.StoredEntry,
    facts: EntryFacts,
    resource: dict[str, Any],
    *,
    at: dt.datetime,
) -> dict[str, Any]:
    new_version = current.version_id + 1
    stored = _stamp(
        resource,
        entry_id=current.id,
        version_id=new_version,
        at=at,
        profile=entries.profile_for(facts, resource),
        principal=principal,
    )
    replaced = await repo.EntryRepository(uow.conn).replace(
        entry_id=current.id,
        practice=uow.practice,
        expected_version=current.version_id,
        facts=facts,
        resource=stored,
        recorded_at=at,
        recorded_by=principal.user_id,
        recorded_by_name=principal.name,
    )
    if not replaced:  # pragma: no cover - the row lock taken by the caller makes this unreachable
        raise VersionConflict(f"{current.resource_type}/{current.id} changed while being updated")
    _emit(uow, facts, stored, new_version, created=False)
    return stored


def _emit(
    uow: UnitOfWork, facts: EntryFacts, stored: dict[str, Any], version_id: int, *, created: bool
) -> None:
    event_type = event_for(facts, created=created)
    if event_type is not None:
        uow.emit(
            CLINICAL_TOPIC,
            event_type,
            subject=facts.patient_id,
            data=event_data(facts, stored, version_id),
        )


async def record_entry(
    uow: UnitOfWork, principal: Principal, resource: dict[str, Any]
) -> dict[str, Any]:
    """Record a new clinical entry (and what follows from it: a derived BMI, a superseded NKA)."""
    facts = read_entry(resource)
    entries.check_new(facts)
    await _check_patient(uow, facts)
    await check_codes(uow, facts)
    await check_references(uow, facts)
    now = _now()
    if facts.resource_type == "AllergyIntolerance" and facts.clinical_status == "active":
        await _reconcile_allergy_statements(uow, principal, facts, at=now)
    stored = await store_new_entry(uow, principal, facts, resource, at=now)
    derived_ids: list[str] = []
    if facts.measure in (observations.WEIGHT.name, observations.HEIGHT.name) and facts.quantity:
        bmi = await _derive_bmi(uow, principal, facts, stored, at=now)
        if bmi is not None:
            derived_ids.append(bmi["id"])
    record_access(
        uow,
        principal,
        "create",
        facts.resource_type,
        patient_ids=[facts.patient_id],
        resource_ids=[stored["id"], *derived_ids],
    )
    return stored


async def _reconcile_allergy_statements(
    uow: UnitOfWork, principal: Principal, facts: EntryFacts, *, at: dt.datetime
) -> None:
    """'No known allergy' and a known allergy cannot both be active: a new allergy supersedes
    the statement (it becomes inactive, a new version); a new statement cannot deny an allergy."""
    active = await repo.EntryRepository(uow.conn).active_allergies(facts.patient_id)
    statements = [a for a in active if read_entry(a.resource).no_known_allergy]
    if facts.no_known_allergy:
        if len(statements) < len(active):
            raise InvalidResource(
                [
                    Problem(
                        "The record has active allergies: 'no known allergy' would contradict them. "
                        "Resolve or mark them entered-in-error first",
                        "AllergyIntolerance.code",
                    )
                ]
            )
        return
    for statement in statements:
        current = await repo.EntryRepository(uow.conn).get(
            "AllergyIntolerance", statement.id, for_update=True
        )
        assert current is not None
        superseded = dict(
            current.resource,
            clinicalStatus={
                "coding": [
                    {
                        "system": entries.ALLERGY_CLINICAL_SYSTEM,
                        "code": "inactive",
                        "display": "Inactive",
                    }
                ]
            },
        )
        await _store_version(uow, principal, current, read_entry(superseded), superseded, at=at)


async def _derive_bmi(
    uow: UnitOfWork,
    principal: Principal,
    facts: EntryFacts,
    stored: dict[str, Any],
    *,
    at: dt.datetime,
) -> dict[str, Any] | None:
    """When a weight and a height are both recorded near each other, record the BMI too."""
    assert facts.quantity is not None and facts.effective is not None
    is_weight = facts.measure == observations.WEIGHT.name
    other_measure = observations.HEIGHT if is_weight else observations.WEIGHT
    window = observations.BMI_HEIGHT_WINDOW if is_weight else observations.BMI_WEIGHT_WINDOW
    other = await repo.EntryRepository(uow.conn).nearest_measure(
        facts.patient_id, other_measure.snomed, around=facts.effective, within=window
    )
    if other is None:
        return None
    other_quantity = other.resource.get("valueQuantity") or {}
    if is_weight:
        weight_kg, weight_id = facts.quantity[0], stored["id"]
        height_m = observations.in_metres(other_quantity["value"], other_quantity["code"])
        height_id = other.id
    else:
        height_m, height_id = observations.in_metres(*facts.quantity), stored["id"]
        weight_kg, weight_id = float(other_quantity["value"]), other.id
    bmi = observations.body_mass_index(weight_kg, height_m)
    if (problem := observations.bmi_problem(bmi)) is not None:
        raise InvalidResource([problem])
    resource = observations.bmi_observation(
        patient_id=facts.patient_id,
        bmi=bmi,
        effective=stored["effectiveDateTime"],
        weight_id=weight_id,
        height_id=height_id,
        encounter_id=facts.encounter_id,
    )
    return await store_new_entry(uow, principal, read_entry(resource), resource, at=at)


async def _current(
    uow: UnitOfWork, resource_type: str, entry_id: str, *, for_update: bool = False
) -> repo.StoredEntry:
    current = (
        await repo.EntryRepository(uow.conn).get(resource_type, entry_id, for_update=for_update)
        if is_uuid(entry_id)
        else None
    )
    if current is None:
        raise NotFound(f"{resource_type}/{entry_id}")
    return current


async def update_entry(
    uow: UnitOfWork,
    principal: Principal,
    resource_type: str,
    entry_id: str,
    resource: dict[str, Any],
    *,
    if_match: int | None,
) -> dict[str, Any]:
    """A new version of an entry; the old one stays in its history."""
    if resource.get("id") != entry_id:
        raise InvalidResource(
            [Problem("The resource id must match the id in the URL", f"{resource_type}.id")]
        )
    current = await _current(uow, resource_type, entry_id, for_update=True)
    if if_match is not None and if_match != current.version_id:
        raise VersionConflict(
            f"{resource_type}/{entry_id} is at version {current.version_id}, not {if_match}"
        )
    after = read_entry(resource)
    entries.check_update(read_entry(current.resource), after)
    await check_codes(uow, after)
    await check_references(uow, after)
    stored = await _store_version(uow, principal, current, after, resource, at=_now())
    record_access(
        uow,
        principal,
        "update",
        resource_type,
        patient_ids=[after.patient_id],
        resource_ids=[entry_id],
    )
    return stored


async def mark_entered_in_error(
    uow: UnitOfWork,
    principal: Principal,
    resource_type: str,
    entry_id: str,
    reason: str,
    *,
    if_match: int | None,
) -> dict[str, Any]:
    """Mark a wrong entry entered-in-error with a reason: a new version, kept and readable."""
    current = await _current(uow, resource_type, entry_id, for_update=True)
    if if_match is not None and if_match != current.version_id:
        raise VersionConflict(
            f"{resource_type}/{entry_id} is at version {current.version_id}, not {if_match}"
        )
    if current.entered_in_error:
        raise InvalidTransition("This entry is already marked entered-in-error")
    marked = entries.mark_entered_in_error(current.resource, reason)
    facts = read_entry(marked)
    now = _now()
    stored = await _store_version(uow, principal, current, facts, marked, at=now)
    # A BMI computed from a wrong weight or height is wrong too.
    derived = (
        await repo.EntryRepository(uow.conn).derived_from(facts.patient_id, entry_id)
        if resource_type == "Observation"
        else []
    )
    for computed in derived:
        cascaded = entries.mark_entered_in_error(
            computed.resource,
            f"Derived from Observation/{entry_id}, marked entered-in-error: {reason}",
        )
        await _store_version(uow, principal, computed, read_entry(cascaded), cascaded, at=now)
    record_access(
        uow,
        principal,
        "update",
        resource_type,
        patient_ids=[facts.patient_id],
        resource_ids=[entry_id, *(c.id for c in derived)],
    )
    return stored


async def read(
    uow: UnitOfWork, principal: Principal, resource_type: str, entry_id: str
) -> dict[str, Any]:
    current = await _current(uow, resource_type, entry_id)
    record_access(
        uow,
        principal,
        "read",
        resource_type,
        patient_ids=[current.patient_id],
        resource_ids=[entry_id],
    )
    return current.resource


async def read_version(
    uow: UnitOfWork, principal: Principal, resource_type: str, entry_id: str, version_id: str
) -> dict[str, Any]:
    resource = None
    if is_uuid(entry_id) and version_id.isdigit():
        resource = await repo.EntryRepository(uow.conn).version(
            resource_type, entry_id, int(version_id)
        )
    if resource is None:
        raise NotFound(f"{resource_type}/{entry_id}")
    record_access(
        uow,
        principal,
        "vread",
        resource_type,
        patient_ids=[patient_of(resource)],
        resource_ids=[entry_id],
    )
    return resource


async def history(
    uow: UnitOfWork, principal: Principal, resource_type: str, entry_id: str
) -> list[dict[str, Any]]:
    versions = (
        await repo.EntryRepository(uow.conn).history(resource_type, entry_id)
        if is_uuid(entry_id)
        else []
    )
    if not versions:
        raise NotFound(f"{resource_type}/{entry_id}")
    record_access(
        uow,
        principal,
        "history",
        resource_type,
        patient_ids=[patient_of(versions[0])],
        resource_ids=[entry_id],
    )
    return versions


def patient_of(resource: dict[str, Any]) -> str:
    ref = resource.get("patient") or resource.get("subject") or {}
    return ref.get("reference", "/").split("/", 1)[1]


async def patient_summary(
    uow: UnitOfWork, principal: Principal, patient_id: str, *, consultations: int, medications: int
) -> dict[str, list[dict[str, Any]]]:
    """Active problems, allergies, the latest observation per code, recent consultations and
    recently issued medication of one patient of the caller's practice."""
    if not is_uuid(patient_id) or not await repo.PatientRepository(uow.conn).exists(patient_id):
        raise NotFound(f"Patient/{patient_id}")
    parts = await repo.EntryRepository(uow.conn).summary(patient_id, consultations=consultations)
    parts["medications"] = await repo.MedicationTimeline(uow.conn).recent(
        patient_id, limit=medications
    )
    record_access(uow, principal, "operation", "Patient", patient_ids=[patient_id])
    return parts
