"""Use cases of the prescribing service, one function each, on a unit of work.

Handlers never commit: the entry point that opened the unit of work commits it,
so a prescription's rows, its EPS message, its events and its audit record stand
or fall together.
"""

from __future__ import annotations

import copy
import datetime as dt
import secrets
import uuid
from typing import Any

from gpsoc_kit import audit
from gpsoc_kit.auth import Principal
from gpsoc_kit.errors import InvalidResource, InvalidSearch, InvalidTransition, NotFound, Problem
from gpsoc_kit.search import SearchRequest, parse_reference, parse_token
from gpsoc_kit.uow import UnitOfWork
from sqlalchemy.exc import IntegrityError

from ..adapters import repository as repo
from ..adapters.knowledge_base import KnowledgeBase, TableKnowledgeBase
from ..adapters.tables import medication_requests
from ..domain import eps
from ..domain.formulary import DMD_SYSTEM, Product, medication_resource
from ..domain.prescription import (
    ACTIVE,
    CANCELLED,
    COMPLETED,
    COURSE_CODING,
    CURRENT_PLAN_STATUSES,
    DRAFT,
    ISSUE_NUMBER_URL,
    ORDER,
    OVERRIDE_URL,
    PLAN,
    REPEAT_INFORMATION_URL,
    SAFETY_OUTCOME_URL,
    STOPPED,
    UK_CORE_MEDICATION_REQUEST_PROFILE,
    AuthorisationRequest,
    check_cancellable,
    check_issuable,
    check_stoppable,
    event_data,
    override_reason,
    read_authorisation,
    reference_id,
    require_reason,
    status_after_issue,
)
from ..domain.safety import (
    CheckOutcome,
    Prescribing,
    Severity,
    decide,
    ensure_usable,
    run_checks,
)
from ..events import PRESCRIPTION_TOPIC, EventType

SOURCE = "urn:opengpsoc:prescribing"
MEDICATION_SEARCH_PARAMETERS = ("_id", "code", "name")
MEDICATION_REQUEST_SEARCH_PARAMETERS = ("_id", "patient", "subject", "intent", "status",
                                        "based-on")
SAFETY_OUTCOME_ID = "safety-checks"
DEFAULT_KNOWLEDGE_BASE: KnowledgeBase = TableKnowledgeBase()
_MANAGED_EXTENSIONS = frozenset({REPEAT_INFORMATION_URL, OVERRIDE_URL, SAFETY_OUTCOME_URL,
                                 ISSUE_NUMBER_URL})
NO_SUBSTITUTION = {"allowedBoolean": False}
_STATUSES = frozenset({"active", "on-hold", "cancelled", "completed", "entered-in-error",
                       "stopped", "draft", "unknown"})


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _iso(moment: dt.datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return len(value) == 36


def _audit(uow: UnitOfWork, principal: Principal, interaction: str, resource_type: str,
           *, patient_ids: list[str] = (), resource_ids: list[str] = (),
           query: str | None = None) -> None:
    audit.record(uow, principal=principal, interaction=interaction, resource_type=resource_type,
                 patient_ids=patient_ids, resource_ids=resource_ids, query=query, source=SOURCE)


def _stamp(resource: dict[str, Any], *, version_id: int, at: dt.datetime) -> dict[str, Any]:
    meta = dict(resource.get("meta") or {})
    profiles = [p for p in meta.get("profile", []) if isinstance(p, str)]
    if UK_CORE_MEDICATION_REQUEST_PROFILE not in profiles:
        profiles.insert(0, UK_CORE_MEDICATION_REQUEST_PROFILE)
    meta.update(versionId=str(version_id), lastUpdated=_iso(at), profile=profiles)
    meta.pop("source", None)
    resource["meta"] = meta
    return resource


# ---- the formulary (reference data: no patient, no audit) ---------------------------------
async def read_medication(uow: UnitOfWork, dmd_id: str) -> dict[str, Any]:
    product = await repo.FormularyRepository(uow.conn).get(dmd_id) if dmd_id.isdigit() else None
    if product is None:
        raise NotFound(f"Medication/{dmd_id}")
    return medication_resource(product)


async def search_medications(uow: UnitOfWork, search: SearchRequest
                             ) -> tuple[list[dict[str, Any]], int]:
    codes: list[str] = []
    for name, value in search.filters:
        if name in ("_id", "code"):
            system, code = parse_token(value) if name == "code" else (None, value)
            if system not in (None, DMD_SYSTEM):
                raise InvalidSearch([Problem(f"code system must be {DMD_SYSTEM}", name)])
            codes.append(code)
    products, total = await repo.FormularyRepository(uow.conn).search(
        name=search.first("name"), codes=codes, count=search.count, offset=search.offset)
    return [medication_resource(p) for p in products], total


# ---- safety checks ------------------------------------------------------------------------
async def _patient_for_prescribing(uow: UnitOfWork, patient_id: str) -> eps.PatientDetails:
    # Unknown and another practice's patient get the same answer: existence is not disclosed.
    found = await repo.PatientProjection(uow.conn).get(patient_id) if _is_uuid(patient_id) else None
    if found is None:
        raise InvalidResource([Problem(f"Patient/{patient_id} is not a patient of this practice",
                                       "MedicationRequest.subject")])
    details, active, deceased = found
    if deceased:
        raise InvalidTransition(f"Patient/{patient_id} is recorded as deceased")
    if not active:
        raise InvalidTransition(f"Patient/{patient_id} is no longer registered at this practice")
    return details


async def _prescribable(uow: UnitOfWork, code: str) -> Product:
    product = await repo.FormularyRepository(uow.conn).get(code)
    if product is None:
        raise InvalidResource([Problem(f"{code} is not in the dm+d formulary",
                                       "MedicationRequest.medicationCodeableConcept")])
    why = product.why_not_prescribable()
    if why:
        raise InvalidResource([Problem(why, "MedicationRequest.medicationCodeableConcept")])
    return product


async def _check(uow: UnitOfWork, knowledge_base: KnowledgeBase, *, patient_id: str,
                 product: Product, details: AuthorisationRequest, reason: str | None,
                 excluding_plan: str | None,
                 previously_overridden: frozenset[str] = frozenset()) -> CheckOutcome:
    allergies = await repo.AllergyProjection(uow.conn).relevant_to(patient_id)
    current = await repo.MedicationRequestRepository(uow.conn).current_medications(
        patient_id, now=_now(), excluding_plan=excluding_plan)
    knowledge = await knowledge_base.snapshot(
        uow.conn, substance_ids={product.substance_id} | {m.substance_id for m in current
                                                         if m.substance_id},
        allergen_codes={a.code for a in allergies}, dose_substance_id=product.substance_id)
    release = ensure_usable(knowledge, _now().date())
    rx = Prescribing(product=product, quantity=details.quantity,
                     quantity_unit=details.quantity_unit, quantity_words=details.quantity_words,
                     supply_days=details.supply_days, dose=details.dose)
    findings = run_checks(rx, allergies=allergies, current=current, knowledge=knowledge)
    return decide(findings, release, override_reason=reason,
                  previously_overridden=previously_overridden)


def _outcome_resource(outcome: CheckOutcome, previously_overridden: frozenset[str]
                      ) -> dict[str, Any]:
    """The checks made and what they found, kept with the request (contained OperationOutcome)."""
    level = {Severity.HIGH: "error", Severity.MODERATE: "warning", Severity.LOW: "information"}
    issues = []
    for finding in outcome.findings:
        note = ""
        if finding in outcome.overridden:
            note = " [overridden: " + (outcome.override_reason or "") + "]"
        elif finding.severity is Severity.HIGH and finding.key in previously_overridden:
            note = " [overridden when authorised]"
        issues.append({"severity": level[finding.severity],
                       "code": "business-rule" if finding.severity is not Severity.LOW
                       else "informational",
                       "details": {"coding": [{
                           "system": "https://opengpsoc.org/fhir/CodeSystem/safety-check",
                           "code": finding.kind}], "text": finding.key},
                       "diagnostics": finding.message + note})
    release = outcome.release
    issues.append({"severity": "information", "code": "informational",
                   "diagnostics": f"Checked allergies, interactions, duplicate therapy, "
                                  f"controlled drug rules and dose against {release.source} "
                                  f"{release.version}"})
    return {"resourceType": "OperationOutcome", "id": SAFETY_OUTCOME_ID, "issue": issues}


def _with_check_record(resource: dict[str, Any], outcome: CheckOutcome, principal: Principal,
                       previously_overridden: frozenset[str] = frozenset()) -> None:
    resource["contained"] = [_outcome_resource(outcome, previously_overridden)]
    extensions = [e for e in resource.get("extension") or []
                  if e.get("url") not in _MANAGED_EXTENSIONS | {OVERRIDE_URL}]
    extensions.append({"url": SAFETY_OUTCOME_URL,
                       "valueReference": {"reference": f"#{SAFETY_OUTCOME_ID}"}})
    if outcome.overridden:
        extensions.append({"url": OVERRIDE_URL, "extension": [
            {"url": "reason", "valueString": outcome.override_reason},
            {"url": "overriddenBy", "valueReference": {
                "reference": f"Practitioner/{principal.user_id}", "display": principal.name}},
            *({"url": "finding", "valueString": f.key} for f in outcome.overridden),
        ]})
    resource["extension"] = extensions


def _record_override(uow: UnitOfWork, principal: Principal, outcome: CheckOutcome, *,
                     resource: dict[str, Any], plan_id: str, course: Any, issue_number: int | None,
                     now: dt.datetime) -> dict[str, Any] | None:
    if not outcome.overridden:
        return None
    findings = [f.to_dict() for f in outcome.overridden]
    override = {"id": str(uuid.uuid4()), "practice_code": uow.practice,
                "request_id": resource["id"], "plan_id": plan_id,
                "patient_id": reference_id(resource["subject"], "Patient"),
                "reason": outcome.override_reason, "findings": findings,
                "overridden_by": principal.user_id,
                "knowledge_base": f"{outcome.release.source} {outcome.release.version}",
                "recorded_at": now}
    data = event_data(resource, course=course, plan_id=plan_id if plan_id != resource["id"]
                      else None, issue_number=issue_number, status_reason=None)
    data["override"] = {"reason": outcome.override_reason, "findings": findings,
                        "overriddenBy": principal.user_id,
                        "knowledgeBase": override["knowledge_base"]}
    uow.emit(PRESCRIPTION_TOPIC, EventType.OVERRIDE_RECORDED, subject=override["patient_id"],
             data=data)
    return override


def _requester(principal: Principal) -> dict[str, str]:
    return {"reference": f"Practitioner/{principal.user_id}", "display": principal.name}


# ---- authorising ----------------------------------------------------------------------------
async def authorise(uow: UnitOfWork, principal: Principal, body: dict[str, Any], *,
                    knowledge_base: KnowledgeBase = DEFAULT_KNOWLEDGE_BASE) -> dict[str, Any]:
    """A new authorisation (intent=plan), or a re-authorisation when priorPrescription is given."""
    now = _now()
    details = read_authorisation(body, today=now.date())
    await _patient_for_prescribing(uow, details.patient_id)
    product = await _prescribable(uow, details.medication_code)
    requests = repo.MedicationRequestRepository(uow.conn)
    prior = None
    if details.prior_plan_id is not None:
        prior = await requests.get(details.prior_plan_id, for_update=True) if _is_uuid(
            details.prior_plan_id) else None
        if prior is None or prior.intent != PLAN or prior.patient_id != details.patient_id:
            raise InvalidResource([Problem("priorPrescription must be an authorisation of the "
                                           "same patient", "MedicationRequest.priorPrescription")])
        if prior.status not in CURRENT_PLAN_STATUSES | {COMPLETED}:
            raise InvalidTransition(f"MedicationRequest/{prior.id} is {prior.status} and cannot "
                                    "be re-authorised; authorise afresh")
    outcome = await _check(uow, knowledge_base, patient_id=details.patient_id, product=product,
                           details=details, reason=details.override_reason,
                           excluding_plan=prior.id if prior else None)

    plan_id = str(uuid.uuid4())
    resource = copy.deepcopy(body)
    resource.update(
        resourceType="MedicationRequest", id=plan_id, status=ACTIVE, intent=PLAN,
        subject={"reference": f"Patient/{details.patient_id}"},
        medicationCodeableConcept={"coding": [{"system": DMD_SYSTEM, "code": product.dmd_id,
                                               "display": product.name}]},
        courseOfTherapyType={"coding": [COURSE_CODING[details.course]]},
        authoredOn=_iso(now), requester=_requester(principal))
    resource["dispenseRequest"] = dict(resource["dispenseRequest"],
                                       numberOfRepeatsAllowed=details.authorised_issues - 1)
    # UK Core requires substitution (1..1); unless the prescriber says otherwise, none allowed.
    if not isinstance(resource.get("substitution"), dict) or not any(
            k.startswith("allowed") for k in resource["substitution"]):
        resource["substitution"] = dict(NO_SUBSTITUTION)
    if prior is not None:
        resource["priorPrescription"] = {"reference": f"MedicationRequest/{prior.id}"}
    _with_check_record(resource, outcome, principal)
    resource["extension"].append(_repeat_information(0, details.review_date))
    _stamp(resource, version_id=1, at=now)

    await requests.add(practice=uow.practice, recorded_at=now, recorded_by=principal.user_id,
                       resource=resource, columns={
                           "id": plan_id, "patient_id": details.patient_id, "intent": PLAN,
                           "status": ACTIVE, "course": details.course.value,
                           "medication_code": product.dmd_id,
                           "substance_id": product.substance_id,
                           "prior_prescription": prior.id if prior else None,
                           "authorised_issues": details.authorised_issues, "issues_made": 0,
                           "review_date": details.review_date,
                           "prescriber_id": principal.user_id, "authored_on": now})
    uow.emit(PRESCRIPTION_TOPIC, EventType.AUTHORISED, subject=details.patient_id,
             data=event_data(resource, course=details.course, plan_id=None, issue_number=None,
                             status_reason=None))
    override = _record_override(uow, principal, outcome, resource=resource, plan_id=plan_id,
                                course=details.course, issue_number=None, now=now)
    if override:
        await repo.OverrideRepository(uow.conn).add(**override)
    if prior is not None and prior.status in CURRENT_PLAN_STATUSES:
        await _end(uow, principal, prior, status=COMPLETED,
                   reason=f"Re-authorised as MedicationRequest/{plan_id}", now=now)
    _audit(uow, principal, "create", "MedicationRequest", patient_ids=[details.patient_id],
           resource_ids=[plan_id])
    return resource


def _repeat_information(issued: int, review_date: dt.date | None) -> dict[str, Any]:
    parts: list[dict[str, Any]] = [{"url": "numberOfPrescriptionsIssued",
                                    "valueUnsignedInt": issued}]
    if review_date is not None:
        parts.append({"url": "authorisationExpiryDate", "valueDateTime": review_date.isoformat()})
    return {"url": REPEAT_INFORMATION_URL, "extension": parts}


# ---- issuing --------------------------------------------------------------------------------
async def issue(uow: UnitOfWork, principal: Principal, *, plan_id: str, reason: str | None,
                draft_id: str | None = None,
                knowledge_base: KnowledgeBase = DEFAULT_KNOWLEDGE_BASE) -> dict[str, Any]:
    """The next issue of an authorisation (or the approval of a waiting repeat request)."""
    now = _now()
    requests = repo.MedicationRequestRepository(uow.conn)
    # The plan's row lock serialises issues of one plan; the unique (plan, issue number)
    # constraint and the issues_made <= authorised_issues check are the database's guarantee.
    plan = await requests.get(plan_id, for_update=True) if _is_uuid(plan_id) else None
    if plan is None or plan.intent != PLAN:
        raise InvalidResource([Problem(f"MedicationRequest/{plan_id} is not an authorisation of "
                                       "this practice", "MedicationRequest.basedOn")])
    number = check_issuable(plan.plan_state(), now.date())
    patient = await _patient_for_prescribing(uow, plan.patient_id)
    product = await _prescribable(uow, plan.medication_code)
    details = read_authorisation(plan.resource, today=dt.date.min)
    previously = await repo.OverrideRepository(uow.conn).overridden_keys(plan.id)
    outcome = await _check(uow, knowledge_base, patient_id=plan.patient_id, product=product,
                           details=details, reason=reason, excluding_plan=plan.id,
                           previously_overridden=previously)

    outbox = repo.EpsOutbox(uow.conn)
    prescription_id = eps.short_form_prescription_id(
        secrets.token_hex(3).upper(), uow.practice, await outbox.next_sequence())
    prescription_uuid = str(uuid.uuid4())
    order_id = draft_id or str(uuid.uuid4())
    order: dict[str, Any] = {
        "resourceType": "MedicationRequest", "id": order_id, "status": ACTIVE, "intent": ORDER,
        "subject": plan.resource["subject"],
        "medicationCodeableConcept": plan.resource["medicationCodeableConcept"],
        "courseOfTherapyType": plan.resource["courseOfTherapyType"],
        "dosageInstruction": plan.resource["dosageInstruction"],
        "dispenseRequest": {k: v for k, v in plan.resource["dispenseRequest"].items()
                            if k != "numberOfRepeatsAllowed"},
        "substitution": plan.resource.get("substitution") or dict(NO_SUBSTITUTION),
        "basedOn": [{"reference": f"MedicationRequest/{plan.id}"}],
        "authoredOn": _iso(now), "requester": _requester(principal),
        "groupIdentifier": {"system": eps.PRESCRIPTION_ORDER_NUMBER_SYSTEM,
                            "value": prescription_id,
                            "extension": [{"url": eps.PRESCRIPTION_ID_EXTENSION,
                                           "valueIdentifier": {"system": eps.PRESCRIPTION_ID_SYSTEM,
                                                               "value": prescription_uuid}}]},
    }
    _with_check_record(order, outcome, principal, previously)
    order["extension"].append({"url": ISSUE_NUMBER_URL, "valueUnsignedInt": number})
    columns = {"status": ACTIVE, "issue_number": number, "prescriber_id": principal.user_id,
               "supply_until": now + dt.timedelta(days=details.supply_days or 0)}
    try:
        async with uow.conn.begin_nested():
            if draft_id is not None:
                draft = await requests.get(draft_id, for_update=True)
                assert draft is not None
                _stamp(order, version_id=draft.version_id + 1, at=now)
                await requests.replace(draft, practice=uow.practice, changes=columns,
                                       resource=order, recorded_at=now,
                                       recorded_by=principal.user_id)
            else:
                _stamp(order, version_id=1, at=now)
                await requests.add(practice=uow.practice, recorded_at=now,
                                   recorded_by=principal.user_id, resource=order, columns={
                                       **columns, "id": order_id, "patient_id": plan.patient_id,
                                       "intent": ORDER, "course": plan.course.value,
                                       "medication_code": plan.medication_code,
                                       "substance_id": plan.substance_id, "based_on": plan.id,
                                       "authored_on": now})
    except IntegrityError as exc:
        if "uq_medication_requests_plan_issue" in str(exc.orig):
            raise InvalidTransition(f"Issue {number} of MedicationRequest/{plan.id} was made "
                                    "at the same moment by someone else; check and retry") from None
        raise

    await _record_issue_on_plan(uow, principal, plan, number, now)
    message_id = str(uuid.uuid4())
    await outbox.add(message_id=message_id, practice=uow.practice, request_id=order_id,
                     prescription_id=prescription_id,
                     message=eps.prescription_order_message(
                         message_id=message_id, timestamp=_iso(now), practice_ods=uow.practice,
                         order=order, patient=patient,
                         prescriber=eps.Prescriber(principal.user_id, principal.name,
                                                   principal.role_code),
                         prescription_id=prescription_id, prescription_uuid=prescription_uuid))
    uow.emit(PRESCRIPTION_TOPIC, EventType.ISSUED, subject=plan.patient_id,
             data=event_data(order, course=plan.course, plan_id=plan.id, issue_number=number,
                             status_reason=None))
    override = _record_override(uow, principal, outcome, resource=order, plan_id=plan.id,
                                course=plan.course, issue_number=number, now=now)
    if override:
        await repo.OverrideRepository(uow.conn).add(**override)
    _audit(uow, principal, "create", "MedicationRequest", patient_ids=[plan.patient_id],
           resource_ids=[order_id])
    return order


async def _record_issue_on_plan(uow: UnitOfWork, principal: Principal, plan: repo.StoredRequest,
                                number: int, now: dt.datetime) -> None:
    status = status_after_issue(plan.plan_state(), number)
    resource = copy.deepcopy(plan.resource)
    resource["status"] = status
    resource["extension"] = [e for e in resource.get("extension") or []
                             if e.get("url") != REPEAT_INFORMATION_URL]
    resource["extension"].append(_repeat_information(number, plan.review_date))
    _stamp(resource, version_id=plan.version_id + 1, at=now)
    await repo.MedicationRequestRepository(uow.conn).replace(
        plan, practice=uow.practice, changes={"issues_made": number, "status": status},
        resource=resource, recorded_at=now, recorded_by=principal.user_id)


async def request_repeat(uow: UnitOfWork, principal: Principal, body: dict[str, Any]
                         ) -> dict[str, Any]:
    """A repeat request (e.g. raised by a receptionist): a draft issue waiting for a prescriber."""
    now = _now()
    plan_id = _based_on(body)
    requests = repo.MedicationRequestRepository(uow.conn)
    plan = await requests.get(plan_id, for_update=True) if _is_uuid(plan_id) else None
    if plan is None or plan.intent != PLAN:
        raise InvalidResource([Problem(f"MedicationRequest/{plan_id} is not an authorisation of "
                                       "this practice", "MedicationRequest.basedOn")])
    if plan.course.value == "acute":
        raise InvalidTransition("An acute authorisation cannot be requested as a repeat")
    check_issuable(plan.plan_state(), now.date())
    request_id = str(uuid.uuid4())
    resource: dict[str, Any] = {
        "resourceType": "MedicationRequest", "id": request_id, "status": DRAFT, "intent": ORDER,
        "subject": plan.resource["subject"],
        "medicationCodeableConcept": plan.resource["medicationCodeableConcept"],
        "courseOfTherapyType": plan.resource["courseOfTherapyType"],
        "dosageInstruction": plan.resource["dosageInstruction"],
        "dispenseRequest": {k: v for k, v in plan.resource["dispenseRequest"].items()
                            if k != "numberOfRepeatsAllowed"},
        "substitution": plan.resource.get("substitution") or dict(NO_SUBSTITUTION),
        "basedOn": [{"reference": f"MedicationRequest/{plan.id}"}],
        "authoredOn": _iso(now), "requester": _requester(principal),
    }
    if isinstance(body.get("note"), list):
        resource["note"] = body["note"]
    _stamp(resource, version_id=1, at=now)
    await requests.add(practice=uow.practice, recorded_at=now, recorded_by=principal.user_id,
                       resource=resource, columns={
                           "id": request_id, "patient_id": plan.patient_id, "intent": ORDER,
                           "status": DRAFT, "course": plan.course.value,
                           "medication_code": plan.medication_code,
                           "substance_id": plan.substance_id, "based_on": plan.id,
                           "prescriber_id": principal.user_id, "authored_on": now})
    _audit(uow, principal, "create", "MedicationRequest", patient_ids=[plan.patient_id],
           resource_ids=[request_id])
    return resource


async def issue_order(uow: UnitOfWork, principal: Principal, body: dict[str, Any], *,
                      knowledge_base: KnowledgeBase = DEFAULT_KNOWLEDGE_BASE) -> dict[str, Any]:
    """POST of an intent=order MedicationRequest: issue the plan it is basedOn."""
    if body.get("status", ACTIVE) != ACTIVE:
        raise InvalidResource([Problem("An issue has status 'active' (or 'draft' for a repeat "
                                       "request)", "MedicationRequest.status")])
    return await issue(uow, principal, plan_id=_based_on(body), reason=override_reason(body),
                       knowledge_base=knowledge_base)


async def issue_waiting_request(uow: UnitOfWork, principal: Principal, request_id: str,
                                reason: str | None, *,
                                knowledge_base: KnowledgeBase = DEFAULT_KNOWLEDGE_BASE
                                ) -> dict[str, Any]:
    """$issue on a repeat request: a prescriber approves it and it becomes the next issue."""
    requests = repo.MedicationRequestRepository(uow.conn)
    draft = await requests.get(request_id) if _is_uuid(request_id) else None
    if draft is None:
        raise NotFound(f"MedicationRequest/{request_id}")
    if draft.intent != ORDER or draft.status != DRAFT or draft.based_on is None:
        raise InvalidTransition(f"MedicationRequest/{request_id} is not a waiting repeat request")
    return await issue(uow, principal, plan_id=draft.based_on, reason=reason,
                       draft_id=draft.id, knowledge_base=knowledge_base)


def _based_on(body: dict[str, Any]) -> str:
    references = body.get("basedOn") or []
    plan_id = reference_id(references[0], "MedicationRequest") if len(references) == 1 else None
    if plan_id is None:
        raise InvalidResource([Problem("An issue names exactly one authorisation in basedOn",
                                       "MedicationRequest.basedOn")])
    return plan_id


# ---- stopping and cancelling ----------------------------------------------------------------
async def stop(uow: UnitOfWork, principal: Principal, request_id: str,
               reason: str | None) -> dict[str, Any]:
    text = require_reason(reason, "Stopping an authorisation")
    current = await _get_for_update(uow, request_id)
    check_stoppable(current.intent, current.status, current.id)
    resource = await _end(uow, principal, current, status=STOPPED, reason=text, now=_now())
    _audit(uow, principal, "update", "MedicationRequest", patient_ids=[current.patient_id],
           resource_ids=[current.id])
    return resource


async def cancel(uow: UnitOfWork, principal: Principal, request_id: str,
                 reason: str | None) -> dict[str, Any]:
    text = require_reason(reason, "Cancelling")
    current = await _get_for_update(uow, request_id)
    check_cancellable(current.intent, current.status, current.id)
    if current.status == ACTIVE:
        sent = await repo.EpsOutbox(uow.conn).withdraw(current.id, uow.practice)
        if sent == "sent":
            raise InvalidTransition(f"MedicationRequest/{current.id} has already gone to Spine; "
                                    "an EPS cancellation message is needed, which this service "
                                    "does not send")
    resource = await _end(uow, principal, current, status=CANCELLED, reason=text, now=_now())
    _audit(uow, principal, "update", "MedicationRequest", patient_ids=[current.patient_id],
           resource_ids=[current.id])
    return resource


async def _get_for_update(uow: UnitOfWork, request_id: str) -> repo.StoredRequest:
    requests = repo.MedicationRequestRepository(uow.conn)
    current = await requests.get(request_id, for_update=True) if _is_uuid(request_id) else None
    if current is None:
        raise NotFound(f"MedicationRequest/{request_id}")
    return current


async def _end(uow: UnitOfWork, principal: Principal, current: repo.StoredRequest, *,
               status: str, reason: str, now: dt.datetime) -> dict[str, Any]:
    resource = copy.deepcopy(current.resource)
    resource["status"] = status
    resource["statusReason"] = {"text": reason}
    _stamp(resource, version_id=current.version_id + 1, at=now)
    await repo.MedicationRequestRepository(uow.conn).replace(
        current, practice=uow.practice, changes={"status": status}, resource=resource,
        recorded_at=now, recorded_by=principal.user_id)
    if current.status != DRAFT:
        uow.emit(PRESCRIPTION_TOPIC, EventType.STOPPED, subject=current.patient_id,
                 data=event_data(resource, course=current.course, plan_id=current.based_on,
                                 issue_number=current.issue_number, status_reason=reason))
    return resource


async def stop_everything_for(uow: UnitOfWork, principal: Principal, patient_id: str,
                              reason: str) -> int:
    """A death or deregistration: stop current authorisations, cancel waiting repeat requests."""
    requests = repo.MedicationRequestRepository(uow.conn)
    now = _now()
    ended = 0
    for plan in await requests.current_plans(patient_id):
        await _end(uow, principal, plan, status=STOPPED, reason=reason, now=now)
        ended += 1
    for waiting in await requests.waiting_requests(patient_id):
        await _end(uow, principal, waiting, status=CANCELLED, reason=reason, now=now)
        ended += 1
    if ended:
        _audit(uow, principal, "update", "MedicationRequest", patient_ids=[patient_id])
    return ended


# ---- reading ------------------------------------------------------------------------------
async def kind_of(uow: UnitOfWork, request_id: str) -> tuple[str, str]:
    """(intent, status) of a request of the caller's practice, so a route can pick the use case."""
    found = (await repo.MedicationRequestRepository(uow.conn).get(request_id)
             if _is_uuid(request_id) else None)
    if found is None:
        raise NotFound(f"MedicationRequest/{request_id}")
    return found.intent, found.status


async def read_request(uow: UnitOfWork, principal: Principal, request_id: str) -> dict[str, Any]:
    found = (await repo.MedicationRequestRepository(uow.conn).get(request_id)
             if _is_uuid(request_id) else None)
    if found is None:
        raise NotFound(f"MedicationRequest/{request_id}")
    _audit(uow, principal, "read", "MedicationRequest", patient_ids=[found.patient_id],
           resource_ids=[request_id])
    return found.resource


async def request_history(uow: UnitOfWork, principal: Principal,
                          request_id: str) -> list[dict[str, Any]]:
    versions = (await repo.MedicationRequestRepository(uow.conn).history(request_id)
                if _is_uuid(request_id) else [])
    if not versions:
        raise NotFound(f"MedicationRequest/{request_id}")
    patient_id = reference_id(versions[0].get("subject"), "Patient")
    _audit(uow, principal, "history", "MedicationRequest",
           patient_ids=[patient_id] if patient_id else [], resource_ids=[request_id])
    return versions


async def read_request_version(uow: UnitOfWork, principal: Principal, request_id: str,
                               version_id: str) -> dict[str, Any]:
    resource = None
    if _is_uuid(request_id) and version_id.isdigit():
        resource = await repo.MedicationRequestRepository(uow.conn).version(request_id,
                                                                             int(version_id))
    if resource is None:
        raise NotFound(f"MedicationRequest/{request_id}/_history/{version_id}")
    patient_id = reference_id(resource.get("subject"), "Patient")
    _audit(uow, principal, "vread", "MedicationRequest",
           patient_ids=[patient_id] if patient_id else [], resource_ids=[request_id])
    return resource


async def search_requests(uow: UnitOfWork, principal: Principal,
                          search: SearchRequest) -> tuple[list[dict[str, Any]], int]:
    c = medication_requests.c
    criteria: list[Any] = []
    nothing = "00000000-0000-0000-0000-000000000000"
    for name, value in search.filters:
        if name == "_id":
            criteria.append(c.id == (value if _is_uuid(value) else nothing))
        elif name in ("patient", "subject"):
            patient_id = parse_reference(value, "Patient")
            criteria.append(c.patient_id == (patient_id if _is_uuid(patient_id) else nothing))
        elif name == "based-on":
            plan_id = parse_reference(value, "MedicationRequest")
            criteria.append(c.based_on == (plan_id if _is_uuid(plan_id) else nothing))
        elif name == "intent":
            if value not in (PLAN, ORDER):
                raise InvalidSearch([Problem("intent must be plan or order", "intent")])
            criteria.append(c.intent == value)
        elif name == "status":
            statuses = value.split(",")
            if not set(statuses) <= _STATUSES:
                raise InvalidSearch([Problem(f"status must be among {', '.join(sorted(_STATUSES))}",
                                             "status")])
            criteria.append(c.status.in_(statuses))
    resources, total = await repo.MedicationRequestRepository(uow.conn).search(
        criteria, count=search.count, offset=search.offset)
    # The patient searched for is accessed even when nothing is found.
    searched = [parse_reference(v, "Patient") for k, v in search.filters
                if k in ("patient", "subject")]
    patient_ids = list(dict.fromkeys([*searched, *(
        pid for r in resources if (pid := reference_id(r.get("subject"), "Patient")))]))
    _audit(uow, principal, "search", "MedicationRequest", patient_ids=patient_ids,
           query="&".join(f"{k}={v}" for k, v in search.filters))
    return resources, total

