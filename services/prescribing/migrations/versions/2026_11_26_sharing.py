"""Sharing: the access_grants projection, and policies that open medication records to
read-record agreements and break-glass grants (writes stay in the prescribing practice).

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
    "patients": ("id", RECORD, ()),
    "patient_allergies": ("patient_id", RECORD, ()),
    "medication_requests": ("patient_id", RECORD, ()),
    "medication_request_versions": (None, RECORD, ()),
    "safety_overrides": ("patient_id", RECORD, ()),
}


def upgrade() -> None:
    for statement in sharing_upgrade_sql(TABLES):
        op.execute(statement)


def downgrade() -> None:
    for statement in sharing_downgrade_sql(TABLES):
        op.execute(statement)
