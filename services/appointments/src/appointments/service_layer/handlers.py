"""Use cases of the appointments service, one function each, on a unit of work.

Handlers never commit: the entry point that opened the unit of work commits it, so a
booking's slot change, its appointment, its event, its audit record and its
idempotent answer stand or fall together.
"""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import uuid
from dataclasses import dataclass
from typing import Any, NoReturn

import orjson
from gpsoc_kit import audit
from gpsoc_kit.auth import Principal
from gpsoc_kit.errors import InvalidResource, InvalidSearch, NotFound, Problem, VersionConflict
from gpsoc_kit.search import SearchRequest, parse_datetime_param, parse_reference, parse_token
from gpsoc_kit.uow import UnitOfWork

from ..adapters import repository as repo
from ..adapters.fhir import (
    delivery_channel_extension,
    instant,
    meta,
    schedule_resource,
    service_categories,
    slot_json,
    slot_resource,
    slot_type_concept,
)
from ..domain import appointment as appt
from ..domain import rota
from ..domain.errors import (
    BookingNotPermitted,
    IdempotencyKeyReused,
    SlotUnavailable,
    UnprocessableSearch,
)
from ..events import APPOINTMENT_TOPIC

SOURCE = "urn:opengpsoc:appointments"
SLOT_SEARCH_PARAMETERS = ("start", "status", "schedule", "schedule.actor", "service-type",
                          "delivery-channel", "_include", "_include:recurse")
APPOINTMENT_SEARCH_PARAMETERS = ("patient", "practitioner", "date", "status")
SCHEDULE_SEARCH_PARAMETERS = ("actor",)
INCLUDE_SCHEDULE = "Slot:schedule"
INCLUDE_PRACTITIONER = "Schedule:actor:Practitioner"
ATTENDER = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                        "code": "ATND", "display": "attender"}]}


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _audit(uow: UnitOfWork, principal: Principal, interaction: str, resource_type: str, *,
           patient_ids: list[str] | tuple[str, ...] = (),
           resource_ids: list[str] | tuple[str, ...] = (), query: str | None = None) -> None:
    audit.record(uow, principal=principal, interaction=interaction, resource_type=resource_type,
                 patient_ids=patient_ids, resource_ids=resource_ids, query=query, source=SOURCE)


def system_principal(practice: str, user_id: str, name: str) -> Principal:
    return Principal(user_id=user_id, practice=practice, roles=frozenset({"system"}), name=name)


# ----- staff and rota ---------------------------------------------------------------------------
async def add_staff(uow: UnitOfWork, resource: dict[str, Any], *, role: str,
                    display: str) -> bool:
    """Add or refresh a member of staff in the local projection (demo seeding, onboarding)."""
    await repo.PracticeRegistry(uow.conn).add(uow.practice)
    return await repo.StaffRepository(uow.conn).upsert(
        staff_id=resource["id"], practice=uow.practice, role=role, display=display,
        resource=resource, at=_now())


async def create_schedule(uow: UnitOfWork, resource: dict[str, Any], *, window_days: int,
                          schedule_id: str | None = None) -> dict[str, Any]:
    """A Schedule for one clinician at one location: actor = [Practitioner, location].

    The location actor needs a display and may reference a Location (kept as given);
    specialty and a client's planningHorizon are kept as given too (UK Core must-support).
    Without a planningHorizon the schedule's is the rolling window slots are generated over.
    """
    if resource.get("resourceType") != "Schedule":
        raise InvalidResource([Problem("resourceType must be Schedule", "Schedule.resourceType")])
    actors = resource.get("actor") if isinstance(resource.get("actor"), list) else []
    practitioner_ids = [ref.split("/", 1)[1] for ref in
                        (a.get("reference", "") for a in actors if isinstance(a, dict))
                        if isinstance(ref, str) and ref.startswith("Practitioner/")]
    location_actor = next((a for a in actors if isinstance(a, dict)
                           and not str(a.get("reference", "")).startswith("Practitioner/")
                           and isinstance(a.get("display"), str)), None)
    location = location_actor.get("display") if location_actor else None
    location_reference = location_actor.get("reference") if location_actor else None
    problems = []
    if len(practitioner_ids) != 1 or not appt.is_uuid(practitioner_ids[0]):
        problems.append(Problem("A schedule has exactly one Practitioner actor", "Schedule.actor"))
    if not location:
        problems.append(Problem("A schedule needs a location actor with a display",
                                "Schedule.actor"))
    elif location_reference is not None and not (
            isinstance(location_reference, str) and location_reference.startswith("Location/")
            and len(location_reference) > len("Location/")):
        problems.append(Problem("The location actor's reference must be Location/<id>",
                                "Schedule.actor"))
    specialty = resource.get("specialty")
    if specialty is not None and not (isinstance(specialty, list) and specialty
                                      and all(isinstance(c, dict) for c in specialty)):
        problems.append(Problem("specialty must be a list of CodeableConcepts",
                                "Schedule.specialty"))
    horizon = resource.get("planningHorizon")
    if horizon is not None:
        problems += _horizon_problems(horizon)
    member = None
    if not problems:
        member = await repo.StaffRepository(uow.conn).get(practitioner_ids[0])
        if member is None:
            problems.append(Problem("The Practitioner is not a member of this practice's staff",
                                    "Schedule.actor"))
    comment = resource.get("comment") if isinstance(resource.get("comment"), str) else None
    if problems:
        raise InvalidResource(problems)
    schedule_id = schedule_id or str(uuid.uuid4())
    await repo.PracticeRegistry(uow.conn).add(uow.practice)
    schedules = repo.ScheduleRepository(uow.conn)
    await schedules.add(schedule_id=schedule_id, practice=uow.practice,
                        practitioner_id=practitioner_ids[0], practitioner_display=member.display,
                        location=location, comment=comment, at=_now(),
                        location_reference=location_reference, specialty=specialty,
                        planning_horizon=horizon)
    return _schedule(await schedules.get(schedule_id), window_days)


def _horizon_problems(horizon: Any) -> list[Problem]:
    """A planningHorizon is a Period: start and/or end dateTimes, start not after end."""
    where = "Schedule.planningHorizon"
    if not isinstance(horizon, dict) or not (set(horizon) & {"start", "end"}) \
            or set(horizon) - {"start", "end", "id", "extension"}:
        return [Problem("planningHorizon must be a Period with a start and/or an end", where)]
    bounds = {}
    for key in ("start", "end"):
        if key in horizon:
            try:
                value = dt.datetime.fromisoformat(str(horizon[key]).replace("Z", "+00:00"))
            except ValueError:
                return [Problem(f"planningHorizon.{key} must be a FHIR dateTime", f"{where}.{key}")]
            bounds[key] = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    if len(bounds) == 2 and bounds["start"] > bounds["end"]:
        return [Problem("planningHorizon.start must not be after its end", where)]
    return []


def _schedule(row: Any, window_days: int) -> dict[str, Any]:
    today = rota.local_today(_now())
    return schedule_resource(row, horizon_start=today,
                             horizon_end=today + dt.timedelta(days=window_days))


async def read_schedule(uow: UnitOfWork, schedule_id: str, *, window_days: int) -> dict[str, Any]:
    row = await repo.ScheduleRepository(uow.conn).get(schedule_id) if appt.is_uuid(schedule_id) \
        else None
    if row is None:
        raise NotFound(f"Schedule/{schedule_id}")
    return _schedule(row, window_days)


async def search_schedules(uow: UnitOfWork, search: SearchRequest, *,
                           window_days: int) -> tuple[list[dict[str, Any]], int]:
    practitioner_id = None
    if (actor := search.first("actor")) is not None:
        practitioner_id = _reference(actor, "Practitioner", "actor")
    rows, total = await repo.ScheduleRepository(uow.conn).search(
        practitioner_id=practitioner_id, count=search.count, offset=search.offset)
    return [_schedule(row, window_days) for row in rows], total


async def add_session(uow: UnitOfWork, schedule_id: str, parameters: dict[str, Any], *,
                      window_days: int, session_id: str | None = None) -> dict[str, Any]:
    """Add a rota session to a schedule and generate its slots over the rolling window."""
    schedule = await repo.ScheduleRepository(uow.conn).get(schedule_id) \
        if appt.is_uuid(schedule_id) else None
    if schedule is None:
        raise NotFound(f"Schedule/{schedule_id}")
    values = _parameter_values(parameters)
    today = rota.local_today(_now())
    session = rota.new_session(
        weekdays=[str(v) for v in values.get("weekday", [])],
        start=_single(values, "start"), end=_single(values, "end"),
        slot_minutes=_single(values, "slotMinutes"), slot_type=_single(values, "slotType"),
        delivery_channel=_single(values, "deliveryChannel"),
        national_category=_single(values, "nationalCategory"),
        release_hours=_single(values, "releaseHours"),
        bookable_by=[str(v) for v in values.get("bookableBy", [])],
        effective_from=_date(_single(values, "effectiveFrom"), "effectiveFrom") or today,
        effective_to=_date(_single(values, "effectiveTo"), "effectiveTo"),
    )
    session_id = session_id or str(uuid.uuid4())
    await repo.SessionRepository(uow.conn).add(session_id=session_id, practice=uow.practice,
                                               schedule_id=schedule_id, session=session)
    generated = await repo.SlotRepository(uow.conn).add_generated(
        practice=uow.practice, schedule_id=schedule_id, practitioner_id=schedule.practitioner_id,
        session_id=session_id, session=session,
        generated=rota.generate_slots(session, today, today + dt.timedelta(days=window_days)),
        at=_now())
    return {"resourceType": "Parameters", "parameter": [
        {"name": "session", "valueId": session_id},
        {"name": "slotsGenerated", "valueInteger": generated},
    ]}


async def extend_rolling_window(uow: UnitOfWork, *, window_days: int) -> int:
    """Generate every session's slots up to `window_days` ahead (idempotent); returns new slots."""
    today = rota.local_today(_now())
    slots = repo.SlotRepository(uow.conn)
    added = 0
    for stored in await repo.SessionRepository(uow.conn).active(today):
        added += await slots.add_generated(
            practice=uow.practice, schedule_id=stored.schedule_id,
            practitioner_id=stored.practitioner_id, session_id=stored.id, session=stored.session,
            generated=rota.generate_slots(stored.session, today,
                                          today + dt.timedelta(days=window_days)),
            at=_now())
    return added


def _parameter_values(parameters: dict[str, Any]) -> dict[str, list[Any]]:
    if parameters.get("resourceType") != "Parameters":
        raise InvalidResource([Problem("Send a Parameters resource", "Parameters")])
    values: dict[str, list[Any]] = {}
    for parameter in parameters.get("parameter") or []:
        if not isinstance(parameter, dict) or not isinstance(parameter.get("name"), str):
            raise InvalidResource([Problem("Every parameter needs a name", "Parameters.parameter")])
        value = next((v for k, v in parameter.items() if k.startswith("value")), None)
        values.setdefault(parameter["name"], []).append(value)
    return values


def _single(values: dict[str, list[Any]], name: str) -> Any:
    given = values.get(name) or [None]
    if len(given) > 1:
        raise InvalidResource([Problem(f"{name} is given more than once", name)])
    return given[0]


def _date(value: Any, name: str) -> dt.date | None:
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        raise InvalidResource([Problem(f"{name} must be a date", name)]) from None


# ----- slots ----------------------------------------------------------------------------------
async def read_slot(uow: UnitOfWork, slot_id: str) -> dict[str, Any]:
    row = await repo.SlotRepository(uow.conn).get(slot_id) if appt.is_uuid(slot_id) else None
    if row is None:
        raise NotFound(f"Slot/{slot_id}")
    return slot_resource(row, _now())


@dataclass(frozen=True)
class SlotSearchResult:
    """A page of free slots: (id, Slot JSON text) each, the total when known (see
    repo.FreeSlotSearch.page), whether more pages follow, and the included resources."""

    slots: list[tuple[str, str]]
    total: int | None
    more: bool
    included: list[dict[str, Any]]


async def search_slots(uow: UnitOfWork, principal: Principal, search: SearchRequest, *,
                       max_days: int, window_days: int) -> SlotSearchResult:
    """Free, bookable slots in a window of at most `max_days`, with the included resources.

    The total is counted only on `_total=accurate` (or `_count=0`): counting every free
    slot of a 14-day window costs more than the page, and a consumer looking for a slot
    follows the next link instead. The last page gives its total anyway.
    """
    criteria, includes = slot_criteria(search, max_days=max_days)
    page = await repo.FreeSlotSearch(uow.raw).page(
        criteria, roles=principal.roles, count=search.count, offset=search.offset,
        counted=search.total_required)
    # Rendered straight to JSON text: the page is the hot path's whole cost otherwise.
    found = [(row.id, slot_json(row)) for row in page.rows]
    included: list[dict[str, Any]] = []
    if includes:
        schedule_rows = await repo.ScheduleRepository(uow.conn).by_ids(
            r.schedule_id for r in page.rows)
        if INCLUDE_SCHEDULE in includes:
            included += [_schedule(row, window_days) for row in schedule_rows]
        if INCLUDE_PRACTITIONER in includes:
            included += await repo.StaffRepository(uow.conn).resources(
                row.practitioner_id for row in schedule_rows)
    return SlotSearchResult(found, page.total, page.more, included)


def slot_criteria(search: SearchRequest, *, max_days: int) -> tuple[list[Any], set[str]]:
    """Search parameters -> SQL criteria and the includes asked for; a bad window is 422."""
    criteria: list[Any] = []
    includes: set[str] = set()
    lower = upper = None
    for name, value in search.filters:
        if name == "start":
            operator, moment = _instant_bound(name, value)
            if operator in (">", ">="):
                lower = moment if lower is None else max(lower, moment)
            elif operator in ("<", "<="):
                upper = moment if upper is None else min(upper, moment)
            else:
                raise InvalidSearch([Problem("start takes ge/gt and le/lt bounds", "start")])
            criteria.append(repo.slot_start(operator, moment))
        elif name == "status":
            if value != "free":
                raise UnprocessableSearch([Problem("Only free slots can be searched for",
                                                   "status")])
        elif name == "schedule":
            criteria.append(repo.slot_schedule(
                [_reference(v, "Schedule", name) for v in value.split(",")]))
        elif name == "schedule.actor":
            criteria.append(repo.slot_practitioner(_reference(value, "Practitioner", name)))
        elif name == "service-type":
            criteria.append(repo.slot_type_is([parse_token(v)[1] for v in value.split(",")]))
        elif name == "delivery-channel":
            criteria.append(repo.slot_delivery_channel(
                [parse_token(v)[1] for v in value.split(",")]))
        elif name in ("_include", "_include:recurse"):
            if value not in (INCLUDE_SCHEDULE, INCLUDE_PRACTITIONER):
                raise InvalidSearch([Problem(f"{name} supports {INCLUDE_SCHEDULE} and "
                                             f"{INCLUDE_PRACTITIONER}", name)])
            includes.add(value)
    if lower is None or upper is None:
        raise UnprocessableSearch([Problem("A slot search needs a window: start=ge<date> and "
                                           "start=le<date>", "start")])
    if upper - lower > dt.timedelta(days=max_days):
        raise UnprocessableSearch([Problem(f"The search window is longer than {max_days} days",
                                           "start")])
    return criteria, includes


async def hold_slot(uow: UnitOfWork, principal: Principal, slot_id: str, *,
                    hold_seconds: int) -> dict[str, Any]:
    """Hold a free slot for the caller: busy-tentative, with a token a booking must carry."""
    slots = repo.SlotRepository(uow.conn)
    now = _now()
    token = str(uuid.uuid4())
    expires = now + dt.timedelta(seconds=hold_seconds)
    row = None
    if appt.is_uuid(slot_id):
        row = await slots.hold(slot_id, roles=principal.roles, token=token, expires_at=expires,
                               at=now)
    if row is None:
        await _why_not_bookable(slots, slot_id, principal, now)
        raise SlotUnavailable("The slot is not free")
    return {"resourceType": "Parameters", "parameter": [
        {"name": "holdToken", "valueString": token},
        {"name": "expires", "valueInstant": instant(expires)},
        {"name": "slot", "resource": slot_resource(row, now)},
    ]}


async def _why_not_bookable(slots: repo.SlotRepository, slot_id: str, principal: Principal,
                            now: dt.datetime) -> None:
    """After a conditional update changed nothing: the precise reason, if not 'taken'."""
    current = await slots.get(slot_id) if appt.is_uuid(slot_id) else None
    if current is None:
        raise NotFound(f"Slot/{slot_id}")
    _check_bookable(current.slot_type, frozenset(current.bookable_by), current.start_at,
                    current.bookable_from, principal, now)


def _check_bookable(slot_type: str, bookable_by: frozenset[str], start: dt.datetime,
                    bookable_from: dt.datetime, principal: Principal, now: dt.datetime) -> None:
    if not rota.may_book(principal.roles, bookable_by):
        raise BookingNotPermitted(f"Your role may not book {slot_type} slots")
    if start <= now:
        raise InvalidResource([Problem("The slot has already started", "Appointment.slot")])
    if not rota.is_bookable_now(start=start, bookable_from=bookable_from, now=now):
        raise InvalidResource([Problem(
            f"The slot is embargoed: it can be booked from {instant(bookable_from)}",
            "Appointment.slot")])


def _check_booking_fits(request: appt.BookingRequest, facts: list[appt.SlotFacts],
                        principal: Principal, now: dt.datetime) -> None:
    """The booking matches its slots, and the caller may book every one of them now."""
    appt.check_slots_fit(request, facts)
    for slot in facts:
        _check_bookable(slot.slot_type, slot.bookable_by, slot.start, slot.bookable_from,
                        principal, now)


async def change_slot_availability(uow: UnitOfWork, slot_id: str, *, block: bool,
                                   comment: str | None) -> dict[str, Any]:
    """Block a free slot (busy-unavailable) or unblock a blocked one (free)."""
    slots = repo.SlotRepository(uow.conn)
    row = None
    if appt.is_uuid(slot_id):
        row = await slots.set_status(slot_id, from_open=block,
                                     to="busy-unavailable" if block else "free",
                                     comment=comment, at=_now())
    if row is None:
        if not appt.is_uuid(slot_id) or await slots.get(slot_id) is None:
            raise NotFound(f"Slot/{slot_id}")
        raise SlotUnavailable("Only a free slot can be blocked" if block
                              else "Only a blocked slot can be unblocked")
    return slot_resource(row, _now())


async def sweep_expired_holds(uow: UnitOfWork) -> int:
    return await repo.SlotRepository(uow.conn).sweep_expired_holds()


# ----- appointments ----------------------------------------------------------------------------
@dataclass(frozen=True)
class BookingOutcome:
    status: int
    resource: dict[str, Any]
    replayed: bool


def request_hash(resource: dict[str, Any]) -> str:
    return hashlib.sha256(orjson.dumps(resource, option=orjson.OPT_SORT_KEYS)).hexdigest()


async def book_appointment(uow: UnitOfWork, principal: Principal, resource: dict[str, Any], *,
                           idempotency_key: str | None, hold_token: str | None) -> BookingOutcome:
    request = appt.read_booking(resource)
    keys = repo.IdempotencyRepository(uow.conn)
    if idempotency_key is not None:
        earlier = await keys.claim(practice=uow.practice, key=idempotency_key,
                                   request_hash=request_hash(resource))
        if earlier is not None:
            if earlier.request_hash != request_hash(resource):
                raise IdempotencyKeyReused("This Idempotency-Key was used for a different request")
            assert earlier.status_code is not None and earlier.response is not None
            return BookingOutcome(earlier.status_code, earlier.response, replayed=True)

    now = _now()
    claimed = await repo.SlotRepository(uow.conn).claim(
        request.slot_ids, patient_id=request.patient_id, hold_token=hold_token, at=now)
    if len(claimed) != len(request.slot_ids):
        await _why_not_booked(uow, principal, request)
    facts = [slot.facts for slot in claimed]
    _check_booking_fits(request, facts, principal, now)
    practice = appt.booking_practice(facts)
    first = min(claimed, key=lambda s: s.facts.start)
    if first.location is None:
        # Every slot is on a schedule of its practice; not finding it is a broken database.
        raise LookupError(f"Schedule/{first.facts.schedule_id} of a claimed slot is missing")
    appointment_id = str(uuid.uuid4())
    stored = _appointment_resource(resource, request, appointment_id, first, now)
    await repo.AppointmentRepository(uow.conn).add(
        appointment_id=appointment_id, practice=practice, patient_id=request.patient_id,
        practitioner_id=first.facts.practitioner_id, start=request.start, end=request.end,
        slot_ids=request.slot_ids, slot_type=first.facts.slot_type,
        national_category=first.facts.national_category,
        delivery_channel=first.facts.delivery_channel, resource=stored, at=now,
        recorded_by=principal.user_id)
    # The event is the appointment book's (the slots' practice); the audit record is the
    # booker's (their own practice, as the actor's).
    uow.emit(APPOINTMENT_TOPIC, appt.EventType.BOOKED, subject=request.patient_id,
             practice=practice,
             data=appt.event_data(stored, patient_id=request.patient_id,
                                  practitioner_id=first.facts.practitioner_id,
                                  slot_ids=list(request.slot_ids),
                                  slot_type=first.facts.slot_type,
                                  national_category=first.facts.national_category,
                                  delivery_channel=first.facts.delivery_channel,
                                  cancellation_reason=None))
    _audit(uow, principal, "create", "Appointment", patient_ids=[request.patient_id],
           resource_ids=[appointment_id])
    if idempotency_key is not None:
        await keys.answer(key=idempotency_key, status_code=201, response=stored)
    return BookingOutcome(201, stored, replayed=False)


async def _why_not_booked(uow: UnitOfWork, principal: Principal,
                          request: appt.BookingRequest) -> NoReturn:
    """After a claim that did not take every slot: the precise reason, checked in the order
    a caller can act on (the patient, the slots asked for, who may book them and when),
    else the slots were taken or held by someone else (409)."""
    patient = await repo.PatientProjection(uow.conn).get(request.patient_id)
    if patient is None or patient.deceased or not patient.active:
        reason = ("is not registered at this practice" if patient is None or not patient.active
                  else "is recorded as deceased")
        raise InvalidResource([Problem(f"The patient {reason}", "Appointment.participant")])
    facts = await repo.SlotRepository(uow.conn).facts(request.slot_ids)
    _check_booking_fits(request, facts, principal, _now())
    raise SlotUnavailable("The slot has already been booked or is held")


def _appointment_resource(sent: dict[str, Any], request: appt.BookingRequest,
                          appointment_id: str, claimed: repo.ClaimedSlot,
                          now: dt.datetime) -> dict[str, Any]:
    first = claimed.facts
    resource: dict[str, Any] = {
        "resourceType": "Appointment",
        "id": appointment_id,
        "meta": meta(1, now, appt.UK_CORE_APPOINTMENT_PROFILE),
        "extension": [delivery_channel_extension(first.delivery_channel)],
        "status": appt.BOOKED,
        "serviceCategory": service_categories(first.national_category),
        "serviceType": [slot_type_concept(first.slot_type)],
    }
    resource.update({key: copy.deepcopy(sent[key]) for key in appt.PASSED_THROUGH if key in sent})
    if request.description is not None:
        resource["description"] = request.description
    resource.update({
        "start": instant(request.start),
        "end": instant(request.end),
        "minutesDuration": int((request.end - request.start).total_seconds() // 60),
        "slot": [{"reference": f"Slot/{slot_id}"} for slot_id in request.slot_ids],
        "created": instant(now),
    })
    if request.comment is not None:
        resource["comment"] = request.comment
    resource["participant"] = [
        {"actor": {"reference": f"Patient/{request.patient_id}"}, "required": "required",
         "status": "accepted"},
        {"type": [ATTENDER], "actor": {"reference": f"Practitioner/{first.practitioner_id}",
                                       "display": claimed.practitioner_display},
         "required": "required", "status": "accepted"},
        {"actor": {"display": claimed.location}, "required": "required", "status": "accepted"},
    ]
    return resource


async def read_appointment(uow: UnitOfWork, principal: Principal,
                           appointment_id: str) -> dict[str, Any]:
    stored = await _get_appointment(uow, appointment_id)
    _audit(uow, principal, "read", "Appointment", patient_ids=[stored.patient_id],
           resource_ids=[appointment_id])
    return stored.resource


async def appointment_history(uow: UnitOfWork, principal: Principal,
                              appointment_id: str) -> list[dict[str, Any]]:
    stored = await _get_appointment(uow, appointment_id)
    versions = await repo.AppointmentRepository(uow.conn).history(appointment_id)
    _audit(uow, principal, "history", "Appointment", patient_ids=[stored.patient_id],
           resource_ids=[appointment_id])
    return versions


async def read_appointment_version(uow: UnitOfWork, principal: Principal, appointment_id: str,
                                   version_id: str) -> dict[str, Any]:
    stored = await _get_appointment(uow, appointment_id)
    resource = None
    if version_id.isdigit():
        resource = await repo.AppointmentRepository(uow.conn).version(appointment_id,
                                                                      int(version_id))
    if resource is None:
        raise NotFound(f"Appointment/{appointment_id}/_history/{version_id}")
    _audit(uow, principal, "vread", "Appointment", patient_ids=[stored.patient_id],
           resource_ids=[appointment_id])
    return resource


async def _get_appointment(uow: UnitOfWork, appointment_id: str, *,
                           for_update: bool = False) -> repo.StoredAppointment:
    stored = None
    if appt.is_uuid(appointment_id):
        stored = await repo.AppointmentRepository(uow.conn).get(appointment_id,
                                                                for_update=for_update)
    if stored is None:
        raise NotFound(f"Appointment/{appointment_id}")
    return stored


async def update_appointment(uow: UnitOfWork, principal: Principal, appointment_id: str,
                             resource: dict[str, Any], *, if_match: int) -> dict[str, Any]:
    """Amend the description or comment, or move the status on (cancel, arrived, ...)."""
    if resource.get("id") != appointment_id:
        raise InvalidResource([Problem("The resource id must match the id in the URL",
                                       "Appointment.id")])
    current = await _get_appointment(uow, appointment_id, for_update=True)
    if if_match != current.version_id:
        raise VersionConflict(f"Appointment/{appointment_id} is at version "
                              f"{current.version_id}, not {if_match}")
    appt.check_amendment(current.resource, resource)
    new_status = resource.get("status", current.status)
    reason = appt.cancellation_reason_text(resource) if new_status == appt.CANCELLED else None
    if new_status != current.status:
        appt.check_transition(current.status, new_status, start=current.start_at, now=_now(),
                              cancellation_reason=reason)
    amended = {key: resource[key] for key in appt.AMENDABLE if key in resource}
    unchanged = (new_status == current.status
                 and all(current.resource.get(k) == amended.get(k) for k in appt.AMENDABLE))
    if unchanged:
        return current.resource
    return await _write_change(uow, principal, current, status=new_status, reason=reason,
                               amended=amended)


async def _write_change(uow: UnitOfWork, principal: Principal, current: repo.StoredAppointment,
                        *, status: str, reason: str | None,
                        amended: dict[str, Any]) -> dict[str, Any]:
    now = _now()
    updated = copy.deepcopy(current.resource)
    for key in appt.AMENDABLE:
        if key in amended:
            updated[key] = amended[key]
        else:
            updated.pop(key, None)
    updated["status"] = status
    if status == appt.CANCELLED:
        updated["cancelationReason"] = {"text": reason}
    updated["meta"] = meta(current.version_id + 1, now, appt.UK_CORE_APPOINTMENT_PROFILE)
    await repo.AppointmentRepository(uow.conn).replace(
        current, status=status,
        cancellation_reason=reason if status == appt.CANCELLED else current.cancellation_reason,
        resource=updated, at=now, recorded_by=principal.user_id)
    if status == appt.CANCELLED and current.status != appt.CANCELLED:
        await repo.SlotRepository(uow.conn).release(current.slot_ids, now)
    if status != current.status:
        uow.emit(APPOINTMENT_TOPIC, appt.EVENT_FOR_STATUS[status], subject=current.patient_id,
                 practice=current.practice, data=appt.event_data(updated, patient_id=current.patient_id,
                                      practitioner_id=current.practitioner_id,
                                      slot_ids=current.slot_ids, slot_type=current.slot_type,
                                      national_category=current.national_category,
                                      delivery_channel=current.delivery_channel,
                                      cancellation_reason=reason))
    _audit(uow, principal, "update", "Appointment", patient_ids=[current.patient_id],
           resource_ids=[current.id])
    return updated


async def search_appointments(uow: UnitOfWork, principal: Principal,
                              search: SearchRequest) -> tuple[list[dict[str, Any]], int]:
    """A patient's appointments, or a clinician's list for a day (or both)."""
    criteria: list[Any] = []
    for name, value in search.filters:
        if name == "patient":
            criteria.append(repo.appointment_patient(_reference(value, "Patient", name)))
        elif name == "practitioner":
            criteria.append(repo.appointment_practitioner(
                _reference(value, "Practitioner", name)))
        elif name == "date":
            criteria += [repo.appointment_start(op, moment) for op, moment in _date_bounds(value)]
        elif name == "status":
            statuses = value.split(",")
            if set(statuses) - set(appt.TRANSITIONS):
                raise InvalidSearch([Problem("status must be among " + ", ".join(appt.TRANSITIONS),
                                             "status")])
            criteria.append(repo.appointment_status(statuses))
    if not any(name in ("patient", "practitioner") for name, _ in search.filters):
        raise InvalidSearch([Problem("Search appointments by patient or by practitioner",
                                     "patient")])
    resources, total = await repo.AppointmentRepository(uow.conn).search(
        criteria, count=search.count, offset=search.offset)
    # The patient searched for is accessed even when nothing is found.
    patient_ids = [_reference(v, "Patient", k) for k, v in search.filters if k == "patient"]
    patient_ids += [p["actor"]["reference"].split("/", 1)[1] for r in resources
                    for p in r["participant"] if p["actor"].get("reference", "").startswith("Patient/")]
    _audit(uow, principal, "search", "Appointment", patient_ids=list(dict.fromkeys(patient_ids)),
           query="&".join(f"{k}={v}" for k, v in search.filters))
    return resources, total


def _date_bounds(value: str) -> list[tuple[str, dt.datetime]]:
    """A date search value as instant bounds; a bare date is a whole practice (London) day."""
    prefix = value[:2] if value[:2].isalpha() else "eq"
    bare = value[2:] if value[:2].isalpha() else value
    if len(bare) != 10:
        operator, moment = _instant_bound("date", value)
        return [(operator, moment)]
    try:
        day = dt.date.fromisoformat(bare)
    except ValueError:
        raise InvalidSearch([Problem(f"date must be a date or instant, got {value!r}",
                                     "date")]) from None
    day_start, day_end = rota.local_day_bounds(day)
    bounds = {"eq": [(">=", day_start), ("<", day_end)], "ge": [(">=", day_start)],
              "gt": [(">=", day_end)], "le": [("<", day_end)], "lt": [("<", day_start)]}
    if prefix not in bounds:
        raise InvalidSearch([Problem(f"date prefix {prefix!r} is not supported", "date")])
    return bounds[prefix]


def _instant_bound(name: str, value: str) -> tuple[str, dt.datetime]:
    """A start/date bound; bare dates mean the practice's (London) day boundaries."""
    prefix = value[:2] if value[:2].isalpha() else "eq"
    bare = value[2:] if value[:2].isalpha() else value
    if len(bare) == 10:
        day_start, day_end = rota.local_day_bounds(_search_date(name, bare))
        mapping = {"ge": (">=", day_start), "gt": (">=", day_end), "le": ("<", day_end),
                   "lt": ("<", day_start)}
        if prefix not in mapping:
            raise InvalidSearch([Problem(f"{name} needs a ge, gt, le or lt prefix", name)])
        return mapping[prefix]
    bound = parse_datetime_param(name, value)
    return bound.sql_operator(), bound.value


def _search_date(name: str, value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise InvalidSearch([Problem(f"{name} must be a date or instant, got {value!r}",
                                     name)]) from None


def _reference(value: str, resource_type: str, name: str) -> str:
    ident = parse_reference(value, resource_type)
    if not appt.is_uuid(ident):
        raise InvalidSearch([Problem(f"{name} must reference a {resource_type} by id", name)])
    return ident


# ----- patients (from patient.events.v1) ----------------------------------------------------------
async def record_patient(uow: UnitOfWork, *, patient_id: str, nhs_number: str | None,
                         display: str, active: bool, deceased: bool, version_id: int,
                         cancellation_reason: str | None) -> int:
    """Update the patient projection; on death or deregistration cancel future bookings.

    Returns how many appointments were cancelled.
    """
    await repo.PatientProjection(uow.conn).apply(
        patient_id=patient_id, practice=uow.practice, nhs_number=nhs_number, display=display,
        active=active, deceased=deceased, version_id=version_id, at=_now())
    if cancellation_reason is None:
        return 0
    principal = system_principal(uow.practice, "system-patient-events",
                                 "Patient events (appointments)")
    upcoming = await repo.AppointmentRepository(uow.conn).future_booked_for_patient(patient_id)
    for current in upcoming:
        await _write_change(uow, principal, current, status=appt.CANCELLED,
                            reason=cancellation_reason,
                            amended={k: current.resource[k] for k in appt.AMENDABLE
                                     if k in current.resource})
    return len(upcoming)
