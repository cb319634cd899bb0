"""Which practice holds each patient, for disclosure records in the holder's trail.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
CREATE TABLE patient_practices (
    patient_id TEXT NOT NULL,
    practice_code VARCHAR(10) NOT NULL,
    CONSTRAINT pk_patient_practices PRIMARY KEY (patient_id)
)
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS patient_practices")
