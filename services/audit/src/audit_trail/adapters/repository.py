"""Reading and appending audit records with SQLAlchemy Core (no ORM on these paths)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from ..domain.chain import AuditRecord, ChainHead, canonical_json
from ..domain.entry import AuditEntry
from .tables import CHAIN_HEAD_ID, audit_records, chain_head, patient_practices

_RECORD = audit_records.c


@dataclass(frozen=True)
class AuditCriteria:
    """A search of the audit trail, already validated; empty fields match everything."""

    patient_id: str | None = None
    agent_id: str | None = None
    actions: tuple[str, ...] = ()
    outcomes: tuple[str, ...] = ()
    recorded: tuple[tuple[str, dt.datetime], ...] = ()  # (SQL operator, instant)


class AuditRecordRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    # ----- appending -------------------------------------------------------------
    async def lock_head(self) -> ChainHead:
        """The chain head, locked until the transaction ends: appends queue up here."""
        row = (await self._conn.execute(
            select(chain_head.c.seq, chain_head.c.hash)
            .where(chain_head.c.id == CHAIN_HEAD_ID)
            .with_for_update()
        )).one()
        return ChainHead(row.seq, row.hash)

    async def append(self, record: AuditRecord) -> None:
        """Insert the record and move the head onto it (the head must be locked)."""
        entry = record.entry
        await self._conn.execute(insert(audit_records).values(
            seq=record.seq,
            id=record.id,
            event_id=entry.event_id,
            source=entry.source,
            practice_code=entry.practice_code,
            agent_id=entry.agent_id,
            role_code=entry.role_code,
            patient_ids=list(entry.patient_ids),
            resource_refs=list(entry.resource_refs),
            action=entry.action,
            outcome=entry.outcome,
            recorded_at=entry.recorded_at,
            request_id=entry.request_id,
            trace_id=entry.trace_id,
            break_glass_reason=entry.break_glass_reason,
            stored_at=record.stored_at,
            audit_event=canonical_json(entry.audit_event),
            previous_hash=record.previous_hash,
            hash=record.hash,
        ))
        await self._conn.execute(
            update(chain_head).where(chain_head.c.id == CHAIN_HEAD_ID)
            .values(seq=record.seq, hash=record.hash, updated_at=record.stored_at)
        )

    # ----- reading ---------------------------------------------------------------
    async def search(self, practice: str, criteria: AuditCriteria, *, limit: int,
                     offset: int) -> tuple[list[AuditRecord], int]:
        """Newest first. Row-level security already limits rows to the practice; the
        explicit practice condition is the first wall and lets the indexes serve it."""
        conditions = _conditions(practice, criteria)
        # The total is counted in the page's own statement (one snapshot), so records
        # arriving meanwhile cannot make it disagree with the entries returned.
        rows = (await self._conn.execute(
            select(audit_records, func.count().over().label("total")).where(*conditions)
            .order_by(_RECORD.recorded_at.desc(), _RECORD.seq.desc())
            .limit(limit).offset(offset)
        )).all()
        if rows:
            return [record_from_row(row) for row in rows], int(rows[0].total)
        # An empty page (nothing matches, or paged past the end) still reports the total.
        total = await self._conn.scalar(
            select(func.count()).select_from(audit_records).where(*conditions))
        return [], int(total or 0)

    async def get(self, practice: str, record_id: str) -> AuditRecord | None:
        row = (await self._conn.execute(
            select(audit_records)
            .where(_RECORD.id == record_id, _RECORD.practice_code == practice)
        )).first()
        return record_from_row(row) if row is not None else None

    # ----- verification ------------------------------------------------------------
    async def head(self) -> ChainHead | None:
        row = (await self._conn.execute(
            select(chain_head.c.seq, chain_head.c.hash).where(chain_head.c.id == CHAIN_HEAD_ID)
        )).first()
        return ChainHead(row.seq, row.hash) if row is not None else None

    async def stream_in_chain_order(self, batch_size: int = 1000) -> AsyncIterator[AuditRecord]:
        """Every record, ascending seq, fetched in batches through a server-side cursor."""
        result = await self._conn.stream(
            select(audit_records).order_by(_RECORD.seq)
            .execution_options(yield_per=batch_size)
        )
        async for row in result:
            yield record_from_row(row)


def record_from_row(row: Row[Any]) -> AuditRecord:
    return AuditRecord(
        id=str(row.id),
        seq=row.seq,
        previous_hash=row.previous_hash,
        hash=row.hash,
        stored_at=row.stored_at,
        entry=AuditEntry(
            event_id=row.event_id,
            source=row.source,
            practice_code=row.practice_code,
            agent_id=row.agent_id,
            role_code=row.role_code,
            patient_ids=tuple(row.patient_ids),
            resource_refs=tuple(row.resource_refs),
            action=row.action,
            outcome=row.outcome,
            recorded_at=row.recorded_at,
            request_id=row.request_id,
            trace_id=row.trace_id,
            break_glass_reason=row.break_glass_reason,
            audit_event=json.loads(row.audit_event),
        ),
    )


def _conditions(practice: str, criteria: AuditCriteria) -> Sequence[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = [_RECORD.practice_code == practice]
    if criteria.patient_id is not None:
        conditions.append(_RECORD.patient_ids.contains([criteria.patient_id]))
    if criteria.agent_id is not None:
        conditions.append(_RECORD.agent_id == criteria.agent_id)
    if criteria.actions:
        conditions.append(_RECORD.action.in_(criteria.actions))
    if criteria.outcomes:
        conditions.append(_RECORD.outcome.in_(criteria.outcomes))
    for operator, moment in criteria.recorded:
        conditions.append(_RECORD.recorded_at.op(operator)(moment))
    return conditions


class PatientPracticeRepository:
    """Which practice holds each patient, as patient.events.v1 last said."""

    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def record(self, patient_id: str, practice: str) -> None:
        statement = pg_insert(patient_practices).values(patient_id=patient_id,
                                                        practice_code=practice)
        await self._conn.execute(statement.on_conflict_do_update(
            index_elements=[patient_practices.c.patient_id],
            set_={"practice_code": statement.excluded.practice_code}))

    async def holding(self, patient_ids: Sequence[str]) -> set[str]:
        if not patient_ids:
            return set()
        rows = await self._conn.execute(
            select(patient_practices.c.practice_code).distinct()
            .where(patient_practices.c.patient_id.in_(list(patient_ids))))
        return set(rows.scalars())
