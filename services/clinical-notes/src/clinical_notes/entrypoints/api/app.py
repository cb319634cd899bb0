"""The clinical record's ASGI app: create_app() wires the chassis to this service's routes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from gpsoc_kit.auth import TokenVerifier
from gpsoc_kit.capability import capability_statement
from gpsoc_kit.db import create_engine
from gpsoc_kit.fhir import FhirResponse
from gpsoc_kit.http import RequestContextMiddleware, add_health_routes, install_error_handlers
from gpsoc_kit.messaging import notify_channel
from gpsoc_kit.runtime import database_ready, kafka_ready_check
from gpsoc_kit.telemetry import instrument_sqlalchemy
from gpsoc_kit.uow import UnitOfWork
from starlette.responses import Response

from ...adapters.tables import outbox
from ...config import Settings
from ...service_layer.handlers import SOURCE
from . import errors
from .capabilities import RESOURCES
from .routes import router


def unit_of_work_factory(engine, settings: Settings):  # noqa: ANN001, ANN201
    channel = notify_channel(settings.service_name)

    def factory(practice: str) -> UnitOfWork:
        return UnitOfWork(
            engine, practice=practice, outbox=outbox, source=SOURCE, notify_channel=channel
        )

    return factory


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(
            settings.database_url,
            pool_size=settings.db_pool_size,
            max_overflow=settings.db_max_overflow,
        )
        instrument_sqlalchemy(engine)
        app.state.engine = engine
        app.state.uow_factory = unit_of_work_factory(engine, settings)
        app.state.token_verifier = TokenVerifier(
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
            jwks_file=settings.jwt_jwks_file,
            jwks_url=settings.jwt_jwks_url,
            algorithms=settings.jwt_algorithms,
            leeway_seconds=settings.jwt_leeway_seconds,
        )
        try:
            yield
        finally:
            await engine.dispose()

    app = FastAPI(
        title="openGPSoC clinical record",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    app.state.settings = settings
    install_error_handlers(app)
    errors.install(app)
    app.add_middleware(RequestContextMiddleware, service_name=settings.service_name)

    async def db_check() -> bool:
        return await database_ready(app.state.engine)

    add_health_routes(
        app, {"database": db_check, "kafka": kafka_ready_check(settings.kafka_bootstrap_servers)}
    )

    statement = capability_statement(
        "OpenGPSoCClinicalNotes", "openGPSoC clinical record", RESOURCES
    )

    @app.get("/metadata", include_in_schema=False)
    async def metadata() -> Response:
        return FhirResponse(statement)

    app.include_router(router)
    return app
