"""HTTP routes: translate FHIR requests to use cases, and results to FHIR responses.

Every clinical resource type has the same interactions, so the routes are made
once per type from one set of functions. Operations come first: `$...` must not
be taken for a resource id.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import APIRouter, Header, Request
from gpsoc_kit.auth import Permission
from gpsoc_kit.errors import InvalidSearch, Problem
from gpsoc_kit.fhir import FhirError, FhirResponse, history_bundle, parse_if_match, searchset
from gpsoc_kit.http import CurrentPrincipal, fhir_response, read_resource, reading, require
from gpsoc_kit.search import parse_reference, parse_search
from starlette.responses import Response

from ...domain.entries import RESOURCE_TYPES
from ...service_layer import handlers, terminology
from ...service_layer.search import SEARCH_PARAMETERS, search_entries
from .deps import UowDep

router = APIRouter()

READ = require(Permission.READ_CLINICAL)
WRITE = require(Permission.WRITE_CLINICAL)
SUMMARY_PATH = "/Encounter/$patient-summary"


def _base(request: Request) -> str:
    return request.app.state.settings.public_base_url


def _search(request: Request, allowed: tuple[str, ...]):  # noqa: ANN202
    settings = request.app.state.settings
    return parse_search(
        request.query_params.multi_items(),
        allowed=allowed,
        default_count=settings.default_page_size,
        max_count=settings.max_page_size,
    )


@router.get(SUMMARY_PATH, dependencies=[READ])
async def patient_summary(request: Request) -> Response:
    """One patient's active problems, allergies, latest observation per code, recent
    consultations and recently issued medication, as a collection Bundle."""
    async with reading(request) as (uow, principal):
        search = _search(request, ("patient",))
        patient = search.first("patient")
        if patient is None:
            raise InvalidSearch([Problem("patient is required (patient=<id>)", "patient")])
        settings = request.app.state.settings
        parts = await handlers.patient_summary(
            uow,
            principal,
            parse_reference(patient, "Patient"),
            consultations=settings.summary_consultations,
            medications=settings.summary_medications,
        )
        await uow.commit()
        base = _base(request)
        resources = [
            r
            for part in ("problems", "allergies", "observations", "consultations", "medications")
            for r in parts[part]
        ]
        return FhirResponse(
            {
                "resourceType": "Bundle",
                "type": "collection",
                "timestamp": dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z"),
                "entry": [
                    {"fullUrl": f"{base}/{r['resourceType']}/{r['id']}", "resource": r}
                    for r in resources
                ],
            }
        )


@router.get("/CodeSystem/$lookup", dependencies=[READ])
async def lookup(request: Request) -> Response:
    async with reading(request) as (uow, _):
        search = _search(request, ("system", "code"))
        return FhirResponse(
            await terminology.lookup(uow.conn, search.first("system"), search.first("code"))
        )


@router.get("/ValueSet/$expand", dependencies=[READ])
async def expand(request: Request) -> Response:
    async with reading(request) as (uow, _):
        search = _search(request, ("url", "filter"))
        url = search.first("url")
        if url is not None and not url.startswith("http://snomed.info/sct"):
            raise InvalidSearch(
                [Problem("Only SNOMED CT (url=http://snomed.info/sct?fhir_vs) is expanded here", "url")]
            )
        return FhirResponse(
            await terminology.expand(uow.conn, search.first("filter"), count=search.count)
        )


def _reason(parameters: dict[str, Any]) -> str:
    for parameter in parameters.get("parameter") or []:
        if isinstance(parameter, dict) and parameter.get("name") == "reason":
            return str(parameter.get("valueString") or "")
    return ""


def _add_routes(resource_type: str) -> None:
    allowed = SEARCH_PARAMETERS[resource_type]

    async def record(request: Request, uow: UowDep, principal: CurrentPrincipal) -> Response:
        resource = await read_resource(request, resource_type)
        stored = await handlers.record_entry(uow, principal, resource)
        await uow.commit()
        return fhir_response(
            stored,
            status=201,
            location=f"{_base(request)}/{resource_type}/{stored['id']}/_history/1",
        )

    async def search(request: Request, uow: UowDep, principal: CurrentPrincipal) -> Response:
        parsed = _search(request, allowed)
        resources, total = await search_entries(uow, principal, resource_type, parsed)
        await uow.commit()
        return FhirResponse(
            searchset(
                resources,
                total=total,
                base_url=_base(request),
                resource_type=resource_type,
                params=list(parsed.raw),
                offset=parsed.offset,
                count=parsed.count,
            )
        )

    async def read(entry_id: str, uow: UowDep, principal: CurrentPrincipal) -> Response:
        resource = await handlers.read(uow, principal, resource_type, entry_id)
        await uow.commit()
        return fhir_response(resource)

    async def update(
        request: Request,
        entry_id: str,
        uow: UowDep,
        principal: CurrentPrincipal,
        if_match: str | None = Header(default=None),
    ) -> Response:
        expected = parse_if_match(if_match)
        resource = await read_resource(request, resource_type)
        stored = await handlers.update_entry(
            uow, principal, resource_type, entry_id, resource, if_match=expected
        )
        await uow.commit()
        return fhir_response(stored)

    async def entered_in_error(
        request: Request,
        entry_id: str,
        uow: UowDep,
        principal: CurrentPrincipal,
        if_match: str | None = Header(default=None),
    ) -> Response:
        expected = parse_if_match(if_match)
        parameters = await read_resource(request, "Parameters")
        stored = await handlers.mark_entered_in_error(
            uow, principal, resource_type, entry_id, _reason(parameters), if_match=expected
        )
        await uow.commit()
        return fhir_response(stored)

    async def history(
        request: Request, entry_id: str, uow: UowDep, principal: CurrentPrincipal
    ) -> Response:
        versions = await handlers.history(uow, principal, resource_type, entry_id)
        await uow.commit()
        return FhirResponse(history_bundle(versions, base_url=_base(request)))

    async def version(
        entry_id: str, version_id: str, uow: UowDep, principal: CurrentPrincipal
    ) -> Response:
        resource = await handlers.read_version(uow, principal, resource_type, entry_id, version_id)
        await uow.commit()
        return fhir_response(resource)

    async def delete(entry_id: str) -> Response:
        # The record never loses a word: a wrong entry is marked, never removed.
        raise FhirError(
            405,
            f"{resource_type} entries are never deleted; mark a wrong entry with "
            f"POST {resource_type}/{{id}}/$entered-in-error and a reason",
            code="not-supported",
        )

    base = f"/{resource_type}"
    router.add_api_route(
        f"{base}/{{entry_id}}/$entered-in-error",
        entered_in_error,
        methods=["POST"],
        dependencies=[WRITE],
    )
    router.add_api_route(base, record, methods=["POST"], dependencies=[WRITE])
    router.add_api_route(base, search, methods=["GET"], dependencies=[READ])
    router.add_api_route(f"{base}/{{entry_id}}", read, methods=["GET"], dependencies=[READ])
    router.add_api_route(f"{base}/{{entry_id}}", update, methods=["PUT"], dependencies=[WRITE])
    router.add_api_route(f"{base}/{{entry_id}}", delete, methods=["DELETE"])
    router.add_api_route(
        f"{base}/{{entry_id}}/_history", history, methods=["GET"], dependencies=[READ]
    )
    router.add_api_route(
        f"{base}/{{entry_id}}/_history/{{version_id}}",
        version,
        methods=["GET"],
        dependencies=[READ],
    )


for _resource_type in RESOURCE_TYPES:
    _add_routes(_resource_type)
