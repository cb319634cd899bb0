"""The patient index's own domain error as an OperationOutcome (the chassis answers the rest)."""

from __future__ import annotations

from fastapi import FastAPI, Request
from gpsoc_kit.fhir import FhirError
from starlette.responses import Response

from ...domain import errors


def install(app: FastAPI) -> None:
    @app.exception_handler(errors.DuplicateNhsNumber)
    async def _duplicate(_: Request, exc: errors.DuplicateNhsNumber) -> Response:
        return FhirError(
            409,
            "A patient with this NHS number is already registered",
            code="duplicate",
            details_code="DUPLICATE_REJECTED",
            expression="Patient.identifier",
        ).response()
