"""The audit store's own domain error as an OperationOutcome (the chassis answers the rest)."""

from __future__ import annotations

from fastapi import FastAPI, Request
from gpsoc_kit.fhir import FhirError
from starlette.responses import Response

from ...domain import errors


def install(app: FastAPI) -> None:
    @app.exception_handler(errors.AccessDenied)
    async def _denied(_: Request, exc: errors.AccessDenied) -> Response:
        return FhirError(403, str(exc), code="forbidden", details_code="ACCESS_DENIED").response()
