"""The appointments service's tables (SQLAlchemy Core). Every row of practice data carries its practice."""

from __future__ import annotations

from gpsoc_kit.db import new_metadata
from gpsoc_kit.messaging import inbox_table, outbox_table
from gpsoc_kit.versions import versions_table
from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    Time,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID

metadata = new_metadata()

# The practices this service holds data for. Not practice data itself (ODS codes are
# public), so no row-level security: the housekeeper reads it to visit each practice in turn.
practices = Table(
    "practices",
    metadata,
    Column("practice_code", String(10), primary_key=True),
    Column("added_at", DateTime(timezone=True), nullable=False, server_default=text("now()")),
)

# Local projection of the practice's staff (seeded from the demo data or onboarding):
# the actors of schedules, and what `_include:recurse=Schedule:actor:Practitioner` returns.
staff = Table(
    "staff",
    metadata,
    Column("id", UUID(as_uuid=False), primary_key=True),
    Column("practice_code", String(10), nullable=False),
    Column("role", String(40), nullable=False),
    Column("display", Text, nullable=False),
    Column("last_updated", DateTime(timezone=True), nullable=False),
    Column("resource", JSONB, nullable=False),
)

# Local projection of patients, built from patient.events.v1.
patients = Table(
    "patients",
    metadata,
    Column("id", UUID(as_uuid=False), primary_key=True),
    Column("practice_code", String(10), nullable=False),
    Column("nhs_number", String(10), nullable=True),
    Column("display", Text, nullable=False),
    Column("active", Boolean, nullable=False),
    Column("deceased", Boolean, nullable=False),
    Column("version_id", Integer, nullable=False),
    Column("last_updated", DateTime(timezone=True), nullable=False),
)

schedules = Table(
    "schedules",
    metadata,
    Column("id", UUID(as_uuid=False), primary_key=True),
    Column("practice_code", String(10), nullable=False),
    Column("practitioner_id", UUID(as_uuid=False), nullable=False),
    Column("practitioner_display", Text, nullable=False),
    Column("location", Text, nullable=False),
    Column("active", Boolean, nullable=False),
    Column("comment", Text, nullable=True),
    # The location actor's reference (e.g. Location/...), when the client gave one.
    Column("location_reference", Text, nullable=True),
    Column("specialty", JSONB, nullable=True),  # Schedule.specialty as sent
    Column("planning_horizon", JSONB, nullable=True),  # a client's Schedule.planningHorizon
    Column("version_id", Integer, nullable=False),
    Column("last_updated", DateTime(timezone=True), nullable=False),
    Index("ix_schedules_practice_practitioner", "practice_code", "practitioner_id"),
)

# A rota session: on these weekdays, from start to end local time, slots of slot_minutes.
rota_sessions = Table(
    "rota_sessions",
    metadata,
    Column("id", UUID(as_uuid=False), primary_key=True),
    Column("practice_code", String(10), nullable=False),
    Column("schedule_id", UUID(as_uuid=False), nullable=False),
    Column("weekdays", ARRAY(Integer), nullable=False),
    Column("start_time", Time, nullable=False),
    Column("end_time", Time, nullable=False),
    Column("slot_minutes", Integer, nullable=False),
    Column("slot_type", String(40), nullable=False),
    Column("delivery_channel", String(20), nullable=False),
    Column("national_category", String(80), nullable=False),
    Column("release_hours", Integer, nullable=False),
    Column("bookable_by", ARRAY(Text), nullable=False),
    Column("effective_from", Date, nullable=False),
    Column("effective_to", Date, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=text("now()")),
    Index("ix_rota_sessions_practice_schedule", "practice_code", "schedule_id"),
)

slots = Table(
    "slots",
    metadata,
    Column("id", UUID(as_uuid=False), primary_key=True),
    Column("practice_code", String(10), nullable=False),
    Column("schedule_id", UUID(as_uuid=False), nullable=False),
    Column("session_id", UUID(as_uuid=False), nullable=True),
    Column("practitioner_id", UUID(as_uuid=False), nullable=False),
    Column("start_at", DateTime(timezone=True), nullable=False),
    Column("end_at", DateTime(timezone=True), nullable=False),
    # free | busy | busy-unavailable | busy-tentative (held; free again once hold_expires_at passes)
    Column("status", String(20), nullable=False),
    Column("slot_type", String(40), nullable=False),
    Column("delivery_channel", String(20), nullable=False),
    Column("national_category", String(80), nullable=False),
    # The embargo: the slot may be booked from this instant on.
    Column("bookable_from", DateTime(timezone=True), nullable=False),
    Column("bookable_by", ARRAY(Text), nullable=False),
    Column("hold_token", UUID(as_uuid=False), nullable=True),
    Column("hold_expires_at", DateTime(timezone=True), nullable=True),
    Column("comment", Text, nullable=True),
    Column("version_id", Integer, nullable=False),
    Column("last_updated", DateTime(timezone=True), nullable=False),
    # Regenerating a rota's rolling window never duplicates a slot.
    UniqueConstraint("schedule_id", "start_at", name="uq_slots_schedule_start"),
    CheckConstraint("status IN ('free', 'busy', 'busy-unavailable', 'busy-tentative')",
                    name="status"),
    # Free-slot search: the practice's open slots in page order (start, then id).
    Index("ix_slots_practice_open_start_id", "practice_code", "start_at", "id",
          postgresql_where=text("status IN ('free', 'busy-tentative')")),
    Index("ix_slots_practice_practitioner_start", "practice_code", "practitioner_id", "start_at"),
    Index("ix_slots_practice_hold_expiry", "practice_code", "hold_expires_at",
          postgresql_where=text("status = 'busy-tentative'")),
)

appointments = Table(
    "appointments",
    metadata,
    Column("id", UUID(as_uuid=False), primary_key=True),
    Column("practice_code", String(10), nullable=False),
    Column("patient_id", UUID(as_uuid=False), nullable=False),
    Column("practitioner_id", UUID(as_uuid=False), nullable=False),
    Column("status", String(20), nullable=False),
    Column("start_at", DateTime(timezone=True), nullable=False),
    Column("end_at", DateTime(timezone=True), nullable=False),
    Column("slot_ids", ARRAY(UUID(as_uuid=False)), nullable=False),
    Column("slot_type", String(40), nullable=False),
    Column("national_category", String(80), nullable=False),
    Column("delivery_channel", String(20), nullable=False),
    Column("cancellation_reason", Text, nullable=True),
    Column("version_id", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=text("now()")),
    Column("last_updated", DateTime(timezone=True), nullable=False),
    Column("resource", JSONB, nullable=False),
    CheckConstraint("status IN ('booked', 'arrived', 'fulfilled', 'cancelled', 'noshow')",
                    name="status"),
    Index("ix_appointments_practice_patient_start", "practice_code", "patient_id", "start_at"),
    Index("ix_appointments_practice_practitioner_start", "practice_code", "practitioner_id",
          "start_at"),
)

# Every version of every appointment: entries are versioned, never deleted.
appointment_versions = versions_table(metadata, "appointment_versions", "appointment_id")

# Which appointment holds which slot. The partial unique index is the database's own
# guarantee against double booking, behind the conditional slot update.
appointment_slots = Table(
    "appointment_slots",
    metadata,
    Column("appointment_id", UUID(as_uuid=False), nullable=False),
    Column("slot_id", UUID(as_uuid=False), nullable=False),
    Column("practice_code", String(10), nullable=False),
    Column("active", Boolean, nullable=False),
    PrimaryKeyConstraint("appointment_id", "slot_id", name="pk_appointment_slots"),
    Index("uq_appointment_slots_active_slot", "slot_id", unique=True,
          postgresql_where=text("active")),
)

# Safe retries: the answer given to a booking, by the Idempotency-Key the client sent.
idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("practice_code", String(10), nullable=False),
    Column("idempotency_key", String(200), nullable=False),
    Column("request_hash", String(64), nullable=False),
    Column("status_code", Integer, nullable=True),
    Column("response", JSONB, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=text("now()")),
    PrimaryKeyConstraint("practice_code", "idempotency_key", name="pk_idempotency_keys"),
)

outbox = outbox_table(metadata)
inbox = inbox_table(metadata)

TENANT_TABLES = ("staff", "patients", "schedules", "rota_sessions", "slots", "appointments",
                 "appointment_versions", "appointment_slots", "idempotency_keys")
