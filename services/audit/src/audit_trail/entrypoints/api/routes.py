"""HTTP routes: translate FHIR requests to use cases, and results to FHIR responses."""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import APIRouter, Request
from gpsoc_kit.auth import Principal
from gpsoc_kit.fhir import FhirResponse, searchset
from gpsoc_kit.http import fhir_response, reading
from gpsoc_kit.search import parse_search
from gpsoc_kit.uow import UnitOfWork
from starlette.responses import Response

from ...service_layer import handlers

router = APIRouter()


async def _authorise(uow: UnitOfWork, principal: Principal, interaction: str, *,
                     resource_ids: Sequence[str] = (), query: str | None = None) -> None:
    # A refusal is audited by the chassis' unit of work, like any failed request.
    handlers.authorise_reader(uow, principal, interaction, resource_ids=resource_ids,
                              query=query)


@router.get("/AuditEvent")
async def search_audit_events(request: Request) -> Response:
    async with reading(request) as (uow, principal):
        await _authorise(uow, principal, "search", query=request.url.query)
        settings = request.app.state.settings
        search = parse_search(request.query_params.multi_items(),
                              allowed=handlers.AUDIT_SEARCH_PARAMETERS,
                              default_count=settings.default_page_size,
                              max_count=settings.max_page_size)
        resources, total = await handlers.search_audit_events(uow, principal, search)
        await uow.commit()
        return FhirResponse(searchset(resources, total=total, base_url=settings.public_base_url,
                                      resource_type="AuditEvent", params=list(search.raw),
                                      offset=search.offset, count=search.count))


@router.get("/AuditEvent/{record_id}")
async def read_audit_event(request: Request, record_id: str) -> Response:
    async with reading(request) as (uow, principal):
        await _authorise(uow, principal, "read", resource_ids=[record_id])
        resource = await handlers.read_audit_event(uow, principal, record_id)
        await uow.commit()
        return fhir_response(resource)
