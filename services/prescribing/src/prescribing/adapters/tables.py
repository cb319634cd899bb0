"""The prescribing service's tables (SQLAlchemy Core).

Two kinds of table. Reference data shared by every practice - the dm+d formulary
and the clinical knowledge base - carries no practice and has no row-level
security: it holds no patient data, every practice must read the same release,
and one copy serves them all. Everything about patients carries its practice and
is FORCE row-level secured (TENANT_TABLES).
"""

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
    Numeric,
    Sequence,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID

metadata = new_metadata()

# ---- reference data (no practice, no RLS) ------------------------------------------------
medications = Table(
    "medications",
    metadata,
    Column("dmd_id", String(20), primary_key=True),
    Column("concept_class", String(3), nullable=False),  # VTM | VMP | AMP
    Column("name", Text, nullable=False),
    Column("name_normalised", Text, nullable=False),
    Column("vtm_id", String(20), nullable=True),
    Column("vmp_id", String(20), nullable=True),
    Column("form", Text, nullable=True),
    Column("route", Text, nullable=True),
    Column("strength", Text, nullable=True),
    Column("strength_value", Numeric(14, 4), nullable=True),
    Column("strength_unit", String(40), nullable=True),
    Column("unit_dose_form", String(40), nullable=True),
    Column("cd_schedule", SmallInteger, nullable=True),
    Column("cd_category", Text, nullable=True),
    Column("available", Boolean, nullable=False),
    Column("availability", Text, nullable=True),
    Column("supplier", Text, nullable=True),
    Column("invalid", Boolean, nullable=False),
    Column("release", String(80), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=text("now()")),
    Index("ix_medications_name_trgm", "name_normalised", postgresql_using="gin",
          postgresql_ops={"name_normalised": "gin_trgm_ops"}),
    Index("ix_medications_name_prefix", "name_normalised",
          postgresql_ops={"name_normalised": "text_pattern_ops"}),
    Index("ix_medications_vtm_id", "vtm_id"),
    Index("ix_medications_vmp_id", "vmp_id"),
)

knowledge_base_release = Table(
    "knowledge_base_release",
    metadata,
    # One row: the release every check is made against, read on every request.
    Column("id", SmallInteger, primary_key=True),
    Column("source", Text, nullable=False),
    Column("version", Text, nullable=False),
    Column("published_on", Date, nullable=False),
    Column("valid_until", Date, nullable=False),
    Column("loaded_at", DateTime(timezone=True), nullable=False, server_default=text("now()")),
    CheckConstraint("id = 1", name="single_row"),
)

kb_substance_classes = Table(
    "kb_substance_classes",
    metadata,
    Column("class_code", String(40), primary_key=True),
    # A substance is a dm+d VTM id, or a VMP id for a product dm+d gives no VTM.
    Column("substance_id", String(20), primary_key=True),
    Column("class_display", Text, nullable=False),
    # How strongly sensitivity to the class implies sensitivity to this member.
    Column("cross_sensitivity", String(10), nullable=False),
    Index("ix_kb_substance_classes_substance_id", "substance_id"),
)

kb_allergen_concepts = Table(
    "kb_allergen_concepts",
    metadata,
    Column("snomed_code", String(20), primary_key=True),
    Column("display", Text, nullable=False),
    Column("substance_id", String(20), nullable=True),
    Column("class_code", String(40), nullable=True),
)

kb_interactions = Table(
    "kb_interactions",
    metadata,
    Column("left_key", String(60), primary_key=True),
    Column("right_key", String(60), primary_key=True),
    Column("severity", String(10), nullable=False),
    Column("description", Text, nullable=False),
    Index("ix_kb_interactions_right_key", "right_key"),
)

kb_dose_limits = Table(
    "kb_dose_limits",
    metadata,
    Column("substance_id", String(20), primary_key=True),
    Column("max_single_mg", Numeric(14, 4), nullable=True),
    Column("max_daily_mg", Numeric(14, 4), nullable=True),
)

# ---- projections of other services' events (tenant tables) --------------------------------
patients = Table(
    "patients",
    metadata,
    Column("id", UUID(as_uuid=False), primary_key=True),
    Column("practice_code", String(10), nullable=False),
    Column("nhs_number", String(10), nullable=True),
    Column("family", Text, nullable=False),
    Column("given", Text, nullable=False),
    Column("birth_date", Date, nullable=True),
    Column("gender", String(10), nullable=True),
    Column("active", Boolean, nullable=False),
    Column("deceased", Boolean, nullable=False),
    Column("version_id", Integer, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=text("now()")),
)

patient_allergies = Table(
    "patient_allergies",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("practice_code", String(10), nullable=False),
    Column("patient_id", UUID(as_uuid=False), nullable=False),
    Column("code", String(20), nullable=True),
    Column("display", Text, nullable=False),
    Column("clinical_status", String(20), nullable=True),
    Column("verification_status", String(20), nullable=True),
    Column("no_known_allergies", Boolean, nullable=False),
    Column("version_id", Integer, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=text("now()")),
    Index("ix_patient_allergies_practice_patient", "practice_code", "patient_id"),
)

# ---- this service's records (tenant tables) -----------------------------------------------
medication_requests = Table(
    "medication_requests",
    metadata,
    Column("id", UUID(as_uuid=False), primary_key=True),
    Column("practice_code", String(10), nullable=False),
    Column("patient_id", UUID(as_uuid=False), nullable=False),
    Column("intent", String(10), nullable=False),  # plan | order
    Column("status", String(20), nullable=False),
    Column("course", String(40), nullable=False),
    Column("medication_code", String(20), nullable=False),
    Column("substance_id", String(20), nullable=False),
    Column("based_on", UUID(as_uuid=False), nullable=True),  # orders: their plan
    Column("prior_prescription", UUID(as_uuid=False), nullable=True),  # plans: re-authorised from
    Column("issue_number", Integer, nullable=True),  # orders once issued
    Column("authorised_issues", Integer, nullable=True),  # plans
    Column("issues_made", Integer, nullable=False, server_default=text("0")),  # plans
    Column("review_date", Date, nullable=True),
    Column("supply_until", DateTime(timezone=True), nullable=True),  # orders: end of supply
    Column("prescriber_id", Text, nullable=False),
    Column("authored_on", DateTime(timezone=True), nullable=False),
    Column("version_id", Integer, nullable=False),
    Column("last_updated", DateTime(timezone=True), nullable=False),
    Column("resource", JSONB, nullable=False),
    # Race-safe issue numbering: the database refuses a second issue 3 of one plan, and
    # a plan whose issues would exceed its authorised count.
    UniqueConstraint("based_on", "issue_number", name="uq_medication_requests_plan_issue"),
    CheckConstraint("issues_made <= authorised_issues", name="issues_within_authorised"),
    CheckConstraint("intent IN ('plan', 'order')", name="intent"),
    Index("ix_medication_requests_practice_patient", "practice_code", "patient_id"),
    Index("ix_medication_requests_based_on", "based_on"),
)

medication_request_versions = versions_table(metadata, "medication_request_versions", "request_id")

safety_overrides = Table(
    "safety_overrides",
    metadata,
    Column("id", UUID(as_uuid=False), primary_key=True),
    Column("practice_code", String(10), nullable=False),
    Column("request_id", UUID(as_uuid=False), nullable=False),
    Column("plan_id", UUID(as_uuid=False), nullable=False),  # the plan the request belongs to
    Column("patient_id", UUID(as_uuid=False), nullable=False),
    Column("reason", Text, nullable=False),
    Column("findings", JSONB, nullable=False),
    Column("overridden_by", Text, nullable=False),
    Column("knowledge_base", Text, nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
    Index("ix_safety_overrides_plan_id", "plan_id"),
)

# EPS messages waiting for the Spine transport. Like the event outbox it is a delivery
# queue the transport reads across practices, so it has no RLS; the API never lists it.
eps_outbox = Table(
    "eps_outbox",
    metadata,
    Column("id", UUID(as_uuid=False), primary_key=True),  # the message (Bundle) id
    Column("practice_code", String(10), nullable=False),
    Column("request_id", UUID(as_uuid=False), nullable=False, unique=True),
    Column("prescription_id", String(20), nullable=False, unique=True),
    Column("message", JSONB, nullable=False),
    Column("status", String(12), nullable=False),  # pending | sent | withdrawn
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=text("now()")),
    Column("sent_at", DateTime(timezone=True), nullable=True),
    Column("spine_response", JSONB, nullable=True),
    Index("ix_eps_outbox_pending", "created_at", postgresql_where=text("status = 'pending'")),
)

# The 5-hex "practice sequence" of EPS short-form ids: one deployment-wide sequence is
# unique within every practice, and never contended by concurrent issues.
eps_prescription_sequence = Sequence("eps_prescription_sequence", metadata=metadata)

outbox = outbox_table(metadata)
inbox = inbox_table(metadata)

TENANT_TABLES = ("patients", "patient_allergies", "medication_requests",
                 "medication_request_versions", "safety_overrides")
