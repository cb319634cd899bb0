"""Reading the indexed facts out of the AuditEvents every service emits (no I/O)."""

from __future__ import annotations

import datetime as dt

import pytest
from audit_trail.domain.entry import TRACE_ID_URL, entry_from_event
from audit_trail.domain.errors import UnreadableAuditEvent
from gpsoc_kit.audit import AUDIT_SCHEMA_DIR
from gpsoc_kit.events import SchemaRegistry

ACCEPTED = SchemaRegistry(AUDIT_SCHEMA_DIR)


def entry_of(event):  # noqa: ANN001, ANN201
    return entry_from_event(event_id=event.id, source=event.source, practice=event.practice,
                            audit_event=event.data)


def test_the_chassis_audit_event_matches_the_schema_the_consumer_accepts(audit_cloud_event):
    ACCEPTED.validate(audit_cloud_event(patient_ids=["p1"], break_glass_reason="unconscious"))


def test_who_what_which_patient_when_and_outcome_are_read_from_the_audit_event(audit_cloud_event):
    event = audit_cloud_event(practice="A81002", role="gp", user_id="prac-1",
                              interaction="update", resource_type="Condition",
                              resource_ids=["c1", "c2"], patient_ids=["p1"], outcome="0",
                              recorded="2026-11-20T09:30:00.123456+00:00", request_id="req-7")
    event.data["extension"].append({"url": TRACE_ID_URL, "valueString": "ab" * 16})
    entry = entry_of(event)
    assert entry.practice_code == "A81002"
    assert entry.agent_id == "prac-1"
    assert entry.role_code == "R8000"
    assert entry.patient_ids == ("p1",)
    assert entry.resource_refs == ("Condition/c1", "Condition/c2")
    assert (entry.action, entry.outcome) == ("U", "0")
    assert entry.recorded_at == dt.datetime(2026, 11, 20, 9, 30, 0, 123456, tzinfo=dt.UTC)
    assert entry.request_id == "req-7"
    assert entry.trace_id == "ab" * 16
    assert entry.break_glass_reason is None
    assert entry.source == "urn:opengpsoc:patient-index"


def test_a_break_glass_reason_is_kept(audit_cloud_event):
    entry = entry_of(audit_cloud_event(patient_ids=["p1"], break_glass_reason="Unconscious in A&E"))
    assert entry.break_glass_reason == "Unconscious in A&E"


def test_a_search_touching_several_patients_indexes_each_once(audit_cloud_event):
    entry = entry_of(audit_cloud_event(interaction="search", patient_ids=["p1", "p2", "p1"]))
    assert entry.patient_ids == ("p1", "p2")
    assert entry.action == "E"


def test_recorded_in_another_zone_is_kept_as_the_same_instant_in_utc(audit_cloud_event):
    entry = entry_of(audit_cloud_event(recorded="2026-06-01T10:00:00+01:00"))
    assert entry.recorded_at == dt.datetime(2026, 6, 1, 9, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize(("breakage", "reason"), [
    (lambda d: d.update(resourceType="Patient"), "not an AuditEvent"),
    (lambda d: d.update(action="X"), "action"),
    (lambda d: d.update(outcome="1"), "outcome"),
    (lambda d: d.update(agent=[]), "no agent"),
    (lambda d: d.update(recorded="yesterday"), "recorded"),
    (lambda d: d.update(recorded="2026-11-20T09:30:00"), "time zone"),
])
def test_an_audit_event_that_cannot_be_indexed_is_refused(audit_cloud_event, breakage, reason):
    event = audit_cloud_event(patient_ids=["p1"])
    breakage(event.data)
    with pytest.raises(UnreadableAuditEvent, match=reason):
        entry_of(event)
