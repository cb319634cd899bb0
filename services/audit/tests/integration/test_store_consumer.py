"""The consumer on real Kafka and PostgreSQL: what is put on audit.events.v1 is stored
once each, in the order it was produced, even when Kafka delivers it again."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from audit_trail.adapters.tables import audit_records, inbox, outbox
from audit_trail.entrypoints.consumer import PATIENT_TOPIC, store_consumer
from audit_trail.service_layer.verification import verify_database
from gpsoc_kit.audit import AUDIT_TOPIC
from gpsoc_kit.testing.kafka import position_group_at_end
from sqlalchemy import func, select, text


async def rewind_group(bootstrap: str, group: str, offsets: dict[TopicPartition, int]) -> None:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group,
                                enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign(list(offsets))
        await consumer.commit(offsets)
    finally:
        await consumer.stop()


async def produce(bootstrap: str, events: list[Any]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for event in events:
            await producer.send_and_wait(AUDIT_TOPIC, value=event.to_bytes(),
                                         key=event.subject.encode())
    finally:
        await producer.stop()


async def stored_seqs(superuser, event_ids: list[str]) -> dict[str, list[int]]:  # noqa: ANN001
    async with superuser.connect() as conn:
        rows = (await conn.execute(select(audit_records.c.event_id, audit_records.c.seq)
                                   .where(audit_records.c.event_id.in_(event_ids)))).all()
    seqs: dict[str, list[int]] = {}
    for row in rows:
        seqs.setdefault(row.event_id, []).append(row.seq)
    return seqs


async def consume_until_stored(settings, uow_factory, group, superuser, marker_id,  # noqa: ANN001
                               timeout: float = 30) -> None:
    runner = store_consumer(settings, uow_factory, group_id=group)
    task = asyncio.create_task(runner.run())
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while marker_id not in await stored_seqs(superuser, [marker_id]):
            assert loop.time() < deadline, "the marker event was not stored in time"
            assert not task.done(), "the consumer stopped"
            await asyncio.sleep(0.2)
    finally:
        runner.stop()
        await asyncio.wait_for(task, 20)


async def test_audit_events_are_stored_once_each_in_order_even_when_redelivered(
    settings, uow_factory, superuser, test_stack, audit_cloud_event, database
):
    bootstrap = test_stack.kafka_bootstrap
    group = f"audit.store.test-{uuid.uuid4().hex[:8]}"
    start = await position_group_at_end(bootstrap, group, (AUDIT_TOPIC, PATIENT_TOPIC))
    patient = str(uuid.uuid4())
    events = [audit_cloud_event(patient_ids=[patient], interaction=interaction)
              for interaction in ("create", "read", "update", "read")]
    unreadable = audit_cloud_event(patient_ids=[patient])
    unreadable.data["action"] = "X"  # refused by the schema: dead-lettered, never stored
    marker = audit_cloud_event(patient_ids=[patient], interaction="read")
    # The producer retried two sends: Kafka holds them twice.
    await produce(bootstrap, [events[0], events[1], events[1], events[2], unreadable,
                              events[3], events[2], marker])
    await consume_until_stored(settings, uow_factory, group, superuser, marker.id)

    # A consumer restart from older offsets: everything is delivered again.
    await rewind_group(bootstrap, group, start)
    second_marker = audit_cloud_event(patient_ids=[patient], interaction="read")
    await produce(bootstrap, [second_marker])
    await consume_until_stored(settings, uow_factory, group, superuser, second_marker.id)

    in_order = [*events, marker, second_marker]
    seqs = await stored_seqs(superuser, [e.id for e in in_order] + [unreadable.id])
    assert all(len(seqs.get(e.id, [])) == 1 for e in in_order), seqs
    assert unreadable.id not in seqs
    ordered = [seqs[e.id][0] for e in in_order]
    assert ordered == sorted(ordered)
    async with superuser.connect() as conn:
        inboxed = await conn.scalar(select(func.count()).select_from(inbox).where(
            inbox.c.consumer_group == group))
    assert inboxed == len(in_order)
    report = await verify_database(database.owner_url)
    assert report.intact, report.summary()


async def test_storing_an_audit_event_emits_no_audit_event_of_its_own(
    store, superuser, audit_cloud_event
):
    async with superuser.connect() as conn:
        before = await conn.scalar(select(func.count()).select_from(outbox))
    await store(audit_cloud_event(patient_ids=["p1"]), audit_cloud_event(patient_ids=["p2"]))
    async with superuser.connect() as conn:
        after = await conn.scalar(select(func.count()).select_from(outbox))
        head = (await conn.execute(text("SELECT seq FROM chain_head"))).scalar_one()
        newest = await conn.scalar(select(func.max(audit_records.c.seq)))
    assert after == before
    assert head == newest
