"""Rota rules: sessions, slot generation in the practice's local time, the embargo, who may book."""

from __future__ import annotations

import datetime as dt

import pytest
from appointments.domain.rota import (
    CLINICIANS,
    generate_slots,
    is_bookable_now,
    local_day_bounds,
    may_book,
    new_session,
)
from gpsoc_kit.errors import InvalidResource

MONDAY = dt.date(2026, 3, 23)


def session(**overrides):  # noqa: ANN001, ANN201
    values = {"weekdays": ["mon", "wed"], "start": "09:00", "end": "10:00", "slot_minutes": 15,
              "slot_type": "routine", "effective_from": MONDAY}
    values.update(overrides)
    return new_session(**values)


def test_a_session_gives_whole_slots_on_its_weekdays_only():
    slots = generate_slots(session(), MONDAY, MONDAY + dt.timedelta(days=6))
    assert len(slots) == 8  # four on Monday, four on Wednesday
    assert {s.start.date() for s in slots} == {MONDAY, MONDAY + dt.timedelta(days=2)}
    assert all(s.end - s.start == dt.timedelta(minutes=15) for s in slots)


def test_a_slot_that_would_overrun_the_session_is_not_generated():
    slots = generate_slots(session(slot_minutes=25), MONDAY, MONDAY)
    assert [s.start.strftime("%H:%M") for s in slots] == ["09:00", "09:25"]


def test_sessions_keep_local_time_across_the_clock_change():
    # British Summer Time starts on Sunday 29 March 2026: 09:00 local is 09:00Z, then 08:00Z.
    slots = generate_slots(session(weekdays=["mon"]), MONDAY, MONDAY + dt.timedelta(days=7))
    assert [s.start.strftime("%H:%M") for s in slots if s.start.minute == 0] == ["09:00", "08:00"]


def test_generation_respects_the_session_effective_dates():
    bounded = session(effective_from=MONDAY + dt.timedelta(days=2),
                      effective_to=MONDAY + dt.timedelta(days=2))
    slots = generate_slots(bounded, MONDAY, MONDAY + dt.timedelta(days=13))
    assert {s.start.date() for s in slots} == {MONDAY + dt.timedelta(days=2)}


def test_the_slot_type_gives_the_default_embargo_category_and_bookers():
    urgent = session(slot_type="urgent")
    assert urgent.release_hours == 12
    assert urgent.national_category == "general-consultation-acute"
    review = session(slot_type="review")
    assert review.bookable_by == CLINICIANS
    custom = session(slot_type="review", release_hours=2, bookable_by=["receptionist"])
    assert custom.release_hours == 2 and custom.bookable_by == {"receptionist"}


def test_a_slot_is_bookable_only_from_its_release_until_it_starts():
    first = generate_slots(session(slot_type="urgent"), MONDAY, MONDAY)[0]
    assert first.bookable_from == first.start - dt.timedelta(hours=12)
    before = first.bookable_from - dt.timedelta(seconds=1)
    assert not is_bookable_now(start=first.start, bookable_from=first.bookable_from, now=before)
    assert is_bookable_now(start=first.start, bookable_from=first.bookable_from,
                           now=first.bookable_from)
    assert not is_bookable_now(start=first.start, bookable_from=first.bookable_from,
                               now=first.start)


def test_who_may_book_is_any_shared_role():
    assert may_book(frozenset({"receptionist"}), frozenset({"receptionist", "gp"}))
    assert not may_book(frozenset({"receptionist"}), CLINICIANS)


@pytest.mark.parametrize("overrides, where", [
    ({"weekdays": ["funday"]}, "weekday"),
    ({"weekdays": []}, "weekday"),
    ({"start": "10:00", "end": "09:00"}, "end"),
    ({"start": "nine"}, "start"),
    ({"slot_minutes": 2}, "slotMinutes"),
    ({"slot_type": "massage"}, "slotType"),
    ({"delivery_channel": "Carrier pigeon"}, "deliveryChannel"),
    ({"national_category": "made-up"}, "nationalCategory"),
    ({"bookable_by": ["patient"]}, "bookableBy"),
])
def test_an_invalid_session_names_the_problem(overrides, where):
    with pytest.raises(InvalidResource) as raised:
        session(**overrides)
    assert where in [p.expression for p in raised.value.problems]


def test_a_practice_day_is_london_midnight_to_midnight():
    start, end = local_day_bounds(dt.date(2026, 7, 1))
    assert start == dt.datetime(2026, 6, 30, 23, 0, tzinfo=dt.UTC)
    assert end - start == dt.timedelta(hours=24)
