"""The gateway's ASGI app: verify the token, look the route up in the permission matrix
(404 if the platform serves no such route, 403 and an audit record if the caller's roles
do not grant it), forward to the service that answers it, answer in FHIR."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from types import SimpleNamespace

from fastapi import FastAPI, Request
from gpsoc_kit import metrics
from gpsoc_kit.access import MATRIX
from gpsoc_kit.auth import Principal, bearer_token
from gpsoc_kit.fhir import FhirError, FhirResponse
from gpsoc_kit.http import (
    FASTAPI_TELEMETRY_OFF,
    RequestContextMiddleware,
    add_health_routes,
    install_error_handlers,
)
from gpsoc_kit.service import verifier_for
from gpsoc_kit.telemetry import practice_var
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from .access import DenialAudit, enforce, not_served, resolve
from .capability import CapabilityCache
from .config import GatewaySettings
from .everything import patient_everything
from .limits import SecurityHeadersMiddleware, TokenBuckets, retry_after_header
from .proxy import forward, new_client, new_proxy_session
from .routing import RouteTable, Upstream, configured_upstreams
from .tracecontext import TraceContextMiddleware

PROXIED_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]
log = logging.getLogger("gpsoc.gateway")


class DirectProxy:
    """The hot path: a request to be proxied reaches the proxy handler without FastAPI's
    router, dependency solving and exception middleware, which cost about a fifth of the
    gateway's CPU per request. The gateway's own routes (/metadata, $everything, health,
    metrics) still go through FastAPI; errors are answered as there (OperationOutcome)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        base: str,
        handle: Callable[[Request, str], Awaitable[Response]],
    ) -> None:
        self.app = app
        self._prefix = base.rstrip("/") + "/"
        self._own = {f"{self._prefix}metadata"}
        self._handle = handle
        # The route the latency histogram labels these requests with, as FastAPI's would.
        self._route = SimpleNamespace(path=f"{self._prefix}{{path:path}}")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if (
            scope["type"] != "http"
            or not path.startswith(self._prefix)
            or path in self._own
            or path.endswith("/$everything")
            or scope["method"] not in PROXIED_METHODS
        ):
            await self.app(scope, receive, send)
            return
        scope["route"] = self._route
        request = Request(scope, receive)
        try:
            response = await self._handle(request, path[len(self._prefix) :])
        except FhirError as error:
            response = error.response()
        except Exception as error:  # noqa: BLE001 - answered as FastAPI's handler would
            log.error("unhandled error", extra={"reason": type(error).__name__})
            response = FhirError(
                500, "An unexpected error occurred; it has been logged", code="exception"
            ).response()
        await response(scope, receive, send)



def create_app(settings: GatewaySettings | None = None) -> FastAPI:
    settings = settings or GatewaySettings()
    routes = RouteTable(configured_upstreams(settings))
    capabilities = CapabilityCache(routes.upstreams)
    denials = DenialAudit(
        settings.kafka_bootstrap_servers,
        timeout=settings.gateway_audit_publish_timeout_seconds,
        retry_after=settings.gateway_audit_retry_seconds,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.client = new_client(
            timeout=settings.upstream_timeout_seconds,
            connect_timeout=settings.upstream_connect_timeout_seconds,
        )
        app.state.proxy = new_proxy_session(
            timeout=settings.upstream_timeout_seconds,
            connect_timeout=settings.upstream_connect_timeout_seconds,
        )
        app.state.token_verifier = verifier_for(settings)
        try:
            yield
        finally:
            await app.state.client.aclose()
            await app.state.proxy.close()
            await denials.close()

    app = FastAPI(
        telemetry=FASTAPI_TELEMETRY_OFF,
        title="openGPSoC gateway",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.settings = settings
    install_error_handlers(app)
    # Innermost (added first): proxied requests go straight to `proxy` (defined below, hence
    # the lambda), past FastAPI's routing.
    app.add_middleware(DirectProxy, base=settings.fhir_base_path, handle=lambda r, p: proxy(r, p))
    app.add_middleware(TraceContextMiddleware)
    app.add_middleware(RequestContextMiddleware, service_name=settings.service_name)
    app.add_middleware(SecurityHeadersMiddleware)
    if settings.cors_allow_origins:
        from starlette.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_allow_origins),
            allow_methods=PROXIED_METHODS,
            allow_credentials=False,
            allow_headers=[
                "authorization",
                "content-type",
                "if-match",
                "idempotency-key",
                "prefer",
                "x-request-id",
            ],
            expose_headers=["etag", "location", "x-request-id", "retry-after"],
        )
    per_user = TokenBuckets(settings.rate_limit_user_per_second, settings.rate_limit_user_burst)
    per_practice = TokenBuckets(
        settings.rate_limit_practice_per_second, settings.rate_limit_practice_burst
    )

    def upstream_ready(upstream: Upstream):  # noqa: ANN202
        async def check() -> bool:
            response = await app.state.client.get(
                f"{upstream.base_url}/readyz", timeout=settings.readiness_timeout_seconds
            )
            return response.status_code == 200

        return check

    add_health_routes(app, {u.name: upstream_ready(u) for u in routes.upstreams})

    base = settings.fhir_base_path

    @app.get(f"{base}/metadata")
    async def metadata() -> Response:
        # Public, as FHIR expects: a client reads the CapabilityStatement before it has a token.
        return FhirResponse(
            await capabilities.statement(app.state.client, settings.public_base_url)
        )

    async def admit(request: Request) -> Principal:
        """Authenticate, then apply the rate limits and the _count ceiling."""
        principal = await app.state.token_verifier.verify(
            bearer_token(request.headers.get("authorization"))
        )
        practice_var.set(principal.practice)
        wait = max(
            per_user.take(f"{principal.practice}/{principal.user_id}"),
            per_practice.take(principal.practice),
        )
        if wait > 0:
            raise FhirError(
                429,
                "Too many requests; slow down and retry later",
                code="throttled",
                headers={"Retry-After": retry_after_header(wait)},
            )
        count = request.query_params.get("_count")
        if count is not None and count.isdigit() and int(count) > settings.max_count:
            raise FhirError(400, f"_count may be at most {settings.max_count}", expression="_count")
        return principal

    async def authorise(request: Request, principal: Principal, path: str, body: bytes = b""):  # noqa: ANN202
        """The request's rule in the permission matrix: 404 if none, 403 (audited) if not granted."""
        match = resolve(MATRIX, request.method, path, body)
        await enforce(denials, principal, match, request.query_params, request.url.query)
        return match

    @app.get(f"{base}/Patient/{{patient_id}}/$everything")
    async def everything(request: Request, patient_id: str) -> Response:
        principal = await admit(request)
        await authorise(request, principal, f"Patient/{patient_id}/$everything")
        bundle = await patient_everything(
            app.state.client,
            routes,
            patient_id=patient_id,
            authorization=request.headers["authorization"],
            base_url=settings.public_base_url,
            timeout=settings.everything_timeout_seconds,
        )
        return FhirResponse(bundle)

    by_practice = metrics.practice_requests(settings.service_name)

    def count(resource_type: str, status: int) -> None:
        # After admit() the practice is the token's; before it nothing is known to count by.
        if (practice := practice_var.get()) is not None:
            # Only types we route become label values: a path is caller-controlled.
            known = resource_type if routes.for_resource_type(resource_type) else "other"
            by_practice.labels(practice, known, f"{status // 100}xx").inc()

    # DirectProxy sends every proxied request here; as a route it only makes the other
    # methods (HEAD, OPTIONS without CORS...) answer 405 rather than 404.
    @app.api_route(f"{base}/{{path:path}}", methods=PROXIED_METHODS)
    async def proxy(request: Request, path: str) -> Response:
        resource_type = path.split("/", 1)[0]
        try:
            response = await forward_request(request, path, resource_type)
        except FhirError as error:
            count(resource_type, error.status)
            raise
        count(resource_type, response.status_code)
        return response

    async def forward_request(request: Request, path: str, resource_type: str) -> Response:
        principal = await admit(request)
        if MATRIX.route(request.method, path) is None:
            raise not_served()
        body = await request.body()
        if len(body) > settings.max_body_bytes:
            raise FhirError(
                413,
                f"The request body is larger than {settings.max_body_bytes} bytes",
                code="too-costly",
            )
        match = await authorise(request, principal, path, body)
        upstream = routes.for_service(match.rule.service)
        if upstream is None:
            raise not_served()
        url = f"{upstream.base_url}/{path}"
        if request.url.query:
            url += "?" + request.url.query
        status, headers, content = await forward(
            app.state.proxy,
            upstream_name=upstream.name,
            method=request.method,
            url=url,
            headers=dict(request.headers),
            body=body,
        )
        response = Response(content, status_code=status)
        response.raw_headers = [
            h for h in response.raw_headers if h[0] != b"content-type"
        ] + headers
        return response

    return app
