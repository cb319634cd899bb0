"""Initial schema: formulary and knowledge base (shared), projections, medication requests,
safety overrides, EPS outbox, event outbox and inbox.

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""

from alembic import op
from gpsoc_kit.migrations import tenant_rls_sql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# Frozen DDL: later changes to adapters/tables.py need a new migration, not an edit here.
STATEMENTS = [
    """
CREATE SEQUENCE eps_prescription_sequence
    """,
    """
CREATE TABLE eps_outbox (
    id UUID NOT NULL,
    practice_code VARCHAR(10) NOT NULL,
    request_id UUID NOT NULL,
    prescription_id VARCHAR(20) NOT NULL,
    message JSONB NOT NULL,
    status VARCHAR(12) NOT NULL,
    created_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
    sent_at TIMESTAMP WITH TIME ZONE,
    spine_response JSONB,
    CONSTRAINT pk_eps_outbox PRIMARY KEY (id),
    CONSTRAINT uq_eps_outbox_request_id UNIQUE (request_id),
    CONSTRAINT uq_eps_outbox_prescription_id UNIQUE (prescription_id)
)
    """,
    """
CREATE INDEX ix_eps_outbox_pending ON eps_outbox (created_at) WHERE status = 'pending'
    """,
    """
CREATE TABLE inbox (
    consumer_group VARCHAR(200) NOT NULL,
    event_id VARCHAR(200) NOT NULL,
    event_type VARCHAR(200) NOT NULL,
    received_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
    CONSTRAINT pk_inbox PRIMARY KEY (consumer_group, event_id)
)
    """,
    """
CREATE TABLE kb_allergen_concepts (
    snomed_code VARCHAR(20) NOT NULL,
    display TEXT NOT NULL,
    substance_id VARCHAR(20),
    class_code VARCHAR(40),
    CONSTRAINT pk_kb_allergen_concepts PRIMARY KEY (snomed_code)
)
    """,
    """
CREATE TABLE kb_dose_limits (
    substance_id VARCHAR(20) NOT NULL,
    max_single_mg NUMERIC(14, 4),
    max_daily_mg NUMERIC(14, 4),
    CONSTRAINT pk_kb_dose_limits PRIMARY KEY (substance_id)
)
    """,
    """
CREATE TABLE kb_interactions (
    left_key VARCHAR(60) NOT NULL,
    right_key VARCHAR(60) NOT NULL,
    severity VARCHAR(10) NOT NULL,
    description TEXT NOT NULL,
    CONSTRAINT pk_kb_interactions PRIMARY KEY (left_key, right_key)
)
    """,
    """
CREATE INDEX ix_kb_interactions_right_key ON kb_interactions (right_key)
    """,
    """
CREATE TABLE kb_substance_classes (
    class_code VARCHAR(40) NOT NULL,
    substance_id VARCHAR(20) NOT NULL,
    class_display TEXT NOT NULL,
    cross_sensitivity VARCHAR(10) NOT NULL,
    CONSTRAINT pk_kb_substance_classes PRIMARY KEY (class_code, substance_id)
)
    """,
    """
CREATE INDEX ix_kb_substance_classes_substance_id ON kb_substance_classes (substance_id)
    """,
    """
CREATE TABLE knowledge_base_release (
    id SMALLSERIAL NOT NULL,
    source TEXT NOT NULL,
    version TEXT NOT NULL,
    published_on DATE NOT NULL,
    valid_until DATE NOT NULL,
    loaded_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
    CONSTRAINT pk_knowledge_base_release PRIMARY KEY (id),
    CONSTRAINT ck_knowledge_base_release_single_row CHECK (id = 1)
)
    """,
    """
CREATE TABLE medication_request_versions (
    request_id UUID NOT NULL,
    version_id INTEGER NOT NULL,
    practice_code VARCHAR(10) NOT NULL,
    recorded_at TIMESTAMP WITH TIME ZONE NOT NULL,
    recorded_by TEXT NOT NULL,
    resource JSONB NOT NULL,
    CONSTRAINT pk_medication_request_versions PRIMARY KEY (request_id, version_id)
)
    """,
    """
CREATE TABLE medication_requests (
    id UUID NOT NULL,
    practice_code VARCHAR(10) NOT NULL,
    patient_id UUID NOT NULL,
    intent VARCHAR(10) NOT NULL,
    status VARCHAR(20) NOT NULL,
    course VARCHAR(40) NOT NULL,
    medication_code VARCHAR(20) NOT NULL,
    substance_id VARCHAR(20) NOT NULL,
    based_on UUID,
    prior_prescription UUID,
    issue_number INTEGER,
    authorised_issues INTEGER,
    issues_made INTEGER DEFAULT 0 NOT NULL,
    review_date DATE,
    supply_until TIMESTAMP WITH TIME ZONE,
    prescriber_id TEXT NOT NULL,
    authored_on TIMESTAMP WITH TIME ZONE NOT NULL,
    version_id INTEGER NOT NULL,
    last_updated TIMESTAMP WITH TIME ZONE NOT NULL,
    resource JSONB NOT NULL,
    CONSTRAINT pk_medication_requests PRIMARY KEY (id),
    CONSTRAINT uq_medication_requests_plan_issue UNIQUE (based_on, issue_number),
    CONSTRAINT ck_medication_requests_issues_within_authorised CHECK (issues_made <= authorised_issues),
    CONSTRAINT ck_medication_requests_intent CHECK (intent IN ('plan', 'order'))
)
    """,
    """
CREATE INDEX ix_medication_requests_practice_patient ON medication_requests (practice_code, patient_id)
    """,
    """
CREATE INDEX ix_medication_requests_based_on ON medication_requests (based_on)
    """,
    """
CREATE TABLE medications (
    dmd_id VARCHAR(20) NOT NULL,
    concept_class VARCHAR(3) NOT NULL,
    name TEXT NOT NULL,
    name_normalised TEXT NOT NULL,
    vtm_id VARCHAR(20),
    vmp_id VARCHAR(20),
    form TEXT,
    route TEXT,
    strength TEXT,
    strength_value NUMERIC(14, 4),
    strength_unit VARCHAR(40),
    unit_dose_form VARCHAR(40),
    cd_schedule SMALLINT,
    cd_category TEXT,
    available BOOLEAN NOT NULL,
    availability TEXT,
    supplier TEXT,
    invalid BOOLEAN NOT NULL,
    release VARCHAR(80) NOT NULL,
    updated_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
    CONSTRAINT pk_medications PRIMARY KEY (dmd_id)
)
    """,
    """
CREATE INDEX ix_medications_name_prefix ON medications (name_normalised text_pattern_ops)
    """,
    """
CREATE INDEX ix_medications_name_trgm ON medications USING gin (name_normalised gin_trgm_ops)
    """,
    """
CREATE INDEX ix_medications_vmp_id ON medications (vmp_id)
    """,
    """
CREATE INDEX ix_medications_vtm_id ON medications (vtm_id)
    """,
    """
CREATE TABLE outbox (
    seq BIGINT GENERATED ALWAYS AS IDENTITY,
    id UUID NOT NULL,
    topic VARCHAR(200) NOT NULL,
    message_key TEXT NOT NULL,
    payload JSONB NOT NULL,
    practice_code VARCHAR(10) NOT NULL,
    created_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
    published_at TIMESTAMP WITH TIME ZONE,
    CONSTRAINT pk_outbox PRIMARY KEY (seq),
    CONSTRAINT uq_outbox_id UNIQUE (id)
)
    """,
    """
CREATE INDEX ix_outbox_unpublished ON outbox (seq) WHERE published_at IS NULL
    """,
    """
CREATE TABLE patient_allergies (
    id VARCHAR(64) NOT NULL,
    practice_code VARCHAR(10) NOT NULL,
    patient_id UUID NOT NULL,
    code VARCHAR(20),
    display TEXT NOT NULL,
    clinical_status VARCHAR(20),
    verification_status VARCHAR(20),
    no_known_allergies BOOLEAN NOT NULL,
    version_id INTEGER NOT NULL,
    updated_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
    CONSTRAINT pk_patient_allergies PRIMARY KEY (id)
)
    """,
    """
CREATE INDEX ix_patient_allergies_practice_patient ON patient_allergies (practice_code, patient_id)
    """,
    """
CREATE TABLE patients (
    id UUID NOT NULL,
    practice_code VARCHAR(10) NOT NULL,
    nhs_number VARCHAR(10),
    family TEXT NOT NULL,
    given TEXT NOT NULL,
    birth_date DATE,
    gender VARCHAR(10),
    active BOOLEAN NOT NULL,
    deceased BOOLEAN NOT NULL,
    version_id INTEGER NOT NULL,
    updated_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
    CONSTRAINT pk_patients PRIMARY KEY (id)
)
    """,
    """
CREATE TABLE safety_overrides (
    id UUID NOT NULL,
    practice_code VARCHAR(10) NOT NULL,
    request_id UUID NOT NULL,
    plan_id UUID NOT NULL,
    patient_id UUID NOT NULL,
    reason TEXT NOT NULL,
    findings JSONB NOT NULL,
    overridden_by TEXT NOT NULL,
    knowledge_base TEXT NOT NULL,
    recorded_at TIMESTAMP WITH TIME ZONE NOT NULL,
    CONSTRAINT pk_safety_overrides PRIMARY KEY (id)
)
    """,
    """
CREATE INDEX ix_safety_overrides_plan_id ON safety_overrides (plan_id)
    """,
]

TENANT_TABLES = ("patients", "patient_allergies", "medication_requests",
                 "medication_request_versions", "safety_overrides")

# Clinical entries are never deleted (corrections are new versions, mistakes are marked
# entered-in-error): the database refuses a DELETE whoever asks.
NO_DELETE = [
    """
CREATE FUNCTION refuse_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'rows of % are never deleted', TG_TABLE_NAME;
END
$$
    """,
    "CREATE TRIGGER medication_requests_no_delete BEFORE DELETE ON medication_requests "
    "FOR EACH ROW EXECUTE FUNCTION refuse_delete()",
    "CREATE TRIGGER medication_request_versions_no_delete BEFORE DELETE ON "
    "medication_request_versions FOR EACH ROW EXECUTE FUNCTION refuse_delete()",
    "CREATE TRIGGER safety_overrides_no_delete BEFORE DELETE ON safety_overrides "
    "FOR EACH ROW EXECUTE FUNCTION refuse_delete()",
]


def upgrade() -> None:
    # Trigram similarity for typo-tolerant medicine search (a trusted extension).
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    for statement in STATEMENTS + NO_DELETE:
        op.execute(statement)
    for table in TENANT_TABLES:
        for statement in tenant_rls_sql(table):
            op.execute(statement)


def downgrade() -> None:
    for table in ("inbox", "outbox", "eps_outbox", "safety_overrides",
                  "medication_request_versions", "medication_requests", "patient_allergies",
                  "patients", "kb_dose_limits", "kb_interactions", "kb_allergen_concepts",
                  "kb_substance_classes", "knowledge_base_release", "medications"):
        op.execute(f"DROP TABLE IF EXISTS {table}")
    op.execute("DROP FUNCTION IF EXISTS refuse_delete()")
    op.execute("DROP SEQUENCE IF EXISTS eps_prescription_sequence")
