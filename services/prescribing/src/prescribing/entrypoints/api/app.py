"""Prescribing's ASGI app: the chassis' service app with this service's parts."""

from __future__ import annotations

from fastapi import FastAPI
from gpsoc_kit import service
from gpsoc_kit.uow import UnitOfWorkFactory
from sqlalchemy.ext.asyncio import AsyncEngine

from ...adapters.knowledge_base import TableKnowledgeBase
from ...adapters.tables import outbox
from ...config import Settings
from ...service_layer.handlers import SOURCE
from . import errors
from .capabilities import RESOURCES
from .routes import router

SPEC = service.ServiceApp(
    title="openGPSoC prescribing",
    statement_name="OpenGPSoCPrescribing",
    source=SOURCE,
    outbox=outbox,
    resources=RESOURCES,
    router=router,
    install_errors=errors.install,
)


def unit_of_work_factory(engine: AsyncEngine, settings: Settings) -> UnitOfWorkFactory:
    return service.unit_of_work_factory(
        engine, service_name=settings.service_name, outbox=outbox, source=SOURCE
    )


def create_app(settings: Settings | None = None) -> FastAPI:
    app = service.create_service_app(SPEC, settings or Settings())
    # The one place the knowledge base is chosen: a licensed product plugs in here.
    app.state.knowledge_base = TableKnowledgeBase()
    return app
