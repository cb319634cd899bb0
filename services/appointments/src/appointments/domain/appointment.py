"""The Appointment: what a valid booking request is, and which status changes are allowed.

Follows GP Connect Appointment Management on FHIR R4: a booking names its slots and
one patient, its start and end match the slots, its description is at most 100
characters and its comment at most 500. After booking only the description and
comment may be amended; the status moves booked -> arrived -> fulfilled, or booked ->
cancelled (future appointments only, with a reason) or booked -> noshow.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

from gpsoc_kit.errors import InvalidResource, InvalidTransition, Problem

UK_CORE_APPOINTMENT_PROFILE = "https://fhir.hl7.org.uk/StructureDefinition/UKCore-Appointment"
UK_CORE_SLOT_PROFILE = "https://fhir.hl7.org.uk/StructureDefinition/UKCore-Slot"
UK_CORE_SCHEDULE_PROFILE = "https://fhir.hl7.org.uk/StructureDefinition/UKCore-Schedule"

MAX_DESCRIPTION = 100
MAX_COMMENT = 500
MAX_CANCELLATION_REASON = 500

BOOKED, ARRIVED, FULFILLED, CANCELLED, NOSHOW = "booked", "arrived", "fulfilled", "cancelled", "noshow"
TRANSITIONS: dict[str, frozenset[str]] = {
    BOOKED: frozenset({CANCELLED, ARRIVED, NOSHOW}),
    ARRIVED: frozenset({FULFILLED}),
    FULFILLED: frozenset(),
    CANCELLED: frozenset(),
    NOSHOW: frozenset(),
}
# A patient may be checked in this long before their appointment (early arrivals).
ARRIVAL_WINDOW = dt.timedelta(hours=2)

# Fields a client may change after booking (besides the status and its reason).
AMENDABLE = frozenset({"description", "comment"})
# Fields an update may carry without meaning a change: server-managed or the status change itself.
UPDATE_IGNORED = frozenset({"resourceType", "id", "meta", "text", "status", "cancelationReason"})
# Optional fields of a booking request kept on the stored Appointment as sent.
PASSED_THROUGH = ("reasonCode", "patientInstruction", "priority", "appointmentType",
                  "specialty")

_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


class EventType:
    BOOKED = "appointment.booked.v1"
    CANCELLED = "appointment.cancelled.v1"
    ARRIVED = "appointment.arrived.v1"
    FULFILLED = "appointment.fulfilled.v1"
    NOSHOW = "appointment.noshow.v1"


EVENT_FOR_STATUS = {
    BOOKED: EventType.BOOKED, CANCELLED: EventType.CANCELLED, ARRIVED: EventType.ARRIVED,
    FULFILLED: EventType.FULFILLED, NOSHOW: EventType.NOSHOW,
}


@dataclass(frozen=True)
class BookingRequest:
    patient_id: str
    slot_ids: tuple[str, ...]
    start: dt.datetime
    end: dt.datetime
    description: str | None
    comment: str | None


@dataclass(frozen=True)
class SlotFacts:
    """What booking needs to know of a slot, as stored."""

    id: str
    schedule_id: str
    practitioner_id: str
    start: dt.datetime
    end: dt.datetime
    slot_type: str
    national_category: str
    delivery_channel: str
    bookable_from: dt.datetime
    bookable_by: frozenset[str]
    practice: str  # whose appointment book the slot is in


def read_booking(resource: dict[str, Any]) -> BookingRequest:
    """Validate an Appointment sent for booking, or raise InvalidResource naming each problem."""
    problems: list[Problem] = []
    if resource.get("status") != BOOKED:
        problems.append(Problem("A new appointment's status must be booked", "Appointment.status"))

    slot_ids: list[str] = []
    slot_refs = resource.get("slot")
    if not isinstance(slot_refs, list) or not slot_refs:
        problems.append(Problem("An appointment needs at least one slot", "Appointment.slot"))
    else:
        for index, ref in enumerate(slot_refs):
            slot_id = _reference_id(ref, "Slot")
            if slot_id is None:
                problems.append(Problem("slot must reference a Slot", f"Appointment.slot[{index}]"))
            elif slot_id in slot_ids:
                problems.append(Problem("The same slot is named twice", f"Appointment.slot[{index}]"))
            else:
                slot_ids.append(slot_id)

    patient_ids = []
    participants = resource.get("participant")
    if not isinstance(participants, list):
        problems.append(Problem("An appointment needs a patient participant",
                                "Appointment.participant"))
        participants = []
    for participant in participants:
        actor = participant.get("actor") if isinstance(participant, dict) else None
        reference = actor.get("reference", "") if isinstance(actor, dict) else ""
        if isinstance(reference, str) and reference.startswith("Patient/"):
            patient_id = _reference_id(actor, "Patient")
            if patient_id is None:
                problems.append(Problem("The patient participant must reference a Patient by id",
                                        "Appointment.participant.actor"))
            else:
                patient_ids.append(patient_id)
    if len(set(patient_ids)) != 1 and not any(p.expression == "Appointment.participant.actor"
                                              for p in problems):
        problems.append(Problem("An appointment has exactly one patient participant",
                                "Appointment.participant"))

    start = _instant(resource.get("start"), "Appointment.start", problems)
    end = _instant(resource.get("end"), "Appointment.end", problems)
    if start and end and end <= start:
        problems.append(Problem("An appointment must end after it starts", "Appointment.end"))

    description = _text(resource, "description", MAX_DESCRIPTION, problems)
    comment = _text(resource, "comment", MAX_COMMENT, problems)
    if problems:
        raise InvalidResource(problems)
    assert start is not None and end is not None
    return BookingRequest(patient_ids[0], tuple(slot_ids), start, end, description, comment)


def check_slots_fit(request: BookingRequest, slots: list[SlotFacts]) -> None:
    """The slots exist, belong to one schedule, follow each other, and span start to end."""
    known = {slot.id for slot in slots}
    missing = [slot_id for slot_id in request.slot_ids if slot_id not in known]
    if missing:
        raise InvalidResource([Problem(f"Slot/{slot_id} is not known", "Appointment.slot")
                               for slot_id in missing])
    ordered = sorted(slots, key=lambda s: s.start)
    problems = []
    if len({slot.schedule_id for slot in ordered}) != 1:
        problems.append(Problem("All slots of an appointment must be on one schedule",
                                "Appointment.slot"))
    if any(a.end != b.start for a, b in zip(ordered, ordered[1:], strict=False)):
        problems.append(Problem("The slots of an appointment must follow each other",
                                "Appointment.slot"))
    if request.start != ordered[0].start:
        problems.append(Problem("start must be the start of the first slot", "Appointment.start"))
    if request.end != ordered[-1].end:
        problems.append(Problem("end must be the end of the last slot", "Appointment.end"))
    if problems:
        raise InvalidResource(problems)


def booking_practice(slots: list[SlotFacts]) -> str:
    """An appointment lives in the appointment book of the practice whose slots it takes
    (with a sharing agreement, not necessarily the booker's own). Its slots are on one
    schedule (`check_slots_fit`), so in one practice."""
    practices = {slot.practice for slot in slots}
    if len(practices) != 1:
        raise InvalidResource([Problem("All slots of an appointment must be in one practice",
                                       "Appointment.slot")])
    return practices.pop()


def check_transition(current: str, new: str, *, start: dt.datetime, now: dt.datetime,
                     cancellation_reason: str | None) -> None:
    """Raise InvalidTransition unless an appointment that is `current` may become `new` now."""
    if new not in TRANSITIONS:
        raise InvalidTransition(f"Unknown appointment status {new!r}")
    if new not in TRANSITIONS.get(current, frozenset()):
        raise InvalidTransition(f"An appointment that is {current} cannot become {new}")
    if new == CANCELLED:
        if start <= now:
            raise InvalidTransition("Only future appointments can be cancelled")
        if not cancellation_reason or not cancellation_reason.strip():
            raise InvalidResource([Problem("A cancellation needs a cancelationReason",
                                           "Appointment.cancelationReason")])
        if len(cancellation_reason) > MAX_CANCELLATION_REASON:
            raise InvalidResource([Problem(f"cancelationReason is longer than "
                                           f"{MAX_CANCELLATION_REASON} characters",
                                           "Appointment.cancelationReason")])
    elif new == ARRIVED and now < start - ARRIVAL_WINDOW:
        raise InvalidTransition("A patient cannot be checked in more than two hours early")
    elif new == NOSHOW and now < start:
        raise InvalidTransition("A did-not-attend cannot be recorded before the appointment starts")


def check_amendment(current: dict[str, Any], requested: dict[str, Any]) -> None:
    """Only the description, comment and status (with its reason) may differ from what is stored."""
    problems = []
    for key, value in requested.items():
        if key in UPDATE_IGNORED or key in AMENDABLE:
            continue
        if current.get(key) != value:
            problems.append(Problem(f"{key} cannot be changed after booking; cancel and rebook",
                                    f"Appointment.{key}"))
    _text(requested, "description", MAX_DESCRIPTION, problems)
    _text(requested, "comment", MAX_COMMENT, problems)
    if "cancelationReason" in requested and requested.get("status") != CANCELLED:
        problems.append(Problem("cancelationReason is only given with status cancelled",
                                "Appointment.cancelationReason"))
    if problems:
        raise InvalidResource(problems)


def cancellation_reason_text(resource: dict[str, Any]) -> str | None:
    """The reason as plain text: R4's cancelationReason is a CodeableConcept."""
    reason = resource.get("cancelationReason")
    if isinstance(reason, str):
        return reason
    if isinstance(reason, dict):
        if isinstance(reason.get("text"), str):
            return reason["text"]
        for coding in reason.get("coding") or []:
            if isinstance(coding, dict) and isinstance(coding.get("display"), str):
                return coding["display"]
    return None


def event_data(resource: dict[str, Any], *, patient_id: str, practitioner_id: str,
               slot_ids: list[str], slot_type: str, national_category: str,
               delivery_channel: str, cancellation_reason: str | None) -> dict[str, Any]:
    """What every appointment event carries: enough for clinical-notes and reporting."""
    appointment: dict[str, Any] = {
        "id": resource["id"],
        "status": resource["status"],
        "start": resource["start"],
        "end": resource["end"],
        "patient": patient_id,
        "practitioner": practitioner_id,
        "slotIds": list(slot_ids),
        "slotCategory": national_category,
        "slotType": slot_type,
        "deliveryChannel": delivery_channel,
        "description": resource.get("description"),
    }
    if resource["status"] == CANCELLED:
        appointment["cancellationReason"] = cancellation_reason
    return {"appointment": appointment}


def is_uuid(value: str) -> bool:
    return isinstance(value, str) and bool(_UUID.match(value))


def _reference_id(ref: Any, resource_type: str) -> str | None:
    reference = ref.get("reference") if isinstance(ref, dict) else None
    if not isinstance(reference, str):
        return None
    kind, _, ident = reference.rpartition("/")
    if kind.rsplit("/", 1)[-1] != resource_type or not is_uuid(ident):
        return None
    return ident


def _instant(value: Any, where: str, problems: list[Problem]) -> dt.datetime | None:
    if not isinstance(value, str) or "T" not in value:
        problems.append(Problem(f"{where.split('.')[-1]} must be an instant with a time zone", where))
        return None
    try:
        moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        problems.append(Problem(f"{where.split('.')[-1]} is not a valid instant", where))
        return None
    if moment.tzinfo is None:
        problems.append(Problem(f"{where.split('.')[-1]} needs a time zone", where))
        return None
    return moment


def _text(resource: dict[str, Any], key: str, limit: int, problems: list[Problem]) -> str | None:
    value = resource.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        problems.append(Problem(f"{key} must be text", f"Appointment.{key}"))
        return None
    if len(value) > limit:
        problems.append(Problem(f"{key} is longer than {limit} characters", f"Appointment.{key}"))
    return value
