"""The patient index's ASGI app: the chassis' service app with this service's parts."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI
from gpsoc_kit import service
from gpsoc_kit.uow import UnitOfWorkFactory
from sqlalchemy.ext.asyncio import AsyncEngine

from ...adapters.tables import outbox
from ...config import Settings
from ...service_layer.handlers import SOURCE
from . import errors
from .capabilities import RESOURCES
from .routes import router as patient_routes
from .sharing_routes import router as sharing_routes

router = APIRouter()
router.include_router(patient_routes)
router.include_router(sharing_routes)

SPEC = service.ServiceApp(
    title="openGPSoC patient index",
    statement_name="OpenGPSoCPatientIndex",
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
    return service.create_service_app(SPEC, settings or Settings())
