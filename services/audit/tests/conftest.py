"""Fixtures of the audit store's tests: audit events as the chassis writes them, a migrated
database, the app in-process, and ways in as the app role, the owner and a superuser."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from pathlib import Path
from typing import Any

import pytest
from audit_trail.config import Settings
from audit_trail.domain.entry import BREAK_GLASS_REASON_URL
from audit_trail.entrypoints.api.app import create_app
from gpsoc_kit.audit import AUDIT_EVENT_TYPE, audit_event
from gpsoc_kit.auth import Principal
from gpsoc_kit.db import asyncpg_url, create_engine
from gpsoc_kit.events import CloudEvent
from gpsoc_kit.telemetry import request_id_var
from gpsoc_kit.testing.service_fixtures import ServiceUnderTest, service_fixtures
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

SERVICE_DIR = Path(__file__).resolve().parents[1]
# Not "audit": the end-to-end platform owns that database name in the test profile.
TEST_DB = "audit_t"


def make_audit_event(
    *,
    practice: str = "A81001",
    role: str = "gp",
    user_id: str | None = None,
    interaction: str = "read",
    resource_type: str = "Patient",
    resource_ids: Iterable[str] = (),
    patient_ids: Iterable[str] = (),
    outcome: str = "0",
    recorded: str | None = None,
    request_id: str | None = None,
    break_glass_reason: str | None = None,
    source: str = "urn:opengpsoc:patient-index",
) -> CloudEvent:
    """An audit.recorded.v1 event exactly as gpsoc_kit.audit.record puts it on the topic."""
    patient_ids = list(patient_ids)
    principal = Principal(user_id=user_id or str(uuid.uuid4()), practice=practice,
                          roles=frozenset({role}), name="Test User")
    token = request_id_var.set(request_id)
    try:
        data = audit_event(principal=principal, interaction=interaction,
                           resource_type=resource_type, resource_ids=resource_ids,
                           patient_ids=patient_ids, outcome=outcome, source=source)
    finally:
        request_id_var.reset(token)
    if recorded is not None:
        data["recorded"] = recorded
    if break_glass_reason is not None:
        data.setdefault("extension", []).append({"url": BREAK_GLASS_REASON_URL,
                                                 "valueString": break_glass_reason})
    subject = patient_ids[0] if len(patient_ids) == 1 else practice
    return CloudEvent(type=AUDIT_EVENT_TYPE, source=source, subject=subject, practice=practice,
                      data=data)


@pytest.fixture(scope="session")
def audit_cloud_event() -> Callable[..., CloudEvent]:
    return make_audit_event


database, settings, app, client, practice, auth = service_fixtures(
    ServiceUnderTest(
        test_db=TEST_DB, service_dir=SERVICE_DIR, settings=Settings, create_app=create_app,
        extra_settings=lambda database: {"migration_database_url": database.owner_url},
        default_role="practice-manager",
    )
)


@pytest.fixture(scope="session")
async def app_engine(settings: Any) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(settings.database_url, pool_size=4)
    yield engine
    await engine.dispose()


@pytest.fixture(scope="session")
def uow_factory(app_engine: AsyncEngine, settings: Any):  # noqa: ANN201
    from audit_trail.entrypoints.api.app import unit_of_work_factory

    return unit_of_work_factory(app_engine, settings)


@pytest.fixture(scope="session")
def store(uow_factory: Any):  # noqa: ANN201
    """`await store(*events)`: append events as the consumer does (one transaction each)."""
    from audit_trail.service_layer.handlers import store_audit_event

    async def append(*events: CloudEvent) -> list[Any]:
        records = []
        for event in events:
            async with uow_factory(event.practice) as uow:
                records.append(await store_audit_event(uow, event))
                await uow.commit()
        return records

    return append


@pytest.fixture
async def superuser(database: Any) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(asyncpg_url(database.superuser_url))
    yield engine
    await engine.dispose()
