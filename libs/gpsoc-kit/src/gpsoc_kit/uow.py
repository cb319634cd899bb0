"""Unit of work: one transaction per request or message, committed at the boundary.

It rolls back unless `commit()` is called, sets the practice for row-level
security, and writes the events collected during the work into the outbox inside
the same transaction, so nothing leaves the process unless the change committed.
"""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import Any

from sqlalchemy import Table, insert, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from .db import set_practice
from .events import CloudEvent
from .telemetry import current_traceparent, user_var


class UnitOfWork:
    def __init__(
        self,
        engine: AsyncEngine,
        *,
        practice: str,
        outbox: Table,
        source: str,
        notify_channel: str,
    ) -> None:
        self._engine = engine
        self.practice = practice
        self._outbox = outbox
        self._source = source
        self._notify = text(f"SELECT pg_notify('{notify_channel}', '')")
        self._pending: list[tuple[str, CloudEvent]] = []
        self._wake_relay = False
        self._conn: AsyncConnection | None = None
        self._committed = False

    @property
    def conn(self) -> AsyncConnection:
        if self._conn is None:
            raise RuntimeError("UnitOfWork used outside `async with`")
        return self._conn

    async def __aenter__(self) -> UnitOfWork:
        self._conn = await self._engine.connect()
        await self._conn.begin()
        await set_practice(self._conn, self.practice, user_var.get())
        return self

    async def switch_practice(self, practice: str) -> None:
        """Consumers learn an event's practice only after reading it."""
        self.practice = practice
        await set_practice(self.conn, practice, user_var.get())

    def emit(
        self,
        topic: str,
        event_type: str,
        *,
        subject: str,
        data: dict[str, Any],
        practice: str | None = None,
        prompt: bool = True,
    ) -> CloudEvent:
        """Queue an event; it is written to the outbox at commit, and only then.

        A prompt event wakes the relay at commit (NOTIFY). Others (audit records of
        reads) wait for the relay's next poll, well under a second: NOTIFY takes a
        database-wide lock at commit, which a read path should not pay for.
        """
        traceparent, tracestate = current_traceparent()
        event = CloudEvent(
            type=event_type,
            source=self._source,
            subject=subject,
            practice=practice or self.practice,
            data=data,
            traceparent=traceparent,
            tracestate=tracestate,
        )
        self._pending.append((topic, event))
        self._wake_relay = self._wake_relay or prompt
        return event

    @property
    def pending_events(self) -> list[CloudEvent]:
        return [event for _, event in self._pending]

    async def commit(self) -> None:
        conn = self.conn
        if self._pending:
            await conn.execute(
                insert(self._outbox),
                [
                    {
                        "id": event.id,
                        "topic": topic,
                        "message_key": event.subject,
                        "payload": event.to_dict(),
                        "practice_code": event.practice,
                    }
                    for topic, event in self._pending
                ],
            )
            if self._wake_relay:
                # Delivered by PostgreSQL only when the transaction commits.
                await conn.execute(self._notify)
        await conn.commit()
        self._committed = True
        self._pending.clear()
        self._wake_relay = False

    async def rollback(self) -> None:
        self._pending.clear()
        self._wake_relay = False
        if self._conn is not None:
            await self._conn.rollback()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if not self._committed:
                await self.rollback()
        finally:
            if self._conn is not None:
                await self._conn.close()
                self._conn = None


UnitOfWorkFactory = Callable[[str], UnitOfWork]
