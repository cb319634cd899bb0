"""Appointment rules: a valid booking request, slots that fit it, and the status transitions."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid

import pytest
from appointments.domain.appointment import (
    SlotFacts,
    booking_practice,
    check_amendment,
    check_slots_fit,
    check_transition,
    read_booking,
)
from gpsoc_kit.errors import InvalidResource, InvalidTransition

START = dt.datetime(2026, 11, 24, 9, 0, tzinfo=dt.UTC)
PATIENT = str(uuid.uuid4())
SCHEDULE = str(uuid.uuid4())


def slot(start: dt.datetime, minutes: int = 10, schedule: str = SCHEDULE) -> SlotFacts:
    return SlotFacts(str(uuid.uuid4()), schedule, str(uuid.uuid4()), start,
                     start + dt.timedelta(minutes=minutes), "routine",
                     "general-consultation-routine", "In-person", start - dt.timedelta(days=28),
                     frozenset({"receptionist"}), "A81001")


def request(*slots: SlotFacts, **fields):  # noqa: ANN201
    resource = {
        "resourceType": "Appointment", "status": "booked",
        "slot": [{"reference": f"Slot/{s.id}"} for s in slots],
        "start": slots[0].start.isoformat(), "end": slots[-1].end.isoformat(),
        "participant": [{"actor": {"reference": f"Patient/{PATIENT}"}}],
    }
    resource.update(fields)
    return resource


def problems(resource) -> list[str]:  # noqa: ANN001
    with pytest.raises(InvalidResource) as raised:
        read_booking(resource)
    return [p.expression for p in raised.value.problems]


def test_a_valid_booking_request_is_read():
    first = slot(START)
    booking = read_booking(request(first, description="Sore throat"))
    assert booking.patient_id == PATIENT
    assert booking.slot_ids == (first.id,)
    assert booking.start == START and booking.description == "Sore throat"


def test_description_longer_than_100_and_comment_longer_than_500_are_refused():
    assert problems(request(slot(START), description="x" * 101)) == ["Appointment.description"]
    assert problems(request(slot(START), comment="x" * 501)) == ["Appointment.comment"]


def test_a_booking_needs_status_booked_a_slot_and_exactly_one_patient():
    first = slot(START)
    assert "Appointment.status" in problems(request(first, status="proposed"))
    assert "Appointment.slot" in problems(request(first, slot=[]))
    assert "Appointment.participant" in problems(request(first, participant=[]))
    two_patients = [{"actor": {"reference": f"Patient/{uuid.uuid4()}"}} for _ in range(2)]
    assert "Appointment.participant" in problems(request(first, participant=two_patients))
    assert "Appointment.start" in problems(request(first, start="2026-11-24"))


def test_slots_must_follow_each_other_and_span_the_appointment():
    first, second = slot(START), slot(START + dt.timedelta(minutes=10))
    check_slots_fit(read_booking(request(first, second)), [first, second])
    gap = slot(START + dt.timedelta(minutes=30))
    with pytest.raises(InvalidResource):
        check_slots_fit(read_booking(request(first, gap)), [first, gap])
    with pytest.raises(InvalidResource):
        check_slots_fit(read_booking(request(first, end=(START + dt.timedelta(hours=1))
                                             .isoformat())), [first])
    elsewhere = slot(START + dt.timedelta(minutes=10), schedule=str(uuid.uuid4()))
    with pytest.raises(InvalidResource):
        check_slots_fit(read_booking(request(first, elsewhere)), [first, elsewhere])


def test_an_unknown_slot_is_refused():
    first = slot(START)
    with pytest.raises(InvalidResource):
        check_slots_fit(read_booking(request(first)), [])


BEFORE = START - dt.timedelta(hours=3)
AFTER = START + dt.timedelta(minutes=5)


@pytest.mark.parametrize("current, new, now", [
    ("booked", "cancelled", BEFORE),
    ("booked", "arrived", START - dt.timedelta(minutes=30)),
    ("booked", "noshow", AFTER),
    ("arrived", "fulfilled", AFTER),
])
def test_allowed_transitions(current, new, now):
    check_transition(current, new, start=START, now=now, cancellation_reason="Patient request")


@pytest.mark.parametrize("current, new, now", [
    ("cancelled", "booked", BEFORE),
    ("booked", "fulfilled", AFTER),
    ("fulfilled", "cancelled", BEFORE),
    ("noshow", "arrived", AFTER),
    ("booked", "cancelled", AFTER),  # only future appointments are cancelled
    ("booked", "noshow", BEFORE),  # not before the appointment starts
    ("booked", "arrived", BEFORE),  # more than two hours early
    ("booked", "entered-in-error", BEFORE),
])
def test_invalid_transitions_are_refused(current, new, now):
    with pytest.raises(InvalidTransition):
        check_transition(current, new, start=START, now=now, cancellation_reason="reason")


def test_a_cancellation_needs_a_reason():
    with pytest.raises(InvalidResource):
        check_transition("booked", "cancelled", start=START, now=BEFORE, cancellation_reason=" ")


def test_only_description_and_comment_may_be_amended():
    current = {"resourceType": "Appointment", "id": "a", "status": "booked",
               "start": "2026-11-24T09:00:00Z", "description": "Old"}
    check_amendment(current, dict(current, description="New", comment="Bring a list"))
    with pytest.raises(InvalidResource) as raised:
        check_amendment(current, dict(current, start="2026-11-24T10:00:00Z"))
    assert raised.value.problems[0].expression == "Appointment.start"
    with pytest.raises(InvalidResource):
        check_amendment(current, dict(current, description="x" * 101))


def test_an_appointment_lives_in_the_practice_of_its_slots():
    first = slot(START)
    shared = dataclasses.replace(slot(first.end), practice="B81002")
    assert booking_practice([dataclasses.replace(first, practice="B81002"), shared]) == "B81002"
    with pytest.raises(InvalidResource):
        booking_practice([first, shared])
