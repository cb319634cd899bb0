"""Domain errors as FHIR OperationOutcomes with the right HTTP status."""

from __future__ import annotations

from fastapi import FastAPI, Request
from gpsoc_kit.fhir import FhirError, Issue, not_found
from starlette.responses import Response

from ...domain import errors


def install(app: FastAPI) -> None:
    @app.exception_handler(errors.InvalidResource)
    async def _invalid(_: Request, exc: errors.InvalidResource) -> Response:
        issues = [Issue(p.message, code="invalid", expression=p.expression) for p in exc.problems]
        return FhirError(422, str(exc), issues=issues).response()

    @app.exception_handler(errors.InvalidSearch)
    async def _invalid_search(_: Request, exc: errors.InvalidSearch) -> Response:
        issues = [
            Issue(
                p.message, code="invalid", expression=p.expression, details_code="INVALID_PARAMETER"
            )
            for p in exc.problems
        ]
        return FhirError(400, str(exc), issues=issues).response()

    @app.exception_handler(errors.VersionConflict)
    async def _conflict(_: Request, exc: errors.VersionConflict) -> Response:
        return FhirError(
            412,
            str(exc),
            code="conflict",
            details_code="PRECONDITION_FAILED",
            expression="If-Match",
        ).response()

    @app.exception_handler(errors.InvalidTransition)
    async def _transition(_: Request, exc: errors.InvalidTransition) -> Response:
        return FhirError(422, str(exc), code="business-rule").response()

    @app.exception_handler(errors.NotFound)
    async def _not_found(_: Request, exc: errors.NotFound) -> Response:
        resource_type, _, resource_id = str(exc).partition("/")
        return not_found(resource_type, resource_id).response()
