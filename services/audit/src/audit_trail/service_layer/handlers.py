"""Use cases of the audit store, one function each, on a unit of work.

Handlers never commit. Storing an event emits nothing (so the store can never feed
itself); reading the trail is an access like any other and is audited through the
outbox, and those events come back here to be stored in their turn.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from collections.abc import Sequence
from typing import Any

from gpsoc_kit import audit
from gpsoc_kit.auth import Permission, Principal
from gpsoc_kit.errors import InvalidSearch, NotFound, Problem
from gpsoc_kit.events import CloudEvent
from gpsoc_kit.search import SearchRequest, parse_datetime_param, parse_reference
from gpsoc_kit.uow import UnitOfWork

from ..adapters.fhir import audit_event_resource
from ..adapters.repository import AuditCriteria, AuditRecordRepository, PatientPracticeRepository
from ..domain import chain
from ..domain.entry import ACTIONS, OUTCOMES, entry_from_event
from ..domain.errors import AccessDenied, UnreadableAuditEvent

SOURCE = "urn:opengpsoc:audit"
AUDIT_SEARCH_PARAMETERS = ("patient", "agent", "date", "action", "outcome")


async def store_audit_event(uow: UnitOfWork, event: CloudEvent) -> chain.AuditRecord:
    """Append one audit event to the chain (the consumer's inbox makes a redelivery a no-op).

    An access to a patient held by another practice (a sharing agreement, break-glass) is
    also appended to that practice's trail as a disclosure record, the same AuditEvent
    under its own chain link, so "who viewed this patient's record" is still one query
    for the holding practice's privacy officer.
    """
    entry = entry_from_event(event_id=event.id, source=event.source, practice=event.practice,
                             audit_event=event.data)
    records = AuditRecordRepository(uow.conn)
    head = await records.lock_head()
    now = dt.datetime.now(dt.UTC)
    record = chain.append(head, entry, record_id=str(uuid.uuid4()), stored_at=now)
    await records.append(record)
    holders = await PatientPracticeRepository(uow.conn).holding(entry.patient_ids)
    others = sorted(holders - {entry.practice_code})
    previous = record
    for holder in others:
        await uow.switch_practice(holder)
        disclosure = dataclasses.replace(entry, practice_code=holder,
                                         event_id=f"{entry.event_id}:disclosed-to:{holder}")
        previous = chain.append(chain.ChainHead(previous.seq, previous.hash), disclosure,
                                record_id=str(uuid.uuid4()), stored_at=now)
        await records.append(previous)
    if others:
        await uow.switch_practice(entry.practice_code)
    return record


async def record_patient_practice(uow: UnitOfWork, event: CloudEvent) -> None:
    """A patient event says which practice holds the patient."""
    patient = event.data.get("patient")
    patient_id = patient.get("id") if isinstance(patient, dict) else None
    if not isinstance(patient_id, str) or not patient_id:
        raise UnreadableAuditEvent("patient event without a patient id")
    await PatientPracticeRepository(uow.conn).record(patient_id, event.practice)


async def search_audit_events(
    uow: UnitOfWork, principal: Principal, search: SearchRequest
) -> tuple[list[dict[str, Any]], int]:
    criteria = audit_criteria(search)
    records, total = await AuditRecordRepository(uow.conn).search(
        principal.practice, criteria, limit=search.count, offset=search.offset)
    _audit(uow, principal, "search",
           resource_ids=[r.id for r in records],
           patient_ids=[criteria.patient_id] if criteria.patient_id else [],
           query="&".join(f"{k}={v}" for k, v in search.filters))
    return [audit_event_resource(r) for r in records], total


async def read_audit_event(uow: UnitOfWork, principal: Principal, record_id: str) -> dict[str, Any]:
    if not _is_uuid(record_id):
        raise NotFound(f"AuditEvent/{record_id}")
    record = await AuditRecordRepository(uow.conn).get(principal.practice, record_id)
    if record is None:
        raise NotFound(f"AuditEvent/{record_id}")
    _audit(uow, principal, "read", resource_ids=[record.id], patient_ids=record.entry.patient_ids)
    return audit_event_resource(record)


def authorise_reader(uow: UnitOfWork, principal: Principal, interaction: str, *,
                     resource_ids: Sequence[str] = (), query: str | None = None) -> None:
    """Only READ_AUDIT may read the trail; a refused attempt is itself audited (outcome 4)."""
    if principal.can(Permission.READ_AUDIT):
        return
    raise AccessDenied(f"Your role does not permit {Permission.READ_AUDIT.value}")


def audit_criteria(search: SearchRequest) -> AuditCriteria:
    patient = _single(search, "patient")
    agent = _single(search, "agent")
    return AuditCriteria(
        patient_id=parse_reference(patient, "Patient") if patient else None,
        agent_id=parse_reference(agent, "Practitioner") if agent else None,
        actions=_codes(search, "action", ACTIONS),
        outcomes=_codes(search, "outcome", OUTCOMES),
        recorded=tuple(bound for value in search.values("date") for bound in _recorded_bounds(value)),
    )


def _single(search: SearchRequest, name: str) -> str | None:
    values = search.values(name)
    if len(values) > 1:
        raise InvalidSearch([Problem(f"Give {name} once", name)])
    return values[0] if values else None


def _recorded_bounds(value: str) -> list[tuple[str, dt.datetime]]:
    """`date` compared with AuditEvent.recorded. A bare date is the whole day, as FHIR
    reads it: date=2026-11-20 is that day, le2026-11-20 includes it, gt2026-11-20 starts after."""
    bound = parse_datetime_param("date", value)
    bare_date = len(value.removeprefix(bound.prefix)) == 10
    if not bare_date:
        return [(bound.sql_operator(), bound.value)]
    day_start, next_day = bound.value, bound.value + dt.timedelta(days=1)
    return {
        "eq": [(">=", day_start), ("<", next_day)],
        "ge": [(">=", day_start)],
        "gt": [(">=", next_day)],
        "le": [("<", next_day)],
        "lt": [("<", day_start)],
    }[bound.prefix]


def _codes(search: SearchRequest, name: str, allowed: frozenset[str]) -> tuple[str, ...]:
    """A token parameter; commas mean "any of" (action=C,U)."""
    codes = tuple(code for value in search.values(name) for code in value.split(","))
    unknown = sorted(set(codes) - allowed)
    if unknown:
        raise InvalidSearch([Problem(f"{name} must be one of {', '.join(sorted(allowed))}; "
                                     f"got {', '.join(unknown)}", name)])
    return codes


def _audit(uow: UnitOfWork, principal: Principal, interaction: str, *,
           resource_ids: Sequence[str] = (), patient_ids: Sequence[str] = (),
           query: str | None = None, outcome: str = "0") -> None:
    audit.record(uow, principal=principal, interaction=interaction, resource_type="AuditEvent",
                 resource_ids=resource_ids, patient_ids=patient_ids, query=query,
                 outcome=outcome, source=SOURCE)


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True
