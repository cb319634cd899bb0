"""A read's unit of work on real PostgreSQL: the database refuses its writes, and its events
(the read's audit record) are committed, together with other reads' in flight, before the
read is answered."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from gpsoc_kit.db import asyncpg_url
from gpsoc_kit.events import CloudEvent
from gpsoc_kit.messaging import notify_channel
from gpsoc_kit.testing.scratch import SERVICE, outbox
from gpsoc_kit.uow import OutboxGroupWriter, UnitOfWork, outbox_row, sql_literal
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine


@pytest.fixture
async def group_writer(kit_database: Any) -> AsyncIterator[OutboxGroupWriter]:
    writer = OutboxGroupWriter(
        lambda: asyncpg.connect(kit_database.app_url),
        outbox=outbox,
        notify_channel=notify_channel(SERVICE),
    )
    yield writer
    await writer.close()


@pytest.fixture
def read_uow(engine: Any, group_writer: OutboxGroupWriter):  # noqa: ANN201
    def factory(practice: str) -> UnitOfWork:
        return UnitOfWork(
            engine,
            practice=practice,
            outbox=outbox,
            source="urn:kit-test",
            notify_channel=notify_channel(SERVICE),
            read_only=True,
            group_writer=group_writer,
        )

    return factory


@pytest.fixture
async def superuser(kit_database: Any) -> AsyncIterator[Any]:
    eng = create_async_engine(asyncpg_url(kit_database.superuser_url))
    yield eng
    await eng.dispose()


async def _stored(superuser: Any, keys: list[str]) -> list[tuple[str, int]]:
    """(message_key, transaction id) of the outbox rows with these keys."""
    async with superuser.connect() as conn:
        rows = await conn.execute(
            text("SELECT message_key, xmin::text::bigint FROM outbox WHERE message_key = ANY(:k)"),
            {"k": keys},
        )
        return [tuple(row) for row in rows]


def _row(key: str) -> str:
    event = CloudEvent(
        type="kit.read.v1",
        source="urn:kit-test",
        subject=key,
        practice="A81001",
        data={"read": key},
    )
    return outbox_row("kit.read", event)


async def test_the_database_refuses_a_write_in_a_read(read_uow):
    async with read_uow("A81001") as uow:
        with pytest.raises(asyncpg.ReadOnlySQLTransactionError):
            await uow.raw.execute(
                "INSERT INTO effects (event_id, practice_code, note) VALUES ('x', 'A81001', 'n')"
            )


async def test_a_read_returns_from_commit_only_once_its_event_is_stored(read_uow, superuser):
    key = f"read-{uuid.uuid4()}"
    async with read_uow("A81001") as uow:
        assert await uow.raw.fetchval("SELECT current_setting('app.practice')") == "A81001"
        uow.emit("kit.read", "kit.read.v1", subject=key, data={"n": 1}, prompt=False)
        await uow.commit()
        assert not uow.raw.is_in_transaction()
        assert [k for k, _ in await _stored(superuser, [key])] == [key]


async def test_reads_waiting_together_share_one_transaction(group_writer, superuser):
    keys = [f"together-{uuid.uuid4()}" for _ in range(10)]
    await asyncio.gather(*(group_writer.write([_row(k)], wake_relay=False) for k in keys))
    stored = await _stored(superuser, keys)
    assert sorted(k for k, _ in stored) == sorted(keys)
    assert len({xid for _, xid in stored}) == 1


async def test_a_failed_group_write_fails_every_read_in_it_and_stores_none(group_writer, superuser):
    good = f"good-{uuid.uuid4()}"
    bad = f"bad-{uuid.uuid4()}"
    # A payload PostgreSQL will not take as JSON fails the statement the rows share.
    bad_row = (
        "("
        + ", ".join(map(sql_literal, (str(uuid.uuid4()), "kit.read", bad, "{not json", "A81001")))
        + ")"
    )
    results = await asyncio.gather(
        group_writer.write([_row(good)], wake_relay=False),
        group_writer.write([bad_row], wake_relay=False),
        return_exceptions=True,
    )
    assert all(isinstance(r, asyncpg.InvalidTextRepresentationError) for r in results)
    assert await _stored(superuser, [good, bad]) == []
    # The writer goes on, on a new connection.
    await group_writer.write([_row(good)], wake_relay=False)
    assert [k for k, _ in await _stored(superuser, [good])] == [good]


def test_a_read_needs_a_group_writer(engine):
    with pytest.raises(ValueError, match="group writer"):
        UnitOfWork(
            engine,
            practice="A81001",
            outbox=outbox,
            source="urn:kit-test",
            notify_channel=notify_channel(SERVICE),
            read_only=True,
        )
