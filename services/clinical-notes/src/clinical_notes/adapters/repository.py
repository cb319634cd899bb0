"""Reads and writes of the clinical record's tables with SQLAlchemy Core (no ORM on hot paths).

Every query runs inside a unit of work whose transaction has the caller's practice
set, so row-level security filters each statement; the repository never adds a
practice filter of its own to decide what a caller may see.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, func, insert, literal_column, select, update
from sqlalchemy.dialects.postgresql import distinct_on
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement

from ..domain.entries import CONDITION_ACTIVE, EntryFacts
from .tables import (
    clinical_entries,
    entry_versions,
    issued_medications,
    patients,
    snomed_concepts,
    snomed_descriptions,
)

E = clinical_entries


@dataclass(frozen=True)
class StoredEntry:
    id: str
    resource_type: str
    patient_id: str
    version_id: int
    entered_in_error: bool
    category: tuple[str, ...]
    resource: dict[str, Any]


class DuplicateAppointmentConsultation(Exception):
    """A consultation for this appointment exists already."""


def _columns(facts: EntryFacts) -> dict[str, Any]:
    return {
        "resource_type": facts.resource_type,
        "patient_id": facts.patient_id,
        "code_system": facts.code_system,
        "code": facts.code,
        "code_tokens": facts.code_tokens,
        "category": list(facts.category),
        "status": facts.status,
        "clinical_status": facts.clinical_status,
        "effective_at": facts.effective,
        "encounter_id": facts.encounter_id,
        "appointment_id": facts.appointment_id,
        "entered_in_error": facts.entered_in_error,
    }


_STORED = (
    E.c.id,
    E.c.resource_type,
    E.c.patient_id,
    E.c.version_id,
    E.c.entered_in_error,
    E.c.category,
    E.c.resource,
)


def _stored(row: Any) -> StoredEntry:
    return StoredEntry(
        row.id,
        row.resource_type,
        row.patient_id,
        row.version_id,
        row.entered_in_error,
        tuple(row.category),
        row.resource,
    )


class EntryRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def add(
        self,
        *,
        entry_id: str,
        practice: str,
        facts: EntryFacts,
        resource: dict[str, Any],
        recorded_at: dt.datetime,
        recorded_by: str,
        recorded_by_name: str,
    ) -> None:
        try:
            async with self._conn.begin_nested():
                await self._conn.execute(
                    insert(E).values(
                        id=entry_id,
                        practice_code=practice,
                        version_id=1,
                        last_updated=recorded_at,
                        resource=resource,
                        **_columns(facts),
                    )
                )
        except IntegrityError as exc:
            if "uq_clinical_entries_appointment_id" in str(exc.orig):
                raise DuplicateAppointmentConsultation() from None
            raise
        await self._add_version(
            entry_id,
            practice,
            facts.resource_type,
            1,
            resource,
            recorded_at,
            recorded_by,
            recorded_by_name,
        )

    async def replace(
        self,
        *,
        entry_id: str,
        practice: str,
        expected_version: int,
        facts: EntryFacts,
        resource: dict[str, Any],
        recorded_at: dt.datetime,
        recorded_by: str,
        recorded_by_name: str,
    ) -> bool:
        """Write a new version if the current one is still `expected_version` (optimistic lock)."""
        new_version = expected_version + 1
        result = await self._conn.execute(
            update(E)
            .where(E.c.id == entry_id, E.c.version_id == expected_version)
            .values(
                version_id=new_version,
                last_updated=recorded_at,
                resource=resource,
                **_columns(facts),
            )
        )
        if result.rowcount != 1:
            return False
        await self._add_version(
            entry_id,
            practice,
            facts.resource_type,
            new_version,
            resource,
            recorded_at,
            recorded_by,
            recorded_by_name,
        )
        return True

    async def _add_version(
        self,
        entry_id: str,
        practice: str,
        resource_type: str,
        version_id: int,
        resource: dict[str, Any],
        recorded_at: dt.datetime,
        recorded_by: str,
        recorded_by_name: str,
    ) -> None:
        await self._conn.execute(
            insert(entry_versions).values(
                entry_id=entry_id,
                version_id=version_id,
                practice_code=practice,
                resource_type=resource_type,
                recorded_at=recorded_at,
                recorded_by=recorded_by,
                recorded_by_name=recorded_by_name,
                resource=resource,
            )
        )

    async def get(
        self, resource_type: str, entry_id: str, *, for_update: bool = False
    ) -> StoredEntry | None:
        query = select(*_STORED).where(E.c.id == entry_id, E.c.resource_type == resource_type)
        if for_update:
            query = query.with_for_update()
        row = (await self._conn.execute(query)).first()
        return _stored(row) if row else None

    async def get_many(self, ids: Iterable[str]) -> dict[str, StoredEntry]:
        wanted = list(dict.fromkeys(ids))
        if not wanted:
            return {}
        rows = await self._conn.execute(select(*_STORED).where(E.c.id.in_(wanted)))
        return {row.id: _stored(row) for row in rows}

    async def history(self, resource_type: str, entry_id: str) -> list[dict[str, Any]]:
        rows = await self._conn.execute(
            select(entry_versions.c.resource)
            .where(
                entry_versions.c.entry_id == entry_id,
                entry_versions.c.resource_type == resource_type,
            )
            .order_by(entry_versions.c.version_id.desc())
        )
        return [r.resource for r in rows]

    async def version(
        self, resource_type: str, entry_id: str, version_id: int
    ) -> dict[str, Any] | None:
        return await self._conn.scalar(
            select(entry_versions.c.resource).where(
                entry_versions.c.entry_id == entry_id,
                entry_versions.c.version_id == version_id,
                entry_versions.c.resource_type == resource_type,
            )
        )

    async def search(
        self,
        criteria: Sequence[ColumnElement[bool]],
        *,
        count: int,
        offset: int,
        newest_first: bool,
    ) -> tuple[list[dict[str, Any]], int]:
        """Matching resources (one page) and the total, in one round trip when there are any."""
        where = and_(*criteria) if criteria else literal_column("true")
        effective = (
            E.c.effective_at.desc().nulls_last()
            if newest_first
            else E.c.effective_at.asc().nulls_last()
        )
        query = (
            select(E.c.resource, func.count().over().label("total"))
            .where(where)
            .order_by(effective, E.c.id)
            .limit(count)
            .offset(offset)
        )
        rows = (await self._conn.execute(query)).all()
        if rows:
            return [r.resource for r in rows], rows[0].total
        total = await self._conn.scalar(select(func.count()).select_from(E).where(where))
        return [], int(total or 0)

    async def nearest_measure(
        self, patient_id: str, code: str, *, around: dt.datetime, within: dt.timedelta
    ) -> StoredEntry | None:
        """The patient's measurement of `code` nearest in time to `around`, within `within`."""
        query = (
            select(*_STORED)
            .where(
                E.c.patient_id == patient_id,
                E.c.resource_type == "Observation",
                E.c.code == code,
                E.c.entered_in_error.is_(False),
                E.c.effective_at.between(around - within, around + within),
            )
            .order_by(func.abs(func.extract("epoch", E.c.effective_at - around)), E.c.id)
            .limit(1)
        )
        row = (await self._conn.execute(query)).first()
        return _stored(row) if row else None

    async def active_allergies(self, patient_id: str) -> list[StoredEntry]:
        rows = await self._conn.execute(
            select(*_STORED).where(
                E.c.patient_id == patient_id,
                E.c.resource_type == "AllergyIntolerance",
                E.c.entered_in_error.is_(False),
                E.c.clinical_status == "active",
            )
        )
        return [_stored(r) for r in rows]

    async def derived_from(self, patient_id: str, observation_id: str) -> list[StoredEntry]:
        """Current observations computed from this one (a BMI from a weight or a height)."""
        rows = await self._conn.execute(
            select(*_STORED)
            .where(
                E.c.patient_id == patient_id,
                E.c.resource_type == "Observation",
                E.c.entered_in_error.is_(False),
                E.c.resource.contains(
                    {"derivedFrom": [{"reference": f"Observation/{observation_id}"}]}
                ),
            )
            .with_for_update()
        )
        return [_stored(r) for r in rows]

    async def consultation_for_appointment(self, appointment_id: str) -> str | None:
        return await self._conn.scalar(select(E.c.id).where(E.c.appointment_id == appointment_id))

    async def summary(
        self, patient_id: str, *, consultations: int
    ) -> dict[str, list[dict[str, Any]]]:
        """A patient's active problems, allergies, latest observation per code and recent
        consultations, in one statement (entered-in-error entries are left out)."""
        mine = and_(E.c.patient_id == patient_id, E.c.entered_in_error.is_(False))
        problems = select(
            literal_column("'problems'").label("part"), E.c.resource, E.c.effective_at
        ).where(
            mine,
            E.c.resource_type == "Condition",
            E.c.category.contains(["problem-list-item"]),
            E.c.clinical_status.in_(sorted(CONDITION_ACTIVE)),
        )
        allergies = select(
            literal_column("'allergies'").label("part"), E.c.resource, E.c.effective_at
        ).where(mine, E.c.resource_type == "AllergyIntolerance", E.c.clinical_status == "active")
        latest = (
            select(E.c.resource, E.c.effective_at)
            .where(mine, E.c.resource_type == "Observation", E.c.code.is_not(None))
            .order_by(E.c.code, E.c.effective_at.desc().nulls_last(), E.c.id)
            .ext(distinct_on(E.c.code))
            .subquery()
        )
        observations = select(
            literal_column("'observations'").label("part"), latest.c.resource, latest.c.effective_at
        )
        recent = (
            select(literal_column("'consultations'").label("part"), E.c.resource, E.c.effective_at)
            .where(mine, E.c.resource_type == "Encounter")
            .order_by(E.c.effective_at.desc().nulls_last(), E.c.id)
            .limit(consultations)
        )
        union = problems.union_all(allergies, observations, recent.subquery().select()).subquery()
        rows = await self._conn.execute(
            select(union.c.part, union.c.resource).order_by(
                union.c.part, union.c.effective_at.desc().nulls_last()
            )
        )
        parts: dict[str, list[dict[str, Any]]] = {
            "problems": [],
            "allergies": [],
            "observations": [],
            "consultations": [],
        }
        for row in rows:
            parts[row.part].append(row.resource)
        return parts


# Search criteria builders: the API's search parameters turned into SQL.
def of_type(resource_type: str) -> ColumnElement[bool]:
    return E.c.resource_type == resource_type


def by_patient(patient_id: str) -> ColumnElement[bool]:
    return E.c.patient_id == patient_id


def by_id(entry_id: str) -> ColumnElement[bool]:
    return E.c.id == entry_id


def by_code_tokens(tokens: list[str]) -> ColumnElement[bool]:
    return E.c.code_tokens.overlap(tokens)


def by_category(codes: list[str]) -> ColumnElement[bool]:
    return E.c.category.overlap(codes)


def by_clinical_status(codes: list[str]) -> ColumnElement[bool]:
    return E.c.clinical_status.in_(codes)


def by_status(codes: list[str]) -> ColumnElement[bool]:
    return E.c.status.in_(codes)


def by_date(operator: str, value: dt.datetime) -> ColumnElement[bool]:
    return E.c.effective_at.op(operator)(value)


def by_day(start: dt.datetime, end: dt.datetime) -> ColumnElement[bool]:
    return and_(E.c.effective_at >= start, E.c.effective_at < end)


def by_encounter(encounter_id: str) -> ColumnElement[bool]:
    return E.c.encounter_id == encounter_id


def by_appointment(appointment_id: str) -> ColumnElement[bool]:
    return E.c.appointment_id == appointment_id


def current_only() -> ColumnElement[bool]:
    return E.c.entered_in_error.is_(False)


class PatientRepository:
    """The local projection of the patient index: who is registered at the caller's practice."""

    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def exists(self, patient_id: str) -> bool:
        return (
            await self._conn.scalar(
                select(func.count()).select_from(patients).where(patients.c.id == patient_id)
            )
            == 1
        )

    async def apply(
        self,
        *,
        patient_id: str,
        practice: str,
        active: bool,
        deceased: bool,
        version_id: int,
        at: dt.datetime,
    ) -> None:
        """Keep the newest version seen (events of one patient arrive in order, but may repeat)."""
        statement = pg_insert(patients).values(
            id=patient_id,
            practice_code=practice,
            active=active,
            deceased=deceased,
            version_id=version_id,
            updated_at=at,
        )
        await self._conn.execute(
            statement.on_conflict_do_update(
                index_elements=[patients.c.id],
                set_={
                    "active": statement.excluded.active,
                    "deceased": statement.excluded.deceased,
                    "version_id": statement.excluded.version_id,
                    "updated_at": statement.excluded.updated_at,
                },
                where=patients.c.version_id < statement.excluded.version_id,
            )
        )


class MedicationTimeline:
    """The read model of issued prescriptions, as MedicationStatements."""

    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def record(
        self,
        *,
        issue_id: str,
        practice: str,
        patient_id: str,
        issued_at: dt.datetime,
        resource: dict[str, Any],
    ) -> None:
        await self._conn.execute(
            pg_insert(issued_medications)
            .values(
                id=issue_id,
                practice_code=practice,
                patient_id=patient_id,
                issued_at=issued_at,
                resource=resource,
            )
            .on_conflict_do_nothing()
        )

    async def recent(self, patient_id: str, *, limit: int) -> list[dict[str, Any]]:
        rows = await self._conn.execute(
            select(issued_medications.c.resource)
            .where(issued_medications.c.patient_id == patient_id)
            .order_by(issued_medications.c.issued_at.desc(), issued_medications.c.id)
            .limit(limit)
        )
        return [r.resource for r in rows]


class TerminologyRepository:
    """SNOMED CT concepts and descriptions imported from an RF2 release."""

    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def active_concepts(self, ids: Iterable[str]) -> dict[str, str | None]:
        """Active concept id -> fully specified name, for those of `ids` the release holds."""
        wanted = list(dict.fromkeys(ids))
        if not wanted:
            return {}
        rows = await self._conn.execute(
            select(snomed_concepts.c.id, snomed_concepts.c.fully_specified_name).where(
                snomed_concepts.c.id.in_(wanted), snomed_concepts.c.active.is_(True)
            )
        )
        return {r.id: r.fully_specified_name for r in rows}

    async def search(self, words: list[str], *, limit: int) -> list[tuple[str, str, str | None]]:
        """(concept id, matching term, FSN) of active descriptions containing every word."""
        d, c = snomed_descriptions, snomed_concepts
        criteria = [
            d.c.term.ilike(f"%{w}%", escape="\\")
            for w in (
                w.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") for w in words
            )
        ]
        rows = await self._conn.execute(
            select(d.c.concept_id, d.c.term, c.c.fully_specified_name)
            .join(c, c.c.id == d.c.concept_id)
            .where(d.c.active.is_(True), c.c.active.is_(True), *criteria)
            .order_by(func.length(d.c.term), d.c.concept_id)
            .limit(limit)
        )
        return [(r.concept_id, r.term, r.fully_specified_name) for r in rows]

    async def upsert_concepts(self, rows: list[dict[str, Any]]) -> None:
        statement = pg_insert(snomed_concepts)
        await self._conn.execute(
            statement.on_conflict_do_update(
                index_elements=[snomed_concepts.c.id],
                set_={
                    "effective_time": statement.excluded.effective_time,
                    "active": statement.excluded.active,
                    "module_id": statement.excluded.module_id,
                },
                where=snomed_concepts.c.effective_time <= statement.excluded.effective_time,
            ),
            rows,
        )

    async def upsert_descriptions(self, rows: list[dict[str, Any]]) -> None:
        statement = pg_insert(snomed_descriptions)
        await self._conn.execute(
            statement.on_conflict_do_update(
                index_elements=[snomed_descriptions.c.id],
                set_={
                    k: statement.excluded[k]
                    for k in (
                        "effective_time",
                        "active",
                        "concept_id",
                        "language_code",
                        "type_id",
                        "term",
                    )
                },
                where=snomed_descriptions.c.effective_time <= statement.excluded.effective_time,
            ),
            rows,
        )

    async def refresh_fully_specified_names(self, fsn_type: str) -> None:
        d, c = snomed_descriptions, snomed_concepts
        await self._conn.execute(
            update(c)
            .where(c.c.id == d.c.concept_id, d.c.type_id == fsn_type, d.c.active.is_(True))
            .values(fully_specified_name=d.c.term)
        )
