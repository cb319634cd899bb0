"""Verifying the stored chain: stream every record through the walk, in seq order."""

from __future__ import annotations

from gpsoc_kit.db import create_engine
from sqlalchemy.ext.asyncio import AsyncConnection

from ..adapters.repository import AuditRecordRepository
from ..domain.chain import EMPTY_CHAIN
from ..domain.verification import ChainWalk, VerificationReport


async def verify_store(conn: AsyncConnection) -> VerificationReport:
    """Walk the chain as `conn` sees it (inside its transaction). Needs a role that reads
    every practice's records: the owner (see the migration's policy) or a superuser."""
    records = AuditRecordRepository(conn)
    head = await records.head()
    # Without its head row the chain is walked against an empty one, and reported broken.
    walk = ChainWalk(head or EMPTY_CHAIN)
    async for record in records.stream_in_chain_order():
        walk.check(record)
    report = walk.report()
    report.head_mismatch = report.head_mismatch or head is None
    return report


async def verify_database(url: str) -> VerificationReport:
    """One read-only, repeatable-read snapshot, so appends running meanwhile cannot make
    the head and the records disagree."""
    engine = create_engine(url, pool_size=1, max_overflow=0)
    try:
        async with engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="REPEATABLE READ",
                                                postgresql_readonly=True)
            async with conn.begin():
                return await verify_store(conn)
    finally:
        await engine.dispose()
