"""Async database access with the practice (tenant) set per transaction.

Services connect as a non-owner role, and every table holding practice data has
a FORCE'd row-level-security policy on `app.practice`. Setting it with
`set_config(..., is_local => true)` scopes it to the transaction, so a pooled
connection can never carry one practice's context into another's request.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import orjson
from sqlalchemy import MetaData, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

PRACTICE_SETTING = "app.practice"
# Used by relays and by consumers before they know an event's practice. No
# policy matches it, so tenant tables stay invisible under it.
NO_PRACTICE = ""

_SET_PRACTICE = text("SELECT set_config('app.practice', :practice, true)")
# The user too: a break-glass grant opens one patient's record to one user, and the
# row-level-security policies match it against `app.user`. One round trip for both.
_SET_CONTEXT = text(
    "SELECT set_config('app.practice', :practice, true), set_config('app.user', :user, true)"
)
_SET_CONTEXT_RAW = "SELECT set_config('app.practice', $1, true), set_config('app.user', $2, true)"


def _orjson_dumps(value: object) -> str:
    return orjson.dumps(value).decode()


def new_metadata() -> MetaData:
    return MetaData(naming_convention=NAMING_CONVENTION)


def asyncpg_url(url: str) -> str:
    """Accept plain postgresql:// URLs from the environment; SQLAlchemy needs the driver."""
    for prefix in ("postgresql+asyncpg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    raise ValueError("DATABASE_URL must be a postgresql:// URL")


def plain_url(url: str) -> str:
    """The libpq form (for asyncpg.connect and LISTEN connections)."""
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


def create_engine(url: str, *, pool_size: int = 10, max_overflow: int = 10) -> AsyncEngine:
    return create_async_engine(
        asyncpg_url(url),
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_pre_ping=False,
        # FHIR resources live in JSONB columns: orjson reads and writes them several
        # times faster than the standard library on the hot paths.
        json_serializer=_orjson_dumps,
        json_deserializer=orjson.loads,
        # Prepared statements are cached per connection by asyncpg; SQLAlchemy's
        # compiled cache keeps Core statements cheap on hot paths.
        connect_args={"server_settings": {"application_name": "gpsoc"}},
    )


@asynccontextmanager
async def practice_transaction(
    engine: AsyncEngine, practice: str
) -> AsyncIterator[AsyncConnection]:
    """A transaction in which row-level security shows only `practice`'s rows."""
    async with engine.begin() as conn:
        await conn.execute(_SET_PRACTICE, {"practice": practice})
        yield conn


async def set_practice(conn: AsyncConnection, practice: str, user: str = "") -> None:
    await conn.execute(_SET_CONTEXT, {"practice": practice, "user": user})


async def set_practice_raw(conn: asyncpg.Connection, practice: str, user: str = "") -> None:
    """`set_practice` on the driver connection (the unit of work's own transaction)."""
    await conn.fetchval(_SET_CONTEXT_RAW, practice, user)


def new_id() -> uuid.UUID:
    return uuid.uuid4()
