"""Use cases of governed sharing: agreements between practices, and break-glass.

The patient index owns Organization, so it records the agreements between practices
(OrganizationAffiliation) and publishes them, and every break-glass grant, on
patient.events.v1; each service keeps them in its `access_grants` projection, which
its row-level-security policies read. Handlers never commit.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from gpsoc_kit import audit
from gpsoc_kit.auth import Principal
from gpsoc_kit.errors import (
    InvalidResource,
    InvalidSearch,
    InvalidTransition,
    NotFound,
    Problem,
    VersionConflict,
)
from gpsoc_kit.search import SearchRequest, parse_token
from gpsoc_kit.sharing import AGREEMENT_RECORDED, BREAK_GLASS_GRANTED, project_grant
from gpsoc_kit.uow import UnitOfWork

from ..adapters import sharing as repo
from ..domain.sharing import (
    ODS_SYSTEM,
    SCOPE_DISPLAY,
    SHARING_SCOPE_SYSTEM,
    UK_CORE_ORGANIZATION_AFFILIATION_PROFILE,
    Agreement,
    check_amendment,
    read_agreement,
    read_break_glass_reason,
)
from ..events import PATIENT_TOPIC
from .handlers import SOURCE, _audit, _is_uuid, _now, _stamp

AGREEMENT_SEARCH_PARAMETERS = ("active", "participating-organization")
BREAK_GLASS_REASON_URL = "https://opengpsoc.org/fhir/StructureDefinition/break-glass-reason"
# The national "break the glass" purpose of use (HL7 v3 ActReason BTG).
BREAK_THE_GLASS = {
    "system": "http://terminology.hl7.org/CodeSystem/v3-ActReason",
    "code": "BTG",
    "display": "break the glass",
}
SECURITY_ALERT = {
    "system": "http://dicom.nema.org/resources/ontology/DCM",
    "code": "110113",
    "display": "Security Alert",
}


async def record_agreement(
    uow: UnitOfWork, principal: Principal, resource: dict[str, Any]
) -> dict[str, Any]:
    agreement = read_agreement(resource, practice=uow.practice)
    agreement_id = str(uuid.uuid4())
    now = _now()
    stored = _stored(resource, agreement_id, 1, now)
    await repo.AgreementRepository(uow).add(
        agreement_id, agreement, stored, at=now, recorded_by=principal.user_id
    )
    await _publish_agreement(uow, agreement, agreement_id, 1)
    _audit(uow, principal, "create", "OrganizationAffiliation", resource_ids=[agreement_id])
    return stored


async def amend_agreement(
    uow: UnitOfWork,
    principal: Principal,
    agreement_id: str,
    resource: dict[str, Any],
    *,
    if_match: int | None,
) -> dict[str, Any]:
    """End, suspend or widen an agreement: a new version, published like the first."""
    if resource.get("id") != agreement_id:
        raise InvalidResource(
            [Problem("The resource id must match the id in the URL", "OrganizationAffiliation.id")]
        )
    agreements = repo.AgreementRepository(uow)
    current = await agreements.get(agreement_id) if _is_uuid(agreement_id) else None
    # The grantee sees the agreement but may not change it: to it, there is nothing to update.
    if current is None or current.grantor != uow.practice:
        raise NotFound(f"OrganizationAffiliation/{agreement_id}")
    if if_match is not None and if_match != current.version_id:
        raise VersionConflict(
            f"OrganizationAffiliation/{agreement_id} is at version "
            f"{current.version_id}, not {if_match}"
        )
    agreement = read_agreement(resource, practice=uow.practice)
    check_amendment(read_agreement(current.resource, practice=uow.practice), agreement)
    version_id = current.version_id + 1
    now = _now()
    stored = _stored(resource, agreement_id, version_id, now)
    if not await agreements.replace(
        current, agreement, stored, at=now, recorded_by=principal.user_id
    ):
        raise VersionConflict(f"OrganizationAffiliation/{agreement_id} changed meanwhile")
    await _publish_agreement(uow, agreement, agreement_id, version_id)
    _audit(uow, principal, "update", "OrganizationAffiliation", resource_ids=[agreement_id])
    return stored


async def _publish_agreement(
    uow: UnitOfWork, agreement: Agreement, agreement_id: str, version_id: int
) -> None:
    """The agreement's event, and this service's own projection of it from that very event
    (in the same transaction, so the patient index honours it from the commit on)."""
    event = uow.emit(
        PATIENT_TOPIC,
        AGREEMENT_RECORDED,
        subject=agreement_id,
        data=agreement.event_data(agreement_id, version_id),
    )
    await project_grant(event, uow)


async def read_agreement_resource(
    uow: UnitOfWork, principal: Principal, agreement_id: str
) -> dict[str, Any]:
    stored = (
        await repo.AgreementRepository(uow).get(agreement_id) if _is_uuid(agreement_id) else None
    )
    if stored is None:
        raise NotFound(f"OrganizationAffiliation/{agreement_id}")
    _audit(uow, principal, "read", "OrganizationAffiliation", resource_ids=[agreement_id])
    return stored.resource


async def search_agreements(
    uow: UnitOfWork, principal: Principal, search: SearchRequest
) -> tuple[list[dict[str, Any]], int]:
    active = None
    if (value := search.first("active")) is not None:
        if value not in ("true", "false"):
            raise InvalidSearch([Problem("active must be true or false", "active")])
        active = value == "true"
    grantee = None
    if (value := search.first("participating-organization")) is not None:
        system, code = parse_token(value)
        if system not in (None, ODS_SYSTEM) or not code:
            raise InvalidSearch(
                [
                    Problem(
                        f"participating-organization takes an ODS code ({ODS_SYSTEM}|<code>)",
                        "participating-organization",
                    )
                ]
            )
        grantee = code
    resources, total = await repo.AgreementRepository(uow).search(
        active=active, grantee=grantee, offset=search.offset, count=search.count
    )
    _audit(
        uow,
        principal,
        "search",
        "OrganizationAffiliation",
        resource_ids=[r["id"] for r in resources],
    )
    return resources, total


async def break_glass(
    uow: UnitOfWork,
    principal: Principal,
    patient_id: str,
    parameters: dict[str, Any],
    *,
    minutes: int,
) -> dict[str, Any]:
    """Open one patient's record to one user, for `minutes`, outside any agreement.

    The grant is recorded here (so this service honours it at once) and published for
    the other services; the access is audited with its reason in the caller's practice,
    and a security alert goes to the trail of the practice holding the record, where
    its privacy officer sees it.
    """
    reason = read_break_glass_reason(parameters)
    patient_practice = (
        await repo.practice_of_patient(uow, patient_id) if _is_uuid(patient_id) else None
    )
    if patient_practice is None:
        raise NotFound(f"Patient/{patient_id}")
    if patient_practice == uow.practice:
        raise InvalidTransition(
            "The record is already open to your practice: no need to break the glass"
        )
    grant_id = str(uuid.uuid4())
    start = _now()
    end = start + dt.timedelta(minutes=minutes)
    granted = uow.emit(
        PATIENT_TOPIC,
        BREAK_GLASS_GRANTED,
        subject=patient_id,
        practice=patient_practice,
        data={
            "grantId": grant_id,
            "patient": patient_id,
            "patientPractice": patient_practice,
            "user": principal.user_id,
            "userPractice": uow.practice,
            "start": start.isoformat(),
            "end": end.isoformat(),
        },
    )
    await project_grant(granted, uow)
    access = _break_glass_audit_event(
        principal,
        patient_id,
        reason,
        outcome_desc=(
            f"break-glass: record of a patient of {patient_practice} opened until {end.isoformat()}"
        ),
    )
    uow.emit(
        audit.AUDIT_TOPIC, audit.AUDIT_EVENT_TYPE, subject=patient_id, data=access, prompt=False
    )
    alert = _break_glass_audit_event(
        principal,
        patient_id,
        reason,
        outcome_desc=(
            f"security alert: a user of {uow.practice} broke the glass on this practice's record"
        ),
    )
    alert["type"] = SECURITY_ALERT
    alert["source"]["site"] = patient_practice
    # The alert should reach the privacy officer promptly: it wakes the relay.
    uow.emit(
        audit.AUDIT_TOPIC,
        audit.AUDIT_EVENT_TYPE,
        subject=patient_id,
        practice=patient_practice,
        data=alert,
        prompt=True,
    )
    return {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "grant", "valueString": grant_id},
            {"name": "patient", "valueReference": {"reference": f"Patient/{patient_id}"}},
            {"name": "expires", "valueInstant": end.isoformat().replace("+00:00", "Z")},
        ],
    }


def _break_glass_audit_event(
    principal: Principal, patient_id: str, reason: str, *, outcome_desc: str
) -> dict[str, Any]:
    event = audit.audit_event(
        principal=principal,
        interaction="operation",
        resource_type="Patient",
        patient_ids=[patient_id],
        outcome_desc=outcome_desc,
        source=SOURCE,
    )
    event["purposeOfEvent"] = [{"coding": [BREAK_THE_GLASS]}]
    event.setdefault("extension", []).append({"url": BREAK_GLASS_REASON_URL, "valueString": reason})
    return event


def _stored(
    resource: dict[str, Any], agreement_id: str, version_id: int, at: dt.datetime
) -> dict[str, Any]:
    stored = _stamp(
        resource,
        resource_id=agreement_id,
        version_id=version_id,
        at=at,
        profile=UK_CORE_ORGANIZATION_AFFILIATION_PROFILE,
    )
    # Displays from our code system, so a reader need not look the codes up.
    for concept in stored.get("code") or ():
        for coding in concept.get("coding") or ():
            if coding.get("system") == SHARING_SCOPE_SYSTEM and coding.get("code") in SCOPE_DISPLAY:
                coding.setdefault("display", SCOPE_DISPLAY[coding["code"]])
    return stored
