"""The audit store's tables (SQLAlchemy Core). The DDL itself is frozen in the migration."""

from __future__ import annotations

from gpsoc_kit.db import new_metadata
from gpsoc_kit.messaging import inbox_table, outbox_table
from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    Index,
    SmallInteger,
    String,
    Table,
    Text,
)
from sqlalchemy.dialects.postgresql import ARRAY, UUID

metadata = new_metadata()

# Append-only: the app role may only SELECT and INSERT, and a trigger refuses UPDATE,
# DELETE and TRUNCATE from anyone. Row-level security scopes reads to one practice.
audit_records = Table(
    "audit_records",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("id", UUID(as_uuid=False), nullable=False, unique=True),
    Column("event_id", String(200), nullable=False, unique=True),
    Column("source", Text, nullable=False),
    Column("practice_code", String(10), nullable=False),
    Column("agent_id", Text, nullable=True),
    Column("role_code", String(20), nullable=True),
    Column("patient_ids", ARRAY(Text), nullable=False),
    Column("resource_refs", ARRAY(Text), nullable=False),
    Column("action", String(1), nullable=False),
    Column("outcome", String(2), nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
    Column("request_id", Text, nullable=True),
    Column("trace_id", Text, nullable=True),
    Column("break_glass_reason", Text, nullable=True),
    Column("stored_at", DateTime(timezone=True), nullable=False),
    # The canonical JSON text that was hashed, not JSONB: JSONB re-normalises numbers
    # and keys, and verification must see exactly what was chained.
    Column("audit_event", Text, nullable=False),
    Column("previous_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    Index("ix_audit_records_practice_recorded", "practice_code", "recorded_at"),
    Index("ix_audit_records_practice_agent", "practice_code", "agent_id", "recorded_at"),
    Index("ix_audit_records_patient_ids", "patient_ids", postgresql_using="gin"),
)

# One row: the last record appended. Appends lock it (SELECT ... FOR UPDATE), which
# serialises them into one gap-free chain however many consumers run.
chain_head = Table(
    "chain_head",
    metadata,
    Column("id", SmallInteger, primary_key=True, autoincrement=False),
    Column("seq", BigInteger, nullable=False),
    Column("hash", String(64), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    CheckConstraint("id = 1", name="single_row"),
)
CHAIN_HEAD_ID = 1

# Which practice holds each patient (from patient.events.v1): an access by another
# practice's user (under a sharing agreement or break-glass) is copied into the holding
# practice's trail, so its privacy officer's "who viewed this record" sees it. Holds ids
# and ODS codes only.
patient_practices = Table(
    "patient_practices",
    metadata,
    Column("patient_id", Text, primary_key=True),
    Column("practice_code", String(10), nullable=False),
)

outbox = outbox_table(metadata)
inbox = inbox_table(metadata)
