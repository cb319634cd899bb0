"""The unit of work on real PostgreSQL: one transaction, tenant-scoped, shared by
SQLAlchemy and the driver, and never left open on a pooled connection."""

from __future__ import annotations

import uuid

import pytest
from gpsoc_kit.telemetry import user_var
from gpsoc_kit.testing.scratch import effects, outbox
from sqlalchemy import func, insert, select, text


def _note() -> dict[str, str]:
    return {"event_id": str(uuid.uuid4()), "practice_code": "A81001", "note": "uow"}


async def _count_effects(uow_factory, practice: str, event_id: str) -> int:
    async with uow_factory(practice) as uow:
        return await uow.conn.scalar(
            select(func.count()).select_from(effects).where(effects.c.event_id == event_id)
        )


async def test_the_practice_and_the_user_are_set_for_sqlalchemy_and_the_driver(uow_factory):
    token = user_var.set("user-1")
    try:
        async with uow_factory("A81001") as uow:
            via_sqlalchemy = (
                await uow.conn.execute(
                    text("SELECT current_setting('app.practice'), current_setting('app.user')")
                )
            ).one()
            via_driver = await uow.raw.fetchrow(
                "SELECT current_setting('app.practice'), current_setting('app.user')"
            )
            backend = await uow.conn.scalar(text("SELECT pg_backend_pid()"))
            assert backend == await uow.raw.fetchval("SELECT pg_backend_pid()")
    finally:
        user_var.reset(token)
    assert tuple(via_sqlalchemy) == ("A81001", "user-1")
    assert tuple(via_driver) == ("A81001", "user-1")


async def test_sqlalchemy_and_driver_statements_commit_together(uow_factory):
    row = _note()
    async with uow_factory("A81001") as uow:
        await uow.conn.execute(insert(effects).values(**row))
        uow.emit("kit.t", "kit.t.v1", subject="p1", data={"n": 1})
        await uow.commit()
    assert await _count_effects(uow_factory, "A81001", row["event_id"]) == 1
    # Row-level security still walls the row off from another practice.
    assert await _count_effects(uow_factory, "B82002", row["event_id"]) == 0


async def test_nothing_commits_without_commit_and_the_connection_comes_back_clean(
    engine, uow_factory
):
    row = _note()
    with pytest.raises(RuntimeError):
        async with uow_factory("A81001") as uow:
            await uow.conn.execute(insert(effects).values(**row))
            uow.emit("kit.t", "kit.t.v1", subject="p1", data={"n": 2})
            raise RuntimeError("the use case failed")
    async with uow_factory("A81001") as uow:  # left without commit
        await uow.conn.execute(insert(effects).values(**_note()))
    assert await _count_effects(uow_factory, "A81001", row["event_id"]) == 0
    # Every pooled connection is idle: no transaction (nor its practice) outlives its unit.
    async with engine.connect() as conn:
        raw = (await conn.get_raw_connection()).driver_connection
        assert not raw.is_in_transaction()
        assert await raw.fetchval("SELECT current_setting('app.practice', true)") in ("", None)


async def test_a_savepoint_rolls_back_alone_inside_the_unit_of_work(uow_factory):
    kept, undone = _note(), _note()
    async with uow_factory("A81001") as uow:
        await uow.conn.execute(insert(effects).values(**kept))
        with pytest.raises(RuntimeError):
            async with uow.conn.begin_nested():
                await uow.conn.execute(insert(effects).values(**undone))
                raise RuntimeError("undo this part only")
        await uow.commit()
    assert await _count_effects(uow_factory, "A81001", kept["event_id"]) == 1
    assert await _count_effects(uow_factory, "A81001", undone["event_id"]) == 0


async def test_a_failed_statement_rolls_the_whole_unit_back(uow_factory):
    row = _note()
    with pytest.raises(Exception):  # noqa: B017 - the driver's error, whatever its class
        async with uow_factory("A81001") as uow:
            await uow.conn.execute(insert(effects).values(**row))
            await uow.raw.execute("SELECT 1/0")
    assert await _count_effects(uow_factory, "A81001", row["event_id"]) == 0


async def test_several_events_go_to_the_outbox_in_one_commit(uow_factory):
    subject = str(uuid.uuid4())
    async with uow_factory("A81001") as uow:
        for n in range(3):
            uow.emit("kit.t", "kit.t.v1", subject=subject, data={"n": n}, prompt=False)
        await uow.commit()
        await uow.commit()  # a second commit has nothing left to do
    async with uow_factory("A81001") as uow:
        payloads = (
            await uow.conn.execute(
                select(outbox.c.payload)
                .where(outbox.c.message_key == subject)
                .order_by(outbox.c.seq)
            )
        ).scalars()
        assert [p["data"]["n"] for p in payloads] == [0, 1, 2]


TRICKY = [
    "O'Brien",
    "back\\slash",
    "\\'; DROP TABLE outbox; --",
    "'' \\\\' E'x'",
    'quote " and newline \n and tab \t',
    "ünïcödé ✓",
]


@pytest.mark.parametrize("value", TRICKY)
async def test_literals_come_back_exactly_as_they_went(uow_factory, value):
    from gpsoc_kit.uow import sql_literal

    async with uow_factory("A81001") as uow:
        assert await uow.raw.fetchval("SELECT " + sql_literal(value)) == value


def test_a_nul_is_never_sent_in_a_literal():
    from gpsoc_kit.uow import sql_literal

    with pytest.raises(ValueError):
        sql_literal("a\x00b")


async def test_event_data_and_the_user_reach_the_database_unaltered(uow_factory):
    subject = str(uuid.uuid4())
    token = user_var.set(TRICKY[2])
    try:
        async with uow_factory("A81001") as uow:
            assert await uow.raw.fetchval("SELECT current_setting('app.user')") == TRICKY[2]
            uow.emit("kit.t", "kit.t.v1", subject=subject, data={"names": TRICKY}, prompt=True)
            await uow.commit()
    finally:
        user_var.reset(token)
    async with uow_factory("A81001") as uow:
        payload = await uow.conn.scalar(
            select(outbox.c.payload).where(outbox.c.message_key == subject)
        )
    assert payload["data"]["names"] == TRICKY
