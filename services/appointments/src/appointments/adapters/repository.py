"""Reads and writes of the appointments tables with SQLAlchemy Core (no ORM on hot paths).

Every query runs inside a unit of work whose transaction has the caller's practice
set, so row-level security filters each statement; no query adds a practice filter
of its own to decide what a caller may see.

Double booking is made impossible here, by the database: `SlotRepository.take` is one
conditional UPDATE that turns only open slots busy (a concurrent booking of the same
slot waits for the row lock, then finds it busy and updates nothing), and the
partial unique index on appointment_slots refuses a second active booking of a slot.
"""

from __future__ import annotations

import datetime as dt
import functools
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import asyncpg
from gpsoc_kit.sharing import SCOPE_BOOK, visible_practices_sql
from sqlalchemy import (
    DateTime,
    Select,
    String,
    Text,
    and_,
    any_,
    bindparam,
    func,
    literal,
    literal_column,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID, insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement

from ..domain.appointment import SlotFacts
from ..domain.errors import SlotUnavailable
from ..domain.rota import GeneratedSlot, Session
from .tables import (
    appointment_slots,
    appointment_versions,
    appointments,
    idempotency_keys,
    patients,
    practices,
    rota_sessions,
    schedules,
    slots,
    staff,
)

OPEN_SLOT_STATUSES = ("free", "busy-tentative")


def slot_is_open() -> ColumnElement[bool]:
    """Free, or held by a hold that has run out."""
    return or_(slots.c.status == "free",
               and_(slots.c.status == "busy-tentative", slots.c.hold_expires_at <= func.now()))


class PracticeRegistry:
    """The practices this service holds data for (the housekeeper visits each)."""

    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def add(self, practice: str) -> None:
        await self._conn.execute(insert(practices).values(practice_code=practice)
                                 .on_conflict_do_nothing())

    async def all(self) -> list[str]:
        return list((await self._conn.execute(
            select(practices.c.practice_code).order_by(practices.c.practice_code))).scalars())


class StaffRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def upsert(self, *, staff_id: str, practice: str, role: str, display: str,
                     resource: dict[str, Any], at: dt.datetime) -> bool:
        """Add or refresh a member of staff; returns whether they were new."""
        statement = insert(staff).values(id=staff_id, practice_code=practice, role=role,
                                         display=display, resource=resource, last_updated=at)
        result = await self._conn.execute(
            statement.on_conflict_do_update(
                index_elements=[staff.c.id],
                set_={"role": role, "display": display, "resource": resource, "last_updated": at},
            ).returning(literal_column("xmax = 0").label("inserted"))
        )
        return bool(result.scalar_one())

    async def get(self, staff_id: str) -> Any:
        return (await self._conn.execute(select(staff).where(staff.c.id == staff_id))).first()

    async def resources(self, staff_ids: Iterable[str]) -> list[dict[str, Any]]:
        ids = list(dict.fromkeys(staff_ids))
        if not ids:
            return []
        return list((await self._conn.execute(
            select(staff.c.resource).where(staff.c.id.in_(ids)).order_by(staff.c.id))).scalars())


@dataclass(frozen=True)
class ProjectedPatient:
    id: str
    active: bool
    deceased: bool


class PatientProjection:
    """The patients of patient.events.v1, as far as booking needs them."""

    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def apply(self, *, patient_id: str, practice: str, nhs_number: str | None,
                    display: str, active: bool, deceased: bool, version_id: int,
                    at: dt.datetime) -> bool:
        """Store this version unless a newer one is already here; returns whether it applied."""
        values = {"nhs_number": nhs_number, "display": display, "active": active,
                  "deceased": deceased, "version_id": version_id, "last_updated": at}
        statement = insert(patients).values(id=patient_id, practice_code=practice, **values)
        result = await self._conn.execute(
            statement.on_conflict_do_update(
                index_elements=[patients.c.id], set_=values,
                where=patients.c.version_id < statement.excluded.version_id,
            ).returning(patients.c.id)
        )
        return result.first() is not None

    async def get(self, patient_id: str) -> ProjectedPatient | None:
        row = (await self._conn.execute(
            select(patients.c.id, patients.c.active, patients.c.deceased)
            .where(patients.c.id == patient_id))).first()
        return ProjectedPatient(row.id, row.active, row.deceased) if row else None


class ScheduleRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def add(self, *, schedule_id: str, practice: str, practitioner_id: str,
                  practitioner_display: str, location: str, comment: str | None,
                  at: dt.datetime, location_reference: str | None = None,
                  specialty: list[Any] | None = None,
                  planning_horizon: dict[str, Any] | None = None) -> None:
        await self._conn.execute(insert(schedules).values(
            id=schedule_id, practice_code=practice, practitioner_id=practitioner_id,
            practitioner_display=practitioner_display, location=location, active=True,
            comment=comment, location_reference=location_reference, specialty=specialty,
            planning_horizon=planning_horizon, version_id=1, last_updated=at))

    async def get(self, schedule_id: str) -> Any:
        return (await self._conn.execute(
            select(schedules).where(schedules.c.id == schedule_id))).first()

    async def by_ids(self, schedule_ids: Iterable[str]) -> list[Any]:
        ids = list(dict.fromkeys(schedule_ids))
        if not ids:
            return []
        return list((await self._conn.execute(
            select(schedules).where(schedules.c.id.in_(ids)).order_by(schedules.c.id))).all())

    async def search(self, *, practitioner_id: str | None, count: int,
                     offset: int) -> tuple[list[Any], int]:
        criteria = [schedules.c.practitioner_id == practitioner_id] if practitioner_id else []
        rows = (await self._conn.execute(
            select(schedules, func.count().over().label("total"))
            .where(and_(true(), *criteria))
            .order_by(schedules.c.practitioner_display, schedules.c.id)
            .limit(count).offset(offset))).all()
        return rows, (rows[0].total if rows else 0)


@dataclass(frozen=True)
class StoredSession:
    id: str
    schedule_id: str
    practitioner_id: str
    session: Session


class SessionRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def add(self, *, session_id: str, practice: str, schedule_id: str,
                  session: Session) -> None:
        await self._conn.execute(insert(rota_sessions).values(
            id=session_id, practice_code=practice, schedule_id=schedule_id,
            weekdays=sorted(session.weekdays), start_time=session.start, end_time=session.end,
            slot_minutes=session.slot_minutes, slot_type=session.slot_type,
            delivery_channel=session.delivery_channel,
            national_category=session.national_category, release_hours=session.release_hours,
            bookable_by=sorted(session.bookable_by), effective_from=session.effective_from,
            effective_to=session.effective_to))

    async def active(self, on: dt.date) -> list[StoredSession]:
        """Every session of the practice still in force on or after `on`, with its clinician."""
        rows = await self._conn.execute(
            select(rota_sessions, schedules.c.practitioner_id)
            .join(schedules, schedules.c.id == rota_sessions.c.schedule_id)
            .where(schedules.c.active,
                   or_(rota_sessions.c.effective_to.is_(None), rota_sessions.c.effective_to >= on))
        )
        return [StoredSession(row.id, row.schedule_id, row.practitioner_id, Session(
            weekdays=frozenset(row.weekdays), start=row.start_time, end=row.end_time,
            slot_minutes=row.slot_minutes, slot_type=row.slot_type,
            delivery_channel=row.delivery_channel, national_category=row.national_category,
            release_hours=row.release_hours, bookable_by=frozenset(row.bookable_by),
            effective_from=row.effective_from, effective_to=row.effective_to)) for row in rows]


FACT_COLUMNS = (slots.c.id, slots.c.practice_code, slots.c.schedule_id, slots.c.practitioner_id,
                slots.c.start_at, slots.c.end_at, slots.c.slot_type, slots.c.national_category,
                slots.c.delivery_channel, slots.c.bookable_from, slots.c.bookable_by)


def _facts(row: Any) -> SlotFacts:
    return SlotFacts(row.id, row.schedule_id, row.practitioner_id, row.start_at, row.end_at,
                     row.slot_type, row.national_category, row.delivery_channel,
                     row.bookable_from, frozenset(row.bookable_by), row.practice_code)


@dataclass(frozen=True)
class ClaimedSlot:
    """A slot a booking has made busy, with its schedule's clinician and location."""

    facts: SlotFacts
    practitioner_display: str | None
    location: str | None


def _claim_statement(*, with_hold: bool) -> Select[Any]:
    """SlotRepository.claim's statement (built once; bound per booking)."""
    open_or_mine = slot_is_open()
    if with_hold:
        open_or_mine = or_(open_or_mine, and_(
            slots.c.status == "busy-tentative",
            slots.c.hold_token == bindparam("hold_token", type_=UUID(as_uuid=False))))
    patient_may_book = (select(patients.c.id)
                        .where(patients.c.id == bindparam("patient_id", type_=UUID(as_uuid=False)),
                               patients.c.active, ~patients.c.deceased).exists())
    taken = (update(slots)
             .where(slots.c.id == any_(bindparam("slot_ids", type_=ARRAY(UUID(as_uuid=False)))),
                    open_or_mine, slots.c.bookable_from <= func.now(),
                    slots.c.start_at > func.now(), patient_may_book)
             .values(status="busy", hold_token=None, hold_expires_at=None,
                     version_id=slots.c.version_id + 1,
                     last_updated=bindparam("at", type_=DateTime(timezone=True)))
             .returning(*FACT_COLUMNS)
             .cte("taken"))
    return (select(taken, schedules.c.practitioner_display, schedules.c.location)
            .select_from(taken.outerjoin(schedules, schedules.c.id == taken.c.schedule_id)))


_CLAIM = _claim_statement(with_hold=False)
_CLAIM_HELD = _claim_statement(with_hold=True)


class SlotRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def add_generated(self, *, practice: str, schedule_id: str, practitioner_id: str,
                            session_id: str, session: Session,
                            generated: Sequence[GeneratedSlot], at: dt.datetime) -> int:
        """Insert the slots not there yet (a rota regenerated is a no-op); returns how many were new."""
        if not generated:
            return 0
        rows = [{
            "id": str(uuid.uuid4()), "practice_code": practice, "schedule_id": schedule_id,
            "session_id": session_id, "practitioner_id": practitioner_id, "start_at": slot.start,
            "end_at": slot.end, "status": "free", "slot_type": session.slot_type,
            "delivery_channel": session.delivery_channel,
            "national_category": session.national_category, "bookable_from": slot.bookable_from,
            "bookable_by": sorted(session.bookable_by), "version_id": 1, "last_updated": at,
        } for slot in generated]
        result = await self._conn.execute(
            insert(slots).values(rows)
            .on_conflict_do_nothing(constraint="uq_slots_schedule_start")
            .returning(slots.c.id))
        return len(result.all())

    async def get(self, slot_id: str) -> Any:
        return (await self._conn.execute(select(slots).where(slots.c.id == slot_id))).first()

    async def facts(self, slot_ids: Iterable[str]) -> list[SlotFacts]:
        rows = await self._conn.execute(select(*FACT_COLUMNS)
                                        .where(slots.c.id.in_(list(slot_ids))))
        return [_facts(r) for r in rows]

    async def claim(self, slot_ids: Sequence[str], *, patient_id: str, hold_token: str | None,
                    at: dt.datetime) -> list[ClaimedSlot]:
        """Make the slots busy for a booking, in one statement; returns the slots it changed.

        Only slots that are open (or held with `hold_token`), released and not yet started
        change, and only if the patient is in the projection, registered and alive. A
        concurrent claim of the same slot waits for the row lock, then finds it busy and
        changes nothing. Fewer slots than asked for means the booking cannot go ahead: the
        caller raises, and the transaction's rollback frees whatever was claimed.
        """
        rows = await self._conn.execute(
            _CLAIM_HELD if hold_token is not None else _CLAIM,
            {"slot_ids": list(slot_ids), "patient_id": patient_id, "hold_token": hold_token,
             "at": at})
        return [ClaimedSlot(_facts(r), r.practitioner_display, r.location) for r in rows]

    async def hold(self, slot_id: str, *, roles: Iterable[str], token: str,
                   expires_at: dt.datetime, at: dt.datetime) -> Any:
        """Hold an open, bookable slot for the caller; None if it cannot be held."""
        return (await self._conn.execute(
            update(slots)
            .where(slots.c.id == slot_id, slot_is_open(), slots.c.bookable_from <= func.now(),
                   slots.c.start_at > func.now(), slots.c.bookable_by.overlap(sorted(roles)))
            .values(status="busy-tentative", hold_token=token, hold_expires_at=expires_at,
                    version_id=slots.c.version_id + 1, last_updated=at)
            .returning(*slots.c))).first()

    async def set_status(self, slot_id: str, *, from_open: bool, to: str, comment: str | None,
                         at: dt.datetime) -> Any:
        """Block (open -> busy-unavailable) or unblock (busy-unavailable -> free)."""
        condition = slot_is_open() if from_open else slots.c.status == "busy-unavailable"
        return (await self._conn.execute(
            update(slots).where(slots.c.id == slot_id, condition)
            .values(status=to, comment=comment, hold_token=None, hold_expires_at=None,
                    version_id=slots.c.version_id + 1, last_updated=at)
            .returning(*slots.c))).first()

    async def release(self, slot_ids: Sequence[str], at: dt.datetime) -> None:
        """Free the booked slots of a cancelled appointment (only those still to come)."""
        await self._conn.execute(
            update(slots)
            .where(slots.c.id.in_(list(slot_ids)), slots.c.status == "busy",
                   slots.c.start_at > func.now())
            .values(status="free", version_id=slots.c.version_id + 1, last_updated=at))

    async def sweep_expired_holds(self) -> int:
        result = await self._conn.execute(
            update(slots)
            .where(slots.c.status == "busy-tentative", slots.c.hold_expires_at <= func.now())
            .values(status="free", hold_token=None, hold_expires_at=None,
                    version_id=slots.c.version_id + 1, last_updated=func.now())
            .returning(slots.c.id))
        return len(result.all())


@dataclass(frozen=True)
class StoredAppointment:
    id: str
    patient_id: str
    practitioner_id: str
    status: str
    start_at: dt.datetime
    slot_ids: list[str]
    slot_type: str
    national_category: str
    delivery_channel: str
    cancellation_reason: str | None
    version_id: int
    resource: dict[str, Any]
    practice: str  # whose appointment book it is in: its slots' practice


def _stored(row: Any) -> StoredAppointment:
    return StoredAppointment(row.id, row.patient_id, row.practitioner_id, row.status,
                             row.start_at, list(row.slot_ids), row.slot_type,
                             row.national_category, row.delivery_channel,
                             row.cancellation_reason, row.version_id, row.resource,
                             row.practice_code)


def _add_appointment_statement() -> Select[Any]:
    """AppointmentRepository.add's statement: the appointment, the slots it holds and its
    first version (the stored resource itself, sent once), built once."""
    uuids = ARRAY(UUID(as_uuid=False))
    created = (insert(appointments).values(
        id=bindparam("a_id", type_=UUID(as_uuid=False)),
        practice_code=bindparam("a_practice", type_=String),
        patient_id=bindparam("a_patient", type_=UUID(as_uuid=False)),
        practitioner_id=bindparam("a_practitioner", type_=UUID(as_uuid=False)),
        status="booked", start_at=bindparam("a_start", type_=DateTime(timezone=True)),
        end_at=bindparam("a_end", type_=DateTime(timezone=True)),
        slot_ids=bindparam("a_slot_ids", type_=uuids),
        slot_type=bindparam("a_slot_type", type_=String),
        national_category=bindparam("a_category", type_=String),
        delivery_channel=bindparam("a_channel", type_=String), version_id=1,
        last_updated=bindparam("a_at", type_=DateTime(timezone=True)),
        resource=bindparam("a_resource", type_=JSONB))
        .returning(appointments.c.id, appointments.c.practice_code, appointments.c.slot_ids,
                   appointments.c.last_updated, appointments.c.resource)
        .cte("created"))
    held = insert(appointment_slots).from_select(
        ["appointment_id", "slot_id", "practice_code", "active"],
        select(created.c.id, func.unnest(created.c.slot_ids), created.c.practice_code, true())
    ).cte("held")
    first_version = insert(appointment_versions).from_select(
        ["appointment_id", "version_id", "practice_code", "recorded_at", "recorded_by",
         "resource"],
        select(created.c.id, literal(1), created.c.practice_code, created.c.last_updated,
               bindparam("a_recorded_by", type_=Text), created.c.resource)
    ).cte("first_version")
    return select(created.c.id).add_cte(held, first_version)


_ADD_APPOINTMENT = _add_appointment_statement()


class AppointmentRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def add(self, *, appointment_id: str, practice: str, patient_id: str,
                  practitioner_id: str, start: dt.datetime, end: dt.datetime,
                  slot_ids: Sequence[str], slot_type: str, national_category: str,
                  delivery_channel: str, resource: dict[str, Any], at: dt.datetime,
                  recorded_by: str) -> None:
        """The appointment, the slots it holds and its first version, in one statement.

        A second active hold of a slot breaks the partial unique index on appointment_slots
        (the database's own guard behind `SlotRepository.claim`): SlotUnavailable. The
        statement has failed as a whole, and so has the transaction, which the caller rolls
        back by raising.
        """
        try:
            await self._conn.execute(_ADD_APPOINTMENT, {
                "a_id": appointment_id, "a_practice": practice, "a_patient": patient_id,
                "a_practitioner": practitioner_id, "a_start": start, "a_end": end,
                "a_slot_ids": list(slot_ids), "a_slot_type": slot_type,
                "a_category": national_category, "a_channel": delivery_channel,
                "a_at": at, "a_resource": resource, "a_recorded_by": recorded_by})
        except IntegrityError as exc:
            if "uq_appointment_slots_active_slot" in str(exc.orig):
                raise SlotUnavailable("The slot has already been booked") from None
            raise

    async def get(self, appointment_id: str, *, for_update: bool = False) -> StoredAppointment | None:
        query = select(appointments).where(appointments.c.id == appointment_id)
        if for_update:
            query = query.with_for_update()
        row = (await self._conn.execute(query)).first()
        return _stored(row) if row else None

    async def replace(self, current: StoredAppointment, *, status: str,
                      cancellation_reason: str | None, resource: dict[str, Any],
                      at: dt.datetime, recorded_by: str) -> None:
        """Write the next version (the caller holds the row lock from get(for_update=True)),
        in the appointment's own practice."""
        new_version = current.version_id + 1
        await self._conn.execute(
            update(appointments).where(appointments.c.id == current.id)
            .values(status=status, cancellation_reason=cancellation_reason, resource=resource,
                    version_id=new_version, last_updated=at))
        if status == "cancelled":
            await self._conn.execute(
                update(appointment_slots)
                .where(appointment_slots.c.appointment_id == current.id)
                .values(active=False))
        await self._add_version(current.id, current.practice, new_version, resource,
                                at, recorded_by)

    async def _add_version(self, appointment_id: str, practice: str, version_id: int,
                           resource: dict[str, Any], at: dt.datetime, recorded_by: str) -> None:
        await self._conn.execute(insert(appointment_versions).values(
            appointment_id=appointment_id, version_id=version_id, practice_code=practice,
            recorded_at=at, recorded_by=recorded_by, resource=resource))

    async def history(self, appointment_id: str) -> list[dict[str, Any]]:
        return list((await self._conn.execute(
            select(appointment_versions.c.resource)
            .where(appointment_versions.c.appointment_id == appointment_id)
            .order_by(appointment_versions.c.version_id.desc()))).scalars())

    async def version(self, appointment_id: str, version_id: int) -> dict[str, Any] | None:
        return await self._conn.scalar(
            select(appointment_versions.c.resource).where(
                appointment_versions.c.appointment_id == appointment_id,
                appointment_versions.c.version_id == version_id))

    async def search(self, criteria: list[ColumnElement[bool]], *, count: int,
                     offset: int) -> tuple[list[dict[str, Any]], int]:
        where = and_(true(), *criteria)
        rows = (await self._conn.execute(
            select(appointments.c.resource, func.count().over().label("total")).where(where)
            .order_by(appointments.c.start_at, appointments.c.id)
            .limit(count).offset(offset))).all()
        if rows or count == 0 or offset == 0:
            return [r.resource for r in rows], (rows[0].total if rows else 0)
        total = await self._conn.scalar(select(func.count()).select_from(appointments).where(where))
        return [], int(total or 0)

    async def future_booked_for_patient(self, patient_id: str) -> list[StoredAppointment]:
        rows = await self._conn.execute(
            select(appointments)
            .where(appointments.c.patient_id == patient_id, appointments.c.status == "booked",
                   appointments.c.start_at > func.now())
            .order_by(appointments.c.start_at)
            .with_for_update())
        return [_stored(row) for row in rows]


@dataclass(frozen=True)
class IdempotentAnswer:
    request_hash: str
    status_code: int | None
    response: dict[str, Any] | None


class IdempotencyRepository:
    """Keys of booking requests and the answers given, stored in the booking's own transaction."""

    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def claim(self, *, practice: str, key: str, request_hash: str) -> IdempotentAnswer | None:
        """Claim the key for this request; or, if it was used before, what was answered then.

        A concurrent request with the same key waits here until the first commits (then
        sees its answer) or rolls back (then claims the key itself).
        """
        claimed = (await self._conn.execute(
            insert(idempotency_keys)
            .values(practice_code=practice, idempotency_key=key, request_hash=request_hash)
            .on_conflict_do_nothing()
            .returning(idempotency_keys.c.idempotency_key))).first()
        if claimed is not None:
            return None
        row = (await self._conn.execute(
            select(idempotency_keys.c.request_hash, idempotency_keys.c.status_code,
                   idempotency_keys.c.response)
            .where(idempotency_keys.c.idempotency_key == key))).one()
        return IdempotentAnswer(row.request_hash, row.status_code, row.response)

    async def answer(self, *, key: str, status_code: int, response: dict[str, Any]) -> None:
        await self._conn.execute(
            update(idempotency_keys).where(idempotency_keys.c.idempotency_key == key)
            .values(status_code=status_code, response=response))


# ----- free-slot search -------------------------------------------------------------------------
class SlotRow(NamedTuple):
    """A free slot as the search reads it: what a Slot resource is made of, its instants
    already FHIR text and its status the effective one (adapters.fhir.slot_json)."""

    id: str
    schedule_id: str
    start: str
    end: str
    status: str
    slot_type: str
    delivery_channel: str
    national_category: str
    comment: str | None
    version_id: int
    last_updated: str


def _fhir_instant_sql(column: str) -> str:
    """`column` as FHIR instant text in SQL, exactly as adapters.fhir.instant writes it
    (UTC, 'Z', microseconds only when there are some): formatted by PostgreSQL, a page of
    slots costs no datetime objects in Python."""
    return (f"to_char({column} AT TIME ZONE 'UTC', CASE WHEN extract(microseconds FROM "
            f"{column})::bigint % 1000000 = 0 THEN 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"' "
            f"ELSE 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"' END)")


@dataclass(frozen=True)
class SlotPage:
    """A page of free slots in (start, id) order; `total` only when it was counted or is
    known anyway (the last page); `more` whether another page follows."""

    rows: list[SlotRow]
    total: int | None
    more: bool


@dataclass(frozen=True)
class SlotFilter:
    """One criterion of a free-slot search: a kind of column test, and its value."""

    kind: str
    value: Any


# Each kind of criterion as SQL over `slots`, `{}` its parameter's placeholder.
_SLOT_TESTS: dict[str, str] = {
    "start>=": "slots.start_at >= {}::timestamptz",
    "start>": "slots.start_at > {}::timestamptz",
    "start<=": "slots.start_at <= {}::timestamptz",
    "start<": "slots.start_at < {}::timestamptz",
    "schedule": "slots.schedule_id = ANY({}::uuid[])",
    "practitioner": "slots.practitioner_id = {}::uuid",
    "slot_type": "slots.slot_type = ANY({}::text[])",
    "delivery_channel": "slots.delivery_channel = ANY({}::text[])",
}
# "Open" as every other statement of this module has it (slot_is_open), as SQL text.
_OPEN_SQL = str(slot_is_open().compile(dialect=postgresql.dialect(),
                                       compile_kwargs={"literal_binds": True}))
_SLOT_COLUMNS = ("id, schedule_id, start_at, end_at, slot_type, delivery_channel, "
                 "national_category, comment, version_id, last_updated")


@functools.lru_cache(maxsize=256)
def _slot_search(kinds: tuple[str, ...], *, counted: bool) -> str:
    """The free-slot search's SQL for one combination of criteria, built once. Parameters:
    $1 the caller's roles, $2 the rows wanted, $3 the offset, then one per criterion.

    The page walks the practices whose book the caller may see (its own, and those an
    agreement opens) one at a time, each off the open-slot index in (start, id) order and
    stopping after the rows the page can use, then merges them. A single scan with
    `practice_code = ANY (...)`, as row-level security has it, cannot come out of the
    index in start order, so it would read and sort the whole window for every page.
    Row-level security still applies to every row read.

    `counted` puts the number of matches first on every row, counted in the same statement
    (so in the same snapshot as the page); with an empty page it comes back on a row of
    its own whose slot columns are NULL.
    """
    bookable = " AND ".join((
        f"({_OPEN_SQL})", "slots.bookable_from <= now()", "slots.start_at > now()",
        "slots.bookable_by && $1::text[]",
        *(_SLOT_TESTS[kind].format(f"${i + 4}") for i, kind in enumerate(kinds))))
    visible = visible_practices_sql([SCOPE_BOOK])
    page = (
        "SELECT page.id::text AS id, page.schedule_id::text, "
        f"{_fhir_instant_sql('page.start_at')}, {_fhir_instant_sql('page.end_at')}, "
        # Every slot found is open: free, or held by a hold that has run out (so free).
        "'free', page.slot_type, page.delivery_channel, page.national_category, "
        f"page.comment, page.version_id, {_fhir_instant_sql('page.last_updated')}, "
        "page.start_at AS start_at "
        f"FROM (SELECT DISTINCT practice_code FROM ({visible}) AS v(practice_code)) AS book "
        f"CROSS JOIN LATERAL (SELECT {_SLOT_COLUMNS} FROM slots "
        f"WHERE slots.practice_code = book.practice_code AND {bookable} "
        "ORDER BY slots.start_at, slots.id LIMIT $2::int + $3::int) AS page "
        "ORDER BY page.start_at, page.id LIMIT $2::int OFFSET $3::int")
    if not counted:
        return page
    return (f"SELECT matches.total, found.* FROM (SELECT count(*) AS total FROM slots "
            f"WHERE {bookable}) AS matches LEFT JOIN LATERAL ({page}) AS found ON true "
            "ORDER BY found.start_at, found.id::uuid")


class FreeSlotSearch:
    """The free-slot search, on the driver connection: it is the appointment book's hottest
    read, and a page is 100 rows that SQLAlchemy's result rows would only slow down."""

    def __init__(self, raw: asyncpg.Connection) -> None:
        self._raw = raw

    async def page(self, criteria: Sequence[SlotFilter], *, roles: Iterable[str], count: int,
                   offset: int, counted: bool) -> SlotPage:
        """Bookable slots only: open, released, not started, and bookable by one of `roles`.

        One row more than the page is read, to know whether a next page exists. The total
        is counted only when `counted`; otherwise it is given only where the page itself
        shows it: on the last page.
        """
        query = _slot_search(tuple(f.kind for f in criteria), counted=counted)
        records = await self._raw.fetch(query, sorted(roles), count + 1, offset,
                                        *(f.value for f in criteria))
        total: int | None = None
        if counted:
            total = records[0][0]
            records = [r[1:] for r in records if r[1] is not None]
        rows = [SlotRow(*record[:11]) for record in records[:count]]
        more = len(records) > count
        if total is None and not more and (rows or offset == 0):
            total = offset + len(rows)
        return SlotPage(rows, total, more)


def slot_start(operator: str, value: dt.datetime) -> SlotFilter:
    if f"start{operator}" not in _SLOT_TESTS:
        raise ValueError(f"no slot start test {operator!r}")
    return SlotFilter(f"start{operator}", value)


def slot_schedule(schedule_ids: list[str]) -> SlotFilter:
    return SlotFilter("schedule", list(schedule_ids))


def slot_practitioner(practitioner_id: str) -> SlotFilter:
    return SlotFilter("practitioner", practitioner_id)


def slot_type_is(codes: list[str]) -> SlotFilter:
    return SlotFilter("slot_type", list(codes))


def slot_delivery_channel(codes: list[str]) -> SlotFilter:
    return SlotFilter("delivery_channel", list(codes))


def appointment_patient(patient_id: str) -> ColumnElement[bool]:
    return appointments.c.patient_id == patient_id


def appointment_practitioner(practitioner_id: str) -> ColumnElement[bool]:
    return appointments.c.practitioner_id == practitioner_id


def appointment_start(operator: str, value: dt.datetime) -> ColumnElement[bool]:
    return appointments.c.start_at.op(operator)(value)


def appointment_status(statuses: list[str]) -> ColumnElement[bool]:
    return appointments.c.status.in_(statuses)
