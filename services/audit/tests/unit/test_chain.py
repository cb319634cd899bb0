"""The hash chain as pure functions: what a record's hash covers (no I/O)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re

import pytest
from audit_trail.adapters.tables import audit_records
from audit_trail.domain.chain import (
    EMPTY_CHAIN,
    GENESIS_HASH,
    ChainHead,
    append,
    canonical_json,
    stored_fields,
)
from audit_trail.domain.entry import entry_from_event

STORED_AT = dt.datetime(2026, 11, 24, 12, 0, 0, 654321, tzinfo=dt.UTC)


def entry(event):  # noqa: ANN001, ANN201
    return entry_from_event(event_id=event.id, source=event.source, practice=event.practice,
                            audit_event=event.data)


def test_the_first_record_is_seq_1_chained_to_the_genesis_hash(audit_cloud_event):
    record = append(EMPTY_CHAIN, entry(audit_cloud_event()), record_id="r1", stored_at=STORED_AT)
    assert record.seq == 1
    assert record.previous_hash == GENESIS_HASH
    assert re.fullmatch(r"[0-9a-f]{64}", record.hash)
    assert record.recomputed_hash() == record.hash


def test_each_record_carries_the_hash_of_the_one_before(audit_cloud_event):
    first = append(EMPTY_CHAIN, entry(audit_cloud_event()), record_id="r1", stored_at=STORED_AT)
    second = append(ChainHead(first.seq, first.hash), entry(audit_cloud_event()),
                    record_id="r2", stored_at=STORED_AT)
    assert (second.seq, second.previous_hash) == (2, first.hash)


def test_the_canonical_form_is_sorted_compact_ascii_json():
    assert canonical_json({"b": 1, "a": ["é", None]}) == '{"a":["\\u00e9",null],"b":1}'


def test_key_order_in_the_audit_event_does_not_change_the_hash(audit_cloud_event):
    event = audit_cloud_event(patient_ids=["p1"])
    reordered = dict(reversed(list(event.data.items())))
    one = append(EMPTY_CHAIN, entry(event), record_id="r1", stored_at=STORED_AT)
    two = append(EMPTY_CHAIN, dataclasses.replace(entry(event), audit_event=reordered),
                 record_id="r1", stored_at=STORED_AT)
    assert one.hash == two.hash


@pytest.mark.parametrize("change", [
    {"event_id": "another-event"},
    {"source": "urn:opengpsoc:prescribing"},
    {"practice_code": "A81002"},
    {"agent_id": "someone-else"},
    {"role_code": "R8009"},
    {"patient_ids": ("p1", "p9")},
    {"resource_refs": ("Condition/c9",)},
    {"action": "D"},
    {"outcome": "4"},
    {"recorded_at": dt.datetime(2026, 1, 1, tzinfo=dt.UTC)},
    {"request_id": "req-forged"},
    {"trace_id": "00" * 16},
    {"break_glass_reason": "made up later"},
    {"audit_event": {"resourceType": "AuditEvent"}},
])
def test_changing_any_stored_fact_changes_the_hash(audit_cloud_event, change):
    original = entry(audit_cloud_event(patient_ids=["p1"], request_id="req-1"))
    honest = append(EMPTY_CHAIN, original, record_id="r1", stored_at=STORED_AT)
    altered = dataclasses.replace(honest, entry=dataclasses.replace(original, **change))
    assert altered.recomputed_hash() != honest.hash


@pytest.mark.parametrize("change", [
    {"seq": 2}, {"previous_hash": "1" * 64}, {"id": "r2"},
    {"stored_at": STORED_AT + dt.timedelta(microseconds=1)},
])
def test_changing_its_place_or_identity_changes_the_hash(audit_cloud_event, change):
    honest = append(EMPTY_CHAIN, entry(audit_cloud_event()), record_id="r1", stored_at=STORED_AT)
    assert dataclasses.replace(honest, **change).recomputed_hash() != honest.hash


def test_every_stored_column_is_covered_by_the_hash(audit_cloud_event):
    hashed = set(stored_fields("r1", STORED_AT, entry(audit_cloud_event())))
    hashed_separately = {"seq", "previousHash", "eventId", "auditEvent"}
    not_hashed = {"hash"}
    columns = {_camel(c.name) for c in audit_records.columns} - not_hashed
    assert columns == hashed | hashed_separately


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)
