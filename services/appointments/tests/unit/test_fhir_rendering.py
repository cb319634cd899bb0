"""The free-slot search's JSON text is exactly what serialising the resources would give."""

from __future__ import annotations

import datetime as dt
import uuid
from types import SimpleNamespace

import orjson
import pytest
from appointments.adapters.fhir import (
    effective_slot_status,
    instant,
    searchset_json,
    slot_json,
    slot_resource,
)
from appointments.adapters.repository import SlotRow
from gpsoc_kit.fhir import searchset

NOW = dt.datetime(2026, 11, 24, 9, 0, 30, tzinfo=dt.UTC)
BASE = "http://testserver/fhir/R4"


def slot_row(**fields):  # noqa: ANN003, ANN201
    start = dt.datetime(2026, 11, 25, 8, 30, tzinfo=dt.UTC)
    values = {
        "id": str(uuid.uuid4()), "schedule_id": str(uuid.uuid4()),
        "practitioner_id": str(uuid.uuid4()), "start_at": start,
        "end_at": start + dt.timedelta(minutes=10), "status": "free", "slot_type": "routine",
        "delivery_channel": "In-person", "national_category": "general-consultation-routine",
        "hold_expires_at": None, "comment": None, "version_id": 1,
        "last_updated": dt.datetime(2026, 11, 23, 22, 1, 2, 345678, tzinfo=dt.UTC),
    }
    values.update(fields)
    return SimpleNamespace(**values)


def search_row(row) -> SlotRow:  # noqa: ANN001
    """`row` as the free-slot search reads it (instants as text, status effective). That the
    SQL renders instants as `instant` does is pinned by the search's integration tests."""
    return SlotRow(row.id, row.schedule_id, instant(row.start_at), instant(row.end_at),
                   effective_slot_status(row.status, row.hold_expires_at, NOW), row.slot_type,
                   row.delivery_channel, row.national_category, row.comment, row.version_id,
                   instant(row.last_updated))


@pytest.mark.parametrize("fields", [
    {},
    {"comment": 'Léa\'s "clinic" \\ room 2\n'},
    {"status": "busy-tentative", "hold_expires_at": NOW - dt.timedelta(seconds=1),
     "version_id": 7},
    {"slot_type": "home-visit", "delivery_channel": "Home-visit",
     "national_category": "home-visit",
     "last_updated": dt.datetime(2026, 11, 23, 22, 1, tzinfo=dt.timezone(dt.timedelta(hours=1)))},
    {"slot_type": "local-only", "national_category": "not-national"},
])
def test_slot_json_is_the_slot_resource_serialised(fields):
    row = slot_row(**fields)
    assert slot_json(search_row(row)).encode() == orjson.dumps(slot_resource(row, NOW))


@pytest.mark.parametrize(("offset", "count", "total"), [(0, 2, 5), (2, 2, 5), (4, 2, 5),
                                                         (0, 100, 2), (0, 0, 7)])
def test_searchset_json_is_the_chassis_searchset_serialised(offset, count, total):
    rows = [slot_row() for _ in range(min(count, max(0, total - offset)))]
    params = [("start", "ge2026-11-25"), ("start", "le2026-11-26"), ("status", "free"),
              ("_count", str(count))]
    included = [{"resourceType": "Practitioner", "id": str(uuid.uuid4()), "name": [
        {"family": "Khan"}]}]
    rendered = searchset_json(base_url=BASE, resource_type="Slot", params=params, offset=offset,
                              count=count, total=total,
                              matches=[(r.id, slot_json(search_row(r))) for r in rows],
                              included=included)
    expected = searchset([slot_resource(r, NOW) for r in rows], total=total, base_url=BASE,
                         resource_type="Slot", params=params, offset=offset, count=count,
                         included=included)
    assert rendered == orjson.dumps(expected)


@pytest.mark.parametrize(("offset", "count", "more"), [(0, 2, True), (2, 2, False), (4, 2, False)])
def test_searchset_json_without_a_total_links_the_next_page_only_when_there_is_one(
        offset, count, more):
    rows = [slot_row() for _ in range(count)]
    params = [("start", "ge2026-11-25"), ("start", "le2026-11-26"), ("status", "free")]
    rendered = orjson.loads(searchset_json(
        base_url=BASE, resource_type="Slot", params=params, offset=offset, count=count,
        total=None, more=more, matches=[(r.id, slot_json(search_row(r))) for r in rows]))
    assert "total" not in rendered
    assert ("next" in {link["relation"] for link in rendered["link"]}) is more
    assert ("previous" in {link["relation"] for link in rendered["link"]}) is (offset > 0)
    assert [e["resource"]["id"] for e in rendered["entry"]] == [r.id for r in rows]
