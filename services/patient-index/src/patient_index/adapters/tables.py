"""The patient index's tables (SQLAlchemy Core). Every row carries its practice."""

from __future__ import annotations

from gpsoc_kit.db import new_metadata
from gpsoc_kit.messaging import inbox_table, outbox_table
from gpsoc_kit.versions import versions_table
from sqlalchemy import (
    Boolean,
    Column,
    Date,
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

patients = Table(
    "patients",
    metadata,
    Column("id", UUID(as_uuid=False), primary_key=True),
    Column("practice_code", String(10), nullable=False),
    Column("nhs_number", String(10), nullable=True),
    Column("family", Text, nullable=False),
    Column("given", Text, nullable=False),
    # Collated "C": prefix searches are byte ranges, exact and index-served (see repository).
    Column("family_normalised", Text(collation="C"), nullable=False),
    Column("given_normalised", Text(collation="C"), nullable=False),
    Column("name_text", Text, nullable=False),
    Column("family_soundex", String(4), nullable=False),
    Column("given_soundex", String(4), nullable=False),
    Column("birth_date", Date, nullable=True),
    Column("gender", String(10), nullable=True),
    Column("postal_code", String(10, collation="C"), nullable=True),
    Column("gp_practitioner_id", UUID(as_uuid=False), nullable=True),
    Column("active", Boolean, nullable=False),
    Column("deceased", Boolean, nullable=False),
    Column("version_id", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=text("now()")),
    Column("last_updated", DateTime(timezone=True), nullable=False),
    Column("resource", JSONB, nullable=False),
    # One registration per NHS number in the whole deployment, across practices.
    Index(
        "uq_patients_nhs_number",
        "nhs_number",
        unique=True,
        postgresql_where=text("nhs_number IS NOT NULL"),
    ),
    Index("ix_patients_practice_family", "practice_code", "family_normalised"),
    Index("ix_patients_practice_birth_date", "practice_code", "birth_date"),
    Index("ix_patients_practice_postal_code", "practice_code", "postal_code"),
    Index("ix_patients_practice_soundex", "practice_code", "family_soundex"),
    Index("ix_patients_practice_given_soundex", "practice_code", "given_soundex"),
    Index("ix_patients_practice_gp", "practice_code", "gp_practitioner_id"),
)

patient_versions = versions_table(metadata, "patient_versions", "patient_id")

organizations = Table(
    "organizations",
    metadata,
    Column("id", UUID(as_uuid=False), primary_key=True),
    Column("practice_code", String(10), nullable=False),
    Column("ods_code", String(10), nullable=False, unique=True),
    Column("name", Text, nullable=False),
    Column("version_id", Integer, nullable=False),
    Column("last_updated", DateTime(timezone=True), nullable=False),
    Column("resource", JSONB, nullable=False),
)

practitioners = Table(
    "practitioners",
    metadata,
    Column("id", UUID(as_uuid=False), primary_key=True),
    Column("practice_code", String(10), nullable=False),
    Column("family_normalised", Text, nullable=False),
    Column("given_normalised", Text, nullable=False),
    Column("sds_user_id", String(20), nullable=True),
    Column("roles", ARRAY(Text), nullable=False),
    Column("prescriber", Boolean, nullable=False),
    Column("active", Boolean, nullable=False),
    Column("version_id", Integer, nullable=False),
    Column("last_updated", DateTime(timezone=True), nullable=False),
    Column("resource", JSONB, nullable=False),
    Index("ix_practitioners_practice_family", "practice_code", "family_normalised"),
)

# Sharing agreements this practice granted (or was granted): FHIR OrganizationAffiliation.
# The granting practice (the data controller) owns the row; the grantee may read it.
sharing_agreements = Table(
    "sharing_agreements",
    metadata,
    Column("id", UUID(as_uuid=False), primary_key=True),
    Column("practice_code", String(10), nullable=False),
    Column("grantee_practice", String(10), nullable=False),
    Column("scopes", ARRAY(Text), nullable=False),
    Column("starts_at", DateTime(timezone=True), nullable=False),
    Column("ends_at", DateTime(timezone=True), nullable=True),
    Column("active", Boolean, nullable=False),
    Column("version_id", Integer, nullable=False),
    Column("last_updated", DateTime(timezone=True), nullable=False),
    Column("resource", JSONB, nullable=False),
    Index("ix_sharing_agreements_grantee", "grantee_practice"),
)

sharing_agreement_versions = versions_table(metadata, "sharing_agreement_versions", "agreement_id")

# Which practice holds a patient id: kept by a trigger on patients, read only by
# break-glass (which must find a record outside the caller's practice, and is audited
# and alerted). Holds no demographics.
patient_directory = Table(
    "patient_directory",
    metadata,
    Column("patient_id", UUID(as_uuid=False), primary_key=True),
    Column("practice_code", String(10), nullable=False),
)

outbox = outbox_table(metadata)
inbox = inbox_table(metadata)

TENANT_TABLES = ("patients", "patient_versions", "organizations", "practitioners")
