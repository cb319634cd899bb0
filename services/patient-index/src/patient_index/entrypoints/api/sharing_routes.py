"""HTTP routes of governed sharing: OrganizationAffiliation and Patient/$break-glass."""

from __future__ import annotations

from fastapi import APIRouter, Header, Request
from gpsoc_kit.auth import Permission
from gpsoc_kit.fhir import FhirResponse, parse_if_match
from gpsoc_kit.http import (
    CurrentPrincipal,
    fhir_response,
    read_resource,
    reading,
    require,
    searchset_response,
)
from gpsoc_kit.search import parse_search
from starlette.responses import Response

from ...service_layer import sharing
from .deps import UowDep

router = APIRouter()

READ = require(Permission.READ_SHARING)
MANAGE = require(Permission.MANAGE_SHARING)


@router.post("/OrganizationAffiliation", dependencies=[MANAGE])
async def record_agreement(request: Request, uow: UowDep, principal: CurrentPrincipal) -> Response:
    resource = await read_resource(request, "OrganizationAffiliation")
    stored = await sharing.record_agreement(uow, principal, resource)
    await uow.commit()
    base = request.app.state.settings.public_base_url
    return fhir_response(
        stored, status=201, location=f"{base}/OrganizationAffiliation/{stored['id']}/_history/1"
    )


@router.get("/OrganizationAffiliation", dependencies=[READ])
async def search_agreements(request: Request) -> Response:
    async with reading(request) as (uow, principal):
        settings = request.app.state.settings
        search = parse_search(
            request.query_params.multi_items(),
            allowed=sharing.AGREEMENT_SEARCH_PARAMETERS,
            default_count=settings.default_page_size,
            max_count=settings.max_page_size,
        )
        resources, total = await sharing.search_agreements(uow, principal, search)
        await uow.commit()
        return searchset_response(request, search, "OrganizationAffiliation", resources, total)


@router.get("/OrganizationAffiliation/{agreement_id}", dependencies=[READ])
async def read_agreement(request: Request, agreement_id: str) -> Response:
    async with reading(request) as (uow, principal):
        resource = await sharing.read_agreement_resource(uow, principal, agreement_id)
        await uow.commit()
        return fhir_response(resource)


@router.put("/OrganizationAffiliation/{agreement_id}", dependencies=[MANAGE])
async def amend_agreement(
    request: Request,
    agreement_id: str,
    uow: UowDep,
    principal: CurrentPrincipal,
    if_match: str | None = Header(default=None),
) -> Response:
    expected = parse_if_match(if_match)
    resource = await read_resource(request, "OrganizationAffiliation")
    stored = await sharing.amend_agreement(
        uow, principal, agreement_id, resource, if_match=expected
    )
    await uow.commit()
    return fhir_response(stored)


@router.post("/Patient/{patient_id}/$break-glass", dependencies=[require(Permission.BREAK_GLASS)])
async def break_glass(
    request: Request, patient_id: str, uow: UowDep, principal: CurrentPrincipal
) -> Response:
    parameters = await read_resource(request, "Parameters")
    answer = await sharing.break_glass(
        uow,
        principal,
        patient_id,
        parameters,
        minutes=request.app.state.settings.break_glass_minutes,
    )
    await uow.commit()
    return FhirResponse(answer, status_code=201)
