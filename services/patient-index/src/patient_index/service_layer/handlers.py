"""Use cases of the patient index, one function each, on a unit of work.

Handlers never commit: the entry point that opened the unit of work commits it,
so a use case's rows, its events and its audit record stand or fall together.
"""

from __future__ import annotations

import copy
import datetime as dt
import uuid
from typing import Any

from gpsoc_kit import audit
from gpsoc_kit.auth import Principal
from gpsoc_kit.errors import InvalidResource, InvalidSearch, NotFound, Problem, VersionConflict
from gpsoc_kit.search import (
    SearchRequest,
    parse_date_param,
    parse_reference,
    parse_token,
)
from gpsoc_kit.uow import UnitOfWork

from ..adapters import repository as repo
from ..domain.nhs_number import NHS_NUMBER_SYSTEM, is_valid_nhs_number
from ..domain.patient import (
    GENDERS,
    UK_CORE_PATIENT_PROFILE,
    EventType,
    event_data,
    event_for_update,
    read_details,
)
from ..events import PATIENT_TOPIC

SOURCE = "urn:opengpsoc:patient-index"
PATIENT_SEARCH_PARAMETERS = (
    "_id",
    "identifier",
    "family",
    "given",
    "name",
    "birthdate",
    "gender",
    "address-postalcode",
    "general-practitioner",
    "phonetic",
)
UK_CORE_PRACTITIONER_PROFILE = "https://fhir.hl7.org.uk/StructureDefinition/UKCore-Practitioner"
UK_CORE_ORGANIZATION_PROFILE = "https://fhir.hl7.org.uk/StructureDefinition/UKCore-Organization"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _stamp(
    resource: dict[str, Any], *, resource_id: str, version_id: int, at: dt.datetime, profile: str
) -> dict[str, Any]:
    """The stored form: our id and version, and the UK Core profile declared in meta."""
    stamped = copy.deepcopy(resource)
    stamped["id"] = resource_id
    meta = dict(stamped.get("meta") or {})
    profiles = [p for p in meta.get("profile", []) if isinstance(p, str)]
    if profile not in profiles:
        profiles.insert(0, profile)
    meta.update(
        versionId=str(version_id),
        lastUpdated=at.isoformat().replace("+00:00", "Z"),
        profile=profiles,
    )
    meta.pop("source", None)
    stamped["meta"] = meta
    return stamped


def _audit(
    uow: UnitOfWork,
    principal: Principal,
    interaction: str,
    resource_type: str,
    *,
    patient_ids: list[str] = (),
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


async def register_patient(
    uow: UnitOfWork,
    principal: Principal,
    resource: dict[str, Any],
    *,
    patient_id: str | None = None,
) -> dict[str, Any]:
    details = read_details(resource)
    if details.gp_practitioner_id and not await repo.PractitionerRepository(uow.conn).exists(
        details.gp_practitioner_id
    ):
        raise InvalidResource(
            [
                Problem(
                    "generalPractitioner is not a clinician of this practice",
                    "Patient.generalPractitioner",
                )
            ]
        )
    patient_id = patient_id or str(uuid.uuid4())
    now = _now()
    stored = _stamp(
        resource, resource_id=patient_id, version_id=1, at=now, profile=UK_CORE_PATIENT_PROFILE
    )
    await repo.PatientRepository(uow.conn, uow.raw).add(
        patient_id=patient_id,
        practice=uow.practice,
        details=details,
        resource=stored,
        recorded_at=now,
        recorded_by=principal.user_id,
    )
    uow.emit(
        PATIENT_TOPIC,
        EventType.REGISTERED,
        subject=patient_id,
        data=event_data(patient_id, uow.practice, 1, details),
    )
    _audit(uow, principal, "create", "Patient", patient_ids=[patient_id])
    return stored


async def read_patient(uow: UnitOfWork, principal: Principal, patient_id: str) -> dict[str, Any]:
    stored = (
        await repo.PatientRepository(uow.conn, uow.raw).get(patient_id)
        if _is_uuid(patient_id)
        else None
    )
    if stored is None:
        raise NotFound(f"Patient/{patient_id}")
    _audit(uow, principal, "read", "Patient", patient_ids=[patient_id])
    return stored.resource


async def read_patient_version(
    uow: UnitOfWork, principal: Principal, patient_id: str, version_id: str
) -> dict[str, Any]:
    resource = None
    if _is_uuid(patient_id) and version_id.isdigit():
        resource = await repo.PatientRepository(uow.conn, uow.raw).version(
            patient_id, int(version_id)
        )
    if resource is None:
        raise NotFound(f"Patient/{patient_id}/_history/{version_id}")
    _audit(uow, principal, "vread", "Patient", patient_ids=[patient_id])
    return resource


async def patient_history(
    uow: UnitOfWork, principal: Principal, patient_id: str
) -> list[dict[str, Any]]:
    versions = (
        await repo.PatientRepository(uow.conn, uow.raw).history(patient_id)
        if _is_uuid(patient_id)
        else []
    )
    if not versions:
        raise NotFound(f"Patient/{patient_id}")
    _audit(uow, principal, "history", "Patient", patient_ids=[patient_id])
    return versions


async def update_patient(
    uow: UnitOfWork,
    principal: Principal,
    patient_id: str,
    resource: dict[str, Any],
    *,
    if_match: int | None,
) -> dict[str, Any]:
    if resource.get("id") != patient_id:
        raise InvalidResource(
            [Problem("The resource id must match the id in the URL", "Patient.id")]
        )
    patients = repo.PatientRepository(uow.conn, uow.raw)
    current = await patients.get(patient_id, for_update=True) if _is_uuid(patient_id) else None
    if current is None:
        # Update-as-create is not offered: registration goes through POST.
        raise NotFound(f"Patient/{patient_id}")
    if if_match is not None and if_match != current.version_id:
        raise VersionConflict(
            f"Patient/{patient_id} is at version {current.version_id}, not {if_match}"
        )
    before = read_details(current.resource)
    after = read_details(resource)
    event_type = event_for_update(before, after)
    if after.gp_practitioner_id and after.gp_practitioner_id != before.gp_practitioner_id:
        if not await repo.PractitionerRepository(uow.conn).exists(after.gp_practitioner_id):
            raise InvalidResource(
                [
                    Problem(
                        "generalPractitioner is not a clinician of this practice",
                        "Patient.generalPractitioner",
                    )
                ]
            )
    new_version = current.version_id + 1
    now = _now()
    stored = _stamp(
        resource,
        resource_id=patient_id,
        version_id=new_version,
        at=now,
        profile=UK_CORE_PATIENT_PROFILE,
    )
    replaced = await patients.replace(
        patient_id=patient_id,
        practice=uow.practice,
        expected_version=current.version_id,
        details=after,
        resource=stored,
        recorded_at=now,
        recorded_by=principal.user_id,
    )
    if not replaced:  # pragma: no cover - the row lock above makes this unreachable
        raise VersionConflict(f"Patient/{patient_id} changed while being updated")
    uow.emit(
        PATIENT_TOPIC,
        event_type,
        subject=patient_id,
        data=event_data(patient_id, uow.practice, new_version, after),
    )
    _audit(uow, principal, "update", "Patient", patient_ids=[patient_id])
    return stored


async def search_patients(
    uow: UnitOfWork, principal: Principal, search: SearchRequest
) -> tuple[list[dict[str, Any]], int]:
    criteria, order_by = patient_criteria(search)
    resources, total = await repo.PatientRepository(uow.conn, uow.raw).search(
        criteria,
        count=search.count,
        offset=search.offset,
        order_by=order_by or repo.DEFAULT_PATIENT_ORDER,
    )
    _audit(
        uow,
        principal,
        "search",
        "Patient",
        patient_ids=[r["id"] for r in resources],
        query="&".join(f"{k}={v}" for k, v in search.filters),
    )
    return resources, total


def patient_criteria(
    search: SearchRequest,
) -> tuple[list[repo.Criterion], tuple[repo.Criterion, ...] | None]:
    """Search parameters -> SQL criteria; bad values answer 400 naming the parameter."""
    criteria: list[repo.Criterion] = []
    order_by = None
    for name, value in search.filters:
        if name == "_id":
            criteria.append(
                repo.by_id(value)
                if _is_uuid(value)
                else repo.by_id("00000000-0000-0000-0000-000000000000")
            )
        elif name == "identifier":
            system, code = parse_token(value)
            if system not in (None, NHS_NUMBER_SYSTEM):
                raise InvalidSearch(
                    [
                        Problem(
                            f"Searching by identifier system {system} is not "
                            "supported; use " + NHS_NUMBER_SYSTEM,
                            "identifier",
                        )
                    ]
                )
            if not is_valid_nhs_number(code):
                raise InvalidSearch([Problem("identifier is not a valid NHS number", "identifier")])
            criteria.append(repo.by_nhs_number(code))
        elif name == "family":
            criteria.append(repo.by_family(value))
        elif name == "given":
            criteria.append(repo.by_given(value))
        elif name == "name":
            criteria.append(repo.by_name(value))
        elif name == "birthdate":
            bound = parse_date_param(name, value)
            criteria.append(repo.by_birth_date(bound.sql_operator(), bound.value))
        elif name == "gender":
            if value not in GENDERS:
                raise InvalidSearch(
                    [Problem(f"gender must be one of {', '.join(sorted(GENDERS))}", "gender")]
                )
            criteria.append(repo.by_gender(value))
        elif name == "address-postalcode":
            criteria.append(repo.by_postal_code(value))
        elif name == "general-practitioner":
            practitioner_id = parse_reference(value, "Practitioner")
            if not _is_uuid(practitioner_id):
                raise InvalidSearch(
                    [
                        Problem(
                            "general-practitioner must reference a Practitioner",
                            "general-practitioner",
                        )
                    ]
                )
            criteria.append(repo.by_general_practitioner(practitioner_id))
        elif name == "phonetic":
            criteria.append(repo.by_phonetic(value))
            order_by = repo.phonetic_order(value)
    return criteria, order_by


# Organizations and practitioners: reference data of a practice, read by its staff.
async def read_organization(uow: UnitOfWork, principal: Principal, org_id: str) -> dict[str, Any]:
    resource = await repo.OrganizationRepository(uow.conn).get(org_id) if _is_uuid(org_id) else None
    if resource is None:
        raise NotFound(f"Organization/{org_id}")
    return resource


async def search_organizations(
    uow: UnitOfWork, principal: Principal, search: SearchRequest
) -> tuple[list[dict[str, Any]], int]:
    ods_code = None
    if (identifier := search.first("identifier")) is not None:
        _, ods_code = parse_token(identifier)
    return await repo.OrganizationRepository(uow.conn).search(
        ods_code=ods_code, name=search.first("name"), count=search.count, offset=search.offset
    )


async def read_practitioner(
    uow: UnitOfWork, principal: Principal, practitioner_id: str
) -> dict[str, Any]:
    resource = (
        await repo.PractitionerRepository(uow.conn).get(practitioner_id)
        if _is_uuid(practitioner_id)
        else None
    )
    if resource is None:
        raise NotFound(f"Practitioner/{practitioner_id}")
    return resource


async def search_practitioners(
    uow: UnitOfWork, principal: Principal, search: SearchRequest
) -> tuple[list[dict[str, Any]], int]:
    criteria: list[Any] = []
    for name, value in search.filters:
        if name == "_id":
            criteria.append(
                repo.practitioner_by_id(
                    value if _is_uuid(value) else "00000000-0000-0000-0000-000000000000"
                )
            )
        elif name == "family":
            criteria.append(repo.practitioner_by_family(value))
        elif name == "name":
            criteria.append(repo.practitioner_by_name(value))
        elif name == "identifier":
            criteria.append(repo.practitioner_by_identifier(parse_token(value)[1]))
    return await repo.PractitionerRepository(uow.conn).search(
        criteria, count=search.count, offset=search.offset
    )


async def add_practitioner(
    uow: UnitOfWork,
    resource: dict[str, Any],
    *,
    practitioner_id: str,
    roles: list[str],
    prescriber: bool,
) -> bool:
    """Add a member of staff (used by demo seeding and onboarding); idempotent by id."""
    name = (resource.get("name") or [{}])[0]
    sds = next(
        (
            i.get("value")
            for i in resource.get("identifier", [])
            if i.get("system") == "https://fhir.nhs.uk/Id/sds-user-id"
        ),
        None,
    )
    now = _now()
    stored = _stamp(
        resource,
        resource_id=practitioner_id,
        version_id=1,
        at=now,
        profile=UK_CORE_PRACTITIONER_PROFILE,
    )
    return await repo.PractitionerRepository(uow.conn).add(
        practitioner_id=practitioner_id,
        practice=uow.practice,
        family=name.get("family", ""),
        given=" ".join(name.get("given", [])),
        sds_user_id=sds,
        roles=roles,
        prescriber=prescriber,
        resource=stored,
        recorded_at=now,
    )


async def add_organization(uow: UnitOfWork, resource: dict[str, Any], *, org_id: str) -> bool:
    ods_code = next(
        i["value"]
        for i in resource.get("identifier", [])
        if i.get("system") == "https://fhir.nhs.uk/Id/ods-organization-code"
    )
    now = _now()
    stored = _stamp(
        resource, resource_id=org_id, version_id=1, at=now, profile=UK_CORE_ORGANIZATION_PROFILE
    )
    return await repo.OrganizationRepository(uow.conn).upsert(
        org_id=org_id,
        practice=uow.practice,
        ods_code=ods_code,
        name=resource.get("name", ""),
        resource=stored,
        recorded_at=now,
    )


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return len(value) == 36
