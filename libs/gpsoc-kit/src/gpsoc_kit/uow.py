"""Unit of work: one transaction per request or message, committed at the boundary.

It rolls back unless `commit()` is called, sets the practice for row-level
security, and writes the events collected during the work into the outbox inside
the same transaction, so nothing leaves the process unless the change committed.

The transaction is the driver's (asyncpg's), begun and ended here. The SQLAlchemy
connection on the same database connection (`conn`) is in AUTOCOMMIT mode, so it never
begins or commits on its own: its statements (and its SAVEPOINTs) run inside this
transaction, and so do the hot paths' statements sent to the driver directly (`raw`).
Going to the driver for the unit of work's own statements (the practice, the outbox,
BEGIN and COMMIT) saves SQLAlchemy's per-statement work on every request.

Round trips cost the api more than anything else left on a read (each is a send on a
socket and a wake-up), so the unit of work makes two of its four: BEGIN with the
practice and the user, then the outbox rows, NOTIFY and COMMIT, each sent as one
multi-statement query (simple protocol) with its values as quoted literals.

A read-only unit of work (every GET of a service that opts in) writes nothing in its own
transaction, which PostgreSQL enforces (BEGIN READ ONLY). Its audit record goes to the
`OutboxGroupWriter`, which writes the records of every read in flight in one statement; the
read answers only once its record is committed.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from .db import set_practice_raw
from .events import CloudEvent
from .telemetry import current_traceparent, user_var

if TYPE_CHECKING:
    import asyncpg


def sql_literal(value: str) -> str:
    """`value` as a PostgreSQL string constant, whatever standard_conforming_strings says.

    An escape string (E'...') with every backslash and every quote doubled: nothing in
    `value` can end the constant early. NUL cannot be sent at all (ValueError).
    """
    if "\x00" in value:
        raise ValueError("NUL in an SQL string")
    return "E'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


_SET_CONTEXT = "SELECT set_config('app.practice', {}, true), set_config('app.user', {}, true)"


class OutboxStatements:
    """The statements that put rendered outbox rows (`outbox_row`) into a service's outbox."""

    def __init__(self, outbox: Table, notify_channel: str) -> None:
        self._insert = (
            f"INSERT INTO {outbox.name} (id, topic, message_key, payload, practice_code) VALUES "
        )
        self._notify = f"SELECT pg_notify('{notify_channel}', '')"

    def __call__(self, rows: list[str], wake_relay: bool) -> list[str]:
        """The INSERT of `rows` and, if asked, the NOTIFY that wakes the relay (PostgreSQL
        delivers it only when the transaction commits); nothing for no rows."""
        if not rows:
            return []
        return [self._insert + ", ".join(rows), *([self._notify] if wake_relay else [])]


class OutboxGroupWriter:
    """The outbox rows of read-only units of work: every read in flight's, in one statement.

    A read writes nothing but its audit record. Written in the read's own transaction, each
    record cost an INSERT, a commit record and a WAL flush; here the reads waiting share
    them. Each `write` returns only once its rows are committed (durable), so a read is
    never answered without its audit record, and it raises if they could not be.

    One statement is in flight at a time, on a connection of the writer's own (the reads
    waiting hold pooled connections, so it must not wait for one); whatever queues up
    meanwhile goes in the next. A failed statement fails every write in it, and the
    connection is replaced.
    """

    def __init__(
        self,
        connect: Callable[[], Awaitable[asyncpg.Connection]],
        *,
        outbox: Table,
        notify_channel: str,
    ) -> None:
        self._connect = connect
        self._outbox_statements = OutboxStatements(outbox, notify_channel)
        self._waiting: list[tuple[list[str], bool, asyncio.Future[None]]] = []
        self._draining: asyncio.Task[None] | None = None
        self._conn: asyncpg.Connection | None = None

    async def write(self, rows: list[str], *, wake_relay: bool) -> None:
        """Commit outbox rows (rendered by `outbox_row`) with the next statement."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append((rows, wake_relay, future))
        if self._draining is None:
            self._draining = asyncio.create_task(self._drain())
        await future

    async def _drain(self) -> None:
        try:
            while self._waiting:
                batch, self._waiting = self._waiting, []
                try:
                    await self._write(
                        [row for rows, _, _ in batch for row in rows],
                        wake_relay=any(wake for _, wake, _ in batch),
                    )
                except Exception as exc:  # noqa: BLE001 - every waiting write hears of it
                    for _, _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                except BaseException:
                    for _, _, future in batch:
                        future.cancel()
                    raise
                else:
                    for _, _, future in batch:
                        if not future.done():
                            future.set_result(None)
        finally:
            self._draining = None

    async def _write(self, rows: list[str], *, wake_relay: bool) -> None:
        conn = self._conn
        if conn is None or conn.is_closed():
            conn = self._conn = await self._connect()
        statements = self._outbox_statements(rows, wake_relay)
        try:
            # One query, so one implicit transaction: all the rows (and the NOTIFY) or none.
            await conn.execute(";\n".join(statements))
        except BaseException:
            self._conn = None
            conn.terminate()
            raise

    async def close(self) -> None:
        if self._draining is not None:
            await asyncio.wait([self._draining])
        if self._conn is not None:
            conn, self._conn = self._conn, None
            await conn.close()


class UnitOfWork:
    def __init__(
        self,
        engine: AsyncEngine,
        *,
        practice: str,
        outbox: Table,
        source: str,
        notify_channel: str,
        read_only: bool = False,
        group_writer: OutboxGroupWriter | None = None,
    ) -> None:
        if read_only and group_writer is None:
            raise ValueError("a read-only unit of work writes its events through a group writer")
        self._engine = _autocommit(engine)
        self.practice = practice
        self.read_only = read_only
        self._group_writer = group_writer
        self._outbox = outbox
        self._source = source
        self._outbox_statements = OutboxStatements(outbox, notify_channel)
        self._pending: list[tuple[str, CloudEvent]] = []
        self._wake_relay = False
        self._conn: AsyncConnection | None = None
        self._raw: asyncpg.Connection | None = None
        self._open = False  # a transaction of ours is in progress

    @property
    def conn(self) -> AsyncConnection:
        """The SQLAlchemy connection, inside the unit of work's transaction."""
        if self._conn is None:
            raise RuntimeError("UnitOfWork used outside `async with`")
        return self._conn

    @property
    def raw(self) -> asyncpg.Connection:
        """The asyncpg connection under `conn`, inside the same transaction (hot paths)."""
        if self._raw is None:
            raise RuntimeError("UnitOfWork used outside `async with`")
        return self._raw

    async def __aenter__(self) -> UnitOfWork:
        conn = await self._engine.connect()
        self._conn = conn
        try:
            # Checked out just now, so the driver connection is at hand (no I/O to fetch it).
            # SQLAlchemy's asyncpg dialect has set a jsonb codec on it (jsonb parameters are
            # JSON text, results come back parsed); hot paths select `jsonb::text` and parse
            # it themselves, so they do not depend on that codec.
            raw = conn.sync_connection.connection.driver_connection
            self._raw = raw
            if raw.is_in_transaction():  # never expected: a transaction must not be inherited
                await raw.execute("ROLLBACK")
            self._open = True
            await raw.execute(_begin(self.practice, user_var.get(), read_only=self.read_only))
        except BaseException:
            await self._release()
            raise
        return self

    async def switch_practice(self, practice: str) -> None:
        """Consumers learn an event's practice only after reading it."""
        self.practice = practice
        await set_practice_raw(self.raw, practice, user_var.get())

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
        raw = self.raw
        if not self._open:
            if self._pending:
                raise RuntimeError("events emitted after the unit of work ended")
            return  # committed already (or rolled back): nothing left to commit
        rows = [outbox_row(topic, event) for topic, event in self._pending]
        wake_relay = self._wake_relay
        # A read's rows go to the group writer once its transaction has ended.
        statements = [] if self.read_only else self._outbox_statements(rows, wake_relay)
        statements.append("COMMIT")
        # One round trip; PostgreSQL stops at the first failing statement, so COMMIT runs
        # only if every row went in (and the caller answers only once it returned).
        self._open = False
        try:
            await raw.execute(";\n".join(statements))
        except BaseException:
            self._open = raw.is_in_transaction()
            raise
        self._pending.clear()
        self._wake_relay = False
        if self.read_only and rows:
            assert self._group_writer is not None
            await self._group_writer.write(rows, wake_relay=wake_relay)

    async def rollback(self) -> None:
        self._pending.clear()
        self._wake_relay = False
        if self._open:
            self._open = False
            raw = self._raw
            if raw is not None and raw.is_in_transaction():
                await raw.execute("ROLLBACK")

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._release()

    async def _release(self) -> None:
        """End the transaction if it is still open, and give the connection back.

        The pool does not know about a transaction begun on the driver, so a connection
        whose transaction could not be rolled back is closed, never pooled again.
        """
        conn = self._conn
        if conn is None:
            return
        try:
            await self.rollback()
        except BaseException:
            await conn.invalidate()
            raise
        finally:
            self._conn = self._raw = None
            await conn.close()


_AUTOCOMMIT_ENGINES: weakref.WeakKeyDictionary[AsyncEngine, AsyncEngine] = (
    weakref.WeakKeyDictionary()
)


def _autocommit(engine: AsyncEngine) -> AsyncEngine:
    """`engine`, sharing its pool, handing out connections already in AUTOCOMMIT mode.

    Set once per engine rather than per checkout: on a connection, `execution_options`
    is another hop into SQLAlchemy's greenlet on every request.
    """
    if engine.get_execution_options().get("isolation_level") == "AUTOCOMMIT":
        return engine
    derived = _AUTOCOMMIT_ENGINES.get(engine)
    if derived is None:
        derived = _AUTOCOMMIT_ENGINES[engine] = engine.execution_options(
            isolation_level="AUTOCOMMIT"
        )
    return derived


def outbox_row(topic: str, event: CloudEvent) -> str:
    """One row of the outbox INSERT's VALUES: id, topic, key, payload (JSON for jsonb), practice."""
    payload = orjson.dumps(event.to_dict()).decode()
    values = (event.id, topic, event.subject, payload, event.practice)
    return "(" + ", ".join(map(sql_literal, values)) + ")"


def _begin(practice: str, user: str, *, read_only: bool) -> str:
    """BEGIN and the transaction's context (row-level security reads both), in one query."""
    begin = "BEGIN READ ONLY; " if read_only else "BEGIN; "
    return begin + _SET_CONTEXT.format(sql_literal(practice), sql_literal(user))


UnitOfWorkFactory = Callable[..., UnitOfWork]
"""`factory(practice)`, or `factory(practice, read_only=True)` for a read."""
