"""Domain errors as FHIR OperationOutcomes with the right HTTP status."""

from __future__ import annotations

from fastapi import FastAPI, Request
from gpsoc_kit.fhir import FhirError, not_found
from starlette.responses import Response

from ...domain import errors


def install(app: FastAPI) -> None:
    @app.exception_handler(errors.InvalidSearch)
    async def _invalid_search(_: Request, exc: errors.InvalidSearch) -> Response:
        return FhirError(400, str(exc), expression=exc.expression,
                         details_code="INVALID_PARAMETER").response()

    @app.exception_handler(errors.AccessDenied)
    async def _denied(_: Request, exc: errors.AccessDenied) -> Response:
        return FhirError(403, str(exc), code="forbidden", details_code="ACCESS_DENIED").response()

    @app.exception_handler(errors.NotFound)
    async def _not_found(_: Request, exc: errors.NotFound) -> Response:
        resource_type, _, resource_id = str(exc).partition("/")
        return not_found(resource_type, resource_id).response()
