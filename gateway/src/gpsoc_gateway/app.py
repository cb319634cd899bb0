"""The gateway's ASGI app: verify the token, route by resource type, forward, answer in FHIR."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI, Request
from starlette.responses import Response

from gpsoc_kit.auth import TokenVerifier, bearer_token
from gpsoc_kit.fhir import FhirError, FhirResponse
from gpsoc_kit.http import RequestContextMiddleware, add_health_routes, install_error_handlers
from gpsoc_kit.telemetry import practice_var

from .capability import CapabilityCache
from .config import GatewaySettings
from .proxy import forward, new_client
from .routing import RouteTable, Upstream, configured_upstreams

PROXIED_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]


def create_app(settings: GatewaySettings | None = None) -> FastAPI:
    settings = settings or GatewaySettings()
    routes = RouteTable(configured_upstreams(settings))
    capabilities = CapabilityCache(routes.upstreams)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.client = new_client(timeout=settings.upstream_timeout_seconds,
                                       connect_timeout=settings.upstream_connect_timeout_seconds)
        app.state.token_verifier = TokenVerifier(
            issuer=settings.jwt_issuer, audience=settings.jwt_audience,
            jwks_file=settings.jwt_jwks_file, jwks_url=settings.jwt_jwks_url,
            algorithms=settings.jwt_algorithms, leeway_seconds=settings.jwt_leeway_seconds,
        )
        try:
            yield
        finally:
            await app.state.client.aclose()

    app = FastAPI(title="openGPSoC gateway", lifespan=lifespan, docs_url=None, redoc_url=None,
                  openapi_url=None)
    app.state.settings = settings
    install_error_handlers(app)
    app.add_middleware(RequestContextMiddleware, service_name=settings.service_name)

    def upstream_ready(upstream: Upstream):  # noqa: ANN202
        async def check() -> bool:
            response = await app.state.client.get(f"{upstream.base_url}/readyz",
                                                  timeout=settings.readiness_timeout_seconds)
            return response.status_code == 200

        return check

    add_health_routes(app, {u.name: upstream_ready(u) for u in routes.upstreams})

    base = settings.fhir_base_path

    @app.get(f"{base}/metadata")
    async def metadata() -> Response:
        # Public, as FHIR expects: a client reads the CapabilityStatement before it has a token.
        return FhirResponse(await capabilities.statement(app.state.client, settings.public_base_url))

    @app.api_route(f"{base}/{{path:path}}", methods=PROXIED_METHODS)
    async def proxy(request: Request, path: str) -> Response:
        principal = await app.state.token_verifier.verify(
            bearer_token(request.headers.get("authorization")))
        practice_var.set(principal.practice)
        resource_type = path.split("/", 1)[0]
        upstream = routes.for_resource_type(resource_type)
        if upstream is None:
            raise FhirError(404, f"Resource type '{resource_type}' is not served here",
                            code="not-supported")
        body = await request.body()
        if len(body) > settings.max_body_bytes:
            raise FhirError(413, f"The request body is larger than {settings.max_body_bytes} bytes",
                            code="too-costly")
        url = f"{upstream.base_url}/{path}"
        if request.url.query:
            url += "?" + request.url.query
        status, headers, content = await forward(
            app.state.client, upstream_name=upstream.name, method=request.method, url=url,
            headers=dict(request.headers), body=body)
        response = Response(content, status_code=status)
        response.raw_headers = [h for h in response.raw_headers if h[0] != b"content-type"] + headers
        return response

    return app


