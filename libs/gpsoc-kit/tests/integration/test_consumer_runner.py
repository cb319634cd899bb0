"""The consumer runner on real PostgreSQL and Kafka: once-only effects and dead letters."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiokafka import AIOKafkaProducer
from gpsoc_kit.consumer import ConsumerConfig, ConsumerRunner, PermanentFailure
from gpsoc_kit.db import asyncpg_url
from gpsoc_kit.events import CloudEvent
from gpsoc_kit.testing.kafka import read_topic
from gpsoc_kit.testing.scratch import SERVICE, effects, inbox
from gpsoc_kit.uow import UnitOfWork
from sqlalchemy import func, insert, select, text
from sqlalchemy.ext.asyncio import create_async_engine


async def apply_effect(event: CloudEvent, uow: UnitOfWork) -> None:
    await uow.conn.execute(
        insert(effects).values(
            event_id=event.id, practice_code=uow.practice, note=event.data.get("note", "")
        )
    )


async def always_fails(event: CloudEvent, uow: UnitOfWork) -> None:
    raise ConnectionError("downstream is broken")


async def refuses(event: CloudEvent, uow: UnitOfWork) -> None:
    raise PermanentFailure("this event can never apply")


def runner(uow_factory: Any, test_stack: Any, topic: str, group: str) -> ConsumerRunner:
    return ConsumerRunner(
        ConsumerConfig(
            SERVICE,
            group,
            (topic,),
            test_stack.kafka_bootstrap,
            first_backoff_seconds=0.05,
            max_attempts=3,
        ),
        unit_of_work=uow_factory,
        inbox=inbox,
        handlers={
            "kit.effect.v1": apply_effect,
            "kit.broken.v1": always_fails,
            "kit.refused.v1": refuses,
        },
    )


async def produce(test_stack: Any, topic: str, values: list[bytes]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=test_stack.kafka_bootstrap, acks="all")
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(topic, value=value, key=b"p1")
    finally:
        await producer.stop()


def event(event_type: str, note: str, practice: str = "A81001") -> CloudEvent:
    return CloudEvent(
        type=event_type, source="urn:test", subject="p1", practice=practice, data={"note": note}
    )


async def effect_notes(kit_database: Any, ids: list[str]) -> list[str]:
    engine = create_async_engine(asyncpg_url(kit_database.superuser_url))
    async with engine.connect() as conn:
        rows = await conn.execute(select(effects.c.note).where(effects.c.event_id.in_(ids)))
        notes = sorted(r.note for r in rows)
    await engine.dispose()
    return notes


async def run_until(consumer: ConsumerRunner, condition, timeout: float = 30) -> None:  # noqa: ANN001
    task = asyncio.create_task(consumer.run())
    try:
        deadline = asyncio.get_running_loop().time() + timeout
        while not await condition():
            assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
            await asyncio.sleep(0.2)
    finally:
        consumer.stop()
        await asyncio.wait_for(task, 20)


async def test_the_same_event_delivered_twice_is_applied_once(
    uow_factory, kit_database, test_stack, topic
):
    once = event("kit.effect.v1", "applied")
    marker = event("kit.effect.v1", "marker")
    await produce(test_stack, topic, [once.to_bytes(), once.to_bytes(), marker.to_bytes()])
    consumer = runner(uow_factory, test_stack, topic, f"g-{topic}")

    async def marker_applied() -> bool:
        return await effect_notes(kit_database, [marker.id]) == ["marker"]

    await run_until(consumer, marker_applied)
    assert await effect_notes(kit_database, [once.id]) == ["applied"]
    engine = create_async_engine(asyncpg_url(kit_database.superuser_url))
    async with engine.connect() as conn:
        inboxed = await conn.scalar(
            select(func.count()).select_from(inbox).where(inbox.c.event_id == once.id)
        )
    await engine.dispose()
    assert inboxed == 1


async def test_a_poison_message_is_dead_lettered_with_its_reason_and_the_consumer_goes_on(
    uow_factory, kit_database, test_stack, topic
):
    after = event("kit.effect.v1", "after the poison")
    broken = event("kit.broken.v1", "keeps failing")
    refused = event("kit.refused.v1", "refused")
    await produce(
        test_stack, topic, [b"{not json", broken.to_bytes(), refused.to_bytes(), after.to_bytes()]
    )
    consumer = runner(uow_factory, test_stack, topic, f"g-{topic}")

    async def after_applied() -> bool:
        return await effect_notes(kit_database, [after.id]) == ["after the poison"]

    await run_until(consumer, after_applied)
    dead = await read_topic(test_stack.kafka_bootstrap, f"{topic}.dlq", expect=3)
    assert len(dead) == 3
    reasons = [dict(m.headers)["dlq_reason"].decode() for m in dead]
    assert reasons[0].startswith("invalid event")
    assert "ConnectionError after 3 attempts" in reasons[1]
    assert reasons[2].startswith("permanent failure")
    assert json.loads(dead[1].value)["id"] == broken.id
    assert all(dict(m.headers)["dlq_original_topic"].decode() == topic for m in dead)


async def test_effects_are_written_under_the_event_practice_row_level_security(
    uow_factory, kit_database, test_stack, topic
):
    theirs = event("kit.effect.v1", "theirs", practice="A81002")
    await produce(test_stack, topic, [theirs.to_bytes()])
    consumer = runner(uow_factory, test_stack, topic, f"g-{topic}")

    async def applied() -> bool:
        return await effect_notes(kit_database, [theirs.id]) == ["theirs"]

    await run_until(consumer, applied)
    app_engine = create_async_engine(asyncpg_url(kit_database.app_url))
    async with app_engine.begin() as conn:
        await conn.execute(text("SELECT set_config('app.practice', 'A81001', true)"))
        seen = await conn.scalar(
            select(func.count()).select_from(effects).where(effects.c.event_id == theirs.id)
        )
    await app_engine.dispose()
    assert seen == 0
