"""Prescribing's own domain errors as OperationOutcomes (the chassis answers the shared ones)."""

from __future__ import annotations

from fastapi import FastAPI, Request
from gpsoc_kit.fhir import FhirError, Issue
from starlette.responses import Response

from ...domain import errors
from ...domain.safety import Severity

_LEVEL = {Severity.HIGH: "error", Severity.MODERATE: "warning", Severity.LOW: "information"}
SAFETY_SYSTEM = "https://opengpsoc.org/fhir/CodeSystem/safety-check"


def install(app: FastAPI) -> None:
    @app.exception_handler(errors.SafetyCheckRefused)
    async def _refused(_: Request, exc: errors.SafetyCheckRefused) -> Response:
        # The summary first, then every finding (not only the blocking ones): the prescriber
        # decides on the whole picture.
        issues = [Issue(str(exc), code="business-rule")]
        issues += [Issue(f.message, severity=_LEVEL[f.severity], code="business-rule",
                         expression=f.expression, details_code=f.kind,
                         details_system=SAFETY_SYSTEM) for f in exc.findings]
        return FhirError(422, str(exc), issues=issues).response()

    @app.exception_handler(errors.KnowledgeBaseUnavailable)
    async def _no_knowledge(_: Request, exc: errors.KnowledgeBaseUnavailable) -> Response:
        # 503, not 422: the request is fine and no prescriber can override this; the
        # service cannot check safely until operations load a current knowledge base.
        return FhirError(503, str(exc), code="exception",
                         details_code="KNOWLEDGE_BASE_UNAVAILABLE",
                         ).response()
