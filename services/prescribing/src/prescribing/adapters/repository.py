"""Reads and writes of the prescribing tables with SQLAlchemy Core (no ORM on hot paths).

Tenant tables are read inside a unit of work whose transaction has the caller's
practice set, so row-level security filters each statement; the repositories never
add a practice filter of their own to decide what a caller may see. The formulary,
the knowledge base and the EPS outbox are shared tables (see tables.py).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, case, func, insert, literal, literal_column, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from ..domain.eps import PatientDetails
from ..domain.formulary import Product, normalise_name
from ..domain.prescription import CURRENT_PLAN_STATUSES, ORDER, PLAN, Course, PlanState
from ..domain.safety import CurrentMedication, RecordedAllergy
from .tables import (
    eps_outbox,
    eps_prescription_sequence,
    medication_request_versions,
    medication_requests,
    medications,
    patient_allergies,
    patients,
    safety_overrides,
)

# Typo tolerance of name search: pg_trgm word similarity of the typed term to the name.
NAME_SIMILARITY_THRESHOLD = "0.45"


def _product(row: Any) -> Product:
    return Product(
        dmd_id=row.dmd_id, concept_class=row.concept_class, name=row.name, vtm_id=row.vtm_id,
        vmp_id=row.vmp_id, form=row.form, route=row.route, strength=row.strength,
        strength_value=row.strength_value, strength_unit=row.strength_unit,
        unit_dose_form=row.unit_dose_form, cd_schedule=row.cd_schedule,
        cd_category=row.cd_category, available=row.available, availability=row.availability,
        supplier=row.supplier, invalid=row.invalid, release=row.release,
        imported_at=row.updated_at)


class FormularyRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def get(self, dmd_id: str) -> Product | None:
        row = (await self._conn.execute(select(medications)
                                        .where(medications.c.dmd_id == dmd_id))).first()
        return _product(row) if row is not None else None

    async def search(self, *, name: str | None, codes: list[str], count: int,
                     offset: int) -> tuple[list[Product], int]:
        criteria = []
        order: list[Any] = []
        if codes:
            criteria.append(medications.c.dmd_id.in_(codes))
        if name:
            term = normalise_name(name)
            await self._conn.execute(text(
                "SELECT set_config('pg_trgm.word_similarity_threshold', :t, true)"),
                {"t": NAME_SIMILARITY_THRESHOLD})
            prefix = or_(medications.c.name_normalised.startswith(term, autoescape=True),
                         medications.c.name_normalised.contains(" " + term, autoescape=True))
            criteria.append(or_(prefix, literal(term).op("<%")(medications.c.name_normalised)))
            order = [case((prefix, 0), else_=1),
                     func.word_similarity(term, medications.c.name_normalised).desc()]
        query = (select(medications, func.count().over().label("total"))
                 .where(and_(*criteria) if criteria else literal_column("true"))
                 .order_by(*order, medications.c.concept_class.desc(), medications.c.name)
                 .limit(count).offset(offset))
        rows = (await self._conn.execute(query)).all()
        if not rows and offset:
            total = await self._conn.scalar(
                select(func.count()).select_from(medications)
                .where(and_(*criteria) if criteria else literal_column("true")))
            return [], int(total or 0)
        return [_product(r) for r in rows], (rows[0].total if rows else 0)


class PatientProjection:
    """Patients as patient-index's events describe them: who may be prescribed for."""

    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def apply(self, patient: dict[str, Any], version_id: int, practice: str) -> bool:
        """Insert or update to `version_id`; an older or repeated version changes nothing."""
        birth = patient.get("birthDate")
        values = {
            "id": patient["id"], "practice_code": practice, "nhs_number": patient.get("nhsNumber"),
            "family": patient.get("family") or "", "given": patient.get("given") or "",
            "birth_date": dt.date.fromisoformat(birth) if birth else None,
            "gender": patient.get("gender"), "active": bool(patient.get("active", True)),
            "deceased": bool(patient.get("deceased", False)), "version_id": version_id,
        }
        statement = pg_insert(patients).values(**values)
        result = await self._conn.execute(statement.on_conflict_do_update(
            index_elements=[patients.c.id],
            set_={k: statement.excluded[k] for k in values if k != "id"}
            | {"updated_at": func.now()},
            where=patients.c.version_id < statement.excluded.version_id))
        return result.rowcount == 1

    async def get(self, patient_id: str) -> tuple[PatientDetails, bool, bool] | None:
        """(details, active, deceased) of a patient of the caller's practice."""
        row = (await self._conn.execute(select(patients)
                                        .where(patients.c.id == patient_id))).first()
        if row is None:
            return None
        details = PatientDetails(row.id, row.nhs_number, row.family, row.given,
                                 row.birth_date.isoformat() if row.birth_date else None,
                                 row.gender)
        return details, row.active, row.deceased


class AllergyProjection:
    """Allergies as clinical-notes' events describe them, for the allergy check."""

    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def apply(self, *, allergy_id: str, practice: str, patient_id: str, code: str | None,
                    display: str, clinical_status: str | None, verification_status: str | None,
                    no_known_allergies: bool, version_id: int) -> bool:
        values = {"id": allergy_id, "practice_code": practice, "patient_id": patient_id,
                  "code": code, "display": display, "clinical_status": clinical_status,
                  "verification_status": verification_status,
                  "no_known_allergies": no_known_allergies, "version_id": version_id}
        statement = pg_insert(patient_allergies).values(**values)
        result = await self._conn.execute(statement.on_conflict_do_update(
            index_elements=[patient_allergies.c.id],
            set_={k: statement.excluded[k] for k in values if k != "id"}
            | {"updated_at": func.now()},
            where=patient_allergies.c.version_id < statement.excluded.version_id))
        return result.rowcount == 1

    async def mark_entered_in_error(self, allergy_id: str) -> bool:
        result = await self._conn.execute(
            update(patient_allergies).where(patient_allergies.c.id == allergy_id)
            .values(verification_status="entered-in-error", updated_at=func.now()))
        return result.rowcount == 1

    async def relevant_to(self, patient_id: str) -> list[RecordedAllergy]:
        """Allergies that count: active, not refuted or entered in error, not 'no known allergies'."""
        rows = await self._conn.execute(
            select(patient_allergies.c.id, patient_allergies.c.code, patient_allergies.c.display)
            .where(patient_allergies.c.patient_id == patient_id,
                   patient_allergies.c.no_known_allergies.is_(False),
                   or_(patient_allergies.c.clinical_status.is_(None),
                       patient_allergies.c.clinical_status == "active"),
                   or_(patient_allergies.c.verification_status.is_(None),
                       patient_allergies.c.verification_status.notin_(
                           ("refuted", "entered-in-error"))))
            .order_by(patient_allergies.c.id))
        return [RecordedAllergy(r.id, r.code or "", r.display) for r in rows]


@dataclass(frozen=True)
class StoredRequest:
    id: str
    patient_id: str
    intent: str
    status: str
    course: Course
    medication_code: str
    substance_id: str
    based_on: str | None
    issue_number: int | None
    authorised_issues: int | None
    issues_made: int
    review_date: dt.date | None
    prescriber_id: str
    version_id: int
    resource: dict[str, Any]

    def plan_state(self) -> PlanState:
        return PlanState(self.id, self.status, self.course, self.authorised_issues or 0,
                         self.issues_made, self.review_date)


_REQUEST_COLUMNS = [medication_requests.c[name] for name in (
    "id", "patient_id", "intent", "status", "course", "medication_code", "substance_id",
    "based_on", "issue_number", "authorised_issues", "issues_made", "review_date",
    "prescriber_id", "version_id", "resource")]


def _stored(row: Any) -> StoredRequest:
    return StoredRequest(row.id, row.patient_id, row.intent, row.status, Course(row.course),
                         row.medication_code, row.substance_id, row.based_on, row.issue_number,
                         row.authorised_issues, row.issues_made, row.review_date,
                         row.prescriber_id, row.version_id, row.resource)


class MedicationRequestRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def add(self, *, practice: str, columns: dict[str, Any], resource: dict[str, Any],
                  recorded_at: dt.datetime, recorded_by: str) -> None:
        await self._conn.execute(insert(medication_requests).values(
            practice_code=practice, version_id=1, last_updated=recorded_at, resource=resource,
            **columns))
        await self._add_version(resource["id"], practice, 1, resource, recorded_at, recorded_by)

    async def replace(self, current: StoredRequest, *, practice: str, changes: dict[str, Any],
                      resource: dict[str, Any], recorded_at: dt.datetime,
                      recorded_by: str) -> None:
        new_version = current.version_id + 1
        result = await self._conn.execute(
            update(medication_requests)
            .where(medication_requests.c.id == current.id,
                   medication_requests.c.version_id == current.version_id)
            .values(version_id=new_version, last_updated=recorded_at, resource=resource,
                    **changes))
        if result.rowcount != 1:  # pragma: no cover - callers hold the row lock
            raise RuntimeError("medication request changed under a row lock")
        await self._add_version(current.id, practice, new_version, resource, recorded_at,
                                recorded_by)

    async def _add_version(self, request_id: str, practice: str, version_id: int,
                           resource: dict[str, Any], recorded_at: dt.datetime,
                           recorded_by: str) -> None:
        await self._conn.execute(insert(medication_request_versions).values(
            request_id=request_id, version_id=version_id, practice_code=practice,
            recorded_at=recorded_at, recorded_by=recorded_by, resource=resource))

    async def get(self, request_id: str, *, for_update: bool = False) -> StoredRequest | None:
        query = select(*_REQUEST_COLUMNS).where(medication_requests.c.id == request_id)
        if for_update:
            query = query.with_for_update()
        row = (await self._conn.execute(query)).first()
        return _stored(row) if row is not None else None

    async def history(self, request_id: str) -> list[dict[str, Any]]:
        rows = await self._conn.execute(
            select(medication_request_versions.c.resource)
            .where(medication_request_versions.c.request_id == request_id)
            .order_by(medication_request_versions.c.version_id.desc()))
        return [r.resource for r in rows]

    async def version(self, request_id: str, version_id: int) -> dict[str, Any] | None:
        return await self._conn.scalar(
            select(medication_request_versions.c.resource).where(
                medication_request_versions.c.request_id == request_id,
                medication_request_versions.c.version_id == version_id))

    async def search(self, criteria: list[Any], *, count: int,
                     offset: int) -> tuple[list[dict[str, Any]], int]:
        where = and_(*criteria) if criteria else literal_column("true")
        rows = (await self._conn.execute(
            select(medication_requests.c.resource, func.count().over().label("total"))
            .where(where)
            .order_by(medication_requests.c.authored_on.desc(), medication_requests.c.id)
            .limit(count).offset(offset))).all()
        if not rows and offset:
            total = await self._conn.scalar(select(func.count()).select_from(medication_requests)
                                            .where(where))
            return [], int(total or 0)
        return [r.resource for r in rows], (rows[0].total if rows else 0)

    async def current_medications(self, patient_id: str, *, now: dt.datetime,
                                  excluding_plan: str | None = None) -> list[CurrentMedication]:
        """What the patient is taking: current authorisations, and issues still being taken.

        `excluding_plan` leaves out a plan and its issues (the plan being issued or re-authorised),
        which would otherwise be reported as a duplicate of itself.
        """
        c = medication_requests.c
        query = (select(c.id, c.substance_id, c.resource["medicationCodeableConcept"]["coding"][0]
                        ["display"].astext.label("name"))
                 .where(c.patient_id == patient_id,
                        or_(and_(c.intent == PLAN, c.status.in_(sorted(CURRENT_PLAN_STATUSES))),
                            and_(c.intent == ORDER, c.status.in_(("active", "completed")),
                                 c.supply_until >= now))))
        if excluding_plan is not None:
            query = query.where(c.id != excluding_plan,
                                or_(c.based_on.is_(None), c.based_on != excluding_plan))
        rows = await self._conn.execute(query.order_by(c.id))
        return [CurrentMedication(r.id, r.substance_id, r.name or "") for r in rows]

    async def current_plans(self, patient_id: str) -> list[StoredRequest]:
        rows = await self._conn.execute(
            select(*_REQUEST_COLUMNS)
            .where(medication_requests.c.patient_id == patient_id,
                   medication_requests.c.intent == PLAN,
                   medication_requests.c.status.in_(sorted(CURRENT_PLAN_STATUSES)))
            .order_by(medication_requests.c.id).with_for_update())
        return [_stored(r) for r in rows]

    async def waiting_requests(self, patient_id: str) -> list[StoredRequest]:
        """Repeat requests (draft orders) still waiting for a prescriber."""
        rows = await self._conn.execute(
            select(*_REQUEST_COLUMNS)
            .where(medication_requests.c.patient_id == patient_id,
                   medication_requests.c.intent == ORDER,
                   medication_requests.c.status == "draft")
            .order_by(medication_requests.c.id).with_for_update())
        return [_stored(r) for r in rows]


class OverrideRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def add(self, **values: Any) -> None:
        await self._conn.execute(insert(safety_overrides).values(**values))

    async def overridden_keys(self, plan_id: str) -> frozenset[str]:
        rows = await self._conn.execute(select(safety_overrides.c.findings)
                                        .where(safety_overrides.c.plan_id == plan_id))
        return frozenset(f["key"] for r in rows for f in r.findings)


class EpsOutbox:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def next_sequence(self) -> int:
        return int(await self._conn.scalar(select(eps_prescription_sequence.next_value())))

    async def add(self, *, message_id: str, practice: str, request_id: str,
                  prescription_id: str, message: dict[str, Any]) -> None:
        await self._conn.execute(insert(eps_outbox).values(
            id=message_id, practice_code=practice, request_id=request_id,
            prescription_id=prescription_id, message=message, status="pending"))

    async def withdraw(self, request_id: str, practice: str) -> str | None:
        """Withdraw a message not yet sent; returns the status it was in (None if there is none)."""
        row = (await self._conn.execute(
            select(eps_outbox.c.status)
            .where(eps_outbox.c.request_id == request_id, eps_outbox.c.practice_code == practice)
            .with_for_update())).first()
        if row is None:
            return None
        if row.status == "pending":
            await self._conn.execute(update(eps_outbox)
                                     .where(eps_outbox.c.request_id == request_id)
                                     .values(status="withdrawn"))
        return row.status

    async def claim_pending(self, limit: int) -> list[Any]:
        """Pending messages, locked so that concurrent transports never send one twice."""
        return list(await self._conn.execute(
            select(eps_outbox.c.id, eps_outbox.c.prescription_id, eps_outbox.c.message)
            .where(eps_outbox.c.status == "pending")
            .order_by(eps_outbox.c.created_at).limit(limit)
            .with_for_update(skip_locked=True)))

    async def mark_sent(self, message_id: str, response: dict[str, Any],
                        at: dt.datetime) -> None:
        await self._conn.execute(update(eps_outbox).where(eps_outbox.c.id == message_id)
                                 .values(status="sent", sent_at=at, spine_response=response))
