"""Walking the chain: altered, inserted and missing records are each reported (no I/O)."""

from __future__ import annotations

import dataclasses
import datetime as dt

from audit_trail.domain.chain import EMPTY_CHAIN, AuditRecord, ChainHead, append, record_hash
from audit_trail.domain.entry import entry_from_event
from audit_trail.domain.verification import verify_chain

STORED_AT = dt.datetime(2026, 11, 24, 12, 0, tzinfo=dt.UTC)
PATIENT = "patient-9434765919"


def build_chain(audit_cloud_event, length: int) -> list[AuditRecord]:  # noqa: ANN001
    records: list[AuditRecord] = []
    head = EMPTY_CHAIN
    for n in range(length):
        event = audit_cloud_event(patient_ids=[PATIENT], break_glass_reason="emergency")
        entry = entry_from_event(event_id=event.id, source=event.source, practice=event.practice,
                                 audit_event=event.data)
        record = append(head, entry, record_id=f"r{n + 1}", stored_at=STORED_AT)
        records.append(record)
        head = ChainHead(record.seq, record.hash)
    return records


def head_of(records: list[AuditRecord]) -> ChainHead:
    return ChainHead(records[-1].seq, records[-1].hash)


def forged_after(previous: AuditRecord, template: AuditRecord, seq: int) -> AuditRecord:
    """A forgery by someone who knows the algorithm: its own hash is right."""
    forged = dataclasses.replace(template, id="forged", seq=seq, previous_hash=previous.hash)
    return dataclasses.replace(forged, hash=record_hash(
        seq=seq, previous_hash=previous.hash, record_id="forged", stored_at=STORED_AT,
        entry=forged.entry))


def test_an_untouched_chain_is_intact(audit_cloud_event):
    records = build_chain(audit_cloud_event, 5)
    report = verify_chain(records, head_of(records))
    assert report.intact
    assert report.records_checked == 5
    assert report.first_bad_seq is None


def test_an_empty_store_is_intact():
    assert verify_chain([], EMPTY_CHAIN).intact


def test_a_record_whose_contents_changed_is_reported_altered(audit_cloud_event):
    records = build_chain(audit_cloud_event, 5)
    head = head_of(records)
    records[2] = dataclasses.replace(records[2], entry=dataclasses.replace(
        records[2].entry, outcome="4"))
    report = verify_chain(records, head)
    assert (report.altered, report.inserted, report.missing) == ([3], [], [])
    assert report.first_bad_seq == 3


def test_a_changed_audit_event_body_is_reported_altered(audit_cloud_event):
    records = build_chain(audit_cloud_event, 3)
    head = head_of(records)
    body = dict(records[0].entry.audit_event, outcome="8")
    records[0] = dataclasses.replace(records[0], entry=dataclasses.replace(
        records[0].entry, audit_event=body))
    assert verify_chain(records, head).altered == [1]


def test_a_removed_record_is_reported_missing(audit_cloud_event):
    records = build_chain(audit_cloud_event, 5)
    head = head_of(records)
    del records[1]
    report = verify_chain(records, head)
    assert (report.altered, report.inserted, report.missing) == ([], [], [(2, 2)])
    assert report.first_bad_seq == 2


def test_removing_the_newest_records_is_seen_against_the_chain_head(audit_cloud_event):
    records = build_chain(audit_cloud_event, 5)
    report = verify_chain(records[:3], head_of(records))
    assert report.missing == [(4, 5)]
    assert report.missing_count == 2


def test_a_perfectly_hashed_record_appended_behind_the_heads_back_is_reported_inserted(
    audit_cloud_event,
):
    records = build_chain(audit_cloud_event, 3)
    head = head_of(records)
    report = verify_chain(records + [forged_after(records[-1], records[0], 4)], head)
    assert (report.altered, report.inserted, report.missing) == ([], [4], [])


def test_a_record_slipped_into_a_gap_is_reported_inserted_once(audit_cloud_event):
    records = build_chain(audit_cloud_event, 5)
    head = head_of(records)
    records[2] = forged_after(records[0], records[2], 3)  # chained to seq 1, not seq 2
    report = verify_chain(records, head)
    assert (report.altered, report.inserted, report.missing) == ([], [3], [])


def test_a_record_rewritten_with_a_fresh_hash_breaks_the_link_of_the_next(audit_cloud_event):
    records = build_chain(audit_cloud_event, 4)
    head = head_of(records)
    rewritten = dataclasses.replace(records[1], entry=dataclasses.replace(
        records[1].entry, action="R", outcome="0", agent_id="someone-else"))
    records[1] = dataclasses.replace(rewritten, hash=rewritten.recomputed_hash())
    report = verify_chain(records, head)
    assert (report.altered, report.inserted) == ([], [3])


def test_a_head_that_disagrees_with_the_last_record_is_reported(audit_cloud_event):
    records = build_chain(audit_cloud_event, 2)
    report = verify_chain(records, ChainHead(2, "f" * 64))
    assert report.head_mismatch
    assert not report.intact
    assert report.first_bad_seq == 2


def test_a_record_numbered_before_the_chain_starts_is_reported_inserted(audit_cloud_event):
    records = build_chain(audit_cloud_event, 2)
    head = head_of(records)
    report = verify_chain([dataclasses.replace(records[0], seq=0)] + records, head)
    assert report.inserted == [0]


def test_the_report_gives_counts_and_sequence_numbers_but_no_patient_data(audit_cloud_event):
    records = build_chain(audit_cloud_event, 6)
    head = head_of(records)
    records[1] = dataclasses.replace(records[1], entry=dataclasses.replace(
        records[1].entry, patient_ids=("someone-else",)))
    del records[3]
    text = verify_chain(records, head).summary()
    assert "BROKEN" in text
    assert "records checked: 5" in text
    assert "altered: 1 (seq 2)" in text
    assert "missing: 1 (seq 4)" in text
    assert "first bad seq: 2" in text
    assert PATIENT not in text and "emergency" not in text and "A81001" not in text
