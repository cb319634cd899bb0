"""Sharing: the access_grants projection, and policies that open the clinical record to
read-record agreements and break-glass grants (writes stay in the authoring practice).

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from alembic import op
from gpsoc_kit.sharing import (
    SCOPE_READ_RECORD,
    TablePlan,
    sharing_downgrade_sql,
    sharing_upgrade_sql,
)

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

RECORD = (SCOPE_READ_RECORD,)

# table: (patient column for break-glass, scopes that open reads, scopes that open writes)
TABLES: TablePlan = {
    "clinical_entries": ("patient_id", RECORD, ()),
    "entry_versions": (None, RECORD, ()),
    "patients": ("id", RECORD, ()),
    "issued_medications": ("patient_id", RECORD, ()),
}


def upgrade() -> None:
    for statement in sharing_upgrade_sql(TABLES):
        op.execute(statement)


def downgrade() -> None:
    for statement in sharing_downgrade_sql(TABLES):
        op.execute(statement)
