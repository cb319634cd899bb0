"""One service's process, assembled from the chassis: the ASGI app and the workers.

A service declares what is its own (title, routes, domain-error mapping, outbox and
inbox tables, capabilities, consumer handlers); everything else - the engine with its
tenant-scoped units of work, token verification, error handling, request context,
health, metrics, /metadata, the relay and the consumer runner - is built here the same
way for every service.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
from fastapi import APIRouter, FastAPI, Request
from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.responses import Response
from starlette.routing import BaseRoute

from . import errors
from .auth import TokenVerifier
from .capability import ResourceCapability, capability_statement
from .consumer import ConsumerConfig, ConsumerRunner, Handler
from .db import create_engine, plain_url
from .events import SchemaRegistry
from .fhir import FhirError, FhirResponse, Issue, not_found
from .http import (
    FASTAPI_TELEMETRY_OFF,
    RequestContextMiddleware,
    add_health_routes,
    install_error_handlers,
)
from .messaging import notify_channel
from .relay import OutboxRelay, RelayConfig
from .runtime import Runnable, Together, database_ready, kafka_ready_check, run_worker
from .settings import ServiceSettings
from .telemetry import instrument_sqlalchemy
from .uow import OutboxGroupWriter, UnitOfWork, UnitOfWorkFactory


def unit_of_work_factory(
    engine: AsyncEngine,
    *,
    service_name: str,
    outbox: Table,
    source: str,
    group_writer: OutboxGroupWriter | None = None,
) -> UnitOfWorkFactory:
    """`factory(practice)` -> a unit of work writing events to this service's outbox.

    With a group writer, `factory(practice, read_only=True)` gives a read's unit of work.
    """
    channel = notify_channel(service_name)

    def factory(practice: str, *, read_only: bool = False) -> UnitOfWork:
        return UnitOfWork(
            engine,
            practice=practice,
            outbox=outbox,
            source=source,
            notify_channel=channel,
            read_only=read_only,
            group_writer=group_writer,
        )

    return factory


def outbox_group_writer(
    database_url: str, *, service_name: str, outbox: Table
) -> OutboxGroupWriter:
    """The writer of reads' outbox rows, on a connection of its own (as the relay listens)."""
    return OutboxGroupWriter(
        lambda: asyncpg.connect(plain_url(database_url)),
        outbox=outbox,
        notify_channel=notify_channel(service_name),
    )


def verifier_for(settings: ServiceSettings) -> TokenVerifier:
    return TokenVerifier(
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        jwks_file=settings.jwt_jwks_file,
        jwks_url=settings.jwt_jwks_url,
        algorithms=settings.jwt_algorithms,
        leeway_seconds=settings.jwt_leeway_seconds,
    )


@dataclass(frozen=True)
class ServiceApp:
    """What a service contributes to its API process."""

    title: str  # e.g. "openGPSoC patient index"
    statement_name: str  # CapabilityStatement.name, e.g. "OpenGPSoCPatientIndex"
    source: str  # CloudEvents source of what it emits, e.g. "urn:opengpsoc:patient-index"
    outbox: Table
    resources: Sequence[ResourceCapability]
    router: APIRouter
    install_errors: Callable[[FastAPI], None] = field(default=lambda app: None)


def install_domain_error_handlers(app: FastAPI) -> None:
    """The chassis' domain errors (gpsoc_kit.errors) as OperationOutcomes, for every service.
    Handlers match by class, so a service's own subclasses are answered the same way."""

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


def create_service_app(spec: ServiceApp, settings: ServiceSettings) -> FastAPI:
    """The service's FastAPI app; nothing connects until its lifespan starts."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(
            settings.database_url,
            pool_size=settings.db_pool_size,
            max_overflow=settings.db_max_overflow,
        )
        instrument_sqlalchemy(engine)
        app.state.engine = engine
        group_writer = outbox_group_writer(
            settings.database_url, service_name=settings.service_name, outbox=spec.outbox
        )
        app.state.uow_factory = unit_of_work_factory(
            engine,
            service_name=settings.service_name,
            outbox=spec.outbox,
            source=spec.source,
            group_writer=group_writer,
        )
        app.state.token_verifier = verifier_for(settings)
        try:
            yield
        finally:
            await group_writer.close()
            await engine.dispose()

    app = FastAPI(
        telemetry=FASTAPI_TELEMETRY_OFF,
        title=spec.title,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    app.state.settings = settings
    install_error_handlers(app)
    install_domain_error_handlers(app)
    spec.install_errors(app)
    app.add_middleware(RequestContextMiddleware, service_name=settings.service_name)

    async def db_check() -> bool:
        return await database_ready(app.state.engine)

    add_health_routes(
        app, {"database": db_check, "kafka": kafka_ready_check(settings.kafka_bootstrap_servers)}
    )
    statement = capability_statement(spec.statement_name, spec.title, list(spec.resources))

    @app.get("/metadata", include_in_schema=False)
    async def metadata() -> Response:
        return FhirResponse(statement)

    app.router.routes.extend(flattened_routes(spec.router))
    return app


def flattened_routes(router: APIRouter) -> list[BaseRoute]:
    """The routes of `router` and of every router it includes, in matching order.

    FastAPI's include_router keeps an included router as a wrapper that matching walks
    into, with its own dispatch, on every request: two levels cost a service about 20 µs a
    request (measured in-process). The services' routers carry no prefix or
    dependencies of their own, so their routes can sit in the app's router directly (an
    include with a prefix or dependencies stays as FastAPI made it).
    """
    routes: list[BaseRoute] = []
    for route in router.routes:
        included = getattr(route, "original_router", None)
        context = getattr(route, "include_context", None)
        plain = context is not None and not context.prefix and not context.dependencies
        if isinstance(included, APIRouter) and plain:
            routes += flattened_routes(included)
        else:  # anything else is mounted as FastAPI made it
            routes.append(route)
    return routes


def run_relay(
    settings: ServiceSettings,
    outbox: Table,
    *,
    also: Sequence[Callable[[AsyncEngine], Runnable]] = (),
    pool_size: int = 3,
) -> None:
    """The relay process: the outbox to Kafka, plus any workers that share the process."""

    async def build() -> tuple[Runnable, Callable[[], Awaitable[None]]]:
        engine = create_engine(settings.database_url, pool_size=pool_size, max_overflow=2)
        relay = OutboxRelay(
            RelayConfig(
                settings.service_name, settings.database_url, settings.kafka_bootstrap_servers
            ),
            engine,
            outbox,
        )
        workers = [relay, *(make(engine) for make in also)]
        return (Together(*workers) if len(workers) > 1 else relay), engine.dispose

    run_worker(settings, build)


def run_consumer(
    settings: ServiceSettings,
    *,
    group: str,
    topics: Sequence[str],
    inbox: Table,
    handlers: Mapping[str, Handler],
    unit_of_work: Callable[[AsyncEngine], UnitOfWorkFactory],
    schema_dirs: Sequence[Path] = (),
) -> None:
    """The consumer process: `handlers` applied once each, in the event's practice."""

    async def build() -> tuple[Runnable, Callable[[], Awaitable[None]]]:
        engine = create_engine(settings.database_url, pool_size=4, max_overflow=2)
        runner = ConsumerRunner(
            ConsumerConfig(
                settings.service_name, group, tuple(topics), settings.kafka_bootstrap_servers
            ),
            unit_of_work=unit_of_work(engine),
            inbox=inbox,
            handlers=dict(handlers),
            schemas=SchemaRegistry(*schema_dirs) if schema_dirs else None,
        )
        return runner, engine.dispose

    run_worker(settings, build)


def migrate(service_dir: Path, settings: ServiceSettings) -> None:
    """Apply the service's migrations as the owner role (never done on app start)."""
    import sys

    from .migrations import upgrade

    if not settings.migration_database_url:
        sys.exit("MIGRATION_DATABASE_URL is not set")
    upgrade(service_dir, settings.migration_database_url)


__all__ = [
    "ServiceApp",
    "create_service_app",
    "migrate",
    "run_consumer",
    "run_relay",
    "unit_of_work_factory",
    "verifier_for",
]
