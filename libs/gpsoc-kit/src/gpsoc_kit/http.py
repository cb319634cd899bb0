"""FastAPI plumbing shared by services and the gateway: errors as OperationOutcome,
request ids, trace context, latency metrics, health and metrics endpoints."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Annotated, Any

import orjson
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from opentelemetry import context as otel_context
from opentelemetry import trace
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from . import audit, metrics
from .auth import Permission, Principal, TokenVerifier, bearer_token
from .fhir import FhirError, FhirResponse, Issue, searchset
from .search import SearchRequest
from .telemetry import (
    extract_context,
    practice_var,
    request_id_var,
    tracer,
    tracing_enabled,
    user_var,
)
from .uow import UnitOfWork

log = logging.getLogger("gpsoc.http")

ReadinessCheck = Callable[[], Awaitable[bool]]


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(FhirError)
    async def _fhir_error(_: Request, exc: FhirError) -> Response:
        return exc.response()

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> Response:
        issues = [
            Issue(
                str(err.get("msg", "invalid")),
                code="invalid",
                expression=".".join(str(p) for p in err.get("loc", ()) if p != "body") or None,
            )
            for err in exc.errors()
        ]
        return FhirError(400, "Invalid request", issues=issues).response()

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> Response:
        message = exc.detail if isinstance(exc.detail, str) else "Request failed"
        if exc.status_code == 404:
            message = "No such resource or route"
        elif exc.status_code == 405:
            message = "This interaction is not supported on this resource"
        return FhirError(exc.status_code, message).response()

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> Response:
        # The type only: messages can quote patient data (e.g. unique-violation details).
        log.error("unhandled error", extra={"reason": type(exc).__name__})
        return FhirError(
            500, "An unexpected error occurred; it has been logged", code="exception"
        ).response()


# The chassis traces and measures requests itself (RequestContextMiddleware, Prometheus).
# FastAPI's native telemetry would add spans of its own beside ours, and asks on every
# request whether OpenTelemetry providers are configured (environment lookups and all).
FASTAPI_TELEMETRY_OFF: dict[str, Any] = {"tracing": False, "metrics": False, "logs": False}


class RequestContextMiddleware:
    """Request id, trace context and latency histogram by route (pure ASGI: cheap)."""

    def __init__(self, app: ASGIApp, *, service_name: str) -> None:
        self.app = app
        self._histogram = metrics.http_request_duration(service_name)
        # One histogram child per (method, route, status), looked up once: labels() takes
        # a lock and builds a tuple on every call.
        self._observers: dict[tuple[str, str, int], Any] = {}
        self._tracer = tracer(service_name)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = None
        trace_headers: dict[str, str] = {}
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                request_id = value.decode("latin-1")
            elif name in _TRACE_HEADERS:
                trace_headers[name.decode("latin-1")] = value.decode("latin-1")
        request_id = request_id or str(uuid.uuid4())
        request_id_var.set(request_id)
        practice_var.set(None)
        user_var.set("")
        status = 500
        request_id_header = (b"x-request-id", request_id.encode("latin-1"))

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), request_id_header]
            await send(message)

        started = time.perf_counter()
        # The caller's trace context is kept even with tracing off: the OpenTelemetry API
        # carries its ids (a non-recording span) into audit records and events.
        token = None
        if tracing_enabled() or "traceparent" in trace_headers:
            token = otel_context.attach(extract_context(trace_headers))
        try:
            if tracing_enabled():
                with self._tracer.start_as_current_span(
                    f"{scope['method']} {scope['path']}", kind=trace.SpanKind.SERVER
                ):
                    await self.app(scope, receive, send_wrapper)
            else:
                await self.app(scope, receive, send_wrapper)
        finally:
            if token is not None:
                otel_context.detach(token)
            route = scope.get("route")
            key = (scope["method"], getattr(route, "path", None) or "unmatched", status)
            observer = self._observers.get(key)
            if observer is None:
                observer = self._observers[key] = self._histogram.labels(
                    key[0], key[1], str(status)
                )
            observer.observe(time.perf_counter() - started)


_TRACE_HEADERS = (b"traceparent", b"tracestate")


def add_health_routes(app: FastAPI, checks: dict[str, ReadinessCheck]) -> None:
    """/healthz: the process is alive. /readyz: every dependency answers. /metrics: Prometheus."""

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> JSONResponse:
        return JSONResponse({"status": "ok"})

    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> JSONResponse:
        results: dict[str, str] = {}
        for name, check in checks.items():
            try:
                ok = await check()
            except Exception:  # noqa: BLE001 - a failing check is an unready dependency
                ok = False
            results[name] = "ok" if ok else "unavailable"
        ready = all(v == "ok" for v in results.values())
        return JSONResponse(
            {"status": "ready" if ready else "not-ready", "checks": results},
            status_code=200 if ready else 503,
        )

    @app.get("/metrics", include_in_schema=False)
    async def prometheus_metrics() -> Response:
        body, content_type = metrics.render()
        return Response(body, media_type=content_type)


_PRINCIPAL = "gpsoc.principal"  # the request scope's key for the verified caller


async def current_principal(request: Request) -> Principal:
    """The caller, from the bearer token (401 if there is none or it is bad); once a request."""
    known: Principal | None = request.scope.get(_PRINCIPAL)
    if known is not None:
        return known
    verifier: TokenVerifier = request.app.state.token_verifier
    principal = await verifier.verify(bearer_token(request.headers.get("authorization")))
    practice_var.set(principal.practice)
    user_var.set(principal.user_id)
    request.scope[_PRINCIPAL] = principal
    return principal


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


def require(permission: Permission) -> Any:
    """A dependency that answers 403 unless the caller's roles grant `permission`.

    A denial is audited too: who tried what on which patient is exactly what a
    privacy officer asks about.
    """

    async def _dependency(request: Request) -> Principal:
        # The principal is fetched here rather than declared as a sub-dependency: each
        # dependency FastAPI solves costs every request of the route.
        principal = await current_principal(request)
        if not principal.can(permission):
            await _audit_failure(request, principal, f"denied: needs {permission.value}")
            principal.require(permission)
        return principal

    return Depends(_dependency)


_INTERACTIONS = {
    "GET": "read",
    "POST": "create",
    "PUT": "update",
    "PATCH": "patch",
    "DELETE": "delete",
}


async def _audit_failure(
    request: Request, principal: Principal, description: str, outcome: str = "4"
) -> None:
    """Record a refused or failed access in a transaction of its own."""
    factory = getattr(request.app.state, "uow_factory", None)
    if factory is None:
        return
    path = request.url.path.strip("/").split("/")
    resource_type = path[0] if path and path[0] else "unknown"
    patient_id = request.path_params.get("patient_id") or request.query_params.get("patient")
    # The resource the caller tried (Type/{id}/...): a failed read names what it tried to read.
    resource_ids = [path[1]] if len(path) > 1 and not path[1].startswith("$") else []
    interaction = _INTERACTIONS.get(request.method, "operation")
    if request.method == "GET" and len(path) == 1:
        interaction = "search"
    async with factory(principal.practice) as uow:
        audit.record(
            uow,
            principal=principal,
            interaction=interaction,
            resource_type=resource_type,
            resource_ids=resource_ids,
            patient_ids=[patient_id.removeprefix("Patient/")] if patient_id else [],
            outcome=outcome,
            outcome_desc=description,
            source=f"urn:opengpsoc:{request.app.state.settings.service_name}",
        )
        await uow.commit()


@asynccontextmanager
async def request_unit_of_work(
    request: Request, *, read_only: bool = False
) -> AsyncIterator[tuple[UnitOfWork, Principal]]:
    """The request's unit of work, in the caller's practice, and the caller.

    If the use case fails (not found, invalid, conflict...), its transaction rolls
    back and the failed access is audited on its own, so failures leave a trace too.
    A read's unit of work (`read_only`): PostgreSQL refuses any write in it, and its audit
    record is group-committed (gpsoc_kit.uow.OutboxGroupWriter).
    """
    principal = await current_principal(request)
    async with request.app.state.uow_factory(principal.practice, read_only=read_only) as uow:
        try:
            yield uow, principal
        except Exception as exc:
            await uow.rollback()
            failure = exc
        else:
            return
    await _audit_failure(
        request, principal, f"failed: {type(failure).__name__}", _outcome_of(request, failure)
    )
    raise failure


def reading(request: Request) -> AbstractAsyncContextManager[tuple[UnitOfWork, Principal]]:
    """A read's unit of work and the caller, for a route whose use case only reads.

    Opened in the route's body (`async with reading(request) as (uow, principal)`), not
    as a FastAPI dependency: a generator dependency costs FastAPI an exit stack and about
    30 µs a request (measured in-process), and reads are the hot paths. The route still
    declares its permission with `dependencies=[require(...)]`.
    """
    return request_unit_of_work(request, read_only=True)


async def unit_of_work(request: Request, principal: CurrentPrincipal) -> AsyncIterator[UnitOfWork]:
    """The request's unit of work as a FastAPI dependency (writes)."""
    async with request_unit_of_work(request) as (uow, _):
        yield uow


def _outcome_of(request: Request, failure: Exception) -> str:
    """AuditEvent outcome: 4 (minor) for a refusal the API answers 4xx, 8 (serious) otherwise."""
    if isinstance(failure, FhirError):
        return "4" if failure.status < 500 else "8"
    # Domain errors the service maps to an OperationOutcome are the caller's to fix.
    handled = request.app.exception_handlers
    if any(cls in handled for cls in type(failure).__mro__ if cls is not Exception):
        return "4"
    return "8"


UowDep = Annotated[UnitOfWork, Depends(unit_of_work)]


def fhir_response(
    resource: dict[str, Any], *, status: int = 200, location: str | None = None
) -> FhirResponse:
    headers = {}
    meta = resource.get("meta") or {}
    if "versionId" in meta:
        headers["ETag"] = f'W/"{meta["versionId"]}"'
        headers["Last-Modified"] = meta.get("lastUpdated", "")
    if location:
        headers["Location"] = location
    return FhirResponse(resource, status_code=status, headers=headers)


async def read_resource(
    request: Request, resource_type: str, *, max_bytes: int = 1_000_000
) -> dict[str, Any]:
    """The FHIR resource in a request body, or a 400/413/415 OperationOutcome."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip()
    if content_type not in ("application/fhir+json", "application/json"):
        raise FhirError(
            415, "Send FHIR JSON (Content-Type: application/fhir+json)", code="not-supported"
        )
    body = await request.body()
    if len(body) > max_bytes:
        raise FhirError(
            413, f"The request body is larger than {max_bytes} bytes", code="too-costly"
        )
    try:
        resource = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise FhirError(400, "The request body is not valid JSON", code="structure") from None
    if not isinstance(resource, dict) or resource.get("resourceType") != resource_type:
        raise FhirError(
            400,
            f"The request body must be a {resource_type} resource",
            code="structure",
            expression=f"{resource_type}.resourceType",
        )
    return resource


def searchset_response(
    request: Request,
    search: SearchRequest,
    resource_type: str,
    resources: list[dict[str, Any]],
    total: int,
    included: list[dict[str, Any]] | None = None,
) -> FhirResponse:
    """A search's answer: a searchset Bundle with paging links on the public base URL."""
    return FhirResponse(
        searchset(
            resources,
            total=total,
            base_url=request.app.state.settings.public_base_url,
            resource_type=resource_type,
            params=list(search.raw),
            offset=search.offset,
            count=search.count,
            included=included or (),
        )
    )
