"""Sharing between practices, as every service's row-level security sees it.

Two kinds of grant open a practice's data to users of another practice:

- a **sharing agreement** (a FHIR OrganizationAffiliation, recorded by patient-index):
  practice B lets practice A's users open its patients' records (`read-record`) and/or
  see and book into its appointment book (`book-shared-slots`), from a start to an
  optional end;
- a **break-glass grant**: one user of practice A opened one patient of practice B
  outside any agreement, giving a reason; it lasts a short, fixed time.

patient-index publishes both on `patient.events.v1`. Every service keeps them in its
own `access_grants` table (a projection: no service asks another at request time), and
its tables' policies read that table in sub-selects that PostgreSQL runs once per
statement (InitPlans), so `practice_code = ANY(<array>)` stays an index condition.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as pg_insert

from .consumer import PermanentFailure
from .events import CloudEvent
from .uow import UnitOfWork

SCOPE_READ_RECORD = "read-record"
SCOPE_BOOK = "book-shared-slots"
SCOPES = (SCOPE_READ_RECORD, SCOPE_BOOK)

AGREEMENT_RECORDED = "sharing.agreement.recorded.v1"
BREAK_GLASS_GRANTED = "access.break-glass.granted.v1"

KIND_AGREEMENT = "agreement"
KIND_BREAK_GLASS = "break-glass"


def access_grants_table(metadata: MetaData) -> Table:
    """The projection of agreements and break-glass grants (not practice data itself:
    no row-level security, the policies of the practice tables read it)."""
    return Table(
        "access_grants",
        metadata,
        Column("id", String(64), primary_key=True),
        Column("kind", String(20), nullable=False),
        Column("grantor_practice", String(10), nullable=False),
        Column("grantee_practice", String(10), nullable=False),
        Column("grantee_user", Text, nullable=True),
        Column("patient_id", Text, nullable=True),
        Column("scopes", ARRAY(Text), nullable=False),
        Column("starts_at", DateTime(timezone=True), nullable=False),
        Column("ends_at", DateTime(timezone=True), nullable=True),
        Column("active", Boolean, nullable=False),
        Column("version", Integer, nullable=False),
        Index("ix_access_grants_grantee", "grantee_practice", "kind"),
    )


# Every service's projection has this one shape; its DDL is `access_grants_sql`.
ACCESS_GRANTS = access_grants_table(MetaData())


def access_grants_sql() -> list[str]:
    """DDL for the projection the policies read (a migration runs it)."""
    return [
        """
CREATE TABLE access_grants (
    id VARCHAR(64) NOT NULL,
    kind VARCHAR(20) NOT NULL CHECK (kind IN ('agreement', 'break-glass')),
    grantor_practice VARCHAR(10) NOT NULL,
    grantee_practice VARCHAR(10) NOT NULL,
    grantee_user TEXT,
    patient_id TEXT,
    scopes TEXT[] NOT NULL,
    starts_at TIMESTAMP WITH TIME ZONE NOT NULL,
    ends_at TIMESTAMP WITH TIME ZONE,
    active BOOLEAN NOT NULL,
    version INTEGER NOT NULL,
    CONSTRAINT pk_access_grants PRIMARY KEY (id)
)
        """,
        "CREATE INDEX ix_access_grants_grantee ON access_grants (grantee_practice, kind)",
    ]


_OWN = "practice_code = current_setting('app.practice', true)"


# The practices whose agreements with the caller's practice, in force now, grant one of
# the scopes; and the caller's own live break-glass grants (one user, one patient each).
_AGREED = (
    "SELECT g.grantor_practice FROM access_grants g "
    "WHERE g.grantee_practice = current_setting('app.practice', true) "
    "AND g.kind = 'agreement' AND g.active AND g.scopes && ARRAY[{scopes}]::TEXT[] "
    "AND g.starts_at <= now() AND (g.ends_at IS NULL OR g.ends_at > now())"
)
_BROKEN_GLASS = (
    "SELECT g.{column} FROM access_grants g "
    "WHERE g.grantee_practice = current_setting('app.practice', true) "
    "AND g.kind = 'break-glass' AND g.active "
    "AND g.grantee_user = nullif(current_setting('app.user', true), '') "
    "AND g.starts_at <= now() AND g.ends_at > now()"
)


def visible_practices_sql(scopes: Sequence[str], *, break_glass: bool = False) -> str:
    """A sub-select of the practices whose rows the caller may see under `scopes`: the
    caller's own, and every practice whose agreement in force grants one of the scopes
    (a practice may come more than once). The row-level-security policies are built from
    it, and so is a query that wants to walk the visible practices one at a time."""
    parts = [
        "SELECT current_setting('app.practice', true)",
        _AGREED.format(scopes=", ".join(f"'{scope}'" for scope in scopes)),
    ]
    if break_glass:
        parts.append(_BROKEN_GLASS.format(column="grantor_practice"))
    return " UNION ALL ".join(parts)


def _visible(scopes: Sequence[str], *, break_glass: bool = False) -> str:
    """The practices a statement may see, as an array built once per statement.

    An uncorrelated ARRAY(sub-select) is an InitPlan: PostgreSQL runs it once, before the
    scan, and `practice_code = ANY (<it>)` stays an index condition. Written inline rather
    than as a function: a non-inlinable SQL function is planned again on every call.
    """
    return "ARRAY(" + visible_practices_sql(scopes, break_glass=break_glass) + ")"


@dataclass(frozen=True)
class ThroughParent:
    """A table whose rows belong to a row of `table` (a version to its resource), found by
    its `key` column: a break-glass grant opens the child row exactly when it opens the
    parent, because the policy asks the parent table, under the parent's own policy."""

    table: str
    key: str


def _broken_glass_test(table: str, patient: str | ThroughParent | None) -> str | None:
    """What admits a row of a break-glass practice: its patient is one the caller's grants
    name, or (ThroughParent) its parent row is visible. None: break-glass opens nothing."""
    if isinstance(patient, ThroughParent):
        return (
            f"EXISTS (SELECT 1 FROM {patient.table} AS parent "
            f"WHERE parent.id = {table}.{patient.key})"
        )
    if patient:
        return f"{patient}::TEXT = ANY (ARRAY({_BROKEN_GLASS.format(column='patient_id')}))"
    return None


def practice_policies_sql(
    table: str,
    *,
    patient_column: str | ThroughParent | None = None,
    read_scopes: Sequence[str] = (),
    write_scopes: Sequence[str] = (),
    replaces: str | None = "{table}_practice_isolation",
) -> list[str]:
    """Row-level security of a practice table that sharing can open.

    Reads see the caller's practice, the practices whose agreements grant one of
    `read_scopes`, and (where the table names a patient) the patients of the caller's
    live break-glass grants. Writes stay in the caller's practice unless an agreement
    grants one of `write_scopes` (booking into a shared appointment book). FORCE makes
    the policies bind the table owner too; the service connects as a non-owner role.
    """
    unknown = set(read_scopes) | set(write_scopes)
    if unknown - set(SCOPES):
        raise ValueError(f"unknown sharing scopes: {sorted(unknown - set(SCOPES))}")
    if read_scopes:
        read = f"practice_code = ANY ({_visible(read_scopes)})"
        broken_glass = _broken_glass_test(table, patient_column)
        if broken_glass:
            # The first test narrows by practice (an index condition); the second admits
            # a break-glass practice's rows only for the granted patients.
            read = (
                f"practice_code = ANY ({_visible(read_scopes, break_glass=True)}) AND ("
                f"{read} OR {broken_glass})"
            )
    else:
        read = _OWN
    write = f"practice_code = ANY ({_visible(write_scopes)})" if write_scopes else _OWN
    statements = [
        f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY",
        f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY",
    ]
    if replaces:
        statements.append(f"DROP POLICY IF EXISTS {replaces.format(table=table)} ON {table}")
    statements += [
        f"CREATE POLICY {table}_read ON {table} FOR SELECT USING ({read})",
        f"CREATE POLICY {table}_insert ON {table} FOR INSERT WITH CHECK ({write})",
        f"CREATE POLICY {table}_update ON {table} FOR UPDATE USING ({write}) WITH CHECK ({write})",
        f"CREATE POLICY {table}_delete ON {table} FOR DELETE USING ({write})",
    ]
    return statements


def grant_row(event: CloudEvent) -> dict[str, Any]:
    """The projection row an agreement or break-glass event stands for."""
    data = event.data
    try:
        if event.type == AGREEMENT_RECORDED:
            return {
                "id": str(data["agreementId"]),
                "kind": KIND_AGREEMENT,
                "grantor_practice": str(data["grantor"]),
                "grantee_practice": str(data["grantee"]),
                "grantee_user": None,
                "patient_id": None,
                "scopes": [str(scope) for scope in data["scopes"]],
                "starts_at": dt.datetime.fromisoformat(data["start"]),
                "ends_at": dt.datetime.fromisoformat(data["end"]) if data.get("end") else None,
                "active": bool(data["active"]),
                "version": int(data["versionId"]),
            }
        if event.type == BREAK_GLASS_GRANTED:
            return {
                "id": str(data["grantId"]),
                "kind": KIND_BREAK_GLASS,
                "grantor_practice": str(data["patientPractice"]),
                "grantee_practice": str(data["userPractice"]),
                "grantee_user": str(data["user"]),
                "patient_id": str(data["patient"]),
                "scopes": [SCOPE_READ_RECORD],
                "starts_at": dt.datetime.fromisoformat(data["start"]),
                "ends_at": dt.datetime.fromisoformat(data["end"]),
                "active": True,
                "version": 1,
            }
    except (KeyError, TypeError, ValueError) as exc:
        raise PermanentFailure(f"{event.type} without a usable {exc}") from None
    raise PermanentFailure(f"not a grant event: {event.type}")


async def apply_grant(uow: UnitOfWork, grants: Table, row: dict[str, Any]) -> None:
    """Upsert a grant; an older version arriving late never overwrites a newer one."""
    statement = pg_insert(grants).values(**row)
    await uow.conn.execute(
        statement.on_conflict_do_update(
            index_elements=[grants.c.id],
            set_={key: statement.excluded[key] for key in row if key != "id"},
            where=grants.c.version < statement.excluded.version,
        )
    )


async def project_grant(event: CloudEvent, uow: UnitOfWork) -> None:
    """Keep the projection of an agreement or break-glass event: every service's consumer,
    and patient-index itself in the transaction that publishes the event."""
    await apply_grant(uow, ACCESS_GRANTS, grant_row(event))


# Consumer handlers that keep a service's `access_grants` projection (patient.events.v1).
GRANT_HANDLERS = {AGREEMENT_RECORDED: project_grant, BREAK_GLASS_GRANTED: project_grant}


def drop_practice_policies_sql(table: str) -> list[str]:
    """Drop the policies `practice_policies_sql` made (to make them again, changed)."""
    return [
        f"DROP POLICY IF EXISTS {table}_{kind} ON {table}"
        for kind in ("read", "insert", "update", "delete")
    ]


def practice_policies_downgrade_sql(table: str) -> list[str]:
    """Back to own-practice isolation (the policy `tenant_rls_sql` made)."""
    own = _OWN
    return [
        *drop_practice_policies_sql(table),
        f"CREATE POLICY {table}_practice_isolation ON {table} USING ({own}) WITH CHECK ({own})",
    ]


# A migration's table plan: table -> (its patient column for break-glass, or the parent
# whose break-glass it follows; the scopes that open its reads; the scopes that open its
# writes).
TablePlan = Mapping[str, tuple[str | ThroughParent | None, Sequence[str], Sequence[str]]]


def sharing_upgrade_sql(tables: TablePlan) -> list[str]:
    """The projection, its functions and every table's sharing policies."""
    statements = access_grants_sql()
    for table, (patient_column, read_scopes, write_scopes) in tables.items():
        statements += practice_policies_sql(
            table,
            patient_column=patient_column,
            read_scopes=read_scopes,
            write_scopes=write_scopes,
        )
    return statements


def sharing_downgrade_sql(tables: TablePlan) -> list[str]:
    statements = [s for table in tables for s in practice_policies_downgrade_sql(table)]
    return statements + DROP_ACCESS_GRANTS_SQL


DROP_ACCESS_GRANTS_SQL = [
    "DROP TABLE IF EXISTS access_grants",
]
