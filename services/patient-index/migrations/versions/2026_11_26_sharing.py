"""Sharing agreements, break-glass grants and the policies that honour them.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

from alembic import op
from gpsoc_kit.sharing import (
    SCOPE_BOOK,
    SCOPE_READ_RECORD,
    TablePlan,
    sharing_downgrade_sql,
    sharing_upgrade_sql,
)

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

BOTH = (SCOPE_READ_RECORD, SCOPE_BOOK)

STATEMENTS = [
    """
CREATE TABLE sharing_agreements (
    id UUID NOT NULL,
    practice_code VARCHAR(10) NOT NULL,
    grantee_practice VARCHAR(10) NOT NULL,
    scopes TEXT[] NOT NULL,
    starts_at TIMESTAMP WITH TIME ZONE NOT NULL,
    ends_at TIMESTAMP WITH TIME ZONE,
    active BOOLEAN NOT NULL,
    version_id INTEGER NOT NULL,
    last_updated TIMESTAMP WITH TIME ZONE NOT NULL,
    resource JSONB NOT NULL,
    CONSTRAINT pk_sharing_agreements PRIMARY KEY (id)
)
    """,
    "CREATE INDEX ix_sharing_agreements_grantee ON sharing_agreements (grantee_practice)",
    """
CREATE TABLE sharing_agreement_versions (
    agreement_id UUID NOT NULL,
    version_id INTEGER NOT NULL,
    practice_code VARCHAR(10) NOT NULL,
    recorded_at TIMESTAMP WITH TIME ZONE NOT NULL,
    recorded_by TEXT NOT NULL,
    resource JSONB NOT NULL,
    CONSTRAINT pk_sharing_agreement_versions PRIMARY KEY (agreement_id, version_id)
)
    """,
    # The grantor writes its agreements; the grantee may read the ones naming it.
    "ALTER TABLE sharing_agreements ENABLE ROW LEVEL SECURITY",
    "ALTER TABLE sharing_agreements FORCE ROW LEVEL SECURITY",
    """
CREATE POLICY sharing_agreements_read ON sharing_agreements FOR SELECT USING (
    practice_code = current_setting('app.practice', true)
    OR grantee_practice = current_setting('app.practice', true))
    """,
    """
CREATE POLICY sharing_agreements_write ON sharing_agreements FOR ALL
    USING (practice_code = current_setting('app.practice', true))
    WITH CHECK (practice_code = current_setting('app.practice', true))
    """,
    """
CREATE TABLE patient_directory (
    patient_id UUID NOT NULL,
    practice_code VARCHAR(10) NOT NULL,
    CONSTRAINT pk_patient_directory PRIMARY KEY (patient_id)
)
    """,
    """
CREATE FUNCTION keep_patient_directory() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO patient_directory (patient_id, practice_code)
    VALUES (NEW.id, NEW.practice_code)
    ON CONFLICT (patient_id) DO UPDATE SET practice_code = EXCLUDED.practice_code
    WHERE patient_directory.practice_code IS DISTINCT FROM EXCLUDED.practice_code;
    RETURN NULL;
END $$
    """,
    """
CREATE TRIGGER patients_directory AFTER INSERT OR UPDATE OF practice_code ON patients
    FOR EACH ROW EXECUTE FUNCTION keep_patient_directory()
    """,
    # Patients registered before this revision: the owner is bound by FORCE'd
    # row-level security too, so it steps out of it for the copy and back in.
    "ALTER TABLE patients NO FORCE ROW LEVEL SECURITY",
    "INSERT INTO patient_directory (patient_id, practice_code) SELECT id, practice_code FROM patients",
    "ALTER TABLE patients FORCE ROW LEVEL SECURITY",
]

# table: (patient column for break-glass, scopes that open reads, scopes that open writes)
TABLES: TablePlan = {
    "patients": ("id", (SCOPE_READ_RECORD,), ()),
    "patient_versions": ("patient_id", (SCOPE_READ_RECORD,), ()),
    # A linked practice's users see who works there and where (slots name them).
    "organizations": (None, BOTH, ()),
    "practitioners": (None, BOTH, ()),
}


def upgrade() -> None:
    for statement in sharing_upgrade_sql(TABLES) + STATEMENTS:
        op.execute(statement)


def downgrade() -> None:
    for statement in (
        "DROP TRIGGER IF EXISTS patients_directory ON patients",
        "DROP FUNCTION IF EXISTS keep_patient_directory()",
        "DROP TABLE IF EXISTS patient_directory",
        "DROP TABLE IF EXISTS sharing_agreement_versions",
        "DROP TABLE IF EXISTS sharing_agreements",
        *sharing_downgrade_sql(TABLES),
    ):
        op.execute(statement)
