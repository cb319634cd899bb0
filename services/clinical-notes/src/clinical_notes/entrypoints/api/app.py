"""The clinical record's ASGI app: the chassis' service app with this service's parts."""

from __future__ import annotations

from fastapi import FastAPI
from gpsoc_kit import service
from gpsoc_kit.uow import UnitOfWorkFactory
from sqlalchemy.ext.asyncio import AsyncEngine

from ...adapters.tables import outbox
from ...config import Settings
from ...service_layer.handlers import SOURCE
from .capabilities import RESOURCES
from .routes import router

SPEC = service.ServiceApp(
    title="openGPSoC clinical record",
    statement_name="OpenGPSoCClinicalNotes",
    source=SOURCE,
    outbox=outbox,
    resources=RESOURCES,
    router=router,
)


def unit_of_work_factory(engine: AsyncEngine, settings: Settings) -> UnitOfWorkFactory:
    return service.unit_of_work_factory(
        engine, service_name=settings.service_name, outbox=outbox, source=SOURCE
    )


def create_app(settings: Settings | None = None) -> FastAPI:
    return service.create_service_app(SPEC, settings or Settings())
