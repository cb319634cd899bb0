"""A scratch database with an outbox, an inbox and an 'effects' table under RLS, and
helpers to read a topic back, for testing the chassis against real PostgreSQL and Kafka."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from gpsoc_kit.db import asyncpg_url, create_engine
from gpsoc_kit.messaging import notify_channel
from gpsoc_kit.migrations import tenant_rls_sql
from gpsoc_kit.testing.scratch import SERVICE, metadata, outbox
from gpsoc_kit.uow import UnitOfWork
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine


@pytest.fixture(scope="session")
async def kit_database(test_stack: Any) -> Any:
    database = await asyncio.to_thread(test_stack.reset_database, "gpsoc_kit_t")
    owner = create_async_engine(asyncpg_url(database.owner_url))
    async with owner.begin() as conn:
        await conn.run_sync(metadata.create_all)
        for statement in tenant_rls_sql("effects"):
            await conn.execute(text(statement))
    await owner.dispose()
    return database


@pytest.fixture
async def engine(kit_database: Any) -> AsyncIterator[Any]:
    eng = create_engine(kit_database.app_url, pool_size=5)
    yield eng
    await eng.dispose()


@pytest.fixture
def uow_factory(engine: Any):  # noqa: ANN201
    def factory(practice: str) -> UnitOfWork:
        return UnitOfWork(
            engine,
            practice=practice,
            outbox=outbox,
            source="urn:kit-test",
            notify_channel=notify_channel(SERVICE),
        )

    return factory


@pytest.fixture
async def clean_outbox(kit_database: Any) -> None:
    """Each relay test starts with nothing pending from an earlier test."""
    eng = create_async_engine(asyncpg_url(kit_database.superuser_url))
    async with eng.begin() as conn:
        await conn.execute(
            text("DELETE FROM outbox")
        )
    await eng.dispose()


@pytest.fixture
def topic(test_stack: Any) -> str:
    """A topic (and its dead-letter topic) of this test's own."""
    name = f"kit.test.{uuid.uuid4().hex[:10]}"
    test_stack.create_topics({name: 3, f"{name}.dlq": 1})
    return name
