"""The consumer runner: turns Kafka messages into handler calls, each applied exactly once.

Each event's id goes into the inbox in the same transaction as its effect, so a
redelivered event changes nothing. A handler that fails is retried with
backoff; one that keeps failing, or a message that can never be processed, is
parked on `<topic>.dlq` with the reason in its headers, and the consumer goes on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord
from sqlalchemy import Table
from sqlalchemy.dialects.postgresql import insert as pg_insert

from . import metrics
from .db import NO_PRACTICE
from .events import CloudEvent, InvalidEvent, SchemaRegistry
from .relay import new_producer
from .telemetry import context_from_kafka_headers, practice_var, tracer
from .uow import UnitOfWork

log = logging.getLogger("gpsoc.consumer")

Handler = Callable[[CloudEvent, UnitOfWork], Awaitable[None]]


class PermanentFailure(Exception):
    """A handler's way of saying: retrying cannot help, dead-letter it now."""


def dead_letter_topic(topic: str) -> str:
    return f"{topic}.dlq"


@dataclass(frozen=True)
class ConsumerConfig:
    service_name: str
    group_id: str
    topics: tuple[str, ...]
    kafka_bootstrap_servers: str
    max_attempts: int = 4
    first_backoff_seconds: float = 0.2
    max_backoff_seconds: float = 5.0


class ConsumerRunner:
    def __init__(
        self,
        config: ConsumerConfig,
        *,
        unit_of_work: Callable[[str], UnitOfWork],
        inbox: Table,
        handlers: dict[str, Handler],
        schemas: SchemaRegistry | None = None,
    ) -> None:
        self._config = config
        self._uow = unit_of_work
        self._inbox = inbox
        self._handlers = handlers
        self._schemas = schemas
        self._stopping = asyncio.Event()
        self._consumer: AIOKafkaConsumer | None = None
        self._producer: AIOKafkaProducer | None = None
        self._tracer = tracer("gpsoc.consumer")

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        """Consume until stop(); reconnects if the broker goes away."""
        backoff = 0.5
        while not self._stopping.is_set():
            try:
                await self._start()
                backoff = 0.5
                await self._loop()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - broker away: back off and reconnect
                log.warning(
                    "consumer loop failed; reconnecting", extra={"reason": type(exc).__name__}
                )
                await self._close()
                try:
                    await asyncio.wait_for(self._stopping.wait(), backoff)
                except TimeoutError:
                    pass
                backoff = min(backoff * 2, 10)
        await self._close()

    async def _start(self) -> None:
        if self._consumer is not None:
            return
        # A topic that does not exist yet is simply waited for: aiokafka keeps
        # refreshing metadata for a subscription until the topic appears.
        consumer = AIOKafkaConsumer(
            *self._config.topics,
            bootstrap_servers=self._config.kafka_bootstrap_servers,
            group_id=self._config.group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            metadata_max_age_ms=5_000,
        )
        producer = new_producer(self._config.kafka_bootstrap_servers)
        try:
            await consumer.start()
            await producer.start()
        except Exception:
            await consumer.stop()
            await producer.stop()
            raise
        self._consumer, self._producer = consumer, producer

    async def _close(self) -> None:
        consumer, producer = self._consumer, self._producer
        self._consumer = self._producer = None
        for client in (consumer, producer):
            if client is not None:
                try:
                    await asyncio.wait_for(client.stop(), 5)
                except Exception:  # noqa: BLE001
                    pass

    async def _loop(self) -> None:
        assert self._consumer is not None
        while not self._stopping.is_set():
            batches = await self._consumer.getmany(timeout_ms=500, max_records=200)
            gauge = metrics.consumer_lag(self._config.service_name)
            for tp, records in batches.items():
                for record in records:
                    await self.process(record)
                next_offset = records[-1].offset + 1
                await self._consumer.commit({tp: next_offset})
                highwater = self._consumer.highwater(tp)
                if highwater is not None:
                    gauge.labels(tp.topic, str(tp.partition)).set(max(0, highwater - next_offset))

    async def process(self, record: ConsumerRecord) -> str:
        """Apply one message; returns its outcome (applied, duplicate, ignored, dead-lettered)."""
        processed = metrics.consumer_processed(self._config.service_name)
        try:
            event = CloudEvent.from_bytes(record.value)
            if self._schemas is not None and event.type in self._schemas.types:
                self._schemas.validate(event)
        except InvalidEvent as exc:
            await self._dead_letter(record, f"invalid event: {exc}")
            processed.labels(record.topic, "dead-lettered").inc()
            return "dead-lettered"
        handler = self._handlers.get(event.type)
        if handler is None:
            processed.labels(record.topic, "ignored").inc()
            return "ignored"

        attempt = 0
        delay = self._config.first_backoff_seconds
        ctx = context_from_kafka_headers(record.headers)
        while True:
            attempt += 1
            try:
                with self._tracer.start_as_current_span(f"consume {event.type}", context=ctx):
                    outcome = await self._apply(event, handler)
                processed.labels(record.topic, outcome).inc()
                return outcome
            except PermanentFailure as exc:
                reason = f"permanent failure: {exc}"
            except Exception as exc:  # noqa: BLE001 - retried, then dead-lettered with the reason
                reason = f"{type(exc).__name__} after {attempt} attempts"
                if attempt < self._config.max_attempts and not self._stopping.is_set():
                    log.warning(
                        "handler failed; will retry",
                        extra={
                            "event_type": event.type,
                            "event_id": event.id,
                            "attempt": attempt,
                            "reason": type(exc).__name__,
                        },
                    )
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, self._config.max_backoff_seconds)
                    continue
            await self._dead_letter(record, reason)
            processed.labels(record.topic, "dead-lettered").inc()
            return "dead-lettered"

    async def _apply(self, event: CloudEvent, handler: Handler) -> str:
        practice_var.set(event.practice)
        async with self._uow(NO_PRACTICE) as uow:
            await uow.switch_practice(event.practice)
            inserted = await uow.conn.execute(
                pg_insert(self._inbox)
                .values(
                    consumer_group=self._config.group_id, event_id=event.id, event_type=event.type
                )
                .on_conflict_do_nothing()
                .returning(self._inbox.c.event_id)
            )
            if inserted.first() is None:
                return "duplicate"
            await handler(event, uow)
            await uow.commit()
        return "applied"

    async def _dead_letter(self, record: ConsumerRecord, reason: str) -> None:
        assert self._producer is not None
        topic = dead_letter_topic(record.topic)
        headers = list(record.headers or ()) + [
            ("dlq_reason", reason.encode()[:1000]),
            ("dlq_original_topic", record.topic.encode()),
            ("dlq_original_partition", str(record.partition).encode()),
            ("dlq_original_offset", str(record.offset).encode()),
            ("dlq_consumer_group", self._config.group_id.encode()),
        ]
        await self._producer.send_and_wait(
            topic, value=record.value, key=record.key, headers=headers
        )
        metrics.dead_letters(self._config.service_name).labels(record.topic).inc()
        log.error(
            "event dead-lettered",
            extra={
                "topic": record.topic,
                "partition": record.partition,
                "offset": record.offset,
                "reason": reason[:200],
            },
        )
