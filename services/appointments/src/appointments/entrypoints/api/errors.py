"""Domain errors as FHIR OperationOutcomes with the right HTTP status."""

from __future__ import annotations

from fastapi import FastAPI, Request
from gpsoc_kit.errors import InvalidTransition
from gpsoc_kit.fhir import FhirError, Issue
from starlette.responses import Response

from ...domain import errors


def install(app: FastAPI) -> None:
    @app.exception_handler(errors.UnprocessableSearch)
    async def _unprocessable_search(_: Request, exc: errors.UnprocessableSearch) -> Response:
        issues = [Issue(p.message, code="invalid", expression=p.expression,
                        details_code="INVALID_PARAMETER") for p in exc.problems]
        return FhirError(422, str(exc), issues=issues).response()

    @app.exception_handler(errors.SlotUnavailable)
    async def _slot_unavailable(_: Request, exc: errors.SlotUnavailable) -> Response:
        return FhirError(409, str(exc), code="duplicate", details_code="DUPLICATE_REJECTED",
                         expression="Appointment.slot").response()

    @app.exception_handler(errors.BookingNotPermitted)
    async def _not_permitted(_: Request, exc: errors.BookingNotPermitted) -> Response:
        return FhirError(403, str(exc), code="forbidden", details_code="ACCESS_DENIED").response()

    @app.exception_handler(errors.IdempotencyKeyReused)
    async def _key_reused(_: Request, exc: errors.IdempotencyKeyReused) -> Response:
        return FhirError(422, str(exc), code="business-rule", details_code="INVALID_REQUEST",
                         expression="Idempotency-Key").response()

    # GP Connect names the detail of a refused state change (the chassis' answer has none).
    @app.exception_handler(InvalidTransition)
    async def _transition(_: Request, exc: InvalidTransition) -> Response:
        return FhirError(422, str(exc), code="business-rule",
                         details_code="INVALID_RESOURCE").response()
