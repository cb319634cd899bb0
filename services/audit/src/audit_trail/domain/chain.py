"""The hash chain: every record's hash covers its own contents and the hash before it.

One global chain, numbered from 1 with no gaps. A record's hash is SHA-256 over the
canonical serialisation (sorted keys, compact, ASCII JSON) of its sequence number,
the previous record's hash, the event id, every stored field and the full
AuditEvent, so changing any column of any record, or removing or slipping in a
record, shows when the chain is walked again (see verification.py).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from .entry import AuditEntry

GENESIS_HASH = "0" * 64


@dataclass(frozen=True)
class ChainHead:
    """The last record appended: its sequence number and hash (seq 0 before the first)."""

    seq: int
    hash: str


EMPTY_CHAIN = ChainHead(0, GENESIS_HASH)


@dataclass(frozen=True)
class AuditRecord:
    """One stored record: an entry, its place in the chain and the hashes that pin it there."""

    id: str
    seq: int
    previous_hash: str
    hash: str
    stored_at: dt.datetime
    entry: AuditEntry

    def recomputed_hash(self) -> str:
        return record_hash(seq=self.seq, previous_hash=self.previous_hash, record_id=self.id,
                           stored_at=self.stored_at, entry=self.entry)


def canonical_json(value: Any) -> str:
    """The one serialisation that is hashed and stored: sorted keys, no spaces, ASCII only."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                      allow_nan=False)


def instant(moment: dt.datetime) -> str:
    """Timestamps in hashed form: UTC, microseconds (what PostgreSQL keeps)."""
    return moment.astimezone(dt.UTC).isoformat(timespec="microseconds")


def stored_fields(record_id: str, stored_at: dt.datetime, entry: AuditEntry) -> dict[str, Any]:
    """Every stored column besides seq, the hashes, the event id and the AuditEvent."""
    return {
        "id": record_id,
        "source": entry.source,
        "practiceCode": entry.practice_code,
        "agentId": entry.agent_id,
        "roleCode": entry.role_code,
        "patientIds": list(entry.patient_ids),
        "resourceRefs": list(entry.resource_refs),
        "action": entry.action,
        "outcome": entry.outcome,
        "recordedAt": instant(entry.recorded_at),
        "requestId": entry.request_id,
        "traceId": entry.trace_id,
        "breakGlassReason": entry.break_glass_reason,
        "storedAt": instant(stored_at),
    }


def record_hash(*, seq: int, previous_hash: str, record_id: str, stored_at: dt.datetime,
                entry: AuditEntry) -> str:
    payload = {
        "seq": seq,
        "previousHash": previous_hash,
        "eventId": entry.event_id,
        "fields": stored_fields(record_id, stored_at, entry),
        "auditEvent": entry.audit_event,
    }
    return hashlib.sha256(canonical_json(payload).encode("ascii")).hexdigest()


def append(head: ChainHead, entry: AuditEntry, *, record_id: str,
           stored_at: dt.datetime) -> AuditRecord:
    """The record that follows `head`; the caller holds the head's lock while storing it."""
    seq = head.seq + 1
    return AuditRecord(
        id=record_id,
        seq=seq,
        previous_hash=head.hash,
        hash=record_hash(seq=seq, previous_hash=head.hash, record_id=record_id,
                         stored_at=stored_at, entry=entry),
        stored_at=stored_at,
        entry=entry,
    )
