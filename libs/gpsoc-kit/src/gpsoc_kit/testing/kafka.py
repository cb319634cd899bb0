"""Reading a topic back in tests: what a consumer downstream would see."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition


async def read_topic(
    bootstrap: str, topic: str, *, expect: int, timeout: float = 30.0, settle: float = 1.5
) -> list[Any]:
    """Every message on `topic`, waiting until at least `expect` arrived, then a little longer
    so that extra (duplicate) messages would be seen too."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
    )
    await consumer.start()
    messages: list[Any] = []
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        settled_at = None
        while loop.time() < deadline:
            batch = await consumer.getmany(timeout_ms=300)
            for records in batch.values():
                messages.extend(records)
            if len(messages) >= expect:
                settled_at = settled_at or loop.time()
                if loop.time() - settled_at >= settle:
                    break
    finally:
        await consumer.stop()
    return messages


async def position_group_at_end(
    bootstrap: str, group: str, topics: Iterable[str]
) -> dict[TopicPartition, int]:
    """Commit the topics' current end offsets for `group`, so a consumer of a fresh group
    starts from now: the shared test topics' history (every test publishes there) is not
    the test's to replay."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        partitions = [TopicPartition(topic, p) for topic in topics
                      for p in sorted(await producer.partitions_for(topic) or ())]
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group,
                                enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign(partitions)
        ends = await consumer.end_offsets(partitions)
        await consumer.commit(ends)
        return ends
    finally:
        await consumer.stop()
