"""Initial schema: clinical entries (with versions), patient and medication projections,
SNOMED CT tables, outbox, inbox.

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
CREATE TABLE clinical_entries (
    id UUID NOT NULL,
    practice_code VARCHAR(10) NOT NULL,
    resource_type VARCHAR(40) NOT NULL,
    patient_id UUID NOT NULL,
    code_system TEXT,
    code TEXT,
    code_tokens TEXT[] NOT NULL,
    category TEXT[] NOT NULL,
    status VARCHAR(40) NOT NULL,
    clinical_status VARCHAR(40),
    effective_at TIMESTAMP WITH TIME ZONE,
    encounter_id UUID,
    appointment_id UUID,
    entered_in_error BOOLEAN NOT NULL,
    version_id INTEGER NOT NULL,
    created_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
    last_updated TIMESTAMP WITH TIME ZONE NOT NULL,
    resource JSONB NOT NULL,
    CONSTRAINT pk_clinical_entries PRIMARY KEY (id)
)
    """,
    """
CREATE INDEX ix_clinical_entries_encounter ON clinical_entries (encounter_id) WHERE encounter_id IS NOT NULL
    """,
    """
CREATE INDEX ix_clinical_entries_patient_type_effective ON clinical_entries (practice_code, patient_id, resource_type, effective_at DESC)
    """,
    """
CREATE UNIQUE INDEX uq_clinical_entries_appointment_id ON clinical_entries (appointment_id) WHERE appointment_id IS NOT NULL
    """,
    """
CREATE TABLE entry_versions (
    entry_id UUID NOT NULL,
    version_id INTEGER NOT NULL,
    practice_code VARCHAR(10) NOT NULL,
    resource_type VARCHAR(40) NOT NULL,
    recorded_at TIMESTAMP WITH TIME ZONE NOT NULL,
    recorded_by TEXT NOT NULL,
    recorded_by_name TEXT NOT NULL,
    resource JSONB NOT NULL,
    CONSTRAINT pk_entry_versions PRIMARY KEY (entry_id, version_id)
)
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
CREATE TABLE issued_medications (
    id UUID NOT NULL,
    practice_code VARCHAR(10) NOT NULL,
    patient_id UUID NOT NULL,
    issued_at TIMESTAMP WITH TIME ZONE NOT NULL,
    resource JSONB NOT NULL,
    CONSTRAINT pk_issued_medications PRIMARY KEY (id)
)
    """,
    """
CREATE INDEX ix_issued_medications_patient ON issued_medications (practice_code, patient_id, issued_at DESC)
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
CREATE TABLE patients (
    id UUID NOT NULL,
    practice_code VARCHAR(10) NOT NULL,
    active BOOLEAN NOT NULL,
    deceased BOOLEAN NOT NULL,
    version_id INTEGER NOT NULL,
    updated_at TIMESTAMP WITH TIME ZONE NOT NULL,
    CONSTRAINT pk_patients PRIMARY KEY (id)
)
    """,
    """
CREATE TABLE snomed_concepts (
    id VARCHAR(18) NOT NULL,
    effective_time VARCHAR(8) NOT NULL,
    active BOOLEAN NOT NULL,
    module_id VARCHAR(18) NOT NULL,
    fully_specified_name TEXT,
    CONSTRAINT pk_snomed_concepts PRIMARY KEY (id)
)
    """,
    """
CREATE TABLE snomed_descriptions (
    id VARCHAR(18) NOT NULL,
    effective_time VARCHAR(8) NOT NULL,
    active BOOLEAN NOT NULL,
    concept_id VARCHAR(18) NOT NULL,
    language_code VARCHAR(8) NOT NULL,
    type_id VARCHAR(18) NOT NULL,
    term TEXT NOT NULL,
    CONSTRAINT pk_snomed_descriptions PRIMARY KEY (id)
)
    """,
    """
CREATE INDEX ix_snomed_descriptions_concept ON snomed_descriptions (concept_id)
    """,
    """
CREATE INDEX ix_snomed_descriptions_term_trgm ON snomed_descriptions USING gin (term gin_trgm_ops)
    """,
]

TENANT_TABLES = ("clinical_entries", "entry_versions", "patients", "issued_medications")

# The record never loses a word, whoever connects: entries are never deleted, and a
# version once written is never changed or removed.
IMMUTABILITY = [
    """
CREATE FUNCTION refuse_lost_clinical_data() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'clinical entries and their versions are never deleted or rewritten'
        USING ERRCODE = 'restrict_violation';
END
$$
    """,
    """
CREATE TRIGGER clinical_entries_never_deleted BEFORE DELETE ON clinical_entries
    FOR EACH ROW EXECUTE FUNCTION refuse_lost_clinical_data()
    """,
    """
CREATE TRIGGER entry_versions_never_changed BEFORE UPDATE OR DELETE ON entry_versions
    FOR EACH ROW EXECUTE FUNCTION refuse_lost_clinical_data()
    """,
]


def upgrade() -> None:
    # Trigram matching for SNOMED CT text look-up (a trusted extension: the owner may create it).
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    for statement in STATEMENTS:
        op.execute(statement)
    for table in TENANT_TABLES:
        for statement in tenant_rls_sql(table):
            op.execute(statement)
    for statement in IMMUTABILITY:
        op.execute(statement)


def downgrade() -> None:
    for table in (
        "inbox",
        "outbox",
        "snomed_descriptions",
        "snomed_concepts",
        "issued_medications",
        "patients",
        "entry_versions",
        "clinical_entries",
    ):
        op.execute(f"DROP TABLE IF EXISTS {table}")
    op.execute("DROP FUNCTION IF EXISTS refuse_lost_clinical_data()")
