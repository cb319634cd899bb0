"""The sharing policies' SQL and the grant events' projection rows (no I/O)."""

from __future__ import annotations

import datetime as dt

import pytest
from gpsoc_kit.consumer import PermanentFailure
from gpsoc_kit.events import CloudEvent
from gpsoc_kit.sharing import (
    AGREEMENT_RECORDED,
    BREAK_GLASS_GRANTED,
    grant_row,
    practice_policies_sql,
)


def test_a_table_no_scope_opens_stays_with_its_own_practice():
    statements = practice_policies_sql("audit_records")
    assert "FORCE ROW LEVEL SECURITY" in statements[1]
    read = next(s for s in statements if "_read ON" in s)
    assert "current_setting('app.practice', true)" in read and "access_grants" not in read


def test_shared_reads_and_break_glass_are_evaluated_once_per_statement():
    read = next(
        s
        for s in practice_policies_sql(
            "patients", patient_column="id", read_scopes=("read-record",)
        )
        if "_read ON" in s
    )
    # Uncorrelated ARRAY(sub-select)s (InitPlans), inline: no function to plan per call.
    assert read.count("g.scopes && ARRAY['read-record']::TEXT[]") == 2
    assert "id::TEXT = ANY (ARRAY(SELECT g.patient_id FROM access_grants g" in read
    assert read.count("g.kind = 'break-glass'") == 2 and "gpsoc_" not in read


def test_writes_open_only_for_the_write_scopes():
    statements = practice_policies_sql(
        "slots", read_scopes=("book-shared-slots",), write_scopes=("book-shared-slots",)
    )
    insert = next(s for s in statements if "_insert ON" in s)
    assert "g.scopes && ARRAY['book-shared-slots']::TEXT[]" in insert
    closed = practice_policies_sql("patients", read_scopes=("read-record",))
    assert "access_grants" not in next(s for s in closed if "_update ON" in s)


def test_an_unknown_scope_is_a_programming_error():
    with pytest.raises(ValueError):
        practice_policies_sql("patients", read_scopes=("everything",))


def event(event_type: str, data: dict) -> CloudEvent:
    return CloudEvent(
        type=event_type,
        source="urn:opengpsoc:patient-index",
        subject="s",
        practice="A81001",
        data=data,
    )


def test_an_agreement_event_becomes_a_grant_row():
    row = grant_row(
        event(
            AGREEMENT_RECORDED,
            {
                "agreementId": "a1",
                "grantor": "A81001",
                "grantee": "A81002",
                "scopes": ["read-record"],
                "start": "2026-11-01T00:00:00+00:00",
                "end": None,
                "active": True,
                "versionId": 3,
            },
        )
    )
    assert row["kind"] == "agreement" and row["version"] == 3 and row["ends_at"] is None
    assert row["starts_at"] == dt.datetime(2026, 11, 1, tzinfo=dt.UTC)


def test_a_break_glass_event_becomes_a_personal_grant_row():
    row = grant_row(
        event(
            BREAK_GLASS_GRANTED,
            {
                "grantId": "g1",
                "patient": "p1",
                "patientPractice": "A81001",
                "user": "u1",
                "userPractice": "A81002",
                "start": "2026-11-01T10:00:00+00:00",
                "end": "2026-11-01T10:30:00+00:00",
            },
        )
    )
    assert (
        row["grantor_practice"],
        row["grantee_practice"],
        row["grantee_user"],
        row["patient_id"],
    ) == ("A81001", "A81002", "u1", "p1")


def test_a_grant_event_missing_a_field_is_a_permanent_failure():
    with pytest.raises(PermanentFailure):
        grant_row(event(AGREEMENT_RECORDED, {"agreementId": "a1"}))
