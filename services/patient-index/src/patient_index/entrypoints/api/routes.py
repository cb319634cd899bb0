"""HTTP routes: translate FHIR requests to use cases, and results to FHIR responses."""

from __future__ import annotations

from fastapi import APIRouter, Header, Request
from gpsoc_kit.auth import Permission
from gpsoc_kit.fhir import FhirError, FhirResponse, history_bundle, parse_if_match
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

from ...service_layer import handlers
from .deps import UowDep

router = APIRouter()

READ = require(Permission.READ_DEMOGRAPHICS)
WRITE = require(Permission.WRITE_DEMOGRAPHICS)


def _base(request: Request) -> str:
    return request.app.state.settings.public_base_url


def _search(request: Request, allowed: tuple[str, ...]):
    settings = request.app.state.settings
    return parse_search(
        request.query_params.multi_items(),
        allowed=allowed,
        default_count=settings.default_page_size,
        max_count=settings.max_page_size,
    )


@router.post("/Patient", dependencies=[WRITE])
async def register_patient(request: Request, uow: UowDep, principal: CurrentPrincipal) -> Response:
    resource = await read_resource(request, "Patient")
    stored = await handlers.register_patient(uow, principal, resource)
    await uow.commit()
    return fhir_response(
        stored, status=201, location=f"{_base(request)}/Patient/{stored['id']}/_history/1"
    )


@router.get("/Patient", dependencies=[READ])
async def search_patients(request: Request) -> Response:
    async with reading(request) as (uow, principal):
        search = _search(request, handlers.PATIENT_SEARCH_PARAMETERS)
        resources, total = await handlers.search_patients(uow, principal, search)
        await uow.commit()
        return searchset_response(request, search, "Patient", resources, total)


@router.get("/Patient/{patient_id}", dependencies=[READ])
async def read_patient(request: Request, patient_id: str) -> Response:
    async with reading(request) as (uow, principal):
        resource = await handlers.read_patient(uow, principal, patient_id)
        await uow.commit()
        return fhir_response(resource)


@router.put("/Patient/{patient_id}", dependencies=[WRITE])
async def update_patient(
    request: Request,
    patient_id: str,
    uow: UowDep,
    principal: CurrentPrincipal,
    if_match: str | None = Header(default=None),
) -> Response:
    expected = parse_if_match(if_match)
    resource = await read_resource(request, "Patient")
    stored = await handlers.update_patient(uow, principal, patient_id, resource, if_match=expected)
    await uow.commit()
    return fhir_response(stored)


@router.get("/Patient/{patient_id}/_history", dependencies=[READ])
async def patient_history(request: Request, patient_id: str) -> Response:
    async with reading(request) as (uow, principal):
        versions = await handlers.patient_history(uow, principal, patient_id)
        await uow.commit()
        return FhirResponse(history_bundle(versions, base_url=_base(request)))


@router.get("/Patient/{patient_id}/_history/{version_id}", dependencies=[READ])
async def read_patient_version(request: Request, patient_id: str, version_id: str) -> Response:
    async with reading(request) as (uow, principal):
        resource = await handlers.read_patient_version(uow, principal, patient_id, version_id)
        await uow.commit()
        return fhir_response(resource)


@router.delete("/Patient/{patient_id}")
async def delete_patient(patient_id: str) -> Response:
    # A registration is never deleted: deregister (active=false) or record a death instead.
    raise FhirError(
        405,
        "Patients are never deleted; record a death or a deregistration instead",
        code="not-supported",
    )


@router.get("/Organization", dependencies=[READ])
async def search_organizations(request: Request) -> Response:
    async with reading(request) as (uow, principal):
        search = _search(request, ("identifier", "name"))
        resources, total = await handlers.search_organizations(uow, principal, search)
        await uow.commit()
        return searchset_response(request, search, "Organization", resources, total)


@router.get("/Organization/{org_id}", dependencies=[READ])
async def read_organization(request: Request, org_id: str) -> Response:
    async with reading(request) as (uow, principal):
        resource = await handlers.read_organization(uow, principal, org_id)
        await uow.commit()
        return fhir_response(resource)


@router.get("/Practitioner", dependencies=[READ])
async def search_practitioners(request: Request) -> Response:
    async with reading(request) as (uow, principal):
        search = _search(request, ("_id", "family", "name", "identifier"))
        resources, total = await handlers.search_practitioners(uow, principal, search)
        await uow.commit()
        return searchset_response(request, search, "Practitioner", resources, total)


@router.get("/Practitioner/{practitioner_id}", dependencies=[READ])
async def read_practitioner(request: Request, practitioner_id: str) -> Response:
    async with reading(request) as (uow, principal):
        resource = await handlers.read_practitioner(uow, principal, practitioner_id)
        await uow.commit()
        return fhir_response(resource)
