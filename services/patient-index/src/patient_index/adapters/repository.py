"""Reads and writes of the patient index's tables: SQLAlchemy Core, and plain SQL on asyncpg
for the hot paths (reading a patient, searching patients).

Every query runs inside a unit of work whose transaction has the caller's
practice set, so row-level security filters each statement; the repository never
adds a practice filter of its own to decide what a caller may see.

The hot paths skip SQLAlchemy's statement building, caching and result processing,
which cost several times the database round trip: their SQL is written here, with
`$n` parameters, and sent on the unit of work's driver connection (same transaction).
Resources are selected as JSON text and parsed with orjson.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import Table, and_, func, insert, literal_column, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement

from ..domain.errors import DuplicateNhsNumber
from ..domain.names import normalise, soundex
from ..domain.patient import PatientDetails
from .tables import organizations, patient_versions, patients, practitioners

if TYPE_CHECKING:
    import asyncpg


@dataclass(frozen=True)
class StoredPatient:
    id: str
    practice_code: str
    version_id: int
    resource: dict[str, Any]
    details: PatientDetails | None = None


def _columns(details: PatientDetails) -> dict[str, Any]:
    return {
        "nhs_number": details.nhs_number,
        "family": details.family,
        "given": details.given,
        "family_normalised": details.family_normalised,
        "given_normalised": details.given_normalised,
        "name_text": details.name_text,
        "family_soundex": details.family_soundex,
        "given_soundex": details.given_soundex,
        "birth_date": details.birth_date,
        "gender": details.gender,
        "postal_code": details.postal_code,
        "gp_practitioner_id": details.gp_practitioner_id,
        "active": details.active,
        "deceased": details.deceased,
    }


@dataclass(frozen=True)
class Criterion:
    """A fragment of SQL: `{}` marks each parameter, whose values follow in order."""

    sql: str
    params: tuple[Any, ...] = ()


TRUE = Criterion("true")
FALSE = Criterion("false")


def render(fragments: Sequence[Criterion], params: list[Any], joiner: str) -> str:
    """Fragments joined into SQL, their `{}` numbered `$n` on from `params` (appended to)."""
    parts = []
    for fragment in fragments:
        slots = []
        for value in fragment.params:
            params.append(value)
            slots.append(f"${len(params)}")
        parts.append(fragment.sql.format(*slots))
    return joiner.join(parts)


_PATIENT_BY_ID = (
    "SELECT id::text, practice_code, version_id, resource::text FROM patients WHERE id = $1"
)
DEFAULT_PATIENT_ORDER = (
    Criterion("family_normalised"),
    Criterion("given_normalised"),
    Criterion("id"),
)


_PATIENT_COLUMNS = (
    "nhs_number",
    "family",
    "given",
    "family_normalised",
    "given_normalised",
    "name_text",
    "family_soundex",
    "given_soundex",
    "birth_date",
    "gender",
    "postal_code",
    "gp_practitioner_id",
    "active",
    "deceased",
)
_INSERT_PATIENT = (
    "INSERT INTO patients (id, practice_code, version_id, last_updated, resource, "
    + ", ".join(_PATIENT_COLUMNS)
    + ") VALUES ($1, $2, 1, $3, $4, "
    + ", ".join(f"${n}" for n in range(5, 5 + len(_PATIENT_COLUMNS)))
    + ") ON CONFLICT (nhs_number) WHERE nhs_number IS NOT NULL DO NOTHING"
)
_INSERT_VERSION = (
    "INSERT INTO patient_versions (patient_id, version_id, practice_code, recorded_at, "
    "recorded_by, resource) VALUES ($1, $2, $3, $4, $5, $6)"
)


class PatientRepository:
    def __init__(self, conn: AsyncConnection, raw: asyncpg.Connection) -> None:
        self._conn = conn
        self._raw = raw

    async def add(
        self,
        *,
        patient_id: str,
        practice: str,
        details: PatientDetails,
        resource: dict[str, Any],
        recorded_at: dt.datetime,
        recorded_by: str,
    ) -> None:
        """Insert version 1 (and its history row); DuplicateNhsNumber if the NHS number is
        registered anywhere. ON CONFLICT DO NOTHING, not a caught unique violation: the
        transaction stays usable, and no SAVEPOINT round trips."""
        document = orjson.dumps(resource).decode()  # JSON text for both jsonb columns
        columns = _columns(details)
        status = await self._raw.execute(
            _INSERT_PATIENT,
            patient_id,
            practice,
            recorded_at,
            document,
            *(columns[name] for name in _PATIENT_COLUMNS),
        )
        if status != "INSERT 0 1":
            raise DuplicateNhsNumber()
        await self._raw.execute(
            _INSERT_VERSION, patient_id, 1, practice, recorded_at, recorded_by, document
        )

    async def replace(
        self,
        *,
        patient_id: str,
        practice: str,
        expected_version: int,
        details: PatientDetails,
        resource: dict[str, Any],
        recorded_at: dt.datetime,
        recorded_by: str,
    ) -> bool:
        """Write a new version if the current one is still `expected_version` (optimistic lock)."""
        new_version = expected_version + 1
        try:
            async with self._conn.begin_nested():
                result = await self._conn.execute(
                    update(patients)
                    .where(patients.c.id == patient_id, patients.c.version_id == expected_version)
                    .values(
                        version_id=new_version,
                        last_updated=recorded_at,
                        resource=resource,
                        **_columns(details),
                    )
                )
        except IntegrityError as exc:
            if "uq_patients_nhs_number" in str(exc.orig):
                raise DuplicateNhsNumber() from None
            raise
        if result.rowcount != 1:
            return False
        await self._add_version(
            patient_id, practice, new_version, resource, recorded_at, recorded_by
        )
        return True

    async def _add_version(
        self,
        patient_id: str,
        practice: str,
        version_id: int,
        resource: dict[str, Any],
        recorded_at: dt.datetime,
        recorded_by: str,
    ) -> None:
        await self._conn.execute(
            insert(patient_versions).values(
                patient_id=patient_id,
                version_id=version_id,
                practice_code=practice,
                recorded_at=recorded_at,
                recorded_by=recorded_by,
                resource=resource,
            )
        )

    async def get(self, patient_id: str, *, for_update: bool = False) -> StoredPatient | None:
        query = _PATIENT_BY_ID + " FOR UPDATE" if for_update else _PATIENT_BY_ID
        row = await self._raw.fetchrow(query, patient_id)
        if row is None:
            return None
        return StoredPatient(row[0], row[1], row[2], orjson.loads(row[3]))

    async def history(self, patient_id: str) -> list[dict[str, Any]]:
        rows = await self._conn.execute(
            select(patient_versions.c.resource)
            .where(patient_versions.c.patient_id == patient_id)
            .order_by(patient_versions.c.version_id.desc())
        )
        return [r.resource for r in rows]

    async def version(self, patient_id: str, version_id: int) -> dict[str, Any] | None:
        return await self._conn.scalar(
            select(patient_versions.c.resource).where(
                patient_versions.c.patient_id == patient_id,
                patient_versions.c.version_id == version_id,
            )
        )

    async def search(
        self,
        criteria: Sequence[Criterion],
        *,
        count: int,
        offset: int,
        order_by: Sequence[Criterion] = DEFAULT_PATIENT_ORDER,
    ) -> tuple[list[dict[str, Any]], int]:
        """Matching resources (one page) and the total, in one round trip.

        The total rides along as a window count; only a page past the end (no rows to
        carry it) costs a second query.
        """
        params: list[Any] = []
        where = render(criteria, params, " AND ") if criteria else "true"
        where_params = list(params)
        order = render(order_by, params, ", ")
        rows = await self._raw.fetch(
            "SELECT resource::text, count(*) OVER () FROM patients "
            f"WHERE {where} ORDER BY {order} LIMIT ${len(params) + 1} OFFSET ${len(params) + 2}",
            *params,
            count,
            offset,
        )
        if rows:
            return [orjson.loads(r[0]) for r in rows], rows[0][1]
        total = await self._raw.fetchval(
            f"SELECT count(*) FROM patients WHERE {where}", *where_params
        )
        return [], int(total or 0)

    async def ids_by_nhs_number(self, nhs_number: str) -> str | None:
        return await self._conn.scalar(
            select(patients.c.id).where(patients.c.nhs_number == nhs_number)
        )


async def _page(
    conn: AsyncConnection,
    table: Table,
    criteria: list[ColumnElement[bool]],
    order_by: list[Any],
    *,
    count: int,
    offset: int,
) -> tuple[list[dict[str, Any]], int]:
    """One page of a table's `resource` column and the total, in one round trip.

    The total rides along as a window count; only a page past the end (no rows to
    carry it) costs a second query.
    """
    where = and_(*criteria) if criteria else literal_column("true")
    query = (
        select(table.c.resource, func.count().over().label("total"))
        .where(where)
        .order_by(*order_by)
        .limit(count)
        .offset(offset)
    )
    rows = (await conn.execute(query)).all()
    if rows:
        return [r.resource for r in rows], rows[0].total
    total = await conn.scalar(select(func.count()).select_from(table).where(where))
    return [], int(total or 0)


# Search criteria builders: the API's search parameters turned into SQL.
def by_nhs_number(value: str) -> Criterion:
    return Criterion("nhs_number = {}", (value,))


def by_id(value: str) -> Criterion:
    return Criterion("id = {}", (value,))


# Under FORCE'd row-level security PostgreSQL only lets *leakproof* operators use an
# index; LIKE and pg_trgm's % are not leakproof, and would scan the practice's whole list.
# So prefixes are searched as byte ranges (leakproof <, >=) over columns collated "C",
# and typo tolerance comes from phonetic keys compared with =.
def _starts_with(column: str, prefix: str) -> Criterion:
    if not prefix:
        return TRUE
    upper = prefix[:-1] + chr(ord(prefix[-1]) + 1)
    return Criterion(f"({column} >= {{}} AND {column} < {{}})", (prefix, upper))


def _like_escaped(value: str) -> str:
    """A LIKE pattern matching `value` literally (escape character /)."""
    return value.replace("/", "//").replace("%", "/%").replace("_", "/_")


def _any_of(criteria: Sequence[Criterion]) -> Criterion:
    return Criterion(
        "(" + " OR ".join(c.sql for c in criteria) + ")",
        tuple(p for c in criteria for p in c.params),
    )


def by_family(value: str) -> Criterion:
    return _starts_with("family_normalised", normalise(value))


def by_given(value: str) -> Criterion:
    given = normalise(value)
    # A later given name ("Mary Anne" for "anne") needs a substring match: rarer, so
    # it may scan the practice's patients.
    return _any_of(
        [
            _starts_with("given_normalised", given),
            Criterion(
                "given_normalised LIKE {} ESCAPE '/'", ("%" + _like_escaped(" " + given) + "%",)
            ),
        ]
    )


def by_name(value: str) -> Criterion:
    return _any_of([by_family(value), by_given(value)])


_DATE_OPERATORS = frozenset({"=", ">=", "<=", ">", "<"})


def by_birth_date(operator: str, value: dt.date) -> Criterion:
    if operator not in _DATE_OPERATORS:
        raise ValueError(f"not a date comparison: {operator!r}")
    return Criterion(f"birth_date {operator} {{}}", (value,))


def by_gender(value: str) -> Criterion:
    return Criterion("gender = {}", (value,))


def by_postal_code(value: str) -> Criterion:
    return _starts_with("postal_code", "".join(value.split()).upper())


def by_general_practitioner(practitioner_id: str) -> Criterion:
    return Criterion("gp_practitioner_id = {}", (practitioner_id,))


def by_phonetic(value: str) -> Criterion:
    """Tolerates a typo: any word of the query sounds like the family or a given name
    (Soundex, compared by equality so the indexes serve it); best matches rank first."""
    keys = tuple(sorted({soundex(word) for word in normalise(value).split()} - {""}))
    if not keys:
        return FALSE
    slots = ", ".join("{}" for _ in keys)
    return Criterion(f"(family_soundex IN ({slots}) OR given_soundex IN ({slots}))", keys + keys)


def phonetic_order(value: str) -> tuple[Criterion, ...]:
    return (Criterion("similarity(name_text, {}) DESC", (normalise(value),)), Criterion("id"))


class OrganizationRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def get(self, org_id: str) -> dict[str, Any] | None:
        return await self._conn.scalar(
            select(organizations.c.resource).where(organizations.c.id == org_id)
        )

    async def search(
        self, *, ods_code: str | None, name: str | None, count: int, offset: int
    ) -> tuple[list[dict[str, Any]], int]:
        criteria = []
        if ods_code:
            criteria.append(organizations.c.ods_code == ods_code.upper())
        if name:
            criteria.append(
                func.lower(organizations.c.name).contains(name.lower(), autoescape=True)
            )
        return await _page(
            self._conn,
            organizations,
            criteria,
            [organizations.c.ods_code],
            count=count,
            offset=offset,
        )

    async def upsert(
        self,
        *,
        org_id: str,
        practice: str,
        ods_code: str,
        name: str,
        resource: dict[str, Any],
        recorded_at: dt.datetime,
    ) -> bool:
        """Insert if absent; returns whether it was inserted (seeding is idempotent)."""
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        result = await self._conn.execute(
            pg_insert(organizations)
            .values(
                id=org_id,
                practice_code=practice,
                ods_code=ods_code,
                name=name,
                version_id=1,
                last_updated=recorded_at,
                resource=resource,
            )
            .on_conflict_do_nothing()
        )
        return result.rowcount == 1


class PractitionerRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def get(self, practitioner_id: str) -> dict[str, Any] | None:
        return await self._conn.scalar(
            select(practitioners.c.resource).where(practitioners.c.id == practitioner_id)
        )

    async def exists(self, practitioner_id: str) -> bool:
        return (
            await self._conn.scalar(
                select(func.count())
                .select_from(practitioners)
                .where(practitioners.c.id == practitioner_id)
            )
            == 1
        )

    async def search(
        self, criteria: list[ColumnElement[bool]], *, count: int, offset: int
    ) -> tuple[list[dict[str, Any]], int]:
        order = [practitioners.c.family_normalised, practitioners.c.id]
        return await _page(self._conn, practitioners, criteria, order, count=count, offset=offset)

    async def add(
        self,
        *,
        practitioner_id: str,
        practice: str,
        family: str,
        given: str,
        sds_user_id: str | None,
        roles: list[str],
        prescriber: bool,
        resource: dict[str, Any],
        recorded_at: dt.datetime,
    ) -> bool:
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        result = await self._conn.execute(
            pg_insert(practitioners)
            .values(
                id=practitioner_id,
                practice_code=practice,
                family_normalised=normalise(family),
                given_normalised=normalise(given),
                sds_user_id=sds_user_id,
                roles=roles,
                prescriber=prescriber,
                active=True,
                version_id=1,
                last_updated=recorded_at,
                resource=resource,
            )
            .on_conflict_do_nothing()
        )
        return result.rowcount == 1


def practitioner_by_family(value: str) -> ColumnElement[bool]:
    return practitioners.c.family_normalised.startswith(normalise(value), autoescape=True)


def practitioner_by_name(value: str) -> ColumnElement[bool]:
    term = normalise(value)
    return or_(
        practitioners.c.family_normalised.startswith(term, autoescape=True),
        practitioners.c.given_normalised.startswith(term, autoescape=True),
    )


def practitioner_by_identifier(value: str) -> ColumnElement[bool]:
    return practitioners.c.sds_user_id == value


def practitioner_by_id(value: str) -> ColumnElement[bool]:
    return practitioners.c.id == value
