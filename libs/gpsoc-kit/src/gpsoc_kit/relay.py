"""The outbox relay: publishes committed events to Kafka, in commit order, exactly once in the normal path.

Several replicas may run. Each publishing round takes a transaction-scoped
advisory lock, so only one replica publishes at a time (keeping one patient's
events in order), and the rows it publishes are deleted in that same
transaction. A replica that dies mid-round rolls back and its rows are
published by the next round; a consumer's inbox absorbs that rare resend.

So the outbox holds only what is still to go (Kafka keeps what went). Keeping published
rows (they were kept a day, marked with published_at) made
each event cost a second, full copy of its row (an update that changes an indexed
column is never HOT) and the table grow by every event of the day, with the scans of
unpublished rows walking past ever more dead index entries between vacuums: through the
gateway on the bench, reads got about 10% slower within a minute of load.

It wakes on LISTEN/NOTIFY (sent by the unit of work at commit) and falls back to
a slow poll, so commit-to-publish latency is milliseconds without hammering the
database.
"""

from __future__ import annotations

import asyncio
import logging
import zlib
from dataclasses import dataclass

import asyncpg
from aiokafka import AIOKafkaProducer
from sqlalchemy import Table, Text, delete, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from . import metrics
from .db import plain_url
from .messaging import notify_channel
from .telemetry import kafka_headers

log = logging.getLogger("gpsoc.relay")


@dataclass(frozen=True)
class RelayConfig:
    service_name: str
    database_url: str
    kafka_bootstrap_servers: str
    batch_size: int = 500
    # Audit records of reads do not NOTIFY: this poll bounds their delay.
    poll_interval_seconds: float = 0.5
    publish_timeout_seconds: float = 15.0
    max_backoff_seconds: float = 10.0


def new_producer(bootstrap_servers: str) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap_servers,
        acks="all",
        enable_idempotence=True,
        linger_ms=2,
        request_timeout_ms=10_000,
        retry_backoff_ms=200,
    )


class OutboxRelay:
    def __init__(self, config: RelayConfig, engine: AsyncEngine, outbox: Table) -> None:
        self._config = config
        self._engine = engine
        self._outbox = outbox
        self._lock_key = zlib.crc32(f"outbox:{config.service_name}".encode())
        self._wakeup = asyncio.Event()
        self._stopping = asyncio.Event()
        self._producer: AIOKafkaProducer | None = None
        self._listener: asyncpg.Connection | None = None
        self._backlog_recorded_at = float("-inf")

    async def run(self) -> None:
        """Publish until stop() is called."""
        backoff = 0.2
        while not self._stopping.is_set():
            try:
                await self._ensure_listener()
                await self._ensure_producer()
                await self.publish_pending()
                backoff = 0.2
                # publish_pending drained the outbox (it goes on while batches come back
                # full), so the next round waits for a commit's NOTIFY or the poll: going
                # straight round again would find nothing, at the cost of a transaction
                # per commit. A NOTIFY that came during the round has already set the
                # wake-up, so nothing committed meanwhile waits for the poll.
                await self._sleep_until_woken(self._config.poll_interval_seconds)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # broker or database away: keep the rows, retry later
                log.warning("relay round failed; retrying", extra={"reason": type(exc).__name__})
                await self._drop_producer()
                await self._drop_listener()
                await self._sleep_until_woken(backoff, woken_ok=False)
                backoff = min(backoff * 2, self._config.max_backoff_seconds)
        await self._drop_producer()
        await self._drop_listener()

    def stop(self) -> None:
        self._stopping.set()
        self._wakeup.set()

    async def publish_pending(self) -> int:
        """Publish every unpublished event, batch by batch; returns how many were sent."""
        total = 0
        while True:
            sent = await self._publish_batch()
            total += sent
            if sent < self._config.batch_size:
                break
        now = asyncio.get_running_loop().time()
        if now - self._backlog_recorded_at >= 1.0:  # a gauge, not worth a query per round
            await self._record_backlog()
            self._backlog_recorded_at = now
        return total

    async def _publish_batch(self) -> int:
        assert self._producer is not None
        outbox = self._outbox
        async with self._engine.begin() as conn:
            locked = await conn.scalar(select(func.pg_try_advisory_xact_lock(self._lock_key)))
            if not locked:
                return 0  # another replica is publishing
            payload = outbox.c.payload
            rows = (
                await conn.execute(
                    # The payload goes out as PostgreSQL writes the JSON (never decoded
                    # here), with the few fields the Kafka headers need picked out by it.
                    select(
                        outbox.c.seq,
                        outbox.c.topic,
                        outbox.c.message_key,
                        payload.cast(Text).label("payload"),
                        payload["type"].astext.label("type"),
                        payload["traceparent"].astext.label("traceparent"),
                        payload["tracestate"].astext.label("tracestate"),
                    )
                    .order_by(outbox.c.seq)
                    .limit(self._config.batch_size)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            if not rows:
                return 0
            futures = []
            for row in rows:
                futures.append(
                    await self._producer.send(
                        row.topic,
                        value=row.payload.encode(),
                        key=row.message_key.encode(),
                        headers=kafka_headers(row.traceparent, row.tracestate, row.type),
                    )
                )
            await asyncio.wait_for(asyncio.gather(*futures), self._config.publish_timeout_seconds)
            await conn.execute(delete(outbox).where(outbox.c.seq.in_([r.seq for r in rows])))
        metrics.outbox_published(self._config.service_name).inc(len(rows))
        return len(rows)

    async def _record_backlog(self) -> None:
        outbox = self._outbox
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(
                    select(
                        func.count(),
                        func.extract("epoch", func.now() - func.min(outbox.c.created_at)),
                    ).select_from(outbox)
                )
            ).one()
        metrics.outbox_backlog(self._config.service_name).set(row[0])
        metrics.outbox_oldest_age(self._config.service_name).set(float(row[1] or 0))

    async def _sleep_until_woken(self, seconds: float, *, woken_ok: bool = True) -> None:
        if not woken_ok:
            try:
                await asyncio.wait_for(self._stopping.wait(), seconds)
            except TimeoutError:
                pass
            return
        try:
            await asyncio.wait_for(self._wakeup.wait(), seconds)
        except TimeoutError:
            pass
        self._wakeup.clear()

    async def _ensure_producer(self) -> None:
        if self._producer is None:
            producer = new_producer(self._config.kafka_bootstrap_servers)
            try:
                await producer.start()
            except Exception:
                await producer.stop()
                raise
            self._producer = producer

    async def _drop_producer(self) -> None:
        if self._producer is not None:
            producer, self._producer = self._producer, None
            try:
                await asyncio.wait_for(producer.stop(), 5)
            except Exception:  # noqa: BLE001 - a broken producer is discarded either way
                pass

    async def _ensure_listener(self) -> None:
        if self._listener is None or self._listener.is_closed():
            conn = await asyncpg.connect(plain_url(self._config.database_url))
            await conn.add_listener(
                notify_channel(self._config.service_name), lambda *_: self._wakeup.set()
            )
            self._listener = conn

    async def _drop_listener(self) -> None:
        if self._listener is not None:
            conn, self._listener = self._listener, None
            try:
                await conn.close(timeout=2)
            except Exception:  # noqa: BLE001
                conn.terminate()
