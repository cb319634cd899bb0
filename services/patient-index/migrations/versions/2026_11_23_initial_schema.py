"""Initial schema: patients (with versions), organisations, practitioners, outbox, inbox.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
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
CREATE TABLE inbox (
    consumer_group VARCHAR(200) NOT NULL,
    event_id VARCHAR(200) NOT NULL,
    event_type VARCHAR(200) NOT NULL,
    received_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
    CONSTRAINT pk_inbox PRIMARY KEY (consumer_group, event_id)
)
    """,
    """
CREATE TABLE organizations (
    id UUID NOT NULL,
    practice_code VARCHAR(10) NOT NULL,
    ods_code VARCHAR(10) NOT NULL,
    name TEXT NOT NULL,
    version_id INTEGER NOT NULL,
    last_updated TIMESTAMP WITH TIME ZONE NOT NULL,
    resource JSONB NOT NULL,
    CONSTRAINT pk_organizations PRIMARY KEY (id),
    CONSTRAINT uq_organizations_ods_code UNIQUE (ods_code)
)
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
CREATE TABLE patient_versions (
    patient_id UUID NOT NULL,
    version_id INTEGER NOT NULL,
    practice_code VARCHAR(10) NOT NULL,
    recorded_at TIMESTAMP WITH TIME ZONE NOT NULL,
    recorded_by TEXT NOT NULL,
    resource JSONB NOT NULL,
    CONSTRAINT pk_patient_versions PRIMARY KEY (patient_id, version_id)
)
    """,
    """
CREATE TABLE patients (
    id UUID NOT NULL,
    practice_code VARCHAR(10) NOT NULL,
    nhs_number VARCHAR(10),
    family TEXT NOT NULL,
    given TEXT NOT NULL,
    family_normalised TEXT NOT NULL,
    given_normalised TEXT NOT NULL,
    name_text TEXT NOT NULL,
    family_soundex VARCHAR(4) NOT NULL,
    birth_date DATE,
    gender VARCHAR(10),
    postal_code VARCHAR(10),
    gp_practitioner_id UUID,
    active BOOLEAN NOT NULL,
    deceased BOOLEAN NOT NULL,
    version_id INTEGER NOT NULL,
    created_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
    last_updated TIMESTAMP WITH TIME ZONE NOT NULL,
    resource JSONB NOT NULL,
    CONSTRAINT pk_patients PRIMARY KEY (id)
)
    """,
    """
CREATE INDEX ix_patients_name_trgm ON patients USING gin (name_text gin_trgm_ops)
    """,
    """
CREATE INDEX ix_patients_practice_birth_date ON patients (practice_code, birth_date)
    """,
    """
CREATE INDEX ix_patients_practice_family ON patients (practice_code, family_normalised)
    """,
    """
CREATE INDEX ix_patients_practice_gp ON patients (practice_code, gp_practitioner_id)
    """,
    """
CREATE INDEX ix_patients_practice_postal_code ON patients (practice_code, postal_code)
    """,
    """
CREATE INDEX ix_patients_practice_soundex ON patients (practice_code, family_soundex)
    """,
    """
CREATE UNIQUE INDEX uq_patients_nhs_number ON patients (nhs_number) WHERE nhs_number IS NOT NULL
    """,
    """
CREATE TABLE practitioners (
    id UUID NOT NULL,
    practice_code VARCHAR(10) NOT NULL,
    family_normalised TEXT NOT NULL,
    given_normalised TEXT NOT NULL,
    sds_user_id VARCHAR(20),
    roles TEXT[] NOT NULL,
    prescriber BOOLEAN NOT NULL,
    active BOOLEAN NOT NULL,
    version_id INTEGER NOT NULL,
    last_updated TIMESTAMP WITH TIME ZONE NOT NULL,
    resource JSONB NOT NULL,
    CONSTRAINT pk_practitioners PRIMARY KEY (id)
)
    """,
    """
CREATE INDEX ix_practitioners_practice_family ON practitioners (practice_code, family_normalised)
    """,
]

TENANT_TABLES = ("patients", "patient_versions", "organizations", "practitioners")


def upgrade() -> None:
    # Trigram similarity for fuzzy name search (a trusted extension: the owner may create it).
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    for statement in STATEMENTS:
        op.execute(statement)
    for table in TENANT_TABLES:
        for statement in tenant_rls_sql(table):
            op.execute(statement)


def downgrade() -> None:
    for table in (
        "inbox",
        "outbox",
        "practitioners",
        "organizations",
        "patient_versions",
        "patients",
    ):
        op.execute(f"DROP TABLE IF EXISTS {table}")
