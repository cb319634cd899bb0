"""The clinical record's tables (SQLAlchemy Core). Every row of practice data carries its practice.

Entries of every type share one table: the patient summary and the timeline read
one patient's record in one index range, whatever the resource type.
"""

from __future__ import annotations

from gpsoc_kit.db import new_metadata
from gpsoc_kit.messaging import inbox_table, outbox_table
from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Index,
    Integer,
    String,
    Table,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID

metadata = new_metadata()

clinical_entries = Table(
    "clinical_entries",
    metadata,
    Column("id", UUID(as_uuid=False), primary_key=True),
    Column("practice_code", String(10), nullable=False),
    Column("resource_type", String(40), nullable=False),
    Column("patient_id", UUID(as_uuid=False), nullable=False),
    Column("code_system", Text, nullable=True),
    Column("code", Text, nullable=True),
    Column("code_tokens", ARRAY(Text), nullable=False),
    Column("category", ARRAY(Text), nullable=False),
    Column("status", String(40), nullable=False),
    Column("clinical_status", String(40), nullable=True),
    Column("effective_at", DateTime(timezone=True), nullable=True),
    Column("encounter_id", UUID(as_uuid=False), nullable=True),
    Column("appointment_id", UUID(as_uuid=False), nullable=True),
    Column("entered_in_error", Boolean, nullable=False),
    Column("version_id", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=text("now()")),
    Column("last_updated", DateTime(timezone=True), nullable=False),
    Column("resource", JSONB, nullable=False),
    # One patient's record, newest first, per resource type: search, summary and timeline.
    Index(
        "ix_clinical_entries_patient_type_effective",
        "practice_code",
        "patient_id",
        "resource_type",
        text("effective_at DESC"),
    ),
    Index(
        "ix_clinical_entries_encounter",
        "encounter_id",
        postgresql_where=text("encounter_id IS NOT NULL"),
    ),
    # One consultation per appointment: an arrival redelivered under a new event id opens none.
    Index(
        "uq_clinical_entries_appointment_id",
        "appointment_id",
        unique=True,
        postgresql_where=text("appointment_id IS NOT NULL"),
    ),
)

entry_versions = Table(
    "entry_versions",
    metadata,
    Column("entry_id", UUID(as_uuid=False), primary_key=True),
    Column("version_id", Integer, primary_key=True),
    Column("practice_code", String(10), nullable=False),
    Column("resource_type", String(40), nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
    Column("recorded_by", Text, nullable=False),
    Column("recorded_by_name", Text, nullable=False),
    Column("resource", JSONB, nullable=False),
)

# Projection of the patient index's events: which patients each practice holds.
patients = Table(
    "patients",
    metadata,
    Column("id", UUID(as_uuid=False), primary_key=True),
    Column("practice_code", String(10), nullable=False),
    Column("active", Boolean, nullable=False),
    Column("deceased", Boolean, nullable=False),
    Column("version_id", Integer, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

# Read model of prescribing's issues: the record's medication timeline.
issued_medications = Table(
    "issued_medications",
    metadata,
    Column("id", UUID(as_uuid=False), primary_key=True),  # the issued MedicationRequest's id
    Column("practice_code", String(10), nullable=False),
    Column("patient_id", UUID(as_uuid=False), nullable=False),
    Column("issued_at", DateTime(timezone=True), nullable=False),
    Column("resource", JSONB, nullable=False),
    Index("ix_issued_medications_patient", "practice_code", "patient_id", text("issued_at DESC")),
)

# SNOMED CT as imported from an RF2 release: reference data shared by every practice.
snomed_concepts = Table(
    "snomed_concepts",
    metadata,
    Column("id", String(18), primary_key=True),
    Column("effective_time", String(8), nullable=False),
    Column("active", Boolean, nullable=False),
    Column("module_id", String(18), nullable=False),
    Column("fully_specified_name", Text, nullable=True),
)

snomed_descriptions = Table(
    "snomed_descriptions",
    metadata,
    Column("id", String(18), primary_key=True),
    Column("effective_time", String(8), nullable=False),
    Column("active", Boolean, nullable=False),
    Column("concept_id", String(18), nullable=False),
    Column("language_code", String(8), nullable=False),
    Column("type_id", String(18), nullable=False),
    Column("term", Text, nullable=False),
    Index("ix_snomed_descriptions_concept", "concept_id"),
    Index(
        "ix_snomed_descriptions_term_trgm",
        "term",
        postgresql_using="gin",
        postgresql_ops={"term": "gin_trgm_ops"},
    ),
)

outbox = outbox_table(metadata)
inbox = inbox_table(metadata)

TENANT_TABLES = ("clinical_entries", "entry_versions", "patients", "issued_medications")
