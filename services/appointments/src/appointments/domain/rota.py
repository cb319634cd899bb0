"""Rotas and slots: what a session is, the slots it generates, and when a slot may be booked.

A practice's rota is a set of sessions per clinician (one Schedule per clinician and
location). Sessions are in the practice's local time (Europe/London, so a 09:00 session
stays at 09:00 across the clock changes) and generate slots over a rolling window.
A slot is bookable only from `release_hours` before its start (the embargo), and only
by the roles its slot type allows.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from gpsoc_kit.errors import InvalidResource, Problem

PRACTICE_TIMEZONE = ZoneInfo("Europe/London")

UK_CORE_DELIVERY_CHANNEL_URL = (
    "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-DeliveryChannel"
)
UK_CORE_DELIVERY_CHANNEL_SYSTEM = "https://fhir.hl7.org.uk/CodeSystem/UKCore-DeliveryChannel"
# The UK Core value set is extensible and has no home visit; ours adds it.
HOME_VISIT_SYSTEM = "https://opengpsoc.org/fhir/CodeSystem/delivery-channel"
DELIVERY_CHANNELS = {
    "In-person": ("In person", UK_CORE_DELIVERY_CHANNEL_SYSTEM),
    "Telephone": ("Telephone", UK_CORE_DELIVERY_CHANNEL_SYSTEM),
    "Video": ("Video", UK_CORE_DELIVERY_CHANNEL_SYSTEM),
    "Home-visit": ("Home visit", HOME_VISIT_SYSTEM),
}

# Carried as a coding in Slot.serviceCategory / Appointment.serviceCategory (no extension);
# the CodeSystem is published in fhir/definitions.
NATIONAL_CATEGORY_SYSTEM = "https://opengpsoc.org/fhir/CodeSystem/national-appointment-category"
# NHS England's national appointment categories (GP appointment data).
NATIONAL_CATEGORIES = {
    "general-consultation-routine": "General Consultation Routine",
    "general-consultation-acute": "General Consultation Acute",
    "clinical-triage": "Clinical Triage",
    "planned-clinics": "Planned Clinics",
    "planned-clinical-procedure": "Planned Clinical Procedure",
    "structured-medication-review": "Structured Medication Review",
    "home-visit": "Home Visit",
    "care-home-visit": "Care Home Visit",
    "unplanned-clinical-activity": "Unplanned Clinical Activity",
    "walk-in": "Walk-in",
}

SLOT_TYPE_SYSTEM = "https://opengpsoc.org/fhir/CodeSystem/slot-type"
CLINICIANS = frozenset({"gp", "nurse", "pharmacist"})
EVERY_BOOKER = CLINICIANS | {"receptionist", "practice-manager"}


@dataclass(frozen=True)
class SlotType:
    """A local slot type and its defaults: national category, embargo, who may book it."""

    code: str
    display: str
    national_category: str
    release_hours: int
    bookable_by: frozenset[str]


SLOT_TYPES = {
    t.code: t
    for t in (
        SlotType("routine", "Routine appointment", "general-consultation-routine", 28 * 24,
                 EVERY_BOOKER),
        # On-the-day: released on the morning of the slot, so they are there for that day's callers.
        SlotType("urgent", "Urgent (on the day)", "general-consultation-acute", 12, EVERY_BOOKER),
        # Follow-ups a clinician arranges; reception cannot book them.
        SlotType("review", "Clinical review", "planned-clinics", 28 * 24, CLINICIANS),
        SlotType("medication-review", "Structured medication review",
                 "structured-medication-review", 28 * 24, CLINICIANS),
        SlotType("home-visit", "Home visit", "home-visit", 24, EVERY_BOOKER),
    )
}

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class Session:
    """A recurring rota session of one schedule."""

    weekdays: frozenset[int]  # 0 = Monday
    start: dt.time
    end: dt.time
    slot_minutes: int
    slot_type: str
    delivery_channel: str
    national_category: str
    release_hours: int
    bookable_by: frozenset[str]
    effective_from: dt.date
    effective_to: dt.date | None = None


@dataclass(frozen=True)
class GeneratedSlot:
    start: dt.datetime  # UTC
    end: dt.datetime
    bookable_from: dt.datetime


def new_session(*, weekdays: list[str], start: str | None, end: str | None,
                slot_minutes: int | None, slot_type: str | None,
                delivery_channel: str | None = None, national_category: str | None = None,
                release_hours: int | None = None, bookable_by: list[str] | None = None,
                effective_from: dt.date, effective_to: dt.date | None = None) -> Session:
    """A valid session from a rota request, defaults taken from its slot type; else InvalidResource."""
    problems: list[Problem] = []
    days: set[int] = set()
    for day in weekdays:
        if day not in WEEKDAYS:
            problems.append(Problem(f"weekday must be one of {', '.join(WEEKDAYS)}", "weekday"))
        else:
            days.add(WEEKDAYS.index(day))
    if not weekdays:
        problems.append(Problem("A session needs at least one weekday", "weekday"))
    start_time, end_time = _time(start, "start", problems), _time(end, "end", problems)
    if start_time and end_time and end_time <= start_time:
        problems.append(Problem("A session must end after it starts", "end"))
    if not isinstance(slot_minutes, int) or not 5 <= slot_minutes <= 240:
        problems.append(Problem("slotMinutes must be between 5 and 240", "slotMinutes"))
    kind = SLOT_TYPES.get(slot_type or "")
    if kind is None:
        problems.append(Problem(f"slotType must be one of {', '.join(SLOT_TYPES)}", "slotType"))
    channel = delivery_channel or "In-person"
    if channel not in DELIVERY_CHANNELS:
        problems.append(Problem(f"deliveryChannel must be one of {', '.join(DELIVERY_CHANNELS)}",
                                "deliveryChannel"))
    if national_category is not None and national_category not in NATIONAL_CATEGORIES:
        problems.append(Problem("nationalCategory must be one of "
                                + ", ".join(NATIONAL_CATEGORIES), "nationalCategory"))
    if release_hours is not None and not 0 < release_hours <= 366 * 24:
        problems.append(Problem("releaseHours must be between 1 and 8784", "releaseHours"))
    roles = frozenset(bookable_by or ())
    if roles - EVERY_BOOKER:
        problems.append(Problem(f"bookableBy roles must be among {', '.join(sorted(EVERY_BOOKER))}",
                                "bookableBy"))
    if effective_to is not None and effective_to < effective_from:
        problems.append(Problem("effectiveTo is before effectiveFrom", "effectiveTo"))
    if problems:
        raise InvalidResource(problems)
    assert kind is not None and start_time is not None and end_time is not None
    assert slot_minutes is not None
    return Session(
        weekdays=frozenset(days), start=start_time, end=end_time, slot_minutes=slot_minutes,
        slot_type=kind.code, delivery_channel=channel,
        national_category=national_category or kind.national_category,
        release_hours=release_hours or kind.release_hours,
        bookable_by=roles or kind.bookable_by,
        effective_from=effective_from, effective_to=effective_to,
    )


def _time(value: str | None, name: str, problems: list[Problem]) -> dt.time | None:
    if value is None:
        problems.append(Problem(f"A session needs a {name} time", name))
        return None
    try:
        return dt.time.fromisoformat(value)
    except ValueError:
        problems.append(Problem(f"{name} must be a time (HH:MM or HH:MM:SS)", name))
        return None


def generate_slots(session: Session, first_day: dt.date, last_day: dt.date) -> list[GeneratedSlot]:
    """Every whole slot the session gives between two local dates (inclusive)."""
    day = max(first_day, session.effective_from)
    last = min(last_day, session.effective_to) if session.effective_to else last_day
    length = dt.timedelta(minutes=session.slot_minutes)
    release = dt.timedelta(hours=session.release_hours)
    generated: list[GeneratedSlot] = []
    while day <= last:
        if day.weekday() in session.weekdays:
            session_end = dt.datetime.combine(day, session.end, PRACTICE_TIMEZONE)
            start = dt.datetime.combine(day, session.start, PRACTICE_TIMEZONE)
            while start + length <= session_end:
                start_utc = start.astimezone(dt.UTC)
                generated.append(GeneratedSlot(start_utc, (start + length).astimezone(dt.UTC),
                                               start_utc - release))
                start += length
        day += dt.timedelta(days=1)
    return generated


def is_bookable_now(*, start: dt.datetime, bookable_from: dt.datetime, now: dt.datetime) -> bool:
    """Released (past its embargo) and not yet started."""
    return bookable_from <= now < start


def may_book(roles: frozenset[str], bookable_by: frozenset[str]) -> bool:
    return bool(roles & bookable_by)


def local_day_bounds(day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """A practice day as a UTC half-open interval [midnight, next midnight)."""
    start = dt.datetime.combine(day, dt.time(), PRACTICE_TIMEZONE)
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), PRACTICE_TIMEZONE)
    return start.astimezone(dt.UTC), end.astimezone(dt.UTC)


def local_today(now: dt.datetime) -> dt.date:
    return now.astimezone(PRACTICE_TIMEZONE).date()
