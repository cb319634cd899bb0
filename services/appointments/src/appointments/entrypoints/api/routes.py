"""HTTP routes: translate FHIR requests to use cases, and results to FHIR responses.

Booking headers:
- `Idempotency-Key`: a retry with the same key and body gets the original answer
  (same status and body) and books nothing more; the same key with another body is 422.
- `X-Slot-Hold`: the token from `POST /Slot/{id}/$hold`; while a hold lasts only a
  booking carrying its token can take the slot.
"""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Header, Request
from gpsoc_kit.auth import Permission
from gpsoc_kit.fhir import (
    FHIR_JSON,
    FhirError,
    FhirResponse,
    history_bundle,
    parse_if_match,
    searchset,
)
from gpsoc_kit.http import CurrentPrincipal, fhir_response, read_resource, reading, require
from gpsoc_kit.search import SearchRequest, parse_search
from starlette.responses import Response

from ...adapters.fhir import searchset_json
from ...service_layer import handlers
from .deps import UowDep

router = APIRouter()

READ = require(Permission.READ_APPOINTMENTS)
BOOK = require(Permission.BOOK_APPOINTMENTS)
MANAGE_ROTA = require(Permission.MANAGE_ROTA)
MAX_IDEMPOTENCY_KEY = 200


def _base(request: Request) -> str:
    return request.app.state.settings.public_base_url


def _settings(request: Request):  # noqa: ANN202
    return request.app.state.settings


def _search(request: Request, allowed: tuple[str, ...], *, default_count: int | None = None,
            max_count: int | None = None) -> SearchRequest:
    settings = _settings(request)
    return parse_search(request.query_params.multi_items(), allowed=allowed,
                        default_count=default_count or settings.default_page_size,
                        max_count=max_count or settings.max_page_size)


def _bundle(request: Request, resource_type: str, search: SearchRequest, resources: list,
            total: int, included: list | None = None) -> FhirResponse:
    return FhirResponse(searchset(resources, total=total, base_url=_base(request),
                                  resource_type=resource_type, params=list(search.raw),
                                  offset=search.offset, count=search.count,
                                  included=included or ()))


async def _optional_parameters(request: Request) -> dict:
    """The Parameters body of an operation that may be called with none."""
    if not await request.body():
        return {"resourceType": "Parameters", "parameter": []}
    return await read_resource(request, "Parameters")


# ----- Schedule -------------------------------------------------------------------------------
@router.post("/Schedule", dependencies=[MANAGE_ROTA])
async def create_schedule(request: Request, uow: UowDep) -> Response:
    resource = await read_resource(request, "Schedule")
    stored = await handlers.create_schedule(uow, resource,
                                            window_days=_settings(request).rolling_window_days)
    await uow.commit()
    return fhir_response(stored, status=201, location=f"{_base(request)}/Schedule/{stored['id']}")


@router.get("/Schedule", dependencies=[READ])
async def search_schedules(request: Request) -> Response:
    async with reading(request) as (uow, _):
        search = _search(request, handlers.SCHEDULE_SEARCH_PARAMETERS)
        resources, total = await handlers.search_schedules(
            uow, search, window_days=_settings(request).rolling_window_days)
        await uow.commit()
        return _bundle(request, "Schedule", search, resources, total)


@router.get("/Schedule/{schedule_id}", dependencies=[READ])
async def read_schedule(request: Request, schedule_id: str) -> Response:
    async with reading(request) as (uow, _):
        resource = await handlers.read_schedule(uow, schedule_id,
                                                window_days=_settings(request).rolling_window_days)
        await uow.commit()
        return fhir_response(resource)


@router.post("/Schedule/{schedule_id}/$add-session", dependencies=[MANAGE_ROTA])
async def add_session(request: Request, schedule_id: str, uow: UowDep) -> Response:
    parameters = await read_resource(request, "Parameters")
    result = await handlers.add_session(uow, schedule_id, parameters,
                                        window_days=_settings(request).rolling_window_days)
    await uow.commit()
    return FhirResponse(result, status_code=201)


# ----- Slot -----------------------------------------------------------------------------------
@router.get("/Slot", dependencies=[READ])
async def search_slots(request: Request) -> Response:
    async with reading(request) as (uow, principal):
        settings = _settings(request)
        search = _search(request, handlers.SLOT_SEARCH_PARAMETERS,
                         default_count=settings.slot_page_size, max_count=settings.max_slot_page_size)
        result = await handlers.search_slots(uow, principal, search,
                                             max_days=settings.max_search_days,
                                             window_days=settings.rolling_window_days)
        await uow.commit()
        return Response(searchset_json(base_url=_base(request), resource_type="Slot",
                                       params=list(search.raw), offset=search.offset,
                                       count=search.count, total=result.total, more=result.more,
                                       matches=result.slots, included=result.included),
                        media_type=FHIR_JSON)


@router.get("/Slot/{slot_id}", dependencies=[READ])
async def read_slot(request: Request, slot_id: str) -> Response:
    async with reading(request) as (uow, _):
        resource = await handlers.read_slot(uow, slot_id)
        await uow.commit()
        return fhir_response(resource)


@router.post("/Slot/{slot_id}/$hold", dependencies=[BOOK])
async def hold_slot(request: Request, slot_id: str, uow: UowDep,
                    principal: CurrentPrincipal) -> Response:
    result = await handlers.hold_slot(uow, principal, slot_id,
                                      hold_seconds=_settings(request).hold_seconds)
    await uow.commit()
    return FhirResponse(result)


@router.post("/Slot/{slot_id}/$block", dependencies=[MANAGE_ROTA])
async def block_slot(request: Request, slot_id: str, uow: UowDep) -> Response:
    comment = _comment(await _optional_parameters(request))
    resource = await handlers.change_slot_availability(uow, slot_id, block=True, comment=comment)
    await uow.commit()
    return fhir_response(resource)


@router.post("/Slot/{slot_id}/$unblock", dependencies=[MANAGE_ROTA])
async def unblock_slot(request: Request, slot_id: str, uow: UowDep) -> Response:
    resource = await handlers.change_slot_availability(uow, slot_id, block=False, comment=None)
    await uow.commit()
    return fhir_response(resource)


def _comment(parameters: dict) -> str | None:
    for parameter in parameters.get("parameter") or []:
        if isinstance(parameter, dict) and parameter.get("name") == "comment":
            value = parameter.get("valueString")
            if not isinstance(value, str) or len(value) > 500:
                raise FhirError(400, "comment must be a string of at most 500 characters",
                                expression="comment")
            return value
    return None


# ----- Appointment ----------------------------------------------------------------------------
@router.post("/Appointment", dependencies=[BOOK])
async def book_appointment(request: Request, uow: UowDep, principal: CurrentPrincipal,
                           idempotency_key: str | None = Header(default=None),
                           x_slot_hold: str | None = Header(default=None)) -> Response:
    if idempotency_key is not None and not 0 < len(idempotency_key) <= MAX_IDEMPOTENCY_KEY:
        raise FhirError(400, f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} characters",
                        expression="Idempotency-Key")
    hold_token = _hold_token(x_slot_hold)
    resource = await read_resource(request, "Appointment")
    outcome = await handlers.book_appointment(uow, principal, resource,
                                              idempotency_key=idempotency_key,
                                              hold_token=hold_token)
    await uow.commit()
    response = fhir_response(
        outcome.resource, status=outcome.status,
        location=f"{_base(request)}/Appointment/{outcome.resource['id']}/_history/1")
    if outcome.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return response


def _hold_token(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise FhirError(400, "X-Slot-Hold must be the hold token from $hold",
                        expression="X-Slot-Hold") from None


@router.get("/Appointment", dependencies=[READ])
async def search_appointments(request: Request) -> Response:
    async with reading(request) as (uow, principal):
        search = _search(request, handlers.APPOINTMENT_SEARCH_PARAMETERS)
        resources, total = await handlers.search_appointments(uow, principal, search)
        await uow.commit()
        return _bundle(request, "Appointment", search, resources, total)


@router.get("/Appointment/{appointment_id}", dependencies=[READ])
async def read_appointment(request: Request, appointment_id: str) -> Response:
    async with reading(request) as (uow, principal):
        resource = await handlers.read_appointment(uow, principal, appointment_id)
        await uow.commit()
        return fhir_response(resource)


@router.put("/Appointment/{appointment_id}", dependencies=[BOOK])
async def update_appointment(request: Request, appointment_id: str, uow: UowDep,
                             principal: CurrentPrincipal,
                             if_match: str | None = Header(default=None)) -> Response:
    expected = parse_if_match(if_match)
    if expected is None:
        raise FhirError(428, "Send If-Match with the version you are changing (W/\"n\")",
                        code="conflict", expression="If-Match")
    resource = await read_resource(request, "Appointment")
    stored = await handlers.update_appointment(uow, principal, appointment_id, resource,
                                               if_match=expected)
    await uow.commit()
    return fhir_response(stored)


@router.get("/Appointment/{appointment_id}/_history", dependencies=[READ])
async def appointment_history(request: Request, appointment_id: str) -> Response:
    async with reading(request) as (uow, principal):
        versions = await handlers.appointment_history(uow, principal, appointment_id)
        await uow.commit()
        return FhirResponse(history_bundle(versions, base_url=_base(request)))


@router.get("/Appointment/{appointment_id}/_history/{version_id}", dependencies=[READ])
async def read_appointment_version(request: Request, appointment_id: str, version_id: str) -> Response:
    async with reading(request) as (uow, principal):
        resource = await handlers.read_appointment_version(uow, principal, appointment_id,
                                                           version_id)
        await uow.commit()
        return fhir_response(resource)


@router.delete("/Appointment/{appointment_id}")
async def delete_appointment(appointment_id: str) -> Response:
    # Appointments are never deleted: cancel (status cancelled) keeps the history.
    raise FhirError(405, "Appointments are never deleted; cancel it instead",
                    code="not-supported")

