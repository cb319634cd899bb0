"""The outbox and its relay on real PostgreSQL and Kafka."""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from typing import Any

import pytest
from gpsoc_kit.relay import OutboxRelay, RelayConfig
from gpsoc_kit.testing.kafka import read_topic
from gpsoc_kit.testing.scratch import SERVICE, outbox
from sqlalchemy import select


def relay_for(engine: Any, kit_database: Any, test_stack: Any, **overrides: Any) -> OutboxRelay:
    config = RelayConfig(SERVICE, kit_database.app_url, test_stack.kafka_bootstrap, **overrides)
    return OutboxRelay(config, engine, outbox)


async def start(relay: OutboxRelay) -> asyncio.Task:
    return asyncio.create_task(relay.run())


async def stop(relay: OutboxRelay, task: asyncio.Task) -> None:
    relay.stop()
    await asyncio.wait_for(task, 20)


async def test_publishes_exactly_what_committed_and_nothing_rolled_back(
    engine, uow_factory, kit_database, test_stack, topic, clean_outbox
):
    async with uow_factory("A81001") as uow:
        uow.emit(topic, "kit.committed.v1", subject="p1", data={"n": 1})
        uow.emit(topic, "kit.committed.v1", subject="p2", data={"n": 2})
        await uow.commit()
    with pytest.raises(RuntimeError):
        async with uow_factory("A81001") as uow:
            uow.emit(topic, "kit.rolled-back.v1", subject="p3", data={"n": 3})
            raise RuntimeError("the use case failed")
    async with uow_factory("A81001") as uow:  # left without commit: rolled back on exit
        uow.emit(topic, "kit.never-committed.v1", subject="p4", data={"n": 4})

    relay = relay_for(engine, kit_database, test_stack)
    task = await start(relay)
    messages = await read_topic(test_stack.kafka_bootstrap, topic, expect=2)
    await stop(relay, task)
    envelopes = [json.loads(m.value) for m in messages]
    assert sorted(e["data"]["n"] for e in envelopes) == [1, 2]
    assert {e["type"] for e in envelopes} == {"kit.committed.v1"}
    assert {m.key for m in messages} == {b"p1", b"p2"}


async def test_commit_to_publish_is_prompt_because_the_relay_wakes_on_notify(
    engine, uow_factory, kit_database, test_stack, topic, clean_outbox
):
    # A long poll interval: only NOTIFY can make delivery prompt.
    relay = relay_for(engine, kit_database, test_stack, poll_interval_seconds=30)
    task = await start(relay)
    await asyncio.sleep(1.0)  # the relay is idle and listening
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with uow_factory("A81001") as uow:
        uow.emit(topic, "kit.prompt.v1", subject="p1", data={})
        await uow.commit()
    messages = await read_topic(test_stack.kafka_bootstrap, topic, expect=1, settle=0)
    elapsed = loop.time() - started
    await stop(relay, task)
    assert len(messages) == 1
    assert elapsed < 10  # far below the 30 s poll: the NOTIFY woke it


async def test_a_restarted_relay_does_not_resend_what_was_published(
    engine, uow_factory, kit_database, test_stack, topic, clean_outbox
):
    for n in range(20):
        async with uow_factory("A81001") as uow:
            uow.emit(topic, "kit.n.v1", subject=f"p{n % 4}", data={"n": n})
            await uow.commit()
    first = relay_for(engine, kit_database, test_stack)
    task = await start(first)
    await read_topic(test_stack.kafka_bootstrap, topic, expect=20, settle=0)
    await stop(first, task)

    async with uow_factory("A81001") as uow:
        uow.emit(topic, "kit.n.v1", subject="p0", data={"n": 20})
        await uow.commit()
    second = relay_for(engine, kit_database, test_stack)
    task = await start(second)
    messages = await read_topic(test_stack.kafka_bootstrap, topic, expect=21)
    await stop(second, task)
    assert sorted(json.loads(m.value)["data"]["n"] for m in messages) == list(range(21))


async def test_two_relays_at_once_send_each_event_once_and_in_order_per_key(
    engine, uow_factory, kit_database, test_stack, topic, clean_outbox
):
    relays = [relay_for(engine, kit_database, test_stack, batch_size=7) for _ in range(2)]
    tasks = [await start(r) for r in relays]
    for n in range(120):
        async with uow_factory("A81001") as uow:
            uow.emit(topic, "kit.n.v1", subject=f"p{n % 5}", data={"n": n})
            await uow.commit()
    messages = await read_topic(test_stack.kafka_bootstrap, topic, expect=120)
    for relay, task in zip(relays, tasks, strict=True):
        await stop(relay, task)
    numbers = [json.loads(m.value)["data"]["n"] for m in messages]
    assert sorted(numbers) == list(range(120))
    per_key: dict[bytes, list[int]] = defaultdict(list)
    for m in sorted(messages, key=lambda m: (m.partition, m.offset)):
        per_key[m.key].append(json.loads(m.value)["data"]["n"])
    assert all(seq == sorted(seq) for seq in per_key.values())


async def test_writes_succeed_with_the_broker_stopped_and_every_event_arrives_once_it_is_back(
    engine, uow_factory, kit_database, test_stack, topic, clean_outbox
):
    relay = relay_for(engine, kit_database, test_stack, max_backoff_seconds=1.0)
    task = await start(relay)
    await asyncio.to_thread(test_stack.kafka.stop, force=True)
    try:
        for n in range(10):
            async with uow_factory("A81001") as uow:
                uow.emit(topic, "kit.n.v1", subject=f"p{n}", data={"n": n})
                await uow.commit()  # the write does not need the broker
        await asyncio.sleep(2)  # the relay tries, fails and backs off meanwhile
    finally:
        await asyncio.to_thread(test_stack.kafka.ensure_started)
    messages = await read_topic(test_stack.kafka_bootstrap, topic, expect=10, timeout=60)
    await stop(relay, task)
    assert sorted(json.loads(m.value)["data"]["n"] for m in messages) == list(range(10))


async def test_a_published_event_leaves_the_outbox_and_an_unpublished_one_stays(
    engine, uow_factory, kit_database, test_stack, topic, clean_outbox
):
    async with uow_factory("A81001") as uow:
        sent = uow.emit(topic, "kit.n.v1", subject="p1", data={"n": 1})
        await uow.commit()
    relay = relay_for(engine, kit_database, test_stack)
    await relay._ensure_producer()  # noqa: SLF001 - one publishing round, driven directly
    try:
        assert await relay.publish_pending() == 1
    finally:
        await relay._drop_producer()  # noqa: SLF001
    async with uow_factory("A81001") as uow:
        pending = uow.emit(topic, "kit.n.v1", subject="p2", data={"n": 2})
        await uow.commit()
    async with engine.connect() as conn:
        ids = set((await conn.execute(select(outbox.c.id))).scalars())
    assert ids == {pending.id}
    [message] = await read_topic(test_stack.kafka_bootstrap, topic, expect=1)
    assert json.loads(message.value)["id"] == sent.id
