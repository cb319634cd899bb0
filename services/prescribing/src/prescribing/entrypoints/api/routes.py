"""HTTP routes: translate FHIR requests to use cases, and results to FHIR responses."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request
from gpsoc_kit.access import MATRIX, Requirement
from gpsoc_kit.auth import Permission, Principal
from gpsoc_kit.fhir import FhirError, FhirResponse, history_bundle, searchset
from gpsoc_kit.http import CurrentPrincipal, fhir_response, read_resource, reading, require
from gpsoc_kit.search import parse_search
from starlette.responses import Response

from ...domain.prescription import ACTIVE, DRAFT, ORDER, PLAN
from ...service_layer import handlers
from .deps import UowDep

router = APIRouter()

READ = require(Permission.READ_MEDICATION)


# The permission matrix's rules this module enforces beyond `require(Permission.X)`.
_FORMULARY = MATRIX.rule("GET /Medication").requires  # any member of staff: a known role
_ANY_CREATE = MATRIX.rule("POST /MedicationRequest").requires  # one of the three


def _require(requires: Requirement, principal: Principal) -> None:
    """Refuse (403) what the matrix refuses the caller. Called inside the route, so the
    chassis' unit of work audits the refusal."""
    if not requires.allows(principal):
        raise FhirError(403, f"Your role does not permit this: it needs "
                        f"{requires.missing(principal)}", code="forbidden",
                        details_code="ACCESS_DENIED")


def _base(request: Request) -> str:
    return request.app.state.settings.public_base_url


def _search(request: Request, allowed: tuple[str, ...]):  # noqa: ANN202
    settings = request.app.state.settings
    return parse_search(request.query_params.multi_items(), allowed=allowed,
                        default_count=settings.default_page_size, max_count=settings.max_page_size)


def _created(request: Request, resource: dict[str, Any]) -> Response:
    return fhir_response(resource, status=201, location=(
        f"{_base(request)}/MedicationRequest/{resource['id']}/_history/"
        f"{resource['meta']['versionId']}"))


async def _parameters(request: Request) -> dict[str, str]:
    """A FHIR Parameters body as {name: string value}; an empty body is no parameters."""
    body = await request.body()
    if not body:
        return {}
    try:
        resource = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise FhirError(400, "The request body is not valid JSON", code="structure") from None
    if not isinstance(resource, dict) or resource.get("resourceType") != "Parameters":
        raise FhirError(400, "The request body must be a Parameters resource", code="structure",
                        expression="Parameters.resourceType")
    return {p["name"]: p["valueString"] for p in resource.get("parameter") or []
            if isinstance(p, dict) and isinstance(p.get("name"), str)
            and isinstance(p.get("valueString"), str)}


# ---- Medication: the formulary, reference data any member of staff may read -------------
@router.get("/Medication")
async def search_medications(request: Request) -> Response:
    async with reading(request) as (uow, principal):
        _require(_FORMULARY, principal)
        search = _search(request, handlers.MEDICATION_SEARCH_PARAMETERS)
        resources, total = await handlers.search_medications(uow, search)
        return FhirResponse(searchset(resources, total=total, base_url=_base(request),
                                      resource_type="Medication", params=list(search.raw),
                                      offset=search.offset, count=search.count))


@router.get("/Medication/{dmd_id}")
async def read_medication(request: Request, dmd_id: str) -> Response:
    async with reading(request) as (uow, principal):
        _require(_FORMULARY, principal)
        return FhirResponse(await handlers.read_medication(uow, dmd_id))


# ---- MedicationRequest ------------------------------------------------------------------
@router.post("/MedicationRequest")
async def create_medication_request(request: Request, uow: UowDep,
                                    principal: CurrentPrincipal) -> Response:
    """intent=plan authorises; intent=order issues (active) or requests a repeat (draft)."""
    body = await read_resource(request, "MedicationRequest")
    # The gate of every create (one of the three permissions), then each intent's own.
    _require(_ANY_CREATE, principal)
    knowledge_base = request.app.state.knowledge_base
    intent, status = body.get("intent"), body.get("status", ACTIVE)
    if intent == PLAN:
        principal.require(Permission.AUTHORISE_PRESCRIPTION)
        stored = await handlers.authorise(uow, principal, body, knowledge_base=knowledge_base)
    elif intent == ORDER and status == DRAFT:
        principal.require(Permission.REQUEST_REPEAT)
        stored = await handlers.request_repeat(uow, principal, body)
    elif intent == ORDER:
        principal.require(Permission.ISSUE_PRESCRIPTION)
        stored = await handlers.issue_order(uow, principal, body, knowledge_base=knowledge_base)
    else:
        raise FhirError(422, "intent must be 'plan' (authorise) or 'order' (issue, or a draft "
                        "repeat request)", code="invalid", expression="MedicationRequest.intent")
    await uow.commit()
    return _created(request, stored)


@router.get("/MedicationRequest", dependencies=[READ])
async def search_medication_requests(request: Request) -> Response:
    async with reading(request) as (uow, principal):
        search = _search(request, handlers.MEDICATION_REQUEST_SEARCH_PARAMETERS)
        resources, total = await handlers.search_requests(uow, principal, search)
        await uow.commit()
        return FhirResponse(searchset(resources, total=total, base_url=_base(request),
                                      resource_type="MedicationRequest", params=list(search.raw),
                                      offset=search.offset, count=search.count))


@router.get("/MedicationRequest/{request_id}", dependencies=[READ])
async def read_medication_request(request: Request, request_id: str) -> Response:
    async with reading(request) as (uow, principal):
        resource = await handlers.read_request(uow, principal, request_id)
        await uow.commit()
        return fhir_response(resource)


@router.get("/MedicationRequest/{request_id}/_history", dependencies=[READ])
async def medication_request_history(request: Request, request_id: str) -> Response:
    async with reading(request) as (uow, principal):
        versions = await handlers.request_history(uow, principal, request_id)
        await uow.commit()
        return FhirResponse(history_bundle(versions, base_url=_base(request)))


@router.get("/MedicationRequest/{request_id}/_history/{version_id}", dependencies=[READ])
async def read_medication_request_version(request: Request, request_id: str, version_id: str) -> Response:
    async with reading(request) as (uow, principal):
        resource = await handlers.read_request_version(uow, principal, request_id, version_id)
        await uow.commit()
        return fhir_response(resource)


@router.post("/MedicationRequest/{request_id}/$issue",
             dependencies=[require(Permission.ISSUE_PRESCRIPTION)])
async def issue_medication_request(request: Request, request_id: str, uow: UowDep,
                                   principal: CurrentPrincipal) -> Response:
    """On an authorisation: its next issue. On a waiting repeat request: approve and issue it."""
    parameters = await _parameters(request)
    intent, _ = await handlers.kind_of(uow, request_id)
    knowledge_base = request.app.state.knowledge_base
    if intent == PLAN:
        stored = await handlers.issue(uow, principal, plan_id=request_id,
                                      reason=parameters.get("overrideReason"),
                                      knowledge_base=knowledge_base)
    else:
        stored = await handlers.issue_waiting_request(uow, principal, request_id,
                                                      parameters.get("overrideReason"),
                                                      knowledge_base=knowledge_base)
    await uow.commit()
    return _created(request, stored)


@router.post("/MedicationRequest/{request_id}/$stop",
             dependencies=[require(Permission.AUTHORISE_PRESCRIPTION)])
async def stop_medication_request(request: Request, request_id: str, uow: UowDep,
                                  principal: CurrentPrincipal) -> Response:
    parameters = await _parameters(request)
    stored = await handlers.stop(uow, principal, request_id, parameters.get("reason"))
    await uow.commit()
    return fhir_response(stored)


@router.post("/MedicationRequest/{request_id}/$cancel",
             dependencies=[require(Permission.REQUEST_REPEAT)])
async def cancel_medication_request(request: Request, request_id: str, uow: UowDep,
                                    principal: CurrentPrincipal) -> Response:
    """Withdraw a repeat request (anyone who may raise one) or cancel an issue (a prescriber)."""
    parameters = await _parameters(request)
    if await handlers.kind_of(uow, request_id) == (ORDER, ACTIVE):
        principal.require(Permission.ISSUE_PRESCRIPTION)
    stored = await handlers.cancel(uow, principal, request_id, parameters.get("reason"))
    await uow.commit()
    return fhir_response(stored)


@router.put("/MedicationRequest/{request_id}")
@router.delete("/MedicationRequest/{request_id}")
async def unsupported_change(request_id: str) -> Response:
    # Prescriptions change only through their operations, and are never deleted.
    raise FhirError(405, "MedicationRequests change only through $issue, $stop and $cancel, "
                    "and are never deleted", code="not-supported")
