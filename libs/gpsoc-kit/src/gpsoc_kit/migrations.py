"""Alembic support: every service's migrations/env.py calls `run_migrations`, and
`upgrade()` applies them as their own step (never on app start)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from sqlalchemy import MetaData, pool
from sqlalchemy.ext.asyncio import create_async_engine

from .db import asyncpg_url


def run_migrations(target_metadata: MetaData) -> None:
    """Body of a service's migrations/env.py (online mode, async engine)."""
    from alembic import context

    url = context.config.get_main_option("sqlalchemy.url") or os.environ.get(
        "MIGRATION_DATABASE_URL"
    )
    if not url:
        raise RuntimeError("MIGRATION_DATABASE_URL is not set")

    def do_run(connection) -> None:  # noqa: ANN001
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            compare_type=True,
            transaction_per_migration=True,
        )
        with context.begin_transaction():
            context.run_migrations()

    async def run_async() -> None:
        engine = create_async_engine(asyncpg_url(url), poolclass=pool.NullPool)
        async with engine.connect() as connection:
            await connection.run_sync(do_run)
            await connection.commit()
        await engine.dispose()

    asyncio.run(run_async())


def upgrade(service_dir: Path, url: str, revision: str = "head") -> None:
    """Apply a service's migrations to the database at `url` (the owner role)."""
    from alembic import command
    from alembic.config import Config

    config = Config(str(service_dir / "alembic.ini"))
    config.set_main_option("script_location", str(service_dir / "migrations"))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    command.upgrade(config, revision)


def tenant_rls_sql(table: str, column: str = "practice_code") -> list[str]:
    """Row-level security for a table holding practice data.

    FORCE makes the policy apply to the table owner too; the running service
    connects as a non-owner role, so the policy is the wall behind the code.
    """
    predicate = f"{column} = current_setting('app.practice', true)"
    return [
        f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY",
        f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY",
        f"CREATE POLICY {table}_practice_isolation ON {table} "
        f"USING ({predicate}) WITH CHECK ({predicate})",
    ]
